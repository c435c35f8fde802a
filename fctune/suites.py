"""The test suites: fixed-size, stratified splits built from a prepared dataset or the offline source.

* ``single_turn``: simple 20, moderate 20, complex 10 single-turn call rows (50);
* ``multi_turn``: clarification 10, sequential 10, context-dependent 10 (30); the scored turn is the last
  assistant turn and every earlier turn, tool responses included, is context;
* ``domain_diverse``: 5 call rows from each of the ten domains (50), domain detection in
  :mod:`fctune.domains`; rows detected as "other" are counted in the report, never used;
* ``structured_json``: 30 structured-output rows (one JSON object against a JSON Schema), 3 per domain;
* ``no_call``: 30 rows where the right answer is no call (the safety capability): 20 "no tool fits", a
  single-turn request offered only the tools of another domain's row (:func:`no_tool_fits_rows`), and 10 rows
  whose expected answer in the data is text, not a call (a source without them gives fewer, reported).
  BFCL's ``irrelevance`` category is its external check.

A suite drawn from the offline source uses its own seed stream and drops every row that duplicates a row
of the training or validation split (``exclude``), so suites never test on training data. When a
source has too few rows of a kind the report says how many were found; nothing is padded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from fctune.data import OFFLINE, OFFLINE_CATALOG, dedupe, dedupe_key, load_source
from fctune.domains import OTHER
from fctune.errors import UserError
from fctune.schema import Example, Expected, read_examples
from fctune.suite_specs import SUITES, SuiteSpec  # the registry; tests and scripts read it from here too

log = logging.getLogger(__name__)


SUITE_SEED_OFFSET = 10_000  # offline suites draw from a seed stream the training data does not use


@dataclass
class SuiteConfig:
    """Build a test suite's split (and, given a model's predictions, score them)."""

    source: str = field(default=OFFLINE, metadata={
        "help": "'offline' (the ten-domain offline catalog), a prepared split (e.g. "
                "paper_approach/datasets/hermes_test.jsonl), a local data file/folder or a hub dataset id"})
    dataset_config: str | None = field(default=None, metadata={"help": "hub config, when --source is a hub id"})
    seed: int = field(default=42, metadata={"help": "sampling seed"})
    output_dir: str = field(default="comparison_framework/test_splits", metadata={"help": "where the split goes"})
    exclude: list[str] = field(default_factory=lambda: ["paper_approach/datasets/hermes_train.jsonl",
                                                        "paper_approach/datasets/hermes_val.jsonl"], metadata={
        "help": "splits whose rows must not appear in the suite (missing files are skipped, and reported)"})
    predictions: str | None = field(default=None, metadata={
        "help": 'score this JSONL of {"id", "output"} predictions against the suite'})
    model: str | None = field(default=None, metadata={"help": "model label for the result files"})
    results_dir: str = field(default="paper_approach/eval_results", metadata={
        "help": "where <model>_<suite>.json and <model>_<suite>_details.jsonl go"})


def _pool(cfg: SuiteConfig, spec: SuiteSpec) -> tuple[list[Example], dict]:
    need = sum(spec.quotas.values())
    if cfg.source == OFFLINE:
        # The suites stay on the ten-domain catalog (fctune-offline-v1), not the engine's generated tools, so suite
        # results remain comparable across engine versions; BFCL is the test of tools never seen in training.
        res = load_source(OFFLINE_CATALOG, None, "none", need * 12, cfg.seed + SUITE_SEED_OFFSET)
        return res.examples, res.source
    p = Path(cfg.source)
    if p.is_file() and p.suffix == ".jsonl":
        try:
            return read_examples(p), {"kind": "split", "path": str(p)}
        except ValueError:
            pass  # not canonical rows: read it as upstream data below
    res = load_source(cfg.source, cfg.dataset_config, "none", need * 12, cfg.seed)
    return res.examples, res.source


def no_tool_fits_rows(pool: list[Example]) -> list[Example]:
    """Rows whose right answer is no call because no offered tool fits: each single-turn call row's request, offered
    the tools of the next row (in a fixed order) from another domain whose tools share no name with the calls the
    request needs. The expected answer is text (an abstention), as BFCL's irrelevance rows."""
    calls = [e for e in pool if e.expected.kind == "tool_calls" and e.metadata.get("turn_type") == "single"
             and e.tools and e.metadata.get("domain") not in (None, OTHER)]
    calls.sort(key=lambda e: hashlib.sha256(f"no_call:{e.id}".encode()).hexdigest())
    out = []
    for i, e in enumerate(calls):
        needed = {c.name for c in e.expected.tool_calls}
        for other in calls[i + 1:] + calls[:i]:
            if other.metadata.get("domain") != e.metadata.get("domain") and not needed & set(other.tool_names):
                out.append(Example(id=f"{e.id}~tools-of~{other.id}", messages=e.messages, tools=other.tools,
                                   expected=Expected(kind="no_call"),
                                   metadata={**e.metadata, "no_call_kind": "no_tool_fits", "turn_type": "single",
                                             "tools_from": other.id, "tools_domain": other.metadata.get("domain")}))
                break
    return out


def eligible(spec: SuiteSpec, e: Example) -> bool:
    if e.expected.kind != spec.kind:
        return False
    if spec.turn_type and e.metadata.get("turn_type") != spec.turn_type:
        return False
    return True


