"""The mechanisms every entry point passes through, tested over everything they cover rather than case by case:
numbers that are not finite, config values of the wrong shape, a --config that cannot be read, an OS error at an
output path, two runs writing the same outputs, and state files torn by a kill."""

from __future__ import annotations

import dataclasses
import errno
import importlib
import math
import os
import signal
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from http_stub import StubHandler, serving

from fctune.commands import COMMANDS
from fctune.config import ConfigError, _base_type, config_from_sources, load_yaml

REPO = Path(__file__).resolve().parents[1]
SPLIT = "tests/bad_inputs/split_valid.jsonl"


def _configs():
    for name, c in COMMANDS.items():
        if c.config:
            module, cls = c.config.split(":")
            yield name, getattr(importlib.import_module(module), cls)


def _fields_of(kind):
    for name, cls in _configs():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            base, _ = _base_type(hints[f.name])
            if kind(base):
                yield pytest.param(cls, f.name, id=f"{name}.{f.name}")


FLOATS = list(_fields_of(lambda t: t is float))
INTS = list(_fields_of(lambda t: t is int))
STR_LISTS = list(_fields_of(lambda t: typing.get_origin(t) in (list, tuple) and
                            (typing.get_args(t) or (str,))[0] is str))


def test_the_derived_field_lists_are_not_empty():
    assert len(FLOATS) > 10 and len(INTS) > 20 and len(STR_LISTS) > 5


@pytest.mark.parametrize("cls,name", FLOATS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_no_float_field_of_any_command_takes_a_number_that_is_not_finite(cls, name, value):
    with pytest.raises(ConfigError, match="not a finite number"):
        config_from_sources(cls, overrides={name: value})


@pytest.mark.parametrize("cls,name", FLOATS + INTS)
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_no_number_field_of_any_command_takes_yamls_nan_or_infinity(tmp_path, cls, name, value):
    (tmp_path / "c.yaml").write_text(f"{name}: {value}\n")
    with pytest.raises(ConfigError, match=f"{name.replace('_', '.')}|'{name}'"):
        config_from_sources(cls, yaml_path=tmp_path / "c.yaml")


@pytest.mark.parametrize("cls,name", STR_LISTS)
def test_no_list_field_of_any_command_takes_a_list_of_lists_from_yaml(tmp_path, cls, name):
    y = tmp_path / "c.yaml"
    y.write_text(f"{name}: [[a, b], c]\n")
    with pytest.raises(ConfigError, match=f"c.yaml: field '{name}': item 0: a list, not a str"):
        config_from_sources(cls, yaml_path=y)


def test_a_scalar_field_refuses_a_list_or_mapping_from_yaml(tmp_path):
    from fctune.evaluate import EvalConfig

    for text, says in (("label: [a, b]\n", "field 'label': a list, not a str"),
                       ("limit: {n: 3}\n", "field 'limit': a dict, not a int")):
        (tmp_path / "c.yaml").write_text(text)
        with pytest.raises(ConfigError, match=says):
            config_from_sources(EvalConfig, yaml_path=tmp_path / "c.yaml")


def test_config_that_is_a_folder_or_not_text_is_one_error(tmp_path):
    with pytest.raises(ConfigError, match="a folder, not a YAML config file"):
        load_yaml(tmp_path)
    (tmp_path / "bin.yaml").write_bytes(b"limit: 3\n\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_yaml(tmp_path / "bin.yaml")


def _cli(*argv, env=None, timeout=120):
    env = {**os.environ, "FCTUNE_ENV_FILE": "/nonexistent.env", "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=env)


def _one_error_line(r, *wants):
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-1500:])
    errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1, r.stderr[-1500:]
    for w in wants:
        assert w in errors[0], errors[0]


def test_command_line_numbers_and_configs_end_in_one_line(tmp_path):
    ev = "docker/unsloth-paper/scripts/eval_function_call.py"
    _one_error_line(_cli(ev, "--max-error-rate", "nan"), "--max-error-rate", "not a finite number")
    _one_error_line(_cli(ev, "--request-timeout-s", "inf"), "--request-timeout-s", "not a finite number")
    _one_error_line(_cli(ev, "--config", str(tmp_path)), str(tmp_path), "a folder")
    (tmp_path / "c.yaml").write_bytes(b"\xff\xfe")
    _one_error_line(_cli(ev, "--config", str(tmp_path / "c.yaml")), "c.yaml", "not UTF-8")


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "res").write_text("a file where the results folder should be")
    r = _cli("docker/unsloth-paper/scripts/eval_function_call.py", "--results-dir", str(tmp_path / "res"),
             "--model", "smollm2", "--limit", "1", "--split-files", SPLIT)
    _one_error_line(r, str(tmp_path / "res"))


