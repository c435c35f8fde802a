"""What every entry point shares: it finds the project's root wherever it runs (or takes --project-dir), writes its
default outputs and reads its .env there, and keeps the paths a user typed relative to where the user is."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREPARE = [sys.executable, str(REPO / "paper_approach/prepare_hermes_dataset.py"), "--source", "offline",
           "--tokenizer", "none", "--train-size", "6", "--val-size", "3", "--test-size", "3"]


def _project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    (proj / "fctune").mkdir(parents=True)
    (proj / "run_phase1_experiment.sh").write_text("#!/bin/sh\n")
    return proj


def _run(argv, cwd, **env):
    e = {k: v for k, v in os.environ.items()
         if k not in ("FCTUNE_PROJECT_DIR", "FCTUNE_ENV_FILE") and not k.startswith(("OPENAI_", "AZURE_OPENAI_"))}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, env={**e, **env})


def test_run_from_a_subfolder_writes_to_the_project_and_reads_its_env(tmp_path):
    from fctune.llama_server import free_port

    proj = _project(tmp_path)
    sub = proj / "notes" / "deep"
    sub.mkdir(parents=True)
    r = _run(PREPARE, cwd=sub)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (proj / "paper_approach/datasets/hermes_train.jsonl").exists()
    assert not (sub / "paper_approach").exists()
    # the project's .env names the endpoint and model: the run uses them (nothing listens there, so it fails, named)
    (proj / ".env").write_text(f"OPENAI_BASE_URL=http://127.0.0.1:{free_port()}/v1\nOPENAI_MODEL=from-project-env\n")
    r = _run([sys.executable, str(REPO / "docker/unsloth-paper/scripts/eval_function_call.py"), "--backend", "openai",
              "--split-file", str(REPO / "tests/bad_inputs/split_valid.jsonl"), "--max-retries", "0"], cwd=sub)
    assert r.returncode == 2 and "llm-from-project-env on split_valid: 2 of 2 requests failed" in r.stderr, r.stderr
    assert (proj / "paper_approach/eval_results/llm-from-project-env_split_valid_predictions.jsonl").exists()


def test_project_dir_flag_and_typed_relative_paths(tmp_path):
    proj = _project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = _run(PREPARE + ["--project-dir", str(proj), "--output-dir", "mine"], cwd=elsewhere)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (elsewhere / "mine/hermes_train.jsonl").exists()  # typed: relative to where the user is
    assert not (proj / "mine").exists() and not (elsewhere / "paper_approach").exists()
    bad = _run(PREPARE + ["--project-dir", str(tmp_path / "nope")], cwd=elsewhere)
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: --project-dir {tmp_path / 'nope'}: no such folder"


def test_every_commands_help_renders():
    # a field's help is prose ("10% of a batch"); argparse treats help as a format string, and one stray "%" once
    # broke `fctune train --help` with a TypeError
    from fctune.commands import COMMANDS, config_of
    from fctune.config import build_parser

    configs = {name: config_of(name) for name in COMMANDS}
    assert configs["train"][0] is not None
    for name, (cls, presets) in configs.items():
        if cls is not None:
            text = build_parser(cls, presets=presets).format_help()
            assert "--" in text, name
    assert "10% of a batch" in " ".join(build_parser(configs["train"][0]).format_help().split())
