"""Evaluation runner: any backend, any suite; resumable; scored into the comparison's file layout.

Result naming convention (what ``compare_approaches.py`` reads):
``<results_dir>/<model label>_<suite>.json`` (summary) and ``<model label>_<suite>_details.jsonl``
(per-example verdicts), with the raw generations in ``<model label>_<suite>_predictions.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from fctune.backends import (
    API_MODEL_ENV,
    BACKEND_HELP,
    BACKENDS,
    make_backend,
)
from fctune.backends.local import ENGINES
from fctune.errors import UserError
from fctune.io import (
    JsonlAppender,
    OutputLock,
    read_json,
    read_jsonl_tolerant,
    sha256_file,
    write_json_atomic,
    write_jsonl_atomic,
)
from fctune.suite_specs import SUITES
from fctune.tool_tokens import REPAIRS

log = logging.getLogger(__name__)


def safe_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")


def result_paths(results_dir, label: str, suite: str) -> tuple[Path, Path]:
    base = Path(results_dir) / f"{safe_label(label)}_{suite}"
    return base.with_name(base.name + ".json"), base.with_name(base.name + "_details.jsonl")


def predictions_path(results_dir, label: str, suite: str) -> Path:
    return Path(results_dir) / f"{safe_label(label)}_{suite}_predictions.jsonl"


def _suite_names() -> list[str]:
    return list(SUITES)  # read when a config is made: a suite registered at run time is a default too




@dataclass
class EvalConfig:
    """Evaluate one model (local, with an optional adapter, or an OpenAI-compatible endpoint) on suites."""

    backend: str = field(default="local", metadata={
        "help": BACKEND_HELP, "choices": list(BACKENDS)})
    model: str | None = field(default=None, metadata={
        "help": "local / llamacpp: hub id, folder, .gguf or 'smollm2' (the default); openai: model name (default "
                "OPENAI_MODEL from .env); azure: deployment (default AZURE_OPENAI_DEPLOYMENT)"})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder (local backend)"})
    label: str | None = field(default=None, metadata={
        "help": "result label: files are <label>_<suite>.json (default from the model and adapter)"})
    approach: str | None = field(default=None, metadata={"help": "recorded for the comparison: paper, fledgling, "
                                                                  "llm, ..."})
    role: str | None = field(default=None, metadata={"help": "recorded for the comparison: base, finetuned or llm",
                                                     "choices": [None, "base", "finetuned", "llm", "served"]})
    family: str | None = field(default=None, metadata={"help": "recorded for the comparison, e.g. phi or llama"})
    suites: list[str] = field(default_factory=_suite_names, metadata={
        "help": "suites to run (their splits must exist in --splits-dir)"})
    splits_dir: str = field(default="comparison_framework/test_splits", metadata={"help": "where suite splits are"})
    split_files: list[str] = field(default_factory=list, metadata={
        "help": "evaluate these split files instead of the suites (suite name = file stem without '_test')"})
    results_dir: str = field(default="paper_approach/eval_results", metadata={"help": "where results go"})
    limit: int | None = field(default=None, metadata={"min": 1, "help": "only the first N rows of each split"})
    max_new_tokens: int | None = field(default=None, metadata={"min": 1, "help": (
        "generation budget per answer (default: sized from each split, answer_budget(): 1.5x its longest expected "
        "answer, at least 128 tokens; an answer the budget cut is counted as 'truncated')")})
    batch_size: int = field(default=8, metadata={"min": 1, "help": (
        "local backend, padded and static engines: prompts per generate() call; a small model on a GPU gains from wide "
        "batches (a whole BFCL category per call, as long as the cache fits; BENCHMARKS.md)")})
    engine: str = field(default="padded", metadata={
        "help": "local backend: " + "; ".join(f"{name} = {what}" for name, what in ENGINES.items())
                + " (BENCHMARKS.md compares them)",
        "choices": list(ENGINES)})
    stop_repeats: int = field(default=0, metadata={"min": 0, "help": (
        "local backend, padded and static engines: stop an answer once its last N tokens repeat one block of at most "
        "N/4 tokens verbatim (greedy decoding caught in a loop, which would run to the budget); it is scored as cut "
        "('truncated', finish reason 'repeat'), and its output is the answer so far, with fewer copies of the loop "
        "than the budget would have let it write. 0 = off (every answer runs to a stop token or the budget)")})
    prompt_format: str | None = field(default=None, metadata={
        "help": "local backend: auto, native or hermes (default: the adapter's training format)"})
    repair_tokens: str = field(default="auto", metadata={
        "help": "local and llamacpp backends: tool-call tags the model cannot write (added tokens whose embedding rows "
                "are untrained, found by fctune.tool_tokens) are " + "; ".join(f"{k} = {v}" for k, v in REPAIRS.items())
                + " (an adapter keeps the tokenizer it was trained with under auto)", "choices": list(REPAIRS)})
    device: str = field(default="auto", metadata={"help": "local backend: auto, cpu or cuda"})
    dtype: str = field(default="auto", metadata={
        "help": "local backend: weights' dtype (auto = bf16 on a GPU or a CPU with native bf16, else fp32)",
        "choices": ["auto", "bf16", "fp16", "fp32"]})
    base_url: str | None = field(default=None, metadata={"help": "openai backend: endpoint (default OPENAI_BASE_URL)"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "environment variable holding the API key"})
    max_concurrency: int = field(default=4, metadata={"min": 1, "help": "API backends: requests in flight (llamacpp: "
                                                                      "also the server's parallel slots; more than "
                                                                      "one makes its greedy answers depend on which "
                                                                      "requests share a batch, 1 repeats them)"})
    llama_server: str = field(default="auto", metadata={
        "help": "llamacpp backend, completions mode: cpp = llama.cpp's llama-server, which decodes --max-concurrency "
                "requests side by side (faster than one at a time: BENCHMARKS.md table 7); python = llama-cpp-python's "
                "server, one request at a time; auto = cpp where scripts/bootstrap.sh built it (the chat modes always "
                "use python, whose handler returns tool_calls)", "choices": ["auto", "cpp", "python"]})
    request_timeout_s: float = field(default=60.0, metadata={"gt": 0, "help": "API backends: per-request timeout"})
    max_retries: int = field(default=4, metadata={"min": 0, "help": "API backends: retries on 429/5xx/timeouts"})
    backoff_base_s: float = field(default=1.0, metadata={"min": 0, "help": "API backends: first retry delay (doubles)"})
    structured_mode: str = field(default="auto", metadata={
        "help": "API backends: response_format json_schema, prompt instructions, or auto (try, then fall back)",
        "choices": ["auto", "response_format", "prompt"]})
    tools_mode: str = field(default="auto", metadata={
        "help": "API backends: native (tools=, tool_calls: hosted APIs), completions (the prompt rendered here from "
                "the model's own chat template, as the local backend renders it, sent to /v1/completions: local "
                "servers such as llama.cpp and vLLM; needs --tokenizer for --backend openai) or prompt (Hermes "
                "tools block in a chat system message); auto = completions for --backend llamacpp, native otherwise",
        "choices": ["auto", "native", "completions", "prompt"]})
    api_names: str = field(default="api", metadata={
        "help": "API backends: tool names as hosted APIs accept them (api: math.factorial -> math_factorial, mapped "
                "back) or as-is (llama.cpp and vLLM take any name)", "choices": ["api", "as-is"]})
    tokenizer: str | None = field(default=None, metadata={
        "help": "completions mode: the model's tokenizer and chat template (hub id, folder or .gguf; default: "
                "--model for llamacpp)"})
    resume: bool = field(default=True, metadata={"help": "skip rows already answered by the same model and split"})
    pool_tasks: str = field(default="auto", metadata={
        "help": "answer consecutive splits (BFCL: categories) that share a generation budget in one generation pass, "
                "so wide batches run across their boundaries (each keeps its own predictions file, resume and score); "
                "on a CPU the padded engine, whose finished rows leave a batch, pools splits of any budgets, each row "
                "cut at its own. auto = with the local backend's static engine, whose every batch costs a full "
                "--batch-size (pooling fills the last batch of each split), and its padded engine on a CPU (a "
                "model's five suites in one batch; BENCHMARKS.md)",
        "choices": ["auto", "true", "false"]})
    max_error_rate: float = field(default=0.1, metadata={"min": 0, "max": 1, "help": (
        "fail (exit 2, no summary) when more than this share of a split's rows, or all of them, ended in a backend "
        "error after retries; the answered rows stay saved and a rerun tries only the failed ones")})


def with_model(cfg: EvalConfig) -> EvalConfig:
    """The config with its model filled in: the offline model for local backends, the .env default for an API; an
    API backend without either is an error (the model that answered is part of every result)."""
    if cfg.model:
        return cfg
    from fctune.models import OFFLINE_MODEL

    env = API_MODEL_ENV.get(cfg.backend)
    if env is None:
        return dataclasses.replace(cfg, model=OFFLINE_MODEL)
    if os.environ.get(env):
        return dataclasses.replace(cfg, model=os.environ[env])
    if cfg.backend == "azure":
        return cfg  # make_backend names every missing Azure setting at once, the deployment among them
    raise UserError(f"--backend {cfg.backend} needs --model (or {env} in .env): no model is assumed for an API")


class TooManyErrors(UserError):
    """More of a run's requests failed than --max-error-rate allows: the results would describe the endpoint."""


