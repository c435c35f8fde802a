"""One config dataclass per script, filled from defaults < preset < YAML file (``--config``) < flags.

Fields become ``--kebab-case`` flags; ``metadata={"help": ..., "choices": [...]}`` documents them. A
field named ``preset`` selects a named bundle of values (for example the training ``smoke`` preset);
values set explicitly in the YAML file or on the command line win over the preset. The resolved config
is written beside every output together with library versions, the git commit and data hashes
(:func:`run_metadata`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import functools
import math
import os
import platform
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

from fctune.errors import UserError
from fctune.secrets import redact_config

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(UserError, ValueError):
    """A config file or flag is invalid; the message names the file or flag."""


def _parse_bool(s: str) -> bool:
    v = str(s).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def _base_type(tp) -> tuple[Any, bool]:
    """(inner type, is_optional) for ``X | None`` / ``Optional[X]`` annotations."""
    args = typing.get_args(tp)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def _converter(tp):
    base, _ = _base_type(tp)
    origin = typing.get_origin(base)
    if base is bool:
        return _parse_bool
    if base in (int, float, str):
        return base
    if origin in (list, tuple):
        inner = (typing.get_args(base) or (str,))[0]
        conv = _converter(inner)
        return lambda s: [conv(x) for x in str(s).split(",") if x.strip()]
    return str


def _scalar(base, value):
    """``value`` as a bool, int, float or str field holds it; ValueError where it is not one."""
    if isinstance(value, (list, tuple, dict)):
        raise ValueError(f"a {type(value).__name__}, not a {base.__name__}")
    if base is bool:
        return value if isinstance(value, bool) else _parse_bool(value)
    if base in (int, float):
        if isinstance(value, bool):
            raise ValueError("a boolean is not a number")
        if base is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{value} is not a whole number")  # int(1.7) would quietly be 1
        return base(value)
    return str(value)


def _coerce(field: dataclasses.Field, tp, value, where: str):
    """Coerce a YAML value to the field's type; errors name where the value came from."""
    if value is None:
        return None
    base, _ = _base_type(tp)
    origin = typing.get_origin(base)
    try:
        if base in (bool, int, float, str):
            return _scalar(base, value)
        if origin in (list, tuple):
            if isinstance(value, str):
                return _converter(tp)(value)
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"expected a list, got {type(value).__name__}")
            inner = (typing.get_args(base) or (str,))[0]
            if inner not in (bool, int, float, str):
                return list(value)
            out = []
            for i, x in enumerate(value):  # a list of lists would fail much later, as a TypeError
                try:
                    out.append(_scalar(inner, x))
                except (ValueError, TypeError, argparse.ArgumentTypeError) as e:
                    raise ValueError(f"item {i}: {e}") from None
            return out
        if origin is dict:
            if not isinstance(value, dict):
                raise ValueError(f"expected a mapping, got {type(value).__name__}")
            return dict(value)
    except (ValueError, TypeError, argparse.ArgumentTypeError) as e:
        raise ConfigError(f"{where}: field {field.name!r}: {e}") from None
    return value


def load_yaml(path) -> dict:
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: a folder, not a YAML config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); a YAML config is text") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of field names to values")
    return data


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (its usage block would bury the message), exit 2."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (--help lists every option)\n")


def build_parser(cls, description: str | None = None, presets: dict | None = None) -> argparse.ArgumentParser:
    hints = typing.get_type_hints(cls)
    p = OneLineParser(
        description=description or (cls.__doc__ or "").strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", metavar="YAML", help="YAML file of field values; flags given here override it")
    for f in dataclasses.fields(cls):
        if f.name.startswith("_"):
            continue
        tp = hints[f.name]
        base, _ = _base_type(tp)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        help_text = f.metadata.get("help", "")
        if f.name == "preset" and presets:
            help_text += " Presets: " + "; ".join(f"{k}: {v}" for k, v in presets.items())
        # help is prose, not a format string: a "%" in it ("10% of a batch") would make argparse fail on --help
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS,
                                  "help": (help_text + f" [default: {default!r}]").strip().replace("%", "%%")}
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        if base is bool:
            kwargs.update(nargs="?", const=True, type=_parse_bool, metavar="BOOL")
        else:
            is_list = typing.get_origin(base) in (list, tuple)
            kwargs.update(type=_converter(tp),
                          metavar=f.metadata.get("metavar", "A" if is_list else getattr(base, "__name__", "X").upper()))
            if is_list:  # "--x a b", "--x a,b" and "--x ''" (empty) all work
                kwargs["nargs"] = "*"
        names = ["--" + f.name.replace("_", "-")]
        if "_" in f.name:
            names.append("--" + f.name)
        p.add_argument(*names, **kwargs)
    return p


