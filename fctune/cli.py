"""What every command-line entry point shares: .env, logging with secret redaction, config parsing, and
clear one-line errors (file, row, field) instead of tracebacks for bad input."""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable

from fctune.config import ConfigError, parse_config
from fctune.io import DataFileError
from fctune.schema import SchemaError
from fctune.secrets import install_log_redaction, load_dotenv, redact_text


class UserError(RuntimeError):
    """Raised by pipeline steps for problems the user can fix (bad input, missing prerequisite)."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from fctune.data import SourceUnavailable
    from fctune.formats.bfcl import BfclDataMissing
    from fctune.models import ModelUnavailable
    from fctune.render import RenderError

    return (ConfigError, DataFileError, SchemaError, UserError, SourceUnavailable, BfclDataMissing,
            ModelUnavailable, RenderError, FileNotFoundError)


def setup_logging(level: str | None = None) -> None:
    level = level or os.environ.get("FCTUNE_LOG_LEVEL", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("httpx", "httpx2", "httpcore", "urllib3", "filelock", "datasets", "openai._base_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_log_redaction()


def run_script(cls, fn: Callable, argv=None, summary: Callable | None = None, presets: dict | None = None,
               description: str | None = None) -> int:
    """Parse ``cls`` from flags/YAML, run ``fn(config)``, print a summary; user errors exit 2 with one line."""
    load_dotenv(os.environ.get("FCTUNE_ENV_FILE", ".env"))
    setup_logging()
    cfg = parse_config(cls, argv, description=description, presets=presets)
    try:
        result = fn(cfg)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _user_errors() as e:
        if os.environ.get("FCTUNE_DEBUG"):
            raise
        print(f"error: {redact_text(str(e))}", file=sys.stderr)
        print("(set FCTUNE_DEBUG=1 for a traceback)", file=sys.stderr)
        return 2
    if summary is not None and result is not None:
        print(redact_text(summary(result)))
    return 0