def check_error_rate(preds: list[dict], max_error_rate: float, where: str, pred_path: Path) -> None:
    """Raise :class:`TooManyErrors` when all rows, or more than ``max_error_rate`` of them, ended in an error."""
    from collections import Counter

    errors = [p for p in preds if p.get("error")]
    if not errors or (len(errors) < len(preds) and len(errors) / len(preds) <= max_error_rate):
        return
    kinds = ", ".join(f"{k} x{n}" for k, n in Counter(str(p["error"]).split(":", 1)[0] for p in errors).most_common(3))
    raise TooManyErrors(f"{where}: {len(errors)} of {len(preds)} requests failed after retries ({kinds}; above "
                        f"--max-error-rate {max_error_rate:g}); first: {str(errors[0]['error'])[:200]}. Nothing was "
                        f"scored; answered rows are kept in {pred_path} and a rerun tries only the failed ones")


def default_label(cfg: EvalConfig) -> str:
    """``--label``, else one made from the model: ``llm-<model>`` for an endpoint (an LLM baseline), else
    ``<model>-base`` or ``<model>-<adapter>-ft``."""
    from fctune.models import resolve_model

    if cfg.label:
        return safe_label(cfg.label)
    spec = BACKENDS[cfg.backend]
    name = resolve_model(cfg.model).short_name if spec.local_model else cfg.model
    if spec.endpoint:
        return safe_label(f"llm-{name}")
    return safe_label(f"{name}-{Path(cfg.adapter).name}-ft" if cfg.adapter else f"{name}-base")


