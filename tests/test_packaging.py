"""Static checks of what cannot run here (no Docker engine): Dockerfiles (hadolint), shell scripts (shellcheck),
compose files (Compose Specification JSON schema); the Python code (ruff, rules in pyproject.toml); plus the run
script's plan, GPU sets and the docs."""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fctune.pipeline import PipelineConfig, assign_gpu_sets, plan

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name):
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert path, f"{name} is missing (scripts/bootstrap.sh --test installs it)"
    return path


@pytest.mark.parametrize("dockerfile", ["docker/unsloth-paper/Dockerfile", "docker/fledgling/Dockerfile"])
def test_dockerfiles_pass_hadolint(dockerfile):
    out = subprocess.run([_tool("hadolint"), "--ignore", "DL3008", "--ignore", "DL3013", dockerfile], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    text = (REPO / dockerfile).read_text()
    assert ":latest" not in text.split("FROM", 1)[1].splitlines()[0]


def test_python_code_passes_ruff():
    out = subprocess.run([_tool("ruff"), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_shell_scripts_pass_shellcheck():
    scripts = ["run_phase1_experiment.sh", "run_tests.sh", "scripts/bootstrap.sh", ".ci/run",
               "docker/unsloth-paper/entrypoint.sh", "docker/fledgling/entrypoint.sh"]
    out = subprocess.run([_tool("shellcheck"), *scripts], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def _compose_schema():
    spec = importlib.util.find_spec("compose")
    assert spec, "docker-compose==1.29.2 (installed --no-deps for its schema file) is missing"
    return json.loads((Path(list(spec.submodule_search_locations)[0]) / "config" / "compose_spec.json").read_text())


@pytest.mark.parametrize("compose", ["docker/unsloth-paper/docker-compose.yml", "docker/fledgling/docker-compose.yml"])
def test_compose_files_match_the_compose_specification(compose):
    import jsonschema

    doc = yaml.safe_load((REPO / compose).read_text())
    doc.pop("name", None)  # top-level "name" came to the spec after this schema version
    jsonschema.validate(doc, _compose_schema())
    for svc in doc["services"].values():
        assert svc["env_file"] == "../../.env"
        assert svc["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_paper_compose_gives_each_model_its_own_gpu_pair():
    doc = yaml.safe_load((REPO / "docker/unsloth-paper/docker-compose.yml").read_text())
    ids = {name: s["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]
           for name, s in doc["services"].items()}
    assert ids == {"paper-approach-phi": ["0", "1"], "paper-approach-llama": ["2", "3"]}


def test_compose_schema_rejects_a_broken_file():
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"services": {"x": {"deploy": {"resources": {"reservations": {"devices": "all"}}}}}},
                            _compose_schema())


@pytest.mark.parametrize("gpus,n,sets", [
    (["0", "1", "2", "3"], 2, [["0", "1"], ["2", "3"]]),
    (["0", "1"], 2, [["0"], ["1"]]),
    (["0", "1", "2"], 2, [["0"], ["1"]]),
    (["0"], 2, None),
    ([], 2, None),
    (["0", "1", "2", "3", "4", "5", "6", "7"], 2, [["0", "1", "2", "3"], ["4", "5", "6", "7"]]),
])
def test_gpu_sets(gpus, n, sets):
    assert assign_gpu_sets(gpus, n) == sets


def test_training_plan_on_four_gpus_is_parallel_and_data_parallel():
    step = next(s for s in plan(PipelineConfig(profile="full", gpus="0,1,2,3")) if s.name == "train")
    (group,) = step.groups
    assert [(tag, env["CUDA_VISIBLE_DEVICES"]) for tag, _, env in group] == [("phi", "0,1"), ("llama", "2,3")]
    for _, argv, _ in group:
        assert argv[1:4] == ["-m", "accelerate.commands.launch", "--num_processes"] and argv[4] == "2"


def test_training_plan_without_gpus_is_sequential():
    step = next(s for s in plan(PipelineConfig(gpus="none", models=["phi=/m/p", "llama=/m/l"])) if s.name == "train")
    assert [len(g) for g in step.groups] == [1, 1] and all(env == {} for g in step.groups for _, _, env in g)


def test_families_given_the_same_model_are_trained_and_evaluated_once():
    """The smoke profile gives SmolLM2 to both families: one training job under the joined name, one evaluation of
    it (family phi+llama), as for the shared base model; distinct models keep one job each."""
    steps = {s.name: s for s in plan(PipelineConfig(gpus="none", llm="none", fledgling=False))}
    assert [tag for g in steps["train"].groups for tag, _, _ in g] == ["phi-llama"]
    assert steps["train"].outputs == ["paper_approach/adapters/phi-llama/adapter_model.safetensors"]
    evals = {tag: argv for g in steps["evaluate"].groups for tag, argv, _ in g}
    assert sorted(evals) == ["paper-phi-llama-base", "paper-phi-llama-ft"]
    ft = evals["paper-phi-llama-ft"]
    assert ft[ft.index("--family") + 1] == "phi+llama"
    assert ft[ft.index("--adapter") + 1] == "paper_approach/adapters/phi-llama"
    steps = {s.name: s for s in plan(PipelineConfig(gpus="none", llm="none", fledgling=False,
                                                    models=["phi=/m/p", "llama=/m/l", "qwen=/m/p"]))}
    assert [tag for g in steps["train"].groups for tag, _, _ in g] == ["phi-qwen", "llama"]


def test_cpu_evaluations_run_two_at_a_time_on_one_core_each(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    step = next(s for s in plan(PipelineConfig(gpus="none", llm="llamacpp", roundtrip="on")) if s.name == "evaluate")
    tags = [tag for g in step.groups for tag, _, _ in g]
    # the longest first: Fledgling, in three parts whose last two go side by side after its training
    assert step.workers == 2 and tags[:3] == ["fledgling", "fledgling-shared", "fledgling-re_eval"]
    stages = [argv[argv.index("--stage") + 1] for g in step.groups[:3] for _, argv, _ in g]
    assert stages == ["gate", "shared", "re_eval"]
    assert all(env["OMP_NUM_THREADS"] == "1" for g in step.groups for _, _, env in g)
    assert step.after == {"paper-phi-llama-ft-roundtrip": "paper-phi-llama-ft", "fledgling-re_eval": "fledgling",
                          "fledgling-shared": "fledgling"}
    one = next(s for s in plan(PipelineConfig(gpus="none", llm="llamacpp", eval_workers=1)) if s.name == "evaluate")
    assert one.workers == 1 and all("OMP_NUM_THREADS" not in env for g in one.groups for _, _, env in g)
    (fledgling,) = [argv for g in one.groups for tag, argv, _ in g if tag.startswith("fledgling")]
    assert "--stage" not in fledgling  # one worker: Fledgling in one process, as before
    gpu = next(s for s in plan(PipelineConfig(gpus="0", llm="llamacpp")) if s.name == "evaluate")
    assert gpu.workers == 1  # GPU evaluations would share one GPU's memory


def _timed(tag, seconds, log, code=0):
    """A real command that notes its start and end (wall clock) in ``log`` and exits with ``code``."""
    body = (f"import time; open({str(log)!r}, 'a').write('{tag} start %f\\n' % time.time()); time.sleep({seconds}); "
            f"open({str(log)!r}, 'a').write('{tag} end %f\\n' % time.time()); raise SystemExit({code})")
    return [(tag, [sys.executable, "-c", body], {})]


def _spans(log):
    t = {}
    for line in log.read_text().splitlines():
        tag, what, at = line.split()
        t.setdefault(tag, {})[what] = float(at)
    return t


def test_worker_pool_runs_two_at_a_time_and_keeps_the_order_it_is_given(tmp_path):
    from fctune.pipeline import Step, run_pool

    log = tmp_path / "times"
    step = Step(6, "evaluate", [_timed("a", 1.5, log), _timed("b", 0.3, log), _timed("b-roundtrip", 0.3, log),
                                _timed("c", 0.3, log)], workers=2, after={"b-roundtrip": "b"})
    t0 = time.time()
    times = {}
    run_pool(step, tmp_path, times, t0)
    t = _spans(log)
    assert t["b"]["start"] < t["a"]["end"]  # side by side
    assert t["b-roundtrip"]["start"] >= t["b"]["end"]  # after what it follows
    assert t["c"]["start"] >= t["b-roundtrip"]["end"]  # the given order: the ready round trip before c
    running = [(x["start"], 1) for x in t.values()] + [(x["end"], -1) for x in t.values()]
    level = peak = 0
    for _, d in sorted(running, key=lambda e: (e[0], e[1])):
        level += d
        peak = max(peak, level)
    assert peak == 2
    assert (tmp_path / "evaluate_b-roundtrip.log").exists()
    # the pool's own timeline (timings.json) brackets what each command saw of itself
    assert times.keys() == t.keys()
    for tag, span in t.items():
        start, end = t0 + times[tag]["start_s"], t0 + times[tag]["start_s"] + times[tag]["seconds"]
        assert start - 0.1 <= span["start"] and span["end"] <= end + 0.1, (tag, times[tag], span)
    assert times["a"]["seconds"] >= 1.4 and times["c"]["start_s"] >= times["b-roundtrip"]["start_s"]


def test_worker_pool_stops_at_the_first_failure_and_names_it(tmp_path):
    from fctune.pipeline import Step, StepFailed, run_pool

    log = tmp_path / "times"
    step = Step(6, "evaluate", [_timed("long", 30, log), _timed("bad", 0.2, log, code=3), _timed("never", 0.1, log)],
                workers=2)
    t0 = time.time()
    with pytest.raises(StepFailed) as e:
        run_pool(step, tmp_path)
    assert "(bad)" in str(e.value) and e.value.code == 3
    assert time.time() - t0 < 20  # the long sibling was stopped, not waited for
    t = _spans(log)
    assert "never" not in t and "end" not in t["long"]


def test_fledgling_uses_phi_else_the_first_model_given():
    def fledgling_model(**kw):
        steps = plan(PipelineConfig(profile="full", gpus="none", llm="none", **kw))
        step = next(s for s in steps if s.name == "evaluate")
        (argv,) = [a for g in step.groups for tag, a, _ in g if tag == "fledgling"]
        return argv[argv.index("--model") + 1]

    assert fledgling_model() == "microsoft/Phi-4-mini-instruct"
    assert fledgling_model(models=["smollm2=/m/smol.gguf", "gemma=/m/g.gguf"]) == "/m/smol.gguf"
    assert fledgling_model(models=["llama=/m/l", "phi=/m/p"]) == "/m/p"


def test_dry_run_lists_every_step():
    out = subprocess.run([sys.executable, "-m", "fctune.pipeline", "--dry-run", "--gpus", "none", "--bfcl"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("prerequisites", "dataset", "test_splits", "train", "evaluate", "compare"):
        assert f" {name} [" in out.stdout
    assert "-m fctune bfcl run" in out.stdout and "-m fctune fledgling" in out.stdout


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    m = re.search(r"```(?:bash|sh)?\n(?:#[^\n]*\n)*\./run_tests\.sh\n", readme)
    assert m, "README must show ./run_tests.sh as the test command"
    ci = [x for x in (REPO / ".ci/run").read_text().splitlines()
          if x.strip() and not x.startswith(("#", "set ", "cd "))]
    assert ci == ["./run_tests.sh"]


def test_env_example_documents_every_variable_the_code_reads():
    used = set()
    for f in (REPO / "fctune").rglob("*.py"):
        used |= set(re.findall(r"os\.environ(?:\.get)?\(\s*\"([A-Z][A-Z0-9_]+)\"", f.read_text()))
        used |= set(re.findall(r"os\.environ\[\"([A-Z][A-Z0-9_]+)\"\]", f.read_text()))
    # set by launchers or for debugging
    internal = {"LOCAL_RANK", "RANK", "WORLD_SIZE", "FCTUNE_DEBUG", "FCTUNE_LOG_LEVEL", "FCTUNE_ENV_FILE",
                "HUGGING_FACE_HUB_TOKEN"}
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M))
    assert used - internal <= documented, sorted(used - internal - documented)


def test_readme_and_run_experiments_name_every_script_and_command():
    from fctune.commands import COMMANDS

    text = (REPO / "README.md").read_text() + (REPO / "RUN_EXPERIMENTS.md").read_text()
    scripts = {c.script for c in COMMANDS.values() if c.script and "<" not in c.script}
    for script in scripts | {f"fctune {name}" for name in COMMANDS}:
        assert script in text, script
    for phase in ("Phase 0", "Phase 1", "Phase 2", "Phase 3"):
        assert phase in (REPO / "RUN_EXPERIMENTS.md").read_text()


def test_evaluation_step_is_stale_while_any_model_lacks_a_suite_summary(tmp_path, monkeypatch):
    """Step 6's outputs are every evaluated model's summary of every suite, the LLM's included: deleting the LLM's
    results makes the step run again instead of the comparison running without them."""
    from fctune.pipeline import mark_done, up_to_date

    step = next(s for s in plan(PipelineConfig(gpus="none", llm="llamacpp")) if s.name == "evaluate")
    assert "paper_approach/eval_results/llm-qwen2.5-coder-0.5b-instruct-awq_no_call.json" in step.outputs
    assert "paper_approach/eval_results/paper-phi-llama-base_single_turn.json" in step.outputs
    monkeypatch.chdir(tmp_path)
    step.inputs = []
    for o in step.outputs:
        Path(o).parent.mkdir(parents=True, exist_ok=True)
        Path(o).write_text("{}")
    mark_done(step, tmp_path / "stamps")
    assert up_to_date(step, tmp_path / "stamps")
    Path(step.outputs[-1]).unlink()
    assert not up_to_date(step, tmp_path / "stamps")
