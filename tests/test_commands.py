"""The ``fctune`` console command: every subcommand answers --help, the documented scripts are the same entry points,
and every command line the pipeline builds parses with its target's own parser."""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fctune.commands import COMMANDS, config_of, main, resolve
from fctune.config import parse_config
from fctune.pipeline import PipelineConfig, plan
from fctune.suite_specs import SUITES

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_answers_help(name, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["fctune"])
    try:
        rc = main([name, "--help"])
    except SystemExit as e:  # argparse's --help exits
        rc = e.code
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "usage:" in out and ("--" in out or name in out)


def test_usage_lists_every_command_and_an_unknown_one_is_refused(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_console_script_is_installed_and_runs():
    exe = Path(sys.executable).parent / "fctune"
    assert exe.exists(), "pip install -e . installs the fctune command ([project.scripts])"
    out = subprocess.run([str(exe), "train", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("usage: fctune train"), out.stdout + out.stderr


@pytest.mark.parametrize("name", [n for n, c in COMMANDS.items() if c.script and c.script.endswith(".py")])
def test_documented_scripts_are_the_commands_entry_points(name):
    script = COMMANDS[name].script
    paths = sorted(REPO.glob(script.replace("<suite>", "*")))
    assert paths, script
    module = COMMANDS[name].target.split(":")[0]
    for p in paths:  # a thin shim: it imports the command's entry point and defines no logic of its own
        text = p.read_text()
        assert f"from {module} import " in text and "def " not in text, p


def _command(argv: list[str]) -> tuple[str, list[str]]:
    """The command a pipeline command line runs, and the arguments its config parses."""
    assert argv[1:3] == ["-m", "fctune"] and argv[3] in COMMANDS, shlex.join(argv)  # the package, not a shim path
    name, args = argv[3], argv[4:]
    if name == "bfcl" and args[:1] == ["run"] or name == "suites" and args[:1] and args[0] in SUITES:
        args = args[1:]  # the subcommand or suite name, then the config's own arguments
    return name, args


@pytest.mark.parametrize("profile", ["smoke", "full"])
def test_every_command_line_the_pipeline_builds_parses(profile):
    lines = [argv for s in plan(PipelineConfig(profile=profile, gpus="none", llm="llamacpp", bfcl=True, docker=True))
             for g in s.groups for _, argv, _ in g if argv[0] == str(sys.executable) or argv[0].endswith("python")]
    assert len(lines) >= 12
    for argv in lines:
        name, args = _command(argv)
        cls, presets = config_of(name)
        assert cls is not None, shlex.join(argv)
        try:
            parse_config(cls, args, presets=presets)
        except SystemExit as e:
            raise AssertionError(f"{shlex.join(argv)} does not parse with {cls.__name__}") from e


def test_each_command_resolves_to_a_callable():
    assert all(callable(resolve(n)) for n in COMMANDS)