def answer_budget(examples) -> int:
    """A generation budget that does not cut a legitimate answer: 1.5x the longest expected answer of the split (its
    calls as Hermes text, or its JSON object), at ~3 characters per token, plus room for an end marker; at least
    128 tokens, at most 2048, in steps of 64."""
    from fctune.render import format_hermes_calls

    def chars(e) -> int:
        if e.expected.kind == "tool_calls":
            return len(format_hermes_calls(e.expected.tool_calls))
        if e.expected.kind == "json":
            return len(json.dumps(e.expected.json, ensure_ascii=False))
        return 0

    longest = max((chars(e) for e in examples), default=0)
    need = longest / 3 * 1.5 + 32
    return int(min(2048, max(128, math.ceil(need / 64) * 64)))


def task_budget(cfg: EvalConfig, examples) -> int:
    """A split's generation budget: --max-new-tokens when given, else :func:`answer_budget`."""
    return cfg.max_new_tokens or answer_budget(examples)


def pools_tasks(cfg: EvalConfig, backend) -> tuple[bool, bool]:
    """Whether :func:`run_tasks` answers consecutive tasks in one pass (``--pool-tasks``), and whether tasks of
    different budgets may share it (a backend whose rows leave a batch at their own budget, ``mixes_budgets``: the
    CPU's padded engine); otherwise only tasks of one budget do."""
    mixed = bool(getattr(backend, "mixes_budgets", False))
    if cfg.pool_tasks != "auto":
        return cfg.pool_tasks == "true", mixed
    return cfg.backend == "local" and (cfg.engine == "static" or mixed), mixed


