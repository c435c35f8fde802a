"""The Fledgling approach: LLM first, then a decision gate that fine-tunes only when it is needed.

Stages (each traced in Langfuse when its keys are set):
1. **dataset**: xLAM-60k-shaped rows (hub, local file, or the offline source emitted in xLAM shape) for the
   toolcall track, and structured-output rows (one JSON object against a JSON Schema) for the structured
   track, split like the paper approach;
2. **LLM evaluation** on both tracks (Azure OpenAI or any OpenAI-compatible endpoint; without one, the
   llama.cpp server on 127.0.0.1, recorded);
3. **base SLM evaluation** on both tracks;
4. **gate**: when the base SLM is already within ``gate_threshold`` of the LLM (relative score over the
   track metrics), fine-tuning is skipped and the decision says so; otherwise
5. **training** (the paper approach's trainer) and 6. **re-evaluation**;
7. the final model also runs the shared suites, so the comparison shows Fledgling beside the paper approach.

``--stage`` runs one part: ``gate`` (1-5), then ``re_eval`` (6) and ``shared`` (7), which read the summary ``gate``
left and can run side by side (the main job does so on a CPU, where Fledgling's chain is its critical path).

Results: ``fledgling/eval_results/<label>_fledgling_{toolcall,structured}.json`` (and the suites), the gate
decision in ``fledgling/eval_results/fledgling_gate.json``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from fctune import tracking
from fctune.backends import AUTO_LLM_HELP, LLM_BACKEND_HELP, LLM_BACKENDS
from fctune.config import run_metadata
from fctune.errors import UserError
from fctune.evaluate import result_paths
from fctune.io import write_json_atomic
from fctune.models import OFFLINE_LLM

log = logging.getLogger(__name__)
TRACKS = {"fledgling_toolcall": ["args_field_f1", "args_exact_match_rate", "valid_json_rate"],
          "fledgling_structured": ["field_f1", "valid_json_rate", "schema_valid_rate"]}


STAGES = ("all", "gate", "re_eval", "shared")  # --stage's choices (FledglingConfig.stage)


@dataclass
class FledglingConfig:
    """Run the Fledgling pipeline: LLM baseline, base SLM, gate, fine-tune if needed, re-evaluate."""

    model: str = field(default="microsoft/Phi-4-mini-instruct", metadata={
        "help": "base SLM (hub id, folder, .gguf or 'smollm2')"})
    source: str = field(default="Salesforce/xlam-function-calling-60k", metadata={
        "help": "toolcall data: hub id (gated: HF_TOKEN), a local file, or 'offline'"})
    structured_source: str = field(default="offline", metadata={
        "help": "structured-track data: 'offline' (generator's extraction tasks) or a file of json-mode rows"})
    fallback: str = field(default="offline", metadata={
        "help": "when the hub cannot be reached: 'offline' uses the offline data and SmolLM2 (warned, recorded); "
                "'none' stops", "choices": ["offline", "none"]})
    phase: int = field(default=1, metadata={"help": "data sizes: 1 = 100/50/50, 2 = 1000/200/200", "choices": [1, 2]})
    train_size: int | None = field(default=None, metadata={"min": 1, "help": "override the phase's train size"})
    test_size: int | None = field(default=None, metadata={"min": 1, "help": "override the phase's val/test sizes"})
    seed: int = field(default=42, metadata={"help": "seed"})
    llm_backend: str = field(default="auto", metadata={
        "help": f"the LLM baseline's backend: {AUTO_LLM_HELP}; {LLM_BACKEND_HELP}; existing = reuse LLM track "
                "results already in eval_results/ (made elsewhere on the same splits, checked by hash)",
        "choices": ["auto", *LLM_BACKENDS, "existing"]})
    llm_model: str | None = field(default=None, metadata={
        "help": "deployment / model name / GGUF for the LLM (default from .env, or qwen2.5-coder-0.5b-instruct, the "
                "offline stand-in, for llamacpp)"})
    llm_label: str | None = field(default=None, metadata={"help": "label of the LLM results (default derived)"})
    gate_threshold: float = field(default=0.10, metadata={"min": 0, "max": 1,
        "help": "skip fine-tuning when the base SLM is within this share of the LLM"})
    gates: str = field(default="comparison_framework/gates.yaml", metadata={
        "help": "the comparison's gates file: its relative.aggregate (min or mean) is the gate's too"})
    train_preset: str | None = field(default=None, metadata={"help": "training preset (smoke on CPU)"})
    max_steps: int | None = field(default=None, metadata={"min": 1, "help": "override the training steps"})
    max_new_tokens: int | None = field(default=None, metadata={
        "min": 1, "help": "generation budget (default: sized from each split, as the evaluation runner does)"})
    batch_size: int = field(default=8, metadata={"min": 1, "help": "local SLM evaluation: prompts per generate() call"})
    stop_repeats: int = field(default=0, metadata={"min": 0, "help": (
        "local SLM evaluations: stop an answer whose last N tokens repeat one block verbatim, scored as cut "
        "(evaluate's --stop-repeats; 0 = off)")})
    eval_limit: int | None = field(default=None, metadata={"min": 1, "help": "only the first N rows of each split"})
    shared_suites: bool = field(default=True, metadata={
        "help": "also run the final model on comparison_framework/test_splits (when they exist)"})
    splits_dir: str = field(default="comparison_framework/test_splits", metadata={"help": "shared suite splits"})
    workdir: str = field(default="fledgling", metadata={"help": "datasets/, adapters/, eval_results/ go here"})
    stage: str = field(default="all", metadata={
        "help": "all = every stage in one process; or one part, so that the final model's two evaluations can run "
                "side by side on two workers (the main job on a CPU): 'gate' (data, LLM, base SLM, gate, training), "
                "then 're_eval' (the final model on the tracks) and 'shared' (on the shared suites), which read "
                "what 'gate' left in WORKDIR/eval_results/fledgling_run.json",
        "choices": list(STAGES)})


def _sizes(cfg: FledglingConfig):
    from fctune.data import PHASE_SIZES

    tr, va, te = PHASE_SIZES[cfg.phase]
    return cfg.train_size or tr, cfg.test_size or va, cfg.test_size or te


def existing_llm_results(results: Path, test_files: list[str], label: str | None) -> dict:
    """LLM track results made elsewhere; each must have been scored on byte-identical splits."""
    from fctune.io import read_json, sha256_file

    found: dict = {}
    for f in sorted(results.glob("*_fledgling_toolcall.json")):
        s = read_json(f)
        if (s.get("model") or {}).get("role") == "llm" and (label is None or s["model"]["label"] == label):
            found = {"label": s["model"]["label"], "suites": {}}
            break
    if not found:
        raise UserError(f"--llm-backend existing: no LLM results (role llm) for the tracks in {results}")
    for tf in test_files:
        track = Path(tf).stem.removesuffix("_test")
        path = results / f"{found['label']}_{track}.json"
        if not path.exists():
            raise UserError(f"--llm-backend existing: {path} is missing")
        s = read_json(path)
        made_on = ((s.get("run") or {}).get("data_sha256") or {})
        if sha256_file(tf) not in made_on.values():
            raise UserError(f"--llm-backend existing: {path} was scored on a different {track} split than {tf}")
        found["suites"][track] = {"summary": str(path), "reused": True}
    log.info("reusing the LLM results of %s (same splits, checked by hash)", found["label"])
    return found


def resolve_llm(cfg: FledglingConfig) -> tuple[str, str, str]:
    """(backend, model, why) for the LLM baseline."""
    if cfg.llm_backend == "existing":
        return "existing", cfg.llm_model or "", "reusing LLM results already in eval_results/"
    from fctune.backends import auto_llm_backend

    if cfg.llm_backend != "auto":
        b, why = cfg.llm_backend, f"--llm-backend {cfg.llm_backend}"
    else:
        b, why = auto_llm_backend()
    from fctune.backends import API_MODEL_ENV

    env = API_MODEL_ENV.get(b)
    model = cfg.llm_model or (os.environ.get(env) if env else OFFLINE_LLM)
    if not model:
        raise UserError(f"the LLM baseline is {b} ({why}) but names no model: set {env} in .env or pass --llm-model")
    return b, model, why


def choose_slm(cfg: FledglingConfig) -> tuple[str, dict | None]:
    """The SLM to use; with fallback=offline an unreachable hub model becomes SmolLM2 (warned, recorded)."""
    from fctune.models import OFFLINE_MODEL, ModelUnavailable, load_tokenizer

    try:
        load_tokenizer(cfg.model)
        return cfg.model, None
    except (ModelUnavailable, OSError) as e:
        if cfg.fallback != "offline":
            raise
        log.warning("FALLBACK: %s -> using %s (the offline model) instead", e, OFFLINE_MODEL)
        return OFFLINE_MODEL, {"requested": cfg.model, "used": OFFLINE_MODEL, "reason": str(e)}


def build_data(cfg: FledglingConfig) -> dict:
    """Toolcall (xLAM-shaped) and structured splits; test splits named after the tracks."""
    from fctune.data import PrepareConfig, load_catalog, prepare, stratified_split
    from fctune.schema import read_examples, write_examples

    tr, va, te = _sizes(cfg)
    data = Path(cfg.workdir) / "datasets"
    stats = prepare(PrepareConfig(source=cfg.source, dataset_config=None, shape="xlam", fallback=cfg.fallback,
                                  train_size=tr, val_size=va, test_size=te, seed=cfg.seed, output_dir=str(data),
                                  prefix="xlam", tokenizer="none", decontaminate="drop"))  # as the pipeline does
    if cfg.structured_source == "offline":
        pool = load_catalog(3 * (tr + va + te), cfg.seed + 1, "hermes", mix={"structured": 1.0}).examples
        s_source = {"kind": "offline", "generator": "fctune-offline-v1 structured tasks"}
    else:
        pool = [e for e in read_examples(cfg.structured_source) if e.expected.kind == "json"]
        s_source = {"kind": "local", "path": cfg.structured_source}
    (s_tr, s_va, s_te), _ = stratified_split(pool, (tr // 2, va, te), cfg.seed)
    for name, rows in (("train", s_tr), ("val", s_va), ("test", s_te)):
        write_examples(data / f"structured_{name}.jsonl", rows)
    splits = Path(cfg.workdir) / "test_splits"
    write_examples(splits / "fledgling_toolcall_test.jsonl", read_examples(data / "xlam_test.jsonl"))
    write_examples(splits / "fledgling_structured_test.jsonl", s_te)
    train = read_examples(data / "xlam_train.jsonl") + s_tr
    val = read_examples(data / "xlam_val.jsonl") + s_va
    write_examples(data / "fledgling_train.jsonl", train)
    write_examples(data / "fledgling_val.jsonl", val)
    return {"toolcall": stats["source"], "fallback": stats["fallback"], "structured": s_source,
            "train_rows": len(train), "val_rows": len(val), "test_rows": {"toolcall": stats["splits"]["test"]["count"],
                                                                         "structured": len(s_te)},
            "train_file": str(data / "fledgling_train.jsonl"), "val_file": str(data / "fledgling_val.jsonl"),
            "test_files": [str(splits / "fledgling_toolcall_test.jsonl"),
                           str(splits / "fledgling_structured_test.jsonl")]}


def _model_results(label: str, results_dir: Path):
    from fctune.compare import ModelResults
    from fctune.io import read_json

    m = ModelResults(label, {"label": label})
    for track in TRACKS:
        f, details = result_paths(results_dir, label, track)
        if f.exists():
            m.suites[track] = read_json(f)
            m.details[track] = details
    return m


def gate_decision(base, llm, threshold: float, aggregate: str = "min") -> dict:
    """Skip fine-tuning only when the base SLM is within ``threshold`` of the LLM on every track metric (``min``, the
    gates file's default) or on their mean (``mean``): the same paired rule as the comparison's verdict
    (:mod:`fctune.decision`), over the rows both answered. Pure: takes ModelResults with the tracks' summaries and
    per-row details."""
    from fctune.compare import capability_ratios
    from fctune.decision import judge

    caps = [{"name": f"{t}.{m}", "metric": f"{t}.{m}"} for t, ms in TRACKS.items() for m in ms]
    ratios = capability_ratios(base, llm, caps)
    j = judge(ratios, {}, 1 - threshold, aggregate)
    numbers = {"status": j["status"], "min_ratio": j["min_ratio"], "threshold": threshold, "aggregate": aggregate,
               "mean_ratio": j.get("mean_ratio"), "mean_ci": j.get("mean_ci"),
               "rows_needed": j.get("rows_needed"),
               "per_metric": {k: {**{x: v.get(x) for x in ("slm", "llm", "ratio", "ci", "n")},
                                  "status": j["capabilities"][k]["status"]} for k, v in ratios.items()}}
    if j["status"] == "pass":
        within = (f"on every track metric (paired lower bounds; lowest ratio {j['min_ratio']:.1%})"
                  if aggregate == "min" else f"on the mean of the track metrics (an option; {j['why']})")
        return {"decision": "SKIP FINE-TUNING", "fine_tune": False, "numbers": numbers,
                "reason": f"the base SLM is within {threshold:.0%} of the LLM {within}: fine-tuning is unnecessary"}
    needed = f"; about {j['rows_needed']} test rows would decide it" if j.get("rows_needed") else ""
    return {"decision": "FINE-TUNE", "fine_tune": True, "numbers": numbers,
            "reason": f"fine-tuning is not skipped: the base SLM is not shown within {threshold:.0%} of the LLM "
                      f"({j['status']}: {j['why']}{needed})"}


def run_pipeline(cfg: FledglingConfig) -> dict:
    """The stages ``cfg.stage`` asks for (all of them by default); returns the run's summary."""
    results = Path(cfg.workdir) / "eval_results"
    if cfg.stage in ("re_eval", "shared"):
        return _final_model_stage(cfg, results)
    summary = _until_training(cfg, results)
    if cfg.stage == "gate":  # re_eval and shared follow in their own processes, from this summary
        return summary
    gate = summary["gate"]
    if gate["final_model"]["adapter"]:
        summary["finetuned"] = _re_evaluate(cfg, summary)
    if cfg.shared_suites:
        summary["shared_suites"] = _shared_suites(cfg, summary)
    write_json_atomic(results / "fledgling_run.json", summary)
    return summary


def _until_training(cfg: FledglingConfig, results: Path) -> dict:
    """Data, the LLM and base SLM on the tracks, the gate, and training when the gate asks for it. The gate file
    names the final model as soon as it is known; the summary is written for the stages that follow."""
    from fctune.compare import load_gates
    from fctune.evaluate import EvalConfig, evaluate, safe_label
    from fctune.models import resolve_model as resolve_ref
    from fctune.train import PRESETS, TrainConfig, train

    # the gate uses the comparison's aggregation rule, read from its one file (first: a bad file fails in a second)
    aggregate = load_gates(cfg.gates)["relative"]["aggregate"]
    summary: dict = {"config": run_metadata(cfg)}
    with tracking.stage("fledgling.dataset", input={"source": cfg.source}) as rec:
        data = build_data(cfg)
        rec(**data)
    summary["data"] = data
    model, model_fallback = choose_slm(cfg)
    summary["model"] = {"requested": cfg.model, "used": model, "fallback": model_fallback}
    short = resolve_ref(model).short_name
    llm_backend, llm_model, llm_why = resolve_llm(cfg)
    log.info("LLM baseline: %s %s (%s)", llm_backend, llm_model, llm_why)
    common = {**_eval_options(cfg), "split_files": data["test_files"]}
    with tracking.stage("fledgling.llm_eval", input={"backend": llm_backend, "model": llm_model}) as rec:
        if llm_backend == "existing":
            llm_res = existing_llm_results(results, data["test_files"], cfg.llm_label)
        else:
            llm_cfg = EvalConfig(backend=llm_backend, model=llm_model, role="llm", label=cfg.llm_label,
                                 **{**common, "stop_repeats": 0})
            llm_res = evaluate(llm_cfg)
        rec(**llm_res)
    llm_label = llm_res["label"]
    with tracking.stage("fledgling.slm_eval", input={"model": model}) as rec:
        base_label = safe_label(f"fledgling-{short}-base")
        base_res = evaluate(EvalConfig(model=model, role="base", label=base_label, **common))
        rec(**base_res)
    with tracking.stage("fledgling.gate", input={"threshold": cfg.gate_threshold, "aggregate": aggregate}) as rec:
        gate = gate_decision(_model_results(base_label, results), _model_results(llm_label, results),
                             cfg.gate_threshold, aggregate)
        gate.update({"llm": {"label": llm_label, "backend": llm_backend, "model": llm_model, "why": llm_why},
                     "base_model": {"label": base_label, "model": model, "fallback": model_fallback},
                     "data_fallback": data["fallback"]})
        write_json_atomic(results / "fledgling_gate.json", gate)
        rec(decision=gate["decision"], **gate["numbers"])
    log.info("Fledgling gate: %s: %s", gate["decision"], gate["reason"])
    final_label, final_adapter = base_label, None
    if gate["fine_tune"]:
        with tracking.stage("fledgling.training", input={"model": model}) as rec:
            tc_over = {"model": model, "name": f"fledgling-{short}", "train_file": data["train_file"],
                       "val_file": data["val_file"], "output_dir": str(Path(cfg.workdir) / "adapters"),
                       "seed": cfg.seed, "preset": cfg.train_preset}
            if cfg.max_steps:
                tc_over["max_steps"] = cfg.max_steps
            from fctune.config import config_from_sources

            meta = train(config_from_sources(TrainConfig, overrides=tc_over, presets=PRESETS))
            final_adapter = str(Path(cfg.workdir) / "adapters" / meta["adapter"])
            rec(adapter=final_adapter, final_train_loss=meta["final_train_loss"])
        final_label = safe_label(f"fledgling-{short}-ft")
    gate["final_model"] = {"label": final_label, "adapter": final_adapter}
    write_json_atomic(results / "fledgling_gate.json", gate)
    summary.update({"gate": gate, "llm": llm_res, "base": base_res})
    write_json_atomic(results / "fledgling_run.json", summary)
    return summary


def _eval_options(cfg: FledglingConfig) -> dict:
    """The evaluation options every evaluation of one run shares (tracks and shared suites alike; the LLM's drops
    ``stop_repeats``, which only a local model takes)."""
    return dict(results_dir=str(Path(cfg.workdir) / "eval_results"), max_new_tokens=cfg.max_new_tokens,
                limit=cfg.eval_limit, approach="fledgling", batch_size=cfg.batch_size, stop_repeats=cfg.stop_repeats)


def _re_evaluate(cfg: FledglingConfig, summary: dict) -> dict:
    """The fine-tuned model on the tracks."""
    from fctune.evaluate import EvalConfig, evaluate

    final = summary["gate"]["final_model"]
    with tracking.stage("fledgling.re_eval", input={"adapter": final["adapter"]}) as rec:
        res = evaluate(EvalConfig(model=summary["model"]["used"], adapter=final["adapter"], role="finetuned",
                                  label=final["label"], split_files=summary["data"]["test_files"],
                                  **_eval_options(cfg)))
        rec(**res)
    return res


def _shared_suites(cfg: FledglingConfig, summary: dict) -> dict | None:
    """The final model (fine-tuned, or the base one when the gate skipped training) on the shared suites that exist."""
    from fctune.evaluate import EvalConfig, evaluate
    from fctune.suites import SUITES

    shared = [s for s, spec in SUITES.items() if (Path(cfg.splits_dir) / spec.file).exists()]
    if not shared:
        return None
    final = summary["gate"]["final_model"]
    with tracking.stage("fledgling.shared_suites", input={"suites": shared}) as rec:
        res = evaluate(EvalConfig(model=summary["model"]["used"], adapter=final["adapter"],
                                  role="finetuned" if final["adapter"] else "base", label=final["label"],
                                  suites=shared, splits_dir=cfg.splits_dir, **_eval_options(cfg)))
        rec(**res)
    return res


def _final_model_stage(cfg: FledglingConfig, results: Path) -> dict:
    """--stage re_eval / shared: one of the final model's evaluations, from the summary --stage gate wrote. Each
    writes its own file beside it (fledgling_run_<stage>.json), so the two can run at the same time."""
    from fctune.io import read_json

    path = results / "fledgling_run.json"
    if not path.exists():
        raise UserError(f"--stage {cfg.stage}: {path} is missing; run --stage gate first")
    summary = read_json(path)
    if "final_model" not in (summary.get("gate") or {}):
        raise UserError(f"--stage {cfg.stage}: {path} has no final model (its 'gate' stage did not finish)")
    if cfg.stage == "re_eval":
        res = _re_evaluate(cfg, summary) if summary["gate"]["final_model"]["adapter"] else None
    else:
        res = _shared_suites(cfg, summary) if cfg.shared_suites else None
    part = {"config": run_metadata(cfg), "stage": cfg.stage, "result": res}
    write_json_atomic(results / f"fledgling_run_{cfg.stage}.json", part)
    return {**summary, cfg.stage: res}


def main(argv=None) -> int:
    """The command line (``fctune fledgling``, and the documented script)."""
    from fctune.cli import run_script

    return run_script(FledglingConfig, run_pipeline, argv, summary=lambda s: (
        f"Fledgling gate: {s['gate']['decision']} ({s['gate']['reason']}); final model "
        f"{s['gate']['final_model']['label']}; results in fledgling/eval_results/"))


if __name__ == "__main__":
    raise SystemExit(main())