@pytest.mark.parametrize("err", [OSError(errno.ENOSPC, "No space left on device", "/data/out.jsonl"),
                                 OSError(errno.EROFS, "Read-only file system", "/ro/out.jsonl"),
                                 FileExistsError(errno.EEXIST, "File exists", "/x/results")])
def test_an_os_error_of_any_kind_is_one_line_naming_its_path(capsys, err):
    from fctune.cli import run_script
    from fctune.evaluate import EvalConfig

    def fails(cfg):
        raise err

    assert run_script(EvalConfig, fails, []) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error:") and err.filename in line and "\n" not in line


def test_a_second_run_into_the_same_outputs_refuses_and_a_killed_holder_frees_them(tmp_path):
    from fctune.evaluate import predictions_path
    from fctune.io import FolderBusy, OutputLock

    task = predictions_path(tmp_path, "m1", Path(SPLIT).stem)
    with OutputLock(tmp_path, task.stem, "evaluation of this task"):
        with pytest.raises(FolderBusy, match=f"pid {os.getpid()}"):
            OutputLock(tmp_path, task.stem).__enter__()
        with OutputLock(tmp_path, "m2"):  # other outputs in the same folder are another run's business
            pass
        # the command line: one line, before a row is generated
        ev = ["docker/unsloth-paper/scripts/eval_function_call.py", "--results-dir", str(tmp_path), "--label", "m1",
              "--model", "smollm2", "--limit", "1", "--split-files"]
        _one_error_line(_cli(*ev, SPLIT), str(tmp_path), "another evaluation of this task is writing")
        # the same label on another task runs beside it (Fledgling's two final evaluations do)
        other = tmp_path / "other.jsonl"
        other.write_text((REPO / SPLIT).read_text())
        r = _cli(*ev, str(other))
        assert r.returncode == 0, r.stderr[-1500:]
    # a holder killed with SIGKILL leaves the lock file behind, and the lock free
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from fctune.io import OutputLock; "
                               f"OutputLock({str(tmp_path)!r}, 'm3').__enter__(); print('held', flush=True); "
                               "time.sleep(60)"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(FolderBusy):
        OutputLock(tmp_path, "m3").__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    with OutputLock(tmp_path, "m3"):
        assert (tmp_path / ".m3.lock").exists()


def test_a_torn_step_stamp_or_timings_file_means_run_again_not_a_crash(tmp_path):
    from fctune import pipeline

    out = tmp_path / "made.txt"
    out.write_text("x")
    step = pipeline.Step(1, "demo", [[("demo", ["true"], {})]], outputs=[str(out)])
    stamps = tmp_path / "stamps"
    pipeline.mark_done(step, stamps)
    assert pipeline.up_to_date(step, stamps) is True
    stamp = stamps / "demo.json"
    stamp.write_text(stamp.read_text()[:7])  # what a kill in the middle of a plain write leaves
    assert pipeline.up_to_date(step, stamps) is False
    timings = tmp_path / "timings.json"
    timings.write_text('{"dataset": {"seco')
    assert pipeline._read_json_or_none(timings) is None


def test_an_unknown_call_format_is_refused_at_the_flag(tmp_path):
    from fctune.errors import UserError
    from fctune.parse import CALL_SHAPES, call_format_from_flag

    assert call_format_from_flag("hermes_tags, fenced_json") == ["hermes_tags", "fenced_json"]
    assert all(call_format_from_flag(s) == [s] for s in (*CALL_SHAPES, "any"))
    for bad in ("hermes_tag", "", " , "):
        with pytest.raises(UserError, match="--call-format"):
            call_format_from_flag(bad)
    r = _cli("-m", "fctune.score", "--expected", SPLIT, "--predictions", "tests/bad_inputs/predictions_no_id.jsonl",
             "--out", str(tmp_path / "s"), "--call-format", "hermes_tag")
    _one_error_line(r, "--call-format", "'hermes_tag'", "hermes_tags")