def split_files(cfg: EvalConfig) -> dict[str, Path]:
    if cfg.split_files:
        out: dict[str, Path] = {}
        for f in cfg.split_files:  # a split's results are named after its file: two of one name would overwrite
            name = Path(f).stem.removesuffix("_test")
            if name in out:
                raise UserError(f"--split-files: {out[name]} and {f} both name their results {name!r}; rename one")
            out[name] = Path(f)
        missing = [str(p) for p in out.values() if not p.exists()]
        if missing:
            raise UserError(f"split files not found: {missing}")
        return out
    out = {}
    for s in cfg.suites:
        if s not in SUITES:
            raise UserError(f"unknown suite {s!r}; known: {', '.join(SUITES)}")
        out[s] = Path(cfg.splits_dir) / SUITES[s].file
    missing = [str(p) for p in out.values() if not p.exists()]
    if missing:
        raise UserError(f"suite splits not found: {missing}; build them with comparison_framework/test_*.py")
    return out


def open_predictions(examples, pred_path: Path, run_identity: dict, resume: bool, desc: str) -> tuple[list, dict]:
    """Ready a task's predictions file for (resumed) generation: the rows still to answer and the resume counts.

    A rerun with the same identity (model, adapter version, split hash) skips finished rows; rows that ended in an
    error are tried again; a file made by another identity is moved aside (never mixed in)."""
    meta_path = pred_path.with_name(pred_path.name.replace(".jsonl", ".run.json"))
    previous, torn = read_jsonl_tolerant(pred_path) if resume else ([], 0)
    if previous and meta_path.exists() and read_json(meta_path).get("identity") != run_identity:
        stale = pred_path.with_name(pred_path.name + f".stale-{int(time.time())}")
        log.warning("%s was made by a different model/adapter/split: moved to %s, starting over", pred_path, stale)
        pred_path.rename(stale)
        previous = []
    elif not resume and pred_path.exists():
        pred_path.unlink()
    done = {p["id"]: p for p in previous if not p.get("error")}
    write_json_atomic(meta_path, {"identity": run_identity})
    if done:
        log.info("%s: resuming, %d of %d rows already answered", desc or pred_path.name, len(done), len(examples))
    return [e for e in examples if e.id not in done], {"resumed": len(done), "torn_lines": torn, "generated": 0,
                                                       "generated_tokens": 0}


def close_predictions(examples, pred_path: Path) -> list[dict]:
    """The task's final predictions in its rows' order (the last line per id wins), the file compacted to them."""
    final, _ = read_jsonl_tolerant(pred_path)
    latest = {p["id"]: p for p in final}
    wanted = [latest[e.id] for e in examples if e.id in latest]
    write_jsonl_atomic(pred_path, wanted)
    return wanted


