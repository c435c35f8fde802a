"""Requests reworded by a model, verified like every generated row (off by default).

The engine's requests come from templates; a model (in this process, on the local llama.cpp server, Azure or any
OpenAI-compatible endpoint, through fctune's backends with their retries) rewrites the user turn of single-turn call
rows in its own words. A rewrite is kept only when the row still passes :func:`fctune.offline.engine.verify_example`
(every value of every call is in the new text, or is its parameter's schema default, which a person's request leaves
implied); otherwise the template text stays and the row is counted as rejected. A failed request is counted as an
error, never kept. Which endpoint and model, and the counts, are recorded in
``dataset_stats.json``.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter

from fctune.offline.engine import verify_example
from fctune.schema import Example, Expected, Message

log = logging.getLogger(__name__)
# single-turn call rows only: a multi-turn row's later turns refer to the first one's words, and a clarify or
# no-call row's point is what its text leaves out, which a rewrite could fill in
KINDS = ("single", "choose", "parallel_same", "parallel_multi", "implied")
INSTRUCTION = (
    "Rewrite the request below as a natural message a user would send to an assistant. Keep every value exactly as "
    "written: numbers, names, codes, dates, e-mail addresses, and lists. Do not add or drop any value, do not answer "
    "the request. Reply with the rewritten message only.\n\nRequest: {text}")


def _prompt_example(e: Example) -> Example:  # the rewrite request, sent through the same backends as an evaluation
    return Example(id=e.id, messages=[Message("user", INSTRUCTION.format(text=e.messages[0].content))], tools=[],
                   expected=Expected("no_call"), metadata={})


def _clean(text: str | None) -> str:
    t = (text or "").strip().strip('"').strip()  # small models wrap their answer in quotes or a label despite the ask
    for prefix in ("Rewritten message:", "Message:", "User:"):
        if t.lower().startswith(prefix.lower()):
            t = t[len(prefix):].strip()
    return t


def rewrite_queries(examples: list[Example], backend, share: float = 1.0, seed: int = 0) -> tuple[list[Example], dict]:
    """Reword a seeded ``share`` of the eligible rows with ``backend`` (an fctune generation backend)."""
    import random

    rng = random.Random(f"fctune-rewrite:{seed}")
    eligible = [e for e in examples if e.metadata.get("row_kind") in KINDS and len(e.messages) == 1
                and e.messages[0].role == "user" and rng.random() < share]
    counts = Counter(asked=len(eligible))
    by_id = {e.id: e for e in eligible}
    rewritten: dict[str, Example] = {}
    for g in backend.generate([_prompt_example(e) for e in eligible]):
        e = by_id[g.id]
        if g.error:
            counts["errors"] += 1
            continue
        text = _clean(g.output)
        if not text:
            counts["rejected_empty"] += 1
            continue
        new = copy.deepcopy(e)
        new.messages[0].content = text
        why = verify_example(new, schema_defaults=True)  # a rewrite may leave a default implied
        if why:
            counts[f"rejected_{why}"] += 1
            continue
        # the template text is kept beside the rewrite: a reader can see what the LLM changed
        new.metadata = {**new.metadata, "query_writer": "llm", "template_text": e.messages[0].content}
        rewritten[e.id] = new
        counts["rewritten"] += 1
    log.info("query writer: %d of %d requests reworded (%s)", counts["rewritten"], counts["asked"], dict(counts))
    return [rewritten.get(e.id, e) for e in examples], dict(counts)
