"""The phase-1/phase-2 experiment as steps (what ``./run_phase1_experiment.sh`` runs).

1 prerequisites (python, GPUs, Docker when asked, .env) · 2 dataset · 3 test splits · 4 Docker builds (only
with ``--docker``) · 5 training of both paper models (in parallel on disjoint GPU sets when there are enough
GPUs, each data-parallel over its set; one after the other otherwise) · 6 evaluation of every model on every
suite (+ BFCL with ``--bfcl``, + the Fledgling pipeline) · 7 comparison.

Every step runs one of the package's commands as a subprocess (``python -m fctune NAME``: what the documented
scripts run), logs to ``paper_approach/logs/<step>.log`` and is skipped when its outputs exist and neither its
inputs (by content) nor its command changed since it last succeeded. A failed step stops the run with its exit code
and the tail of its log; Ctrl-C stops the child processes. Step timings go to ``paper_approach/logs/timings.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from fctune.backends import API_MODEL_ENV, AUTO_LLM_HELP, LLM_BACKEND_HELP, LLM_BACKENDS, auto_llm_backend
from fctune.errors import UserError
from fctune.evaluate import EvalConfig, default_label, result_paths, with_model
from fctune.io import write_json_atomic
from fctune.models import DEFAULT_PAPER_MODELS, OFFLINE_LLM, OFFLINE_MODEL
from fctune.suites import SUITES

log = logging.getLogger(__name__)
PY = sys.executable
PROFILES = {
    # CPU-sized: offline data, SmolLM2 for both paper models, smoke training, a few rows of each suite. A model's five
    # suites (8 rows each) are one batch of 40: on a CPU they share one pass and finished rows leave the batch, and a
    # decoding step costs mostly the reading of the weights, so one wide batch costs about half of narrow ones (the
    # same answers; BENCHMARKS.md).
    "smoke": {"source": "offline", "train_preset": "smoke", "eval_limit": 8, "bfcl_limit": 5, "eval_batch_size": 40,
              "roundtrip": False, "roundtrip_gguf": "f16"},
    # The paper's run: hub data (offline fallback recorded), Phi-4-mini and Llama-3.1-8B, full hyperparameters.
    "full": {"source": "NousResearch/hermes-function-calling-v1", "train_preset": None, "eval_limit": None,
             "bfcl_limit": None, "eval_batch_size": 32, "roundtrip": True, "roundtrip_gguf": "q8_0"},
    # (no generation budget here: every split's is sized from its longest expected answer, evaluate.answer_budget)
}


@dataclass
class PipelineConfig:
    """Run the experiment end to end: data, splits, training, evaluation, comparison."""

    phase: int = field(default=1, metadata={"help": "1: 100/50/50 rows, 2: 1000/200/200", "choices": [1, 2]})
    profile: str = field(default="smoke", metadata={
        "help": "smoke: offline data, SmolLM2 for both models, smoke training, a few rows per suite (CPU minutes); "
                "full: hub data, Phi-4-mini + Llama-3.1-8B, paper hyperparameters (GPU)", "choices": list(PROFILES)})
    models: list[str] = field(default_factory=list, metadata={
        "help": "family=model pairs, e.g. phi=microsoft/Phi-4-mini-instruct llama=/models/llama (default: by profile)"})
    gpus: str = field(default="auto", metadata={"help": "GPU ids to use (e.g. 0,1,2,3), 'auto' or 'none'"})
    llm: str = field(default="auto", metadata={
        "help": f"the LLM baseline's backend: {AUTO_LLM_HELP}; {LLM_BACKEND_HELP}; none skips it (its results "
                "come from elsewhere, e.g. an endpoint evaluated on another machine on the same splits)",
        "choices": ["auto", *LLM_BACKENDS, "none"]})
    llm_model: str | None = field(default=None, metadata={"help": "LLM model / deployment / GGUF (default by backend)"})
    bfcl: bool = field(default=False, metadata={"help": "also run BFCL non-live for every model"})
    bfcl_sample: int | None = field(default=None, metadata={"min": 1,
        "help": "BFCL: a seeded sample of N rows per category (the same rows for every model)"})
    fledgling: bool = field(default=True, metadata={"help": "also run the Fledgling pipeline"})
    roundtrip: str = field(default="auto", metadata={
        "help": "export, serve (llama.cpp) and re-evaluate each fine-tuned model through the OpenAI backend beside its "
                "in-process scores (python -m fctune.roundtrip); auto = on in the full profile, off in smoke (it adds "
                "about as much CPU time as the evaluation itself)", "choices": ["auto", "on", "off"]})
    fledgling_test_size: int | None = field(default=None, metadata={"min": 1,
        "help": "Fledgling: rows per track test split (default: the phase's size)"})
    docker: bool = field(default=False, metadata={"help": "build the Docker images (step 4)"})
    from_step: int = field(default=1, metadata={"min": 1, "max": 7, "help": "start at this step (1-7)"})
    only_step: int | None = field(default=None, metadata={"min": 1, "max": 7, "help": "run only this step (1-7)"})
    dry_run: bool = field(default=False, metadata={"help": "print the commands without running them"})
    force: bool = field(default=False, metadata={"help": "rerun steps even when their outputs are up to date"})
    eval_limit: int | None = field(default=None, metadata={"min": 1, "help": "rows per suite (default: by profile)"})
    eval_batch_size: int | None = field(default=None, metadata={
        "min": 1, "help": "local backend batch (default: by profile)"})
    eval_stop_repeats: int = field(default=0, metadata={"min": 0, "help": (
        "local evaluations of the suites and tracks: stop an answer once its last N tokens repeat one block verbatim, "
        "scored as cut (evaluate's --stop-repeats); 0 = off (on the main job it saves little and changes answers; "
        "BENCHMARKS.md)")})
    eval_workers: int | None = field(default=None, metadata={
        "min": 1, "help": "evaluation commands run side by side, each on cores / N threads (default: 2 on a machine "
                          "without GPUs and with 2 or more cores, else 1: GPU jobs would share one GPU's memory)"})
    logs_dir: str = field(default="paper_approach/logs", metadata={"help": "step logs, stamps and timings"})
    check_prerequisites: bool = field(default=False, metadata={
        "help": "only check what the run needs (step 1): Python packages, GPUs, the LLM baseline, Docker"})


@dataclass
class Step:
    number: int
    name: str
    groups: list[list[tuple[str, list[str], dict]]]   # sequential groups of parallel (tag, argv, env) commands
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    # > 1: the groups run side by side, this many at a time, each as soon as the groups it waits for are done
    workers: int = 1
    after: dict[str, str] = field(default_factory=dict)  # group (by its first tag) -> the group it must follow


# -- planning ------------------------------------------------------------------------------------------------
def paper_models(cfg: PipelineConfig) -> dict[str, str]:
    if cfg.models:
        out = {}
        for pair in cfg.models:
            if "=" not in pair:
                raise UserError(f"--models {pair!r}: expected family=model (e.g. phi=microsoft/Phi-4-mini-instruct)")
            fam, model = pair.split("=", 1)
            out[fam.strip()] = model.strip()
        return out
    if cfg.profile == "smoke":
        return {"phi": OFFLINE_MODEL, "llama": OFFLINE_MODEL}
    return dict(DEFAULT_PAPER_MODELS)


def detect_gpus(spec: str) -> list[str]:
    if spec == "none":
        return []
    if spec != "auto":
        return [g.strip() for g in spec.split(",") if g.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        return [x.strip() for x in out.stdout.splitlines() if x.strip()] if out.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):
        return []


def assign_gpu_sets(gpus: list[str], n_models: int) -> list[list[str]] | None:
    """Disjoint, equal GPU sets, one per model, when every model gets at least one; else None (sequential)."""
    if n_models == 0 or len(gpus) < n_models or len(gpus) < 2:
        return None
    per = len(gpus) // n_models
    return [gpus[i * per:(i + 1) * per] for i in range(n_models)]


def resolve_llm(choice: str) -> str:
    return choice if choice != "auto" else auto_llm_backend()[0]


def fctune_cmd(name: str, *args: str) -> list[str]:
    """A step's command line: the package's own command (``python -m fctune NAME``), which the documented scripts
    are shims over; this interpreter, so a venv's run stays in it."""
    return [PY, "-m", "fctune", name, *args]