def generate_pooled(backend, jobs: list[tuple[list, Path, dict]], resume: bool = True, desc: str = "",
                    budgets: list[int] | None = None) -> list[tuple[list[dict], dict]]:
    """Generate every row of the jobs (examples, predictions file, run identity) not already answered
    (:func:`open_predictions`) in one ``backend.generate`` call, which batches them as one list; each answer is
    written as one JSONL line, as it comes, to its own job's file. Row ids must be unique across the jobs (an
    answer names only its row). ``budgets``, one per job, gives each job's rows their own generation budget (a
    backend that ``mixes_budgets``). Returns, per job in order, its final predictions and its counts (resumed rows,
    torn lines, generated rows and their completion tokens)."""
    from tqdm import tqdm

    opened = [open_predictions(examples, path, ident, resume, desc) for examples, path, ident in jobs]
    owner = {e.id: i for i, (todo, _) in enumerate(opened) for e in todo}
    todo = [e for rows, _ in opened for e in rows]
    if len(owner) != len(todo):
        raise ValueError(f"{desc}: row ids repeat across the pooled tasks; they cannot be told apart")
    with ExitStack() as stack:
        files = [stack.enter_context(JsonlAppender(path)) for _, path, _ in jobs]
        bar = stack.enter_context(tqdm(total=len(todo), desc=desc or jobs[0][1].stem, unit="ex", disable=not todo))
        per_row = {"budgets": [budgets[owner[e.id]] for e in todo]} if budgets else {}
        for g in backend.generate(todo, **per_row):
            i = owner[g.id]
            files[i].write(g.to_dict())
            opened[i][1]["generated"] += 1
            opened[i][1]["generated_tokens"] += g.completion_tokens or 0
            bar.update(1)
    return [(close_predictions(examples, path), counts) for (examples, path, _), (_, counts) in zip(jobs, opened,
                                                                                                   strict=True)]


@dataclass
class EvalTask:
    """One set of rows the loop answers: a suite split or a BFCL category. ``name`` names its predictions file;
    ``identity`` is what, besides the model, makes two runs the same (a split's hash, a list of row ids), so a
    rerun resumes only its own rows; ``budget_rows`` are the rows the generation budget is sized from (the whole
    split or category, so that --limit and --sample do not change it)."""

    name: str
    examples: list
    budget_rows: list
    identity: dict


@dataclass
class Answered:
    """What the loop hands the scorer for one task: the predictions and how they were made."""

    task: EvalTask
    predictions: list[dict]
    pred_path: Path
    max_new_tokens: int
    identity: dict          # the backend's identity (model, adapter, endpoint, call format)
    throughput: dict        # this task's share of the backend's counters, its wall time and resume counts


def task_groups(tasks, budget_of: Callable, pool: bool, mixed: bool = False):
    """The tasks in their order as lists of (task, budget): with ``pool``, each run of consecutive tasks that share a
    budget (any budgets with ``mixed``) and no row id is one group (one generation pass: an answer names only its
    row); else one task a group."""
    group: list = []
    ids: set = set()
    for task in tasks:
        budget, mine = budget_of(task), {e.id for e in task.examples}
        if group and not (pool and (mixed or budget == group[0][1]) and not ids & mine):
            yield group
            group, ids = [], set()
        group.append((task, budget))
        ids |= mine
    if group:
        yield group


