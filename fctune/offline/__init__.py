"""The offline sources, in any upstream shape (Hermes, xLAM, OpenAI chat), needing no network.

* the data engine (:mod:`fctune.offline.engine`, ``source = fctune-offline-v2``): ``--source offline``, rows over
  thousands of generated tools (:mod:`fctune.offline.schemagen`), every row kind, each call verified;
* the ten-domain catalog (:mod:`fctune.offline.generator`, ``source = fctune-offline-v1``): 31 hand-written tools,
  structured JSON extraction and scripted multi-turn rows; ``--source offline-catalog``, the suites' source, and one
  small share of the engine's rows.

Every output's metadata names which one was used.
"""

from __future__ import annotations

import random

from fctune.formats import write_row
from fctune.offline.generator import DEFAULT_MIX, SOURCE, generate_examples

__all__ = ["DEFAULT_MIX", "SOURCE", "generate_examples", "emit_rows", "XLAM_MIX"]

# xLAM rows are single-turn tool calls only.
XLAM_MIX = {"single": 0.7, "parallel": 0.2, "irrelevant": 0.1}


def emit_rows(examples, shape: str, seed: int = 0) -> list[dict]:
    """Rows in an upstream shape, any writable entry of :data:`fctune.formats.FORMATS`: ``hermes`` (ShareGPT, ~30%
    single-quoted calls as upstream), ``xlam`` (single-turn rows only; others raise), ``openai`` or ``canonical``."""
    rng = random.Random(seed)
    rows = [write_row(shape, e, rng) for e in examples]
    for r, e in zip(rows, examples, strict=True):
        r["source"] = e.metadata.get("source") or SOURCE
    return rows
