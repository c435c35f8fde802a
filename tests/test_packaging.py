"""Static checks of what cannot run here (no Docker engine): Dockerfiles (hadolint), shell scripts (shellcheck),
compose files (Compose Specification JSON schema); the Python code (ruff, rules in pyproject.toml); plus the run
script's plan, GPU sets and the docs."""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
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
    step = next(s for s in plan(PipelineConfig(gpus="none")) if s.name == "train")
    assert [len(g) for g in step.groups] == [1, 1] and all(env == {} for g in step.groups for _, _, env in g)


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
    assert "fctune.bfcl run" in out.stdout and "fledgling/run_pipeline.py" in out.stdout


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