def run_tasks(cfg: EvalConfig, label: str, tasks, score: Callable[[Answered], None]) -> tuple[dict, dict]:
    """The one evaluation loop (suites, BFCL, Fledgling and the round trip all come through here): build the
    backend once, then for each task size the budget, generate what is not answered yet (resumable, one line a
    row as it finishes), refuse to score a run whose requests failed, and hand the answers to ``score``. With
    ``--pool-tasks`` (:func:`pools_tasks`) consecutive tasks (of one budget, or of any where the backend gives each
    row its own) are generated in one pass, then scored one by one. The backend is closed however the loop ends (a
    llama.cpp server it started must not outlive the run). Returns the backend's identity and its cumulative
    counters."""
    backend = make_backend(cfg)
    ident = backend.identity()
    pool, mixed = pools_tasks(cfg, backend)
    try:
        # a generator may load each task's rows only when it is its turn; pooling reads a group's tasks first
        for group in task_groups(tasks, lambda t: task_budget(cfg, t.budget_rows), pool, mixed):
            backend.set_max_new_tokens(max(budget for _, budget in group))
            jobs = [(task.examples, predictions_path(cfg.results_dir, label, task.name),
                     {"model": ident.get("model"), "adapter_version_id": ident.get("adapter_version_id"),
                      "endpoint_host": ident.get("endpoint_host"), "tools_mode": ident.get("tools_mode"),
                      "max_new_tokens": budget, **task.identity,
                      # answers stopped early are not resumed into a run without the stop, or the other way round
                      **({"stop_repeats": ident["stop_repeats"]} if ident.get("stop_repeats") else {})})
                    for task, budget in group]
            names = [task.name for task, _ in group]
            budgets = [budget for _, budget in group] if len({b for _, b in group}) > 1 else None
            with ExitStack() as held:
                # one writer per predictions file, from its first row to its summary: a second run of this label
                # on this task stops here in one line (the label's other tasks may run beside it, as Fledgling's do)
                for _, pred_path, _ in jobs:
                    held.enter_context(OutputLock(pred_path.parent, pred_path.stem, "evaluation of this task"))
                t0, before = time.time(), backend.stats()
                done = generate_pooled(backend, jobs, cfg.resume, desc=f"{label} {' + '.join(names)}",
                                       budgets=budgets)
                shared = {**suite_throughput(before, backend.stats()), "wall_s": round(time.time() - t0, 2)}
                for (task, budget), (_, pred_path, _), (preds, counts) in zip(group, jobs, done, strict=True):
                    # checked before scoring: rows that failed are an endpoint problem, never wrong answers
                    check_error_rate(preds, cfg.max_error_rate, f"{label} on {task.name}", pred_path)
                    tokens = counts.pop("generated_tokens")  # the backend's own counters give a lone task's
                    throughput = {**(pooled_share(shared, counts["generated"], tokens, names) if len(group) > 1
                                     else shared), **counts}
                    score(Answered(task, preds, pred_path, budget, ident, throughput))
        return ident, backend.stats()
    finally:
        backend.close()


def pooled_share(pool: dict, rows: int, tokens: int, names: list[str]) -> dict:
    """A pooled task's throughput: its own rows and completion tokens, the pass's seconds shared out by rows (its
    batches mixed the tasks' rows, so no clock measured one task alone), and the whole pass's figures."""
    share = rows / pool["examples"] if pool.get("examples") else 0.0
    seconds = round(pool["generation_s"] * share, 2)
    return {"examples": rows, "generated_tokens": tokens, "generation_s": seconds,
            "examples_per_s": round(rows / seconds, 3) if seconds else None,
            "generated_tokens_per_s": round(tokens / seconds, 1) if seconds else None,
            "wall_s": round(pool["wall_s"] * share, 2), "pooled_with": names, "pool": pool}


def evaluate(cfg: EvalConfig) -> dict:
    """Run the configured backend over each split, then score each into the comparison's layout."""
    from fctune import tracking
    from fctune.config import run_metadata
    from fctune.schema import read_examples
    from fctune.score import score_predictions, write_scores

    cfg = with_model(cfg)
    files = split_files(cfg)
    label = default_label(cfg)
    results: dict = {"label": label, "suites": {}}

    def tasks():
        for suite, path in files.items():
            split = read_examples(path)
            if not split:  # a summary of 0 rows would read as a finished evaluation
                raise UserError(f"{path}: the split has no rows; nothing to evaluate")
            yield EvalTask(suite, split[: cfg.limit] if cfg.limit else split, split,
                           {"split_sha256": sha256_file(path)})

    def score(a: Answered) -> None:
        suite, examples, preds = a.task.name, a.task.examples, a.predictions
        path = files[suite]
        details, issues = score_predictions(examples, preds, where=str(a.pred_path))
        summary_path, details_path = result_paths(cfg.results_dir, label, suite)
        split_report = path.with_suffix(".report.json")
        extra = {
            "model": {"label": label, "approach": cfg.approach, "role": cfg.role, "family": cfg.family,
                      **a.identity},
            "suite": suite, "split_file": str(path),
            "max_new_tokens": a.max_new_tokens, "max_new_tokens_source": "--max-new-tokens" if cfg.max_new_tokens
            else "answer_budget (sized from the split)",
            "split_source": read_json(split_report).get("source") if split_report.exists() else None,
            "throughput": a.throughput,
            "token_usage": {"prompt_tokens": sum(p.get("prompt_tokens") or 0 for p in preds),
                            "completion_tokens": sum(p.get("completion_tokens") or 0 for p in preds)},
            "latency_s": _latency(preds),
            "structured_modes": _count(preds, "structured_mode"),
            "run": run_metadata(cfg, data_files=[path]),
        }
        summary = write_scores(examples, details, issues, summary_path, details_path, extra,
                               call_format=a.identity.get("call_format"))
        if _warn_zero_valid(label, suite, summary, details):
            write_json_atomic(summary_path, summary)  # the warning belongs in the file, not only the log
        results["suites"][suite] = {"summary": str(summary_path), "exact_match_rate": summary["exact_match_rate"],
                                    "field_f1": summary["field_f1"], "n_errors": summary["n_errors"]}
        log.info("%s %s: exact %s, field F1 %s, valid JSON %s, errors %d -> %s", label, suite,
                 summary["exact_match_rate"], summary["field_f1"], summary["valid_json_rate"],
                 summary["n_errors"], summary_path)

    with tracking.stage("evaluation", input={"label": label, "suites": list(files)}) as record:
        run_tasks(cfg, label, tasks(), score)
        record(results=results)
    return results