def _train_cmd(family: str, model: str, preset, n_procs: int) -> list[str]:
    args = ["--model", model, "--name", family] + (["--preset", preset] if preset else [])
    if n_procs > 1:  # data-parallel over the model's GPU set: accelerate starts one `python -m fctune train` a GPU
        return [PY, "-m", "accelerate.commands.launch", "--num_processes", str(n_procs), "--multi_gpu", "-m",
                *fctune_cmd("train", *args)[2:]]
    return fctune_cmd("train", *args)


def plan(cfg: PipelineConfig) -> list[Step]:
    prof = PROFILES[cfg.profile]
    limit = cfg.eval_limit if cfg.eval_limit is not None else prof["eval_limit"]
    lim = ["--limit", str(limit)] if limit else []
    models = paper_models(cfg)
    data = "paper_approach/datasets"
    splits = "comparison_framework/test_splits"
    results = "paper_approach/eval_results"
    train_files = [f"{data}/hermes_train.jsonl", f"{data}/hermes_val.jsonl"]
    split_files = [f"{splits}/{s.file}" for s in SUITES.values()]
    check = fctune_cmd("pipeline", "--check-prerequisites", "--gpus", cfg.gpus, "--llm", cfg.llm, "--logs-dir",
                       cfg.logs_dir, "--profile", cfg.profile) + (
        ["--llm-model", cfg.llm_model] if cfg.llm_model else []) + (
        ["--models", *cfg.models] if cfg.models else []) + (["--docker"] if cfg.docker else [])
    steps = [Step(1, "prerequisites", [[("prerequisites", check, {})]],
                  outputs=[f"{cfg.logs_dir}/prerequisites.json"])]
    # Rows that name a BFCL function (or share a BFCL question's 8 words) are dropped, not a stop: the run's BFCL
    # scores stay clean and hub data such as Hermes v1 still trains; dataset_stats.json counts what went.
    prep = fctune_cmd("prepare", "--phase", str(cfg.phase), "--source", prof["source"], "--fallback", "offline",
                      "--tokenizer", next(iter(models.values())), "--decontaminate", "drop")
    steps.append(Step(2, "dataset", [[("dataset", prep, {})]], outputs=train_files + [f"{data}/hermes_test.jsonl"]))
    steps.append(Step(3, "test_splits", [[(name, fctune_cmd("suites", name), {})
                                          for name in SUITES]],
                      inputs=train_files, outputs=split_files))
    if cfg.docker:
        steps.append(Step(4, "docker", [[
            ("unsloth-paper", ["docker", "build", "-t", "fctune/unsloth-paper", "-f", "docker/unsloth-paper/Dockerfile",
                               "."], {}),
            ("fledgling", ["docker", "build", "-t", "fctune/fledgling", "-f", "docker/fledgling/Dockerfile", "."],
             {})]],
            inputs=["pyproject.toml", "docker/unsloth-paper/Dockerfile", "docker/fledgling/Dockerfile"]))
    by_model: dict[str, list[str]] = {}
    for fam, m in models.items():
        by_model.setdefault(m, []).append(fam)
    # Families given the same base model (the smoke profile's SmolLM2 stands in for both) make the same training
    # job, data and hyperparameters included: it runs once, under the joined name ("phi-llama", family
    # "phi+llama"), and is evaluated once, as the shared base model is; two copies would only repeat it.
    tuned = {"-".join(fams): m for m, fams in by_model.items()}  # adapter name -> base model
    family_of = {"-".join(fams): "+".join(fams) for fams in by_model.values()}
    gpus = detect_gpus(cfg.gpus)
    sets = assign_gpu_sets(gpus, len(tuned))
    if sets:  # parallel, disjoint GPU sets
        group = [(name, _train_cmd(name, m, prof["train_preset"], len(s)), {"CUDA_VISIBLE_DEVICES": ",".join(s)})
                 for (name, m), s in zip(tuned.items(), sets, strict=True)]
        train_groups = [group]
    else:
        env = {"CUDA_VISIBLE_DEVICES": gpus[0]} if gpus else {}
        train_groups = [[(name, _train_cmd(name, m, prof["train_preset"], 1), env)] for name, m in tuned.items()]
    adapters = [f"paper_approach/adapters/{name}/adapter_model.safetensors" for name in tuned]
    steps.append(Step(5, "train", train_groups, inputs=train_files, outputs=adapters))
    batch = ["--batch-size", str(cfg.eval_batch_size or prof["eval_batch_size"])]
    # local models only: the LLM's server answers whole
    stop = ["--stop-repeats", str(cfg.eval_stop_repeats)] if cfg.eval_stop_repeats else []
    ev = fctune_cmd("eval", *lim, *batch)
    bf = fctune_cmd("bfcl", "run", "--categories", "non_live", *batch) + (
        ["--limit", str(prof["bfcl_limit"])] if prof["bfcl_limit"] else []) + (
        ["--sample", str(cfg.bfcl_sample)] if cfg.bfcl_sample else [])
    eval_cmds = []
    labels = []  # every model the suites evaluate: step 6 is up to date only when each has every suite's summary
    for m, fams in by_model.items():
        label = f"paper-{'-'.join(fams)}-base"
        who = ["--model", m, "--label", label, "--role", "base", "--approach", "paper", "--family", "+".join(fams)]
        eval_cmds.append((label, ev + who + stop, {}))
        labels.append(label)
        if cfg.bfcl:
            eval_cmds.append((label + "-bfcl", bf + who, {}))
    for name, m in tuned.items():
        who = ["--model", m, "--adapter", f"paper_approach/adapters/{name}", "--label", f"paper-{name}-ft",
               "--role", "finetuned", "--approach", "paper", "--family", family_of[name]]
        eval_cmds.append((f"paper-{name}-ft", ev + who + stop, {}))
        labels.append(f"paper-{name}-ft")
        if cfg.bfcl:
            eval_cmds.append((f"paper-{name}-ft-bfcl", bf + who, {}))
        if cfg.roundtrip == "on" or (cfg.roundtrip == "auto" and prof["roundtrip"]):
            # after the model's own evaluation: the served model is compared with it row by row
            rt = fctune_cmd("roundtrip", "--adapter", f"paper_approach/adapters/{name}", "--label",
                            f"paper-{name}-ft", "--gguf-type", prof["roundtrip_gguf"], *lim)
            if cfg.bfcl:
                rt += ["--bfcl-sample", str(cfg.bfcl_sample or prof["bfcl_limit"] or 30)]
            eval_cmds.append((f"paper-{name}-ft-roundtrip", rt, {}))
    llm = resolve_llm(cfg.llm)
    # offline, the LLM stand-in is an instruct model several times the SLMs' size that can call functions
    llm_model = cfg.llm_model or (OFFLINE_LLM if llm == "llamacpp" else None)
    env = API_MODEL_ENV.get(llm)
    if env and not llm_model and not os.environ.get(env):
        # found before anything runs: an API baseline must name its model (no default model is assumed)
        raise UserError(f"the LLM baseline is --llm {llm} ({auto_llm_backend()[1] if cfg.llm == 'auto' else 'chosen'}) "
                        f"but names no model: set {env} in .env or pass --llm-model")
    llm_who = ["--backend", llm, "--role", "llm", "--approach", "llm"] + (["--model", llm_model] if llm_model else [])
    if llm != "none":
        eval_cmds.append(("llm", ev + llm_who, {}))
        labels.append(default_label(with_model(EvalConfig(backend=llm, model=llm_model))))
        if cfg.bfcl:
            eval_cmds.append(("llm-bfcl", bf + llm_who, {}))
    if cfg.fledgling:
        fl = fctune_cmd("fledgling", "--phase", str(cfg.phase), "--llm-backend", "existing" if llm == "none" else llm,
                        *batch, *stop)
        if llm_model and llm != "none":
            fl += ["--llm-model", llm_model]
        if cfg.profile == "smoke":
            fl += ["--model", models.get("phi", OFFLINE_MODEL), "--source", "offline", "--train-preset", "smoke"]
        else:
            fl += ["--model", models.get("phi") or next(iter(models.values()))]  # Phi, else the first model given
        if limit:
            fl += ["--eval-limit", str(limit)]
        if cfg.fledgling_test_size:
            fl += ["--test-size", str(cfg.fledgling_test_size)]
    # On a CPU, two evaluations side by side on one core each do more work than one on both cores (BENCHMARKS.md):
    # decoding a 135M model does not keep two cores busy. The longest (Fledgling: its
    # own evaluations and training) starts first; a round trip waits for its model's own evaluation.
    workers = cfg.eval_workers or (2 if not gpus and (os.cpu_count() or 1) >= 2 else 1)
    if cfg.fledgling:
        if workers > 1:  # Fledgling's chain is the main job's critical path while the other worker idles: after
            # its training, the final model's track and shared-suite evaluations go side by side, the longer (five
            # shared suites against two tracks) first
            eval_cmds += [("fledgling", [*fl, "--stage", "gate"], {}),
                          *((f"fledgling-{st}", [*fl, "--stage", st], {}) for st in ("shared", "re_eval"))]
        else:
            eval_cmds.append(("fledgling", fl, {}))
    after = {}
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        # stable: Fledgling's parts first, in order, so a worker takes a ready one before anything else
        eval_cmds = sorted(eval_cmds, key=lambda c: not c[0].startswith("fledgling"))
        eval_cmds = [(tag, argv, {**env, "OMP_NUM_THREADS": threads}) for tag, argv, env in eval_cmds]
        after = {tag: tag.removesuffix("-roundtrip") for tag, _, _ in eval_cmds if tag.endswith("-roundtrip")}
        after.update({tag: "fledgling" for tag, _, _ in eval_cmds if tag.startswith("fledgling-")})
    steps.append(Step(6, "evaluate", [[c] for c in eval_cmds], workers=workers, after=after,
                      inputs=split_files + adapters,
                      outputs=[str(result_paths(results, lb, s)[0]) for lb in labels for s in SUITES]))
    steps.append(Step(7, "compare", [[("compare", fctune_cmd("compare", "--phase", str(cfg.phase)), {})]],
                      inputs=[results, "fledgling/eval_results", "paper_approach/served_results",
                              "comparison_framework/gates.yaml"],
                      outputs=[f"comparison_framework/reports/phase{cfg.phase}_comparison.json"]))
    return steps