def build_suite(spec: SuiteSpec, cfg: SuiteConfig) -> tuple[list[Example], dict]:
    """Sample the suite; the report has counts found per stratum, shortfalls and exclusions."""
    pool, source = _pool(cfg, spec)
    pool, dupes = dedupe(pool)
    excluded_keys, exclude_report = set(), {}
    for path in cfg.exclude:
        if Path(path).exists():
            keys = {dedupe_key(e) for e in read_examples(path)}
            excluded_keys |= keys
            exclude_report[path] = len(keys)
        else:
            exclude_report[path] = "missing"
    before = len(pool)
    pool = [e for e in pool if dedupe_key(e) not in excluded_keys]
    overlap_removed = before - len(pool)
    if spec.kind == "no_call":
        pool = [dataclasses.replace(e, metadata={**e.metadata, "no_call_kind": "in_data"})
                if e.expected.kind == "no_call" else e for e in pool] + no_tool_fits_rows(pool)
    candidates = [e for e in pool if eligible(spec, e)]
    by = defaultdict(list)
    for e in candidates:
        by[str(e.metadata.get(spec.key))].append(e)
    def order(e: Example) -> str:
        # A fixed pseudo-random order per row: excluding one row changes only that row's slot, so suites built
        # against different training splits (phase 1, phase 2) stay the same but for the overlapping rows.
        return hashlib.sha256(f"{spec.name}:{cfg.seed}:{e.id}".encode()).hexdigest()

    chosen, found, shortfall = [], {}, {}
    for stratum, quota in spec.quotas.items():
        rows = sorted(by.get(stratum, []), key=order)
        found[stratum] = len(rows)
        chosen.extend(rows[:quota])
        if len(rows) < quota:
            shortfall[stratum] = {"wanted": quota, "found": len(rows)}
    chosen.sort(key=order)  # mixed order: any prefix (--limit) is a rough stratified sample
    unused = {k: len(v) for k, v in by.items() if k not in spec.quotas}
    report = {
        "suite": spec.name, "source": source, "size": len(chosen), "target_size": sum(spec.quotas.values()),
        "quotas": spec.quotas, "found": found, "shortfall": shortfall, "other_strata": unused,
        "duplicates_dropped": dupes, "excluded_overlap": overlap_removed, "exclude": exclude_report,
        "counts": {k: dict(Counter(str(e.metadata.get(k)) for e in chosen))
                   for k in ("complexity", "turn_type", "domain", "multi_turn_kind")},
    }
    if spec.key == "domain":
        report["other_domain_rows"] = len(by.get(OTHER, []))
    for stratum, s in shortfall.items():
        log.warning("%s: only %d %s rows found for %r (wanted %d); the suite is smaller, not padded",
                    spec.name, s["found"], spec.key, stratum, s["wanted"])
    return chosen, report


def run_suite(suite: str, cfg: SuiteConfig) -> dict:
    """Build (or reuse, when predictions are scored) the suite split; score predictions when given."""
    from fctune.config import run_metadata
    from fctune.io import read_jsonl, write_json_atomic
    from fctune.schema import write_examples

    spec = SUITES[suite]
    split = Path(cfg.output_dir) / spec.file
    result: dict = {"suite": suite, "split": str(split)}
    if cfg.predictions and split.exists():
        examples = read_examples(split)
    else:
        examples, report = build_suite(spec, cfg)
        write_examples(split, examples)
        report["metadata"] = run_metadata(cfg, data_files=[split])
        write_json_atomic(split.with_suffix(".report.json"), report)
        result["report"] = report
    if cfg.predictions:
        from fctune.evaluate import result_paths
        from fctune.score import score_predictions, write_scores

        if not cfg.model:
            raise UserError("--model is needed with --predictions (it names the result files)")
        details, issues = score_predictions(examples, read_jsonl(cfg.predictions), where=cfg.predictions)
        summary_path, details_path = result_paths(cfg.results_dir, cfg.model, suite)
        result["summary"] = write_scores(examples, details, issues, summary_path, details_path,
                                         {"model": {"label": cfg.model}, "suite": suite, "split_file": str(split)})
        result["summary_path"] = str(summary_path)
    return result


def suite_main(suite: str, argv=None) -> int:
    from fctune.cli import run_script

    def summary(r):
        line = f"{suite}: wrote {r['split']}"
        rep = r.get("report")
        if rep:
            line += f" ({rep['size']}/{rep['target_size']} rows"
            line += f", SHORT: {rep['shortfall']})" if rep["shortfall"] else ")"
        if "summary" in r:
            s = r["summary"]
            line += (f"; scored -> {r['summary_path']}: exact {s['exact_match_rate']}, field F1 "
                     f"{s['field_f1']}, valid JSON {s['valid_json_rate']}")
        return line

    return run_script(SuiteConfig, lambda cfg: run_suite(suite, cfg), argv, summary=summary,
                      description=(SuiteConfig.__doc__ or "") + f" Suite: {suite}.")


def main(argv=None) -> int:
    """``fctune suites NAME [options]``: build (and optionally score) one suite; NAME is one of :data:`SUITES`."""
    import sys

    from fctune.cli import usage_exit

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUITES:
        return usage_exit(f"usage: fctune suites {{{','.join(SUITES)}}} [options]  (--help after the name for the "
                          "options)", argv)
    return suite_main(argv[0], argv[1:])