def suite_throughput(before: dict, after: dict) -> dict:
    """This suite's share of a backend's cumulative counters (examples, tokens, seconds) and the rates."""
    out = {k: v for k, v in after.items() if k not in ("examples", "generated_tokens", "generation_s",
                                                        "examples_per_s", "generated_tokens_per_s")}
    n = (after.get("examples") or 0) - (before.get("examples") or 0)
    tok = (after.get("generated_tokens") or 0) - (before.get("generated_tokens") or 0)
    dt = (after.get("generation_s") or 0) - (before.get("generation_s") or 0)
    out.update({"examples": n, "generated_tokens": tok, "generation_s": round(dt, 2),
                "examples_per_s": round(n / dt, 3) if dt > 0 else None,
                "generated_tokens_per_s": round(tok / dt, 1) if dt > 0 else None})
    return out


def _latency(preds: list[dict]) -> dict | None:
    lat = sorted(p["latency_s"] for p in preds if p.get("latency_s") is not None)
    if not lat:
        return None
    return {"mean": round(sum(lat) / len(lat), 4), "p50": lat[len(lat) // 2], "p95": lat[int(0.95 * (len(lat) - 1))]}


def _count(preds, key) -> dict:
    out: dict = {}
    for p in preds:
        if p.get(key):
            out[p[key]] = out.get(p[key], 0) + 1
    return out


def _warn_zero_valid(label: str, suite: str, summary: dict, details: list[dict]) -> bool:
    """A 0% valid-call rate with non-empty outputs points at a format mismatch, not at the model: say so (in the
    log and in ``summary["warnings"]``); True when it did."""
    rate = summary.get("valid_json_rate")
    nonempty = [d for d in details if (d.get("output") or d.get("raw_tool_calls")) and d["expected_kind"] != "no_call"]
    if rate == 0 and nonempty:
        samples = "; ".join(repr((d.get("output") or "")[:120]) for d in nonempty[:3])
        log.warning("%s on %s: 0%% valid calls/JSON although %d outputs are non-empty: check the prompt format "
                    "and the output shape. Examples: %s", label, suite, len(nonempty), samples)
        summary.setdefault("warnings", []).append(f"valid_json_rate is 0 with {len(nonempty)} non-empty outputs")
        return True
    return False


def main(argv=None) -> int:
    """The command line (``fctune eval``, and the documented script)."""
    from fctune.cli import run_script

    return run_script(EvalConfig, evaluate, argv, summary=lambda r: "\n".join(
        f"{r['label']} {s}: exact {v['exact_match_rate']}, field F1 {v['field_f1']}, errors {v['n_errors']} "
        f"-> {v['summary']}" for s, v in r["suites"].items()))


if __name__ == "__main__":
    raise SystemExit(main())
