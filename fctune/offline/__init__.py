"""The offline source: seeded function-calling conversations over ten domains, in any upstream shape.

It is the documented default when the hub cannot be reached, so the whole pipeline runs with no
network; every output's metadata names it (``source = fctune-offline-v1``).
"""

from __future__ import annotations

import random

from fctune.formats.hermes import HermesConverter
from fctune.formats.openai import OpenAIChatConverter
from fctune.formats.xlam import XlamConverter
from fctune.offline.generator import DEFAULT_MIX, SOURCE, generate_examples

__all__ = ["DEFAULT_MIX", "SOURCE", "generate_examples", "emit_rows", "XLAM_MIX"]

# xLAM rows are single-turn tool calls only.
XLAM_MIX = {"single": 0.7, "parallel": 0.2, "irrelevant": 0.1}


def emit_rows(examples, shape: str, seed: int = 0) -> list[dict]:
    """Rows in an upstream shape: ``hermes`` (ShareGPT, ~30% single-quoted calls as upstream), ``xlam``
    (single-turn rows only; others raise) or ``openai``."""
    rng = random.Random(seed)
    if shape == "hermes":
        rows = [HermesConverter.to_row(e, rng, python_literal_share=0.3) for e in examples]
    elif shape == "xlam":
        rows = [XlamConverter.to_row(e) for e in examples]
    elif shape == "openai":
        rows = [OpenAIChatConverter.to_row(e) for e in examples]
    else:
        raise ValueError(f"unknown shape {shape!r}: hermes, xlam or openai")
    for r in rows:
        r["source"] = SOURCE
    return rows