def test_env_file_is_read_with_the_usual_rules(tmp_path, monkeypatch):
    from fctune.secrets import load_dotenv

    env = tmp_path / ".env"
    env.write_bytes("\ufeffFCT_FIRST=1\nFCT_KEY=\"sk-abc123456\"  # the team's key\nexport FCT_Q='a b'\n"
                    "FCT_HASH=a#b\nFCT_DOLLAR=p$HOME\nnot a line\n".encode())
    for k in ("FCT_FIRST", "FCT_KEY", "FCT_Q", "FCT_HASH", "FCT_DOLLAR"):
        monkeypatch.delenv(k, raising=False)
    names = load_dotenv(env)
    assert set(names) == {"FCT_FIRST", "FCT_KEY", "FCT_Q", "FCT_HASH", "FCT_DOLLAR"}
    assert [os.environ[k] for k in names] == ["1", "sk-abc123456", "a b", "a#b", "p$HOME"]
    bad = tmp_path / "bad.env"
    bad.write_bytes(b"A=\xff\n")
    from fctune.errors import UserError

    with pytest.raises(UserError, match="bad.env: not UTF-8"):
        load_dotenv(bad)


def test_json_schema_refs_are_resolved_locally_or_refused_and_never_fetched():
    from fctune.schema import SchemaError, check_json_schema
    from fctune.score import schema_errors

    fetched = []

    class Served(StubHandler):
        def do_GET(self):  # noqa: N802
            fetched.append(self.path)
            self.reply(200, b'{"type": "string"}')

    with serving(Served) as port:
        remote = {"type": "object", "properties": {"a": {"$ref": f"http://127.0.0.1:{port}/s.json"}}}
        with pytest.raises(SchemaError, match="f.jsonl:3: json_schema/properties/a/\\$ref: .*outside the schema"):
            check_json_schema(remote, "f.jsonl:3: json_schema")
        assert schema_errors({"a": 1}, remote) == [f"$: the schema's $ref {remote['properties']['a']['$ref']!r} "
                                                   "does not resolve"]
    assert fetched == []
    local = {"type": "object", "$defs": {"n": {"type": "integer"}, "a/b": {"type": "string"}},
             "properties": {"x": {"$ref": "#/$defs/n"}, "y": {"$ref": "#/$defs/a~1b"}, "z": {"$anchor": "zz"},
                            "w": {"$ref": "#zz"}}}
    check_json_schema(local, "f.jsonl:1: json_schema")
    assert schema_errors({"x": "no", "y": "s"}, local) == ["x: 'no' is not of type 'integer'"]
    for ref, says in (("#/$defs/missing", "no 'missing'"), ("#nowhere", "no \\$anchor 'nowhere'")):
        with pytest.raises(SchemaError, match=says):
            check_json_schema({"$defs": {}, "properties": {"q": {"$ref": ref}}}, "f.jsonl:2: json_schema")


def test_a_split_that_would_be_scored_wrongly_is_refused_before_any_model_loads(tmp_path):
    ev = ["docker/unsloth-paper/scripts/eval_function_call.py", "--results-dir", str(tmp_path / "res"),
          "--model", "smollm2"]
    rows = Path(REPO / SPLIT).read_text().splitlines()
    dup = tmp_path / "dup.jsonl"
    dup.write_text(rows[0] + "\n" + rows[0] + "\n")
    _one_error_line(_cli(*ev, "--split-files", str(dup)), "dup.jsonl:2", "'id'", "also the id of line 1")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    _one_error_line(_cli(*ev, "--split-files", str(empty)), "empty.jsonl", "no rows")
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "s.jsonl").write_text(rows[0] + "\n")
    _one_error_line(_cli(*ev, "--split-files", f"{tmp_path / 'a' / 's.jsonl'},{tmp_path / 'b' / 's.jsonl'}"),
                    "--split-files", "both name their results 's'")


