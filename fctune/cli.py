"""What every command-line entry point shares: .env, logging with secret redaction, config parsing, and
clear one-line errors (file, row, field) instead of tracebacks for bad input."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from fctune.config import explicit_fields, parse_config
from fctune.errors import UserError
from fctune.secrets import install_log_redaction, load_dotenv, redact_text

__all__ = ["UserError", "run_script", "setup_logging", "user_errors"]


def user_errors() -> tuple[type[BaseException], ...]:
    """What a command line reports in one line (exit 2) instead of a traceback: every :class:`UserError`, and a path
    the user named that is missing or of the wrong kind, or a disk that cannot take the output (the OS message names
    it)."""
    # every OSError, not only the path ones: a full or read-only disk (ENOSPC, EROFS), an output folder that is a
    # file (FileExistsError) are the user's to fix, and the OS message names the path
    return (UserError, OSError)


def setup_logging(level: str | None = None) -> None:
    level = level or os.environ.get("FCTUNE_LOG_LEVEL", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("httpx", "httpx2", "httpcore", "urllib3", "filelock", "datasets", "openai._base_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_log_redaction()


def find_project_dir(start: Path | None = None) -> Path | None:
    """The project's root: FCTUNE_PROJECT_DIR, else the nearest folder at or above ``start`` (the working directory)
    holding ``run_phase1_experiment.sh`` and ``fctune/``, else the checkout this package was installed from."""
    if os.environ.get("FCTUNE_PROJECT_DIR"):
        return Path(os.environ["FCTUNE_PROJECT_DIR"]).resolve()
    here = (start or Path.cwd()).resolve()
    installed_from = Path(__file__).resolve().parent.parent
    for d in [here, *here.parents, installed_from]:
        if (d / "run_phase1_experiment.sh").is_file() and (d / "fctune").is_dir():
            return d
    return None


# Fields whose value is a path: a relative one given on the command line or in YAML means "from where I am", so it
# is made absolute before the script moves to the project's root (where the default paths are relative to).
_PATH_FIELD = re.compile(r"(_dirs?|_files?|^out|^output|^adapter$|^predictions$|^workdir$|^gates$|^source$|^model$)")


def _absolute(name: str, v, cwd: Path):
    """``v`` made absolute against ``cwd`` when it is a relative path; a model or source id (no such file) stays."""
    if not isinstance(v, str) or not v or Path(v).is_absolute():
        return v
    if name in ("source", "model") and not (cwd / v).exists():
        return v
    return str(cwd / v)


def _absolutize(cfg, explicit: set[str], cwd: Path) -> None:
    for f in dataclasses.fields(cfg):
        if f.name not in explicit or not _PATH_FIELD.search(f.name):
            continue
        value = getattr(cfg, f.name)
        setattr(cfg, f.name, [_absolute(f.name, v, cwd) for v in value] if isinstance(value, list)
                else _absolute(f.name, value, cwd))


def usage_exit(text: str, argv: list[str]) -> int:
    """For a command with subcommands or a positional name: its usage on stdout and 0 when asked for (``-h``,
    ``--help``), else on stderr and 2 (nothing or an unknown name was given)."""
    asked = bool(argv) and argv[0] in ("-h", "--help")
    print(text, file=sys.stdout if asked else sys.stderr)
    return 0 if asked else 2


def run_script(cls, fn: Callable, argv=None, summary: Callable | None = None, presets: dict | None = None,
               description: str | None = None) -> int:
    """Parse ``cls`` from flags/YAML, move to the project's root (``--project-dir``, or found from here), run
    ``fn(config)``, print a summary; user errors exit 2 with one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    project = None
    if "--project-dir" in argv:  # shared by every script, so taken off before the script's own parser
        i = argv.index("--project-dir")
        if i + 1 >= len(argv):
            print("error: --project-dir needs a folder", file=sys.stderr)
            return 2
        project = Path(argv[i + 1]).resolve()
        del argv[i:i + 2]
        if not project.is_dir():
            print(f"error: --project-dir {project}: no such folder", file=sys.stderr)
            return 2
    project = project or find_project_dir()
    cwd = Path.cwd()
    try:  # the config is read inside the handler too: a --config that cannot be read is one line like any other
        cfg = parse_config(cls, argv, description=description, presets=presets)
        if project is not None and project != cwd.resolve():
            _absolutize(cfg, explicit_fields(cls, argv), cwd)
            os.chdir(project)  # outputs land in the project's folders, and its .env is read, wherever this ran from
        load_dotenv(os.environ.get("FCTUNE_ENV_FILE", ".env"))
        setup_logging()
        result = fn(cfg)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except user_errors() as e:
        if os.environ.get("FCTUNE_DEBUG"):  # documented in the README: the traceback behind the one line
            raise
        print(f"error: {redact_text(str(e))}", file=sys.stderr)
        return 2
    text = summary(result) if summary is not None and result is not None else None
    if text:  # a summary may have nothing to add to what the run printed
        print(redact_text(text))
    return 0