# -- freshness -----------------------------------------------------------------------------------------------
def _digest_inputs(paths: list[str]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        path = Path(p)
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            if f.exists() and ".stale-" not in f.name:
                h.update(str(f).encode())
                h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _command_digest(step: Step) -> str:
    return hashlib.sha256(json.dumps([[(t, a, e) for t, a, e in g] for g in step.groups]).encode()).hexdigest()


def up_to_date(step: Step, stamps: Path) -> bool:
    f = stamps / f"{step.name}.json"
    if not f.exists() or not step.outputs or not all(Path(o).exists() for o in step.outputs):
        return False
    s = _read_json_or_none(f)
    if not isinstance(s, dict):  # a stamp torn by a kill (or a full disk) means: not known done, so run it again
        return False
    return s.get("command") == _command_digest(step) and s.get("inputs") == _digest_inputs(step.inputs)


def _read_json_or_none(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("%s: unreadable (torn by an interrupted write?); ignored", path)
        return None


def mark_done(step: Step, stamps: Path) -> None:
    stamps.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stamps / f"{step.name}.json", {"command": _command_digest(step),
                                                     "inputs": _digest_inputs(step.inputs)})


# -- running -------------------------------------------------------------------------------------------------
class StepFailed(RuntimeError):
    def __init__(self, step, tag, code, log_path):
        super().__init__(f"step {step} ({tag}) failed with exit code {code}; log: {log_path}")
        self.code, self.log_path = code, log_path


_children: list[subprocess.Popen] = []


def _stop_children(*_):
    for p in list(_children):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 10
    for p in list(_children):
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def _pump(proc: subprocess.Popen, log_file, prefix: str, times: dict, tag: str, step_t0: float) -> None:
    """Copy the command's output to its log and the console, then note when it ended (seconds from the step's
    start): the step's timeline in timings.json."""
    for raw in iter(proc.stdout.readline, b""):
        log_file.write(raw)
        log_file.flush()
        sys.stdout.write(prefix + raw.decode("utf-8", "replace"))
        sys.stdout.flush()
    proc.wait()
    times[tag]["seconds"] = round(time.time() - step_t0 - times[tag]["start_s"], 1)


def run_group(step: Step, group, logs: Path, tagged: bool = False, times: dict | None = None,
              step_t0: float | None = None) -> None:
    """Run one group's commands side by side; ``times`` gets each command's start (seconds from ``step_t0``, the
    step's start) and duration."""
    times = {} if times is None else times
    step_t0 = time.time() if step_t0 is None else step_t0
    procs = []
    # a group's commands run side by side (two GPUs); steps and groups run in order, unless the step has workers
    parallel = len(group) > 1 or tagged
    for tag, argv, env in group:
        log_path = logs / f"{step.name}{'' if tag == step.name else '_' + tag}.log"
        f = open(log_path, "ab")
        f.write(f"\n$ {' '.join(f'{k}={v}' for k, v in env.items())} {shlex.join(argv)}\n".encode())
        print(f"[step {step.number} {step.name}] {tag}: {shlex.join(argv)}"
              + (f"  ({', '.join(f'{k}={v}' for k, v in env.items())})" if env else ""), flush=True)
        # own session: Ctrl-C or a failed sibling stops the whole process tree (a llama.cpp server, data loaders)
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **env,
                                                                                          "PYTHONUNBUFFERED": "1"},
                             start_new_session=True)
        _children.append(p)
        times[tag] = {"start_s": round(time.time() - step_t0, 1)}
        t = threading.Thread(target=_pump, args=(p, f, f"[{tag}] " if parallel else "", times, tag, step_t0),
                             daemon=True)
        t.start()
        procs.append((tag, p, t, f, log_path))
    failed = None
    for tag, p, t, f, log_path in procs:
        code = p.wait()
        t.join()
        f.close()
        _children.remove(p)
        if code != 0 and failed is None:  # the first failure is the one reported; the others are its consequence
            failed = StepFailed(step.number, tag, code, log_path)
    if failed:
        _stop_children()
        raise failed


