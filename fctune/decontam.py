"""Decontamination against BFCL: no BFCL function name and no BFCL question text in training data.

The reference is every question row of the BFCL categories fctune evaluates (non-live and live, from the
installed ``bfcl-eval``). Two checks over a list of examples:

* function names: any offered or called tool whose name (case-insensitive) is a BFCL function name;
* question overlap: a row whose user text shares an 8-word sequence with a BFCL question (lowercased words).

:func:`check_contamination` returns a report; the prepare step fails on a name (``--decontaminate fail``), drops
the rows (``drop``), or only reports (``report``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache

from fctune.errors import UserError

log = logging.getLogger(__name__)
NGRAM = 8
MODES = ("fail", "drop", "report", "off")


class ContaminationError(UserError, ValueError):
    pass


@dataclass(frozen=True)
class BfclReference:
    names: frozenset
    names_lower: frozenset
    ngrams: frozenset
    questions: int
    version: str | None
    categories: tuple

    def describe(self) -> dict:
        return {"bfcl_eval": self.version, "categories": list(self.categories), "function_names": len(self.names),
                "questions": self.questions, "question_ngrams": len(self.ngrams), "ngram": NGRAM}


def word_ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    # lower-cased words without punctuation: "Paris," and "paris" are one word, as a paraphrase would treat them
    toks = re.findall(r"[a-z0-9]+", (text or "").lower())
    return {tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)}


@lru_cache(maxsize=1)  # read once a process: every BFCL category, a few thousand questions
def bfcl_reference() -> BfclReference | None:
    """BFCL's function names and question 8-grams, or ``None`` when bfcl-eval is not installed (a warning)."""
    from fctune.formats.bfcl import CATEGORIES, BfclDataMissing, load_category, package_version

    names, grams, questions = set(), set(), 0
    try:
        for cat in CATEGORIES:
            for e in load_category(cat):
                names |= set(e.tool_names)
                questions += 1
                for m in e.messages:
                    if m.role == "user":
                        grams |= word_ngrams(m.content)
    except BfclDataMissing as e:
        log.warning("decontamination against BFCL not possible: %s", e)
        return None
    return BfclReference(frozenset(names), frozenset(n.lower() for n in names), frozenset(grams), questions,
                         package_version(), CATEGORIES)


def _names(ex) -> set[str]:
    out = set(ex.tool_names)
    for m in ex.messages:
        out |= {c.name for c in m.tool_calls or []}
    if ex.expected.kind == "tool_calls":
        out |= {c.name for c in ex.expected.tool_calls}
    return out


def _overlaps(examples, ref: BfclReference) -> tuple[dict[str, list[str]], list[str]]:
    name_hits: dict[str, list[str]] = {}
    ngram_rows: list[str] = []
    for ex in examples:
        for n in _names(ex):
            if n.lower() in ref.names_lower:  # case-insensitive: "Get_Weather" leaks as much as "get_weather"
                name_hits.setdefault(n, []).append(ex.id)
        # only what users say: a tool result or an assistant turn quoting a common phrase is not a leaked question
        text = " ".join(m.content or "" for m in ex.messages if m.role == "user")
        if word_ngrams(text) & ref.ngrams:
            ngram_rows.append(ex.id)
    return name_hits, ngram_rows


def _report(examples, ref: BfclReference, name_hits: dict, ngram_rows: list) -> dict:
    return {"checked": True, "reference": ref.describe(), "rows_checked": len(examples),
            "function_name_overlap": {n: {"rows": len(ids), "first_rows": ids[:3]}
                                      for n, ids in sorted(name_hits.items())},
            "rows_with_bfcl_function_name": len({i for ids in name_hits.values() for i in ids}),
            "rows_with_question_ngram_overlap": len(ngram_rows), "first_ngram_rows": ngram_rows[:5]}


def check_contamination(examples, ref: BfclReference | None = None) -> dict:
    """Which rows name a BFCL function, and which share an 8-gram with a BFCL question."""
    ref = ref or bfcl_reference()
    if ref is None:
        return {"checked": False, "why": "bfcl-eval is not installed"}
    return _report(examples, ref, *_overlaps(examples, ref))


def decontaminate(examples, mode: str, where: str) -> tuple[list, dict]:
    """Apply ``mode`` to ``examples``: ``fail`` stops on a BFCL function name and drops rows sharing an 8-gram with
    a BFCL question; ``drop`` drops both; ``report`` keeps everything; ``off`` checks nothing. Returns the rows kept
    and the report (recorded in dataset_stats.json)."""
    if mode not in MODES:
        raise UserError(f"--decontaminate {mode!r}: one of {', '.join(MODES)}")
    if mode == "off":
        return examples, {"checked": False, "why": "--decontaminate off"}
    ref = bfcl_reference()
    if ref is None:
        return examples, {"checked": False, "why": "bfcl-eval is not installed", "mode": mode}
    name_hits, ngram_rows = _overlaps(examples, ref)
    report = {**_report(examples, ref, name_hits, ngram_rows), "mode": mode}
    hits = report["function_name_overlap"]
    if hits and mode == "fail":
        name, info = next(iter(hits.items()))
        raise ContaminationError(
            f"{where}: {report['rows_with_bfcl_function_name']} rows offer or call a function BFCL uses "
            f"({len(hits)} names, e.g. {name!r} in row {info['first_rows'][0]}); training on them would leak the "
            f"benchmark. Use --decontaminate drop to drop those rows, or --decontaminate report to keep them "
            f"(recorded).")
    if mode == "report":
        return examples, report
    bad = set(ngram_rows) | {i for ids in name_hits.values() for i in ids}
    kept = [e for e in examples if e.id not in bad]
    report["rows_dropped"] = len(examples) - len(kept)
    return kept, report
