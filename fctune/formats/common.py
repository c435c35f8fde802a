"""What every converter shares: the row error with a countable reason, and metadata completion."""

from __future__ import annotations

from fctune.domains import detect_domain
from fctune.errors import UserError
from fctune.taxonomy import classify_complexity, classify_turn_type, infer_multi_turn_kind

# Reasons a row is skipped; dataset_stats.json counts them.
SKIP_REASONS = (
    "unparseable_json",   # tools, a call or a schema could not be parsed
    "no_tools",           # a function-calling row offers no tool
    "unknown_tool",       # a call names a tool that is not offered
    "empty_turn",         # a turn with no content
    "no_user_turn",       # nothing for the model to answer
    "no_target",          # no assistant turn to score
    "bad_shape",          # fields missing or of the wrong type
)


class RowError(UserError, ValueError):
    """A source row that cannot become an example; ``reason`` is one of SKIP_REASONS."""

    def __init__(self, reason: str, detail: str):
        assert reason in SKIP_REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def check_calls_offered(example) -> None:
    offered = set(example.tool_names)
    for m in [*example.messages, example.target_message()]:
        for c in m.tool_calls or []:
            if c.name not in offered:
                raise RowError("unknown_tool", f"call to {c.name!r}, offered: {sorted(offered)}")


def finalize(example):
    """Fill the derived metadata (complexity, turn type, domain, multi-turn kind) where a source did not."""
    md = example.metadata
    md.setdefault("complexity", classify_complexity(example))
    md.setdefault("turn_type", classify_turn_type(example))
    md["domain"] = detect_domain(example.tools, md) if not md.get("domain") else md["domain"]
    if md["turn_type"] == "multi" and not md.get("multi_turn_kind"):
        md["multi_turn_kind"] = infer_multi_turn_kind(example)
    md.setdefault("category", md.get("domain"))
    return example