def run_pool(step: Step, logs: Path, times: dict | None = None, step_t0: float | None = None) -> None:
    """The step's groups, ``step.workers`` at a time, each started once the group it must follow (``step.after``)
    is done. The first failure stops the running groups and starts no new one; it is raised once all have ended.
    ``times`` gets each command's start and duration, as :func:`run_group` gives them."""
    times = {} if times is None else times
    step_t0 = time.time() if step_t0 is None else step_t0
    pending = list(step.groups)
    known = {g[0][0] for g in pending}
    done: set[str] = set()
    failures: list[StepFailed] = []
    lock = threading.Condition()

    def next_group():
        with lock:
            while pending and not failures:
                ready = [g for g in pending if step.after.get(g[0][0]) not in known or step.after[g[0][0]] in done]
                if ready:
                    pending.remove(ready[0])
                    return ready[0]
                lock.wait()  # every ready group is running; one that finishes may release the next
            return None

    def worker():
        while (group := next_group()) is not None:
            try:
                # a failure there stops every running command
                run_group(step, group, logs, tagged=True, times=times, step_t0=step_t0)
            except StepFailed as e:
                with lock:
                    failures.append(e)
            with lock:
                done.add(group[0][0])
                lock.notify_all()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(step.workers, len(pending)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:  # the cause, not a sibling that was stopped because of it (killed by a signal)
        raise next((f for f in failures if f.code not in (-signal.SIGTERM, -signal.SIGKILL, 143, 137)), failures[0])


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def run(cfg: PipelineConfig) -> dict:
    if cfg.check_prerequisites:
        return {"prerequisites": check_prerequisites(cfg.gpus, cfg.docker, cfg.logs_dir, llm=cfg.llm,
                                                     models=_local_models(cfg))}
    steps = plan(cfg)
    logs = Path(cfg.logs_dir)
    stamps = logs / ".stamps"
    logs.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in steps if (cfg.only_step is None or s.number == cfg.only_step) and s.number >= cfg.from_step]
    timings_path = logs / "timings.json"
    # kept across runs: a resumed run adds its steps' times to the ones already measured
    timings = (_read_json_or_none(timings_path) if timings_path.exists() and not cfg.dry_run else None) or {}
    timings = timings if isinstance(timings, dict) else {}
    if cfg.dry_run:
        for s in chosen:
            for g in s.groups:
                kind = ("in parallel" if len(g) > 1 else f"{s.workers} at a time" if s.workers > 1 else "")
                for tag, argv, env in g:
                    envs = " ".join(f"{k}={v}" for k, v in env.items())
                    print(f"step {s.number} {s.name} [{tag}] {kind}: {envs + ' ' if envs else ''}{shlex.join(argv)}")
        return {"dry_run": True, "steps": [s.name for s in chosen]}
    signal.signal(signal.SIGINT, lambda *a: (_stop_children(), sys.exit(130)))
    signal.signal(signal.SIGTERM, lambda *a: (_stop_children(), sys.exit(143)))
    t_all = time.time()
    for s in chosen:
        # a step is skipped only when its command, inputs and outputs are what its stamp recorded (resumable runs)
        if not cfg.force and up_to_date(s, stamps):
            print(f"[step {s.number} {s.name}] up to date, skipped", flush=True)
            timings[s.name] = {"skipped": True}
            continue
        t0 = time.time()
        # each command's start and duration within the step: where a pool waited, and its critical path
        commands: dict[str, dict] = {}
        try:
            if s.workers > 1:
                run_pool(s, logs, commands, t0)
            else:
                for g in s.groups:
                    run_group(s, g, logs, times=commands, step_t0=t0)
        except StepFailed as e:
            print(f"\n[step {s.number} {s.name}] FAILED (exit {e.code}). Last lines of {e.log_path}:\n"
                  f"{tail(e.log_path)}", file=sys.stderr, flush=True)
            timings[s.name] = {"failed": True, "seconds": round(time.time() - t0, 1), "commands": commands}
            write_json_atomic(timings_path, timings)
            raise SystemExit(e.code) from None
        mark_done(s, stamps)  # only after every group succeeded: a failed step reruns in full
        timings[s.name] = {"seconds": round(time.time() - t0, 1), "commands": commands}
        write_json_atomic(timings_path, timings)
        print(f"[step {s.number} {s.name}] done in {time.time() - t0:.0f}s", flush=True)
    timings["total_seconds"] = round(time.time() - t_all, 1)
    write_json_atomic(timings_path, timings)
    return {"timings": timings}