def parse_config(cls, argv=None, description: str | None = None, presets: dict | None = None):
    """Build ``cls`` from defaults, an optional preset, ``--config`` YAML and command-line flags."""
    parser = build_parser(cls, description, presets)
    ns = vars(parser.parse_args(argv))
    yaml_path = ns.pop("config", None)
    for k, v in ns.items():  # list flags arrive as lists of comma-split lists
        if isinstance(v, list) and all(isinstance(x, list) for x in v):
            ns[k] = [y for x in v for y in x]
    try:
        return config_from_sources(cls, yaml_path=yaml_path, overrides=ns, presets=presets)
    except ConfigError as e:
        parser.error(str(e))


def explicit_fields(cls, argv) -> set[str]:
    """Names of the fields that ``argv`` sets, by flag or in its ``--config`` YAML (not defaults or presets)."""
    ns = vars(build_parser(cls).parse_known_args(argv)[0])
    names = {k for k in ns if k != "config"}
    if ns.get("config"):
        names |= {str(k).replace("-", "_") for k in load_yaml(ns["config"])}
    return names


def config_from_sources(cls, yaml_path=None, overrides: dict | None = None, presets: dict | None = None):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    explicit: dict[str, Any] = {}
    if yaml_path:
        for k, v in load_yaml(yaml_path).items():
            key = str(k).replace("-", "_")
            if key not in fields:
                raise ConfigError(f"{yaml_path}: unknown field {k!r} (known: {', '.join(sorted(fields))})")
            explicit[key] = _coerce(fields[key], hints[key], v, str(yaml_path))
    for k, v in (overrides or {}).items():
        explicit[k] = v
    values: dict[str, Any] = {}
    preset = explicit.get("preset", getattr(fields.get("preset"), "default", None))
    if presets and preset:
        if preset not in presets:
            raise ConfigError(f"unknown preset {preset!r} (known: {', '.join(presets)})")
        for k, v in presets[preset].items():
            if k not in fields:
                raise ConfigError(f"preset {preset!r}: unknown field {k!r}")
            values[k] = v
    values.update(explicit)
    for k, v in values.items():
        f = fields[k]
        if "choices" in f.metadata and v is not None and v not in f.metadata["choices"]:
            raise ConfigError(f"field {k!r}: {v!r} is not one of {f.metadata['choices']}")
        check_range(f, v)
    return cls(**values)


def check_range(f: dataclasses.Field, value) -> None:
    """A field's declared range (metadata ``min``/``max`` inclusive, ``gt`` exclusive, ``not`` a forbidden value),
    checked before anything runs: a negative limit would slice from the end, zero epochs would save an untrained
    adapter, a step number past the last would run nothing."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    md, flag = f.metadata, "--" + f.name.replace("_", "-")
    if not math.isfinite(value):  # NaN passes every comparison, so no range could refuse it; inf is no setting
        raise ConfigError(f"{flag}: {value} is not a finite number")
    if "min" in md and value < md["min"]:
        raise ConfigError(f"{flag}: {value} is below the minimum {md['min']}")
    if "max" in md and value > md["max"]:
        raise ConfigError(f"{flag}: {value} is above the maximum {md['max']}")
    if "gt" in md and value <= md["gt"]:
        raise ConfigError(f"{flag}: {value} must be greater than {md['gt']}")
    if "not" in md and value == md["not"]:
        raise ConfigError(f"{flag}: {value} is not allowed")


def config_to_dict(cfg) -> dict:
    return redact_config(dataclasses.asdict(cfg))


# -- provenance -----------------------------------------------------------------------------------------
_VERSIONED = ("fctune", "torch", "transformers", "trl", "datasets", "peft", "accelerate", "unsloth",
              "bitsandbytes", "openai", "llama_cpp_python", "gguf")


def library_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(cwd=None) -> str | None:
    try:
        cwd = cwd or Path(__file__).resolve().parent
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX (Linux: read from /proc/cpuinfo)."""
    info = cpu_info()
    return bool(info.get("avx512_bf16") or info.get("amx_bf16"))


@functools.cache
def cpu_info() -> dict:
    """The CPU's model name and the vector extensions that move this project's CPU speed (from Linux's
    /proc/cpuinfo; None where it cannot be read): the same code ran the main job 3x slower on an AVX2-only CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return {"model_name": platform.processor() or None}
    name = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), None)
    flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), []))
    return {"model_name": name or platform.processor() or None,
            **{f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")}}


def hardware() -> dict:
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "cpu": cpu_info()}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            info["cuda"] = torch.version.cuda
    except ImportError:
        pass
    return info


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def run_metadata(cfg=None, data_files=(), **extra) -> dict:
    """Provenance written beside every output: resolved config, versions, commit, data hashes."""
    from fctune.io import sha256_file

    meta: dict[str, Any] = {"created_at": now_iso(), "command": " ".join(_safe_argv()),
                            "git_commit": git_commit(), "versions": library_versions()}
    if cfg is not None:
        meta["config"] = config_to_dict(cfg)
    hashes = {str(p): sha256_file(p) for p in data_files if p and Path(p).exists()}
    if hashes:
        meta["data_sha256"] = hashes
    meta.update(extra)
    return meta


def _safe_argv() -> list[str]:
    from fctune.secrets import redact_text

    return [redact_text(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]]]
