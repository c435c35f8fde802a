"""Converters from upstream data shapes into the canonical schema (and back, for export)."""

from fctune.formats.common import SKIP_REASONS, RowError
from fctune.formats.hermes import HermesConverter
from fctune.formats.openai import OpenAIChatConverter
from fctune.formats.xlam import XlamConverter

FORMATS = ("hermes", "xlam", "openai", "canonical")

__all__ = ["FORMATS", "SKIP_REASONS", "RowError", "HermesConverter", "OpenAIChatConverter", "XlamConverter",
           "detect_format"]


def detect_format(row: dict) -> str:
    """Which upstream shape a row has, from its keys."""
    if not isinstance(row, dict):
        return "unknown"
    if "conversations" in row:
        return "hermes"
    if "query" in row and "answers" in row:
        return "xlam"
    if "expected" in row and "messages" in row:
        return "canonical"
    if "messages" in row:
        return "openai"
    return "unknown"