# -- step 1 --------------------------------------------------------------------------------------------------
def _local_models(cfg: PipelineConfig) -> list[str]:
    """The run's models whose tool-call tags step 1 checks: the paper models and, offline, the LLM stand-in."""
    llm = resolve_llm(cfg.llm)
    stand_in = [cfg.llm_model or OFFLINE_LLM] if llm == "llamacpp" else []
    return list(dict.fromkeys([*paper_models(cfg).values(), *stand_in]))


def tool_tag_checks(models: list[str]) -> dict:
    """Model -> what fctune.tool_tokens finds of its tool-call tags, for GGUF files (their rows are read without
    loading the model); other models are checked when evaluate or train loads them. Prints one line per model whose
    tags are untrained, with the repair the run applies (--repair-tokens auto)."""
    from fctune.models import ModelUnavailable, load_tokenizer, resolve_model
    from fctune.parse import declared_call_format
    from fctune.render import PromptRenderer
    from fctune.tool_tokens import detect_gguf, resolve_repair

    out = {}
    for spec in models:
        try:
            ref = resolve_model(spec)
        except ModelUnavailable as e:
            out[spec] = {"checked": False, "why": str(e)}
            continue
        if ref.kind != "gguf":
            out[spec] = {"checked": False, "why": "not a GGUF file: checked when evaluate or train loads it"}
            continue
        tok = load_tokenizer(spec)
        check = detect_gguf(ref.location, tok, declared_call_format(PromptRenderer(tok)), spec)
        repair = resolve_repair("auto", check)
        out[spec] = {"checked": True, "untrained": check.untrained, "tags": check.tags, "repair": repair}
        if check.line():
            print(f"tool-call tags: {check.line()}; the run feeds them as text (--repair-tokens auto; "
                  "none keeps them)", flush=True)
    return out