def test_a_server_start_on_a_port_someone_else_answers_on_is_refused():
    class Impostor(StubHandler):  # answers the health check as a llama.cpp server would
        def do_GET(self):  # noqa: N802
            self.reply(200, b'{"data": [{"id": "not-yours"}]}')

    with serving(Impostor) as port:
        r = _cli("-m", "fctune.llama_server", "--model", "smollm2", "--port", str(port))
    _one_error_line(r, f"127.0.0.1:{port} is already in use")
    assert "serving" not in r.stdout


def test_bfcl_rescore_of_nothing_is_an_error_not_an_empty_summary(tmp_path):
    r = _cli("-m", "fctune.bfcl", "rescore", "--results-dir", str(tmp_path / "nowhere"), "--label", "m")
    _one_error_line(r, "nowhere", "no such folder")
    r = _cli("-m", "fctune.bfcl", "rescore", "--results-dir", str(tmp_path), "--label", "m")
    _one_error_line(r, "no saved BFCL predictions of 'm'")
    assert list(tmp_path.iterdir()) == []  # and no summary written
    r = _cli("-m", "fctune.bfcl", "rescore", "--results-dir", str(tmp_path), "--label", "m", "--categories", "simple")
    _one_error_line(r, "unknown BFCL categories ['simple']")


def test_a_summary_its_own_details_contradict_is_not_used_and_says_why(tmp_path):
    import json
    import shutil

    from fctune.compare import discover

    src = REPO / "results/phase1/paper_approach/eval_results"
    label, suite = "paper-phi-ft", "single_turn"
    if not (src / f"{label}_{suite}.json").exists():
        label = next(p.name[: -len(f"_{suite}.json")] for p in src.glob(f"*_{suite}.json"))
    suites = ["single_turn"]

    def folder(name, edit):
        d = tmp_path / name
        d.mkdir()
        for p in src.glob(f"{label}_{suite}*"):
            shutil.copy(p, d / p.name)
        edit(d / f"{label}_{suite}.json", d / f"{label}_{suite}_details.jsonl")
        return d

    def summary_says_perfect(summ, det):
        s = json.loads(summ.read_text())
        s["metrics"]["args_exact_match_rate"]["value"] = 1.0
        summ.write_text(json.dumps(s))

    def torn(summ, det):
        det.write_text(det.read_text() + '{"id": "x", "expected_kin')

    def rows_lost(summ, det):
        det.write_text("".join(det.read_text().splitlines(keepends=True)[:-2]))

    models, problems, _ = discover([str(folder("ok", lambda *a: None))], suites)
    assert problems == [] and suite in models[label].suites
    for name, edit, says in (("perfect", summary_says_perfect, "args_exact_match_rate is 1.0 where its"),
                             ("torn", torn, "1 torn line"), ("lost", rows_lost, "rows where the summary counts")):
        models, problems, _ = discover([str(folder(name, edit))], suites)
        assert len(problems) == 1 and says in problems[0] and "not used" in problems[0], problems
        assert label not in models or suite not in models[label].suites


def test_saved_outputs_that_are_all_errors_are_not_a_score_of_zero(tmp_path):
    import json

    row = json.loads(Path(REPO / SPLIT).read_text().splitlines()[0])
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": row["id"], "error": "APIConnectionError: refused"}) + "\n")
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(row) + "\n")
    r = _cli("-m", "fctune.score", "--expected", str(one), "--predictions", str(preds), "--out", str(tmp_path / "o"))
    _one_error_line(r, "p.jsonl", "every one of its 1 predictions is an error", "APIConnectionError")
    assert not (tmp_path / "o" / "summary.json").exists()


def test_a_summary_whose_model_fields_are_not_text_is_one_error(tmp_path):
    import json

    from fctune.compare import discover
    from fctune.io import DataFileError

    s = json.loads(sorted((REPO / "results/phase1/paper_approach/eval_results").glob("*_single_turn.json"))[0]
                   .read_text())
    s["model"]["label"] = ["a", "b"]
    (tmp_path / "x_single_turn.json").write_text(json.dumps(s))
    with pytest.raises(DataFileError, match="model.label, role, approach and family must be text, got label list"):
        discover([str(tmp_path)], ["single_turn"])
