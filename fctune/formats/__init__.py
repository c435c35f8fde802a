"""Converters from upstream data shapes into the canonical schema (and back, for export).

Every format is declared once in :data:`FORMATS`: how a row of it is recognised, read into an :class:`Example` and
written back. Loading (``fctune.data``) and the offline rows in upstream shapes (``fctune.offline.emit_rows``) both
read that table; a new format is one entry plus its converter module.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from fctune.formats.common import SKIP_REASONS, RowError
from fctune.formats.hermes import HermesConverter
from fctune.formats.openai import OpenAIChatConverter
from fctune.formats.xlam import XlamConverter
from fctune.schema import Example, SchemaError

__all__ = ["FORMATS", "SKIP_REASONS", "FormatSpec", "RowError", "HermesConverter", "OpenAIChatConverter",
           "XlamConverter", "detect_format", "read_row", "write_row"]


@dataclass(frozen=True)
class FormatSpec:
    """A data format: ``detect(row)`` says a row has its shape; ``read(row, index, hermes_config)`` gives the
    :class:`Example` (or raises :class:`RowError`); ``write(example, rng)`` gives a row of this shape."""

    detect: Callable[[dict], bool]
    read: Callable[[dict, int, str], Example]
    write: Callable[[Example, random.Random], dict]


def _read_canonical(row: dict, index: int, hermes_config: str) -> Example:
    try:
        return Example.from_dict(row)
    except SchemaError as e:
        raise RowError("bad_shape", str(e)) from None


# Detection tries the entries in order: canonical rows also have "messages", so they come before openai's.
FORMATS: dict[str, FormatSpec] = {
    "hermes": FormatSpec(lambda r: "conversations" in r,
                         lambda row, i, config: HermesConverter(config).convert(row, i),
                         # upstream Hermes writes about 30% of its calls as Python literals (single quotes)
                         lambda e, rng: HermesConverter.to_row(e, rng, python_literal_share=0.3)),
    "xlam": FormatSpec(lambda r: "query" in r and "answers" in r,
                       lambda row, i, config: XlamConverter().convert(row, i),
                       lambda e, rng: XlamConverter.to_row(e)),
    "canonical": FormatSpec(lambda r: "expected" in r and "messages" in r, _read_canonical,
                            lambda e, rng: e.to_dict()),
    "openai": FormatSpec(lambda r: "messages" in r,
                         lambda row, i, config: OpenAIChatConverter().convert(row, i),
                         lambda e, rng: OpenAIChatConverter.to_row(e)),
}


def detect_format(row) -> str:
    """Which format a row has, from its keys (the first entry of :data:`FORMATS` that recognises it)."""
    if isinstance(row, dict):
        for name, spec in FORMATS.items():
            if spec.detect(row):
                return name
    return "unknown"


def read_row(fmt: str, row: dict, index: int = 0, hermes_config: str = "func_calling_singleturn") -> Example:
    """One row of format ``fmt`` as an :class:`Example`; :class:`RowError` when it is malformed."""
    return FORMATS[fmt].read(row, index, hermes_config)


def write_row(fmt: str, example: Example, rng: random.Random | None = None) -> dict:
    """``example`` as a row of format ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: {', '.join(FORMATS)}")
    return FORMATS[fmt].write(example, rng or random.Random(0))