def check_prerequisites(gpus: str, docker: bool, logs_dir: str = "paper_approach/logs", llm: str = "auto",
                        models: list[str] | None = None) -> dict:
    import importlib.util
    import shutil

    info = {"python": sys.version.split()[0], "gpus": detect_gpus(gpus), "env_file": Path(".env").exists(),
            "llm_baseline": resolve_llm(llm), "llama_cpp_server": importlib.util.find_spec("llama_cpp") is not None,
            "hf_token": bool(os.environ.get("HF_TOKEN")),
            "bfcl_data": importlib.util.find_spec("bfcl_eval") is not None}
    problems = []
    if info["llm_baseline"] == "llamacpp" and not info["llama_cpp_server"]:
        problems.append("no Azure/OpenAI endpoint in .env and llama-cpp-python[server] is not installed")
    elif info["llama_cpp_server"]:
        from fctune.llama_server import ServerError, check_long_prompt, llama_cpp_build

        # the environment report names the llama.cpp build, and a build that crashes on long prompts stops the run
        # here rather than as a baseline whose every request failed
        info["llama_cpp"] = llama_cpp_build()
        if info["llm_baseline"] == "llamacpp":
            try:
                info["llama_cpp"]["long_prompt"] = check_long_prompt()
            except ServerError as e:
                problems.append(str(e))
    if docker:
        if not shutil.which("docker"):
            problems.append("--docker: the docker command is not installed")
        elif subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
            problems.append("--docker: no Docker engine answers (docker info failed)")
        info["docker"] = True
    info["tool_tags"] = tool_tag_checks(models or [])
    if not info["env_file"]:
        print("note: no .env file: the LLM baseline is the local llama.cpp server (copy .env.example to .env to "
              "use Azure OpenAI)", flush=True)
    print(f"prerequisites: python {info['python']}, GPUs {info['gpus'] or 'none'}, LLM baseline "
          f"{info['llm_baseline']}, HF_TOKEN {'set' if info['hf_token'] else 'not set'}", flush=True)
    Path(logs_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(logs_dir) / "prerequisites.json", info)
    if problems:
        raise UserError("; ".join(problems))
    return info


def _summary(r: dict) -> str | None:
    if "prerequisites" in r:
        return None  # check_prerequisites logged what it found
    if r.get("dry_run"):
        return "dry run: nothing was executed"
    return f"done in {r['timings'].get('total_seconds', 0):.0f}s: report in comparison_framework/reports/"


def main(argv=None) -> int:
    """The command line (``fctune pipeline``, and run_phase1_experiment.sh)."""
    from fctune.cli import run_script

    return run_script(PipelineConfig, run, argv, summary=_summary)


if __name__ == "__main__":
    raise SystemExit(main())
