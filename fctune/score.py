"""Scoring: pure functions over (model output, expected) -> a verdict with a machine-readable failure reason.

Matching rules (each one unit-tested in tests/test_score.py):

* **numbers** compare by value (``5 == 5.0``); booleans are not numbers;
* **type coercion** depends on the mode: in ``strict`` mode (the headline) a string ``"5"`` against an
  integer ``5`` is a ``wrong_type``; in ``lenient`` mode numeric strings, ``"true"``/``"false"`` and
  numbers-as-strings are coerced and compared by value. Both modes are reported;
* **strings** compare case- and whitespace-insensitively (trimmed, inner runs of spaces collapsed);
* **lists** are order-sensitive unless the parameter's schema says ``uniqueItems: true`` (a set) or
  ``x-unordered: true``; elements are compared with the item schema;
* **objects** compare recursively, key by key;
* an **optional argument omitted** while the expected value equals the schema ``default`` matches (and
  an optional argument given with its default value while the expected call omits it matches too);
* **several calls** match as a set: the best one-to-one assignment (most matching items) pairs predicted
  and expected calls, so parallel calls in another order are not penalized.

Field precision / recall / F1 count items ``(call, argument path, value)``: every call contributes its
name and each leaf of its arguments; structured rows contribute each leaf of the object.

Failure reasons: ``no_call``, ``invalid_json``, ``wrong_name``, ``missing_arg``, ``extra_arg``,
``wrong_value``, ``wrong_type``, ``extra_call``, ``missing_call``, ``called_when_irrelevant``, ``too_large``
(an output over the parser's bounds, :mod:`fctune.parse`), ``truncated`` (a failed answer that the generation
budget cut: ``finish_reason`` "length", or that ``--stop-repeats`` stopped in a loop: "repeat"), for structured
rows ``schema_violation``, and, in the strict reading only (:func:`fctune.metrics.strict_view`),
``undeclared_format``. A backend error is not a failure reason: it is recorded
as ``error`` and left out of every rate.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from fctune.io import DataFileError
from fctune.parse import MAX_OUTPUT_CHARS, parse_json_output, parse_tool_calls, rename_calls
from fctune.schema import Example, ToolCall

MODES = ("strict", "lenient")


# -- value rules ---------------------------------------------------------------------------------------------
def normalize_string(s: str) -> str:
    return re.sub(r"\s+", " ", s.strip()).casefold()


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _coerce_scalar(v):
    """Lenient mode: numeric strings -> numbers, "true"/"false" -> booleans."""
    if isinstance(v, str):
        s = v.strip()
        if s.lower() in ("true", "false"):
            return s.lower() == "true"
        try:
            f = float(s)
            return int(f) if f.is_integer() and re.fullmatch(r"[+-]?\d+(\.0*)?", s) else f
        except ValueError:
            return v
    return v


def compare_values(pred, exp, schema: dict | None = None, mode: str = "strict") -> str | None:
    """None when ``pred`` matches ``exp`` under the rules above, else ``wrong_type`` or ``wrong_value``."""
    schema = schema or {}
    if mode == "lenient":
        pred, exp = _coerce_scalar(pred), _coerce_scalar(exp)
    if exp is None or pred is None:
        return None if pred is exp else ("wrong_type" if (pred is None) != (exp is None) else "wrong_value")
    if _is_number(exp):
        if not _is_number(pred):
            return "wrong_type"
        return None if math.isclose(pred, exp, rel_tol=1e-9, abs_tol=1e-9) else "wrong_value"
    if isinstance(exp, bool):
        if not isinstance(pred, bool):
            return "wrong_type"
        return None if pred == exp else "wrong_value"
    if isinstance(exp, str):
        if not isinstance(pred, str):
            return "wrong_type"
        return None if normalize_string(pred) == normalize_string(exp) else "wrong_value"
    if isinstance(exp, (list, tuple)):
        if not isinstance(pred, (list, tuple)):
            return "wrong_type"
        if len(pred) != len(exp):
            return "wrong_value"
        item_schema = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        if schema.get("uniqueItems") or schema.get("x-unordered"):
            return _match_unordered(list(pred), list(exp), item_schema, mode)
        for p, e in zip(pred, exp, strict=True):
            err = compare_values(p, e, item_schema, mode)
            if err:
                return err
        return None
    if isinstance(exp, dict):
        if not isinstance(pred, dict):
            return "wrong_type"
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        if set(pred) != set(exp):
            return "wrong_value"
        for k, e in exp.items():
            err = compare_values(pred[k], e, props.get(k, {}), mode)
            if err:
                return err
        return None
    return None if pred == exp else "wrong_value"


def _match_unordered(pred: list, exp: list, item_schema: dict, mode: str) -> str | None:
    remaining = list(pred)
    worst = None
    for e in exp:
        hit = next((i for i, p in enumerate(remaining) if compare_values(p, e, item_schema, mode) is None), None)
        if hit is None:
            worst = worst or "wrong_value"
            continue
        remaining.pop(hit)
    return worst


def drop_defaults(args: dict, tool_schema: dict | None) -> dict:
    """Arguments without optional ones equal to their schema default (so omitting them is not an error)."""
    if not tool_schema:
        return dict(args)
    props = tool_schema.get("properties") or {}
    required = set(tool_schema.get("required") or [])
    out = {}
    for k, v in args.items():
        p = props.get(k)
        if (k not in required and isinstance(p, dict) and "default" in p
                and compare_values(v, p["default"], p, "lenient") is None):
            continue
        out[k] = v
    return out


# -- items for field precision / recall ----------------------------------------------------------------------
def _is_unordered(schema: dict) -> bool:
    return bool(schema.get("uniqueItems") or schema.get("x-unordered"))


def items(value, schema: dict | None = None, prefix: str = "") -> list[tuple[str, Any, dict]]:
    """Leaf ``(path, value, schema)`` items of a nested structure; an unordered list is one item."""
    schema = schema if isinstance(schema, dict) else {}
    if isinstance(value, dict) and value:
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        out = []
        for k, v in value.items():
            out.extend(items(v, props.get(k, {}), f"{prefix}.{k}" if prefix else k))
        return out
    if isinstance(value, (list, tuple)) and value and not _is_unordered(schema):
        item_schema = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        out = []
        for i, v in enumerate(value):
            out.extend(items(v, item_schema, f"{prefix}[{i}]"))
        return out
    return [(prefix or "$", value, schema)]


def field_counts(pred: Any, exp: Any, schema: dict | None, mode: str) -> tuple[int, int, int]:
    """(true positives, predicted items, expected items) between two argument objects."""
    p_items, e_items = items(pred, schema), items(exp, schema)
    p_map = {path: v for path, v, _ in p_items}
    tp = sum(1 for path, ev, s in e_items if path in p_map and compare_values(p_map[path], ev, s, mode) is None)
    return tp, len(p_items), len(e_items)


def n_items(call: ToolCall, tool_schema: dict | None) -> int:
    """Items of one call: its name plus each argument leaf."""
    args = drop_defaults(call.arguments, tool_schema)
    return 1 + (len(items(args, tool_schema)) if args else 0)


# -- calls -----------------------------------------------------------------------------------------------
@dataclass
class CallComparison:
    name_ok: bool
    error: str | None        # first argument-level failure (missing_arg / extra_arg / wrong_type / wrong_value)
    detail: str | None
    tp: int                  # matching items, name included
    n_pred: int
    n_exp: int


def compare_call(pred: ToolCall, exp: ToolCall, tool_schema: dict | None, mode: str) -> CallComparison:
    """One predicted call against one expected call."""
    if pred.name != exp.name:
        return CallComparison(False, "wrong_name", f"{pred.name!r} instead of {exp.name!r}", 0,
                              n_items(pred, tool_schema), n_items(exp, tool_schema))
    p_args = drop_defaults(pred.arguments, tool_schema)
    e_args = drop_defaults(exp.arguments, tool_schema)
    props = (tool_schema or {}).get("properties") or {}
    tp, n_p, n_e = field_counts(p_args, e_args, tool_schema, mode) if (p_args or e_args) else (0, 0, 0)
    error = detail = None
    missing = [k for k in e_args if k not in p_args]
    extra = [k for k in p_args if k not in e_args]
    if missing:
        error, detail = "missing_arg", f"{exp.name}: missing {missing}"
    elif extra:
        error, detail = "extra_arg", f"{exp.name}: unexpected {extra}"
    else:
        for k, ev in e_args.items():
            err = compare_values(p_args[k], ev, props.get(k, {}), mode)
            if err:
                error, detail = err, f"{exp.name}.{k}: {p_args[k]!r} vs expected {ev!r}"
                break
    return CallComparison(True, error, detail, tp + 1, n_p + 1, n_e + 1)


def assign_calls(pred: list[ToolCall], exp: list[ToolCall], schemas: dict, mode: str):
    """Best one-to-one pairing of predicted and expected calls (most matching items, then fewest errors).

    Returns ``(pairs, unmatched_pred, unmatched_exp)`` with ``pairs`` as (pred_i, exp_j, CallComparison).
    """
    table = {(i, j): compare_call(p, e, schemas.get(e.name), mode) for i, p in enumerate(pred)
             for j, e in enumerate(exp)}

    def value(pairs):
        return (sum(table[ij].tp for ij in pairs), -sum(table[ij].error is not None for ij in pairs))

    k = min(len(pred), len(exp))
    if max(len(pred), len(exp)) <= 7:
        if len(pred) >= len(exp):
            candidates = [list(zip(ps, range(len(exp)), strict=True))
                          for ps in itertools.permutations(range(len(pred)), k)]
        else:
            candidates = [list(zip(range(len(pred)), es, strict=True))
                          for es in itertools.permutations(range(len(exp)), k)]
        best = max(candidates, key=value) if k else []
    else:  # greedy for very long call lists
        best, free_p, free_e = [], set(range(len(pred))), set(range(len(exp)))
        for i, j in sorted(table, key=lambda ij: (-table[ij].tp, table[ij].error is not None, ij)):
            if i in free_p and j in free_e:
                best.append((i, j))
                free_p.discard(i)
                free_e.discard(j)
    used_p = {i for i, _ in best}
    used_e = {j for _, j in best}
    pairs = [(i, j, table[(i, j)]) for i, j in sorted(best, key=lambda ij: ij[1])]
    return pairs, [i for i in range(len(pred)) if i not in used_p], [j for j in range(len(exp)) if j not in used_e]


# -- per-example verdicts ------------------------------------------------------------------------------------
@dataclass
class Verdict:
    id: str
    expected_kind: str
    valid_json: bool | None = None
    name_match: bool | None = None
    args_exact_match: bool | None = None
    args_exact_match_lenient: bool | None = None
    exact_match: bool | None = None              # the whole turn right (calls, abstention or JSON object)
    field_precision: float | None = None
    field_recall: float | None = None
    field_f1: float | None = None
    field_precision_lenient: float | None = None
    field_recall_lenient: float | None = None
    field_f1_lenient: float | None = None
    abstention_correct: bool | None = None
    schema_valid: bool | None = None
    failure_reason: str | None = None
    failure_detail: str | None = None
    parse_shape: str | None = None
    truncated: bool | None = None                 # the answer ended at the generation budget, not at a stop
    n_expected_calls: int | None = None           # how many calls the row expects (extra calls are counted against it)
    predicted_calls: list = field(default_factory=list)
    error: str | None = None                      # backend error: excluded from every rate

    def to_dict(self) -> dict:
        return asdict(self)


def _prf(tp: int, n_p: int, n_e: int) -> tuple[float, float, float]:
    precision = tp / n_p if n_p else (1.0 if n_e == 0 else 0.0)
    recall = tp / n_e if n_e else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _score_calls(v: Verdict, pred: list[ToolCall], example: Example) -> None:
    exp = example.expected.tool_calls
    schemas = {t.name: t.parameters for t in example.tools}
    results = {}
    for mode in MODES:
        pairs, extra_p, extra_e = assign_calls(pred, exp, schemas, mode)
        tp = sum(c.tp for _, _, c in pairs)
        n_p = sum(c.n_pred for _, _, c in pairs) + sum(n_items(pred[i], schemas.get(pred[i].name)) for i in extra_p)
        n_e = sum(c.n_exp for _, _, c in pairs) + sum(n_items(exp[j], schemas.get(exp[j].name)) for j in extra_e)
        exact = not extra_p and not extra_e and all(c.name_ok and c.error is None for _, _, c in pairs)
        results[mode] = (pairs, extra_p, extra_e, exact, _prf(tp, n_p, n_e))
    pairs, extra_p, extra_e, exact, (p, r, f) = results["strict"]
    v.args_exact_match, v.exact_match = exact, exact
    v.args_exact_match_lenient = results["lenient"][3]
    v.field_precision, v.field_recall, v.field_f1 = p, r, f
    v.field_precision_lenient, v.field_recall_lenient, v.field_f1_lenient = results["lenient"][4]
    v.name_match = sorted(c.name for c in pred) == sorted(c.name for c in exp)
    if exact:
        return
    named = {c.name for c in exp}
    if extra_p or extra_e:
        if not any(c.name in named for c in pred):
            v.failure_reason = "wrong_name"
            v.failure_detail = f"called {[c.name for c in pred]}, expected {sorted(named)}"
        elif extra_p:
            v.failure_reason = "extra_call"
            v.failure_detail = f"{len(pred)} calls, expected {len(exp)}: extra {[pred[i].name for i in extra_p]}"
        else:
            v.failure_reason = "missing_call"
            v.failure_detail = f"{len(pred)} calls, expected {len(exp)}: missing {[exp[j].name for j in extra_e]}"
        return
    first = next(c for _, _, c in pairs if not (c.name_ok and c.error is None))
    v.failure_reason, v.failure_detail = first.error, first.detail


def _score_json(v: Verdict, output: str | None, example: Example) -> None:
    parsed = parse_json_output(output)
    v.valid_json = parsed.found and parsed.strict_json
    exp = example.expected
    if not parsed.found:
        v.failure_reason, v.failure_detail = ("too_large", f"output over {MAX_OUTPUT_CHARS:,} characters") \
            if parsed.too_large else ("invalid_json", "no JSON object in the output")
        v.exact_match, v.schema_valid = False, False
        v.field_precision = v.field_recall = v.field_f1 = 0.0
        v.field_precision_lenient = v.field_recall_lenient = v.field_f1_lenient = 0.0
        return
    v.schema_valid = schema_errors(parsed.value, exp.json_schema) == [] if exp.json_schema else None
    for mode in MODES:
        tp, n_p, n_e = field_counts(parsed.value, exp.json, exp.json_schema, mode)
        prf = _prf(tp, n_p, n_e)
        if mode == "strict":
            v.field_precision, v.field_recall, v.field_f1 = prf
        else:
            v.field_precision_lenient, v.field_recall_lenient, v.field_f1_lenient = prf
    err = compare_values(parsed.value, exp.json, exp.json_schema or {}, "strict")
    v.exact_match = err is None
    if not v.valid_json:
        v.failure_reason, v.failure_detail = "invalid_json", "a Python literal, not JSON"
    elif v.schema_valid is False:
        v.failure_reason = "schema_violation"
        v.failure_detail = "; ".join(schema_errors(parsed.value, exp.json_schema)[:3])
    elif err:
        missing = sorted(set(exp.json) - set(parsed.value)) if isinstance(exp.json, dict) else []
        extra = sorted(set(parsed.value) - set(exp.json)) if isinstance(exp.json, dict) else []
        v.failure_reason = "missing_arg" if missing else "extra_arg" if extra else err
        v.failure_detail = f"missing {missing}" if missing else f"unexpected {extra}" if extra else "values differ"


def schema_errors(value, schema: dict | None) -> list[str]:
    if not schema:
        return []
    from referencing.exceptions import Unresolvable

    from fctune.schema import json_schema_validator

    try:
        return [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}"
                for e in json_schema_validator(schema).iter_errors(value)]
    except Unresolvable as e:  # the schema's own fault, not the answer's: named, never fetched
        return [f"$: the schema's $ref {getattr(e, 'ref', '')!r} does not resolve"]


# finish reasons of an answer that did not end by itself: the budget cut it, or it was stopped while repeating one
# block verbatim (--stop-repeats), on its way to the budget; a failed one of either is scored as "truncated"
CUT_FINISH_REASONS = {"length": "cut at the generation budget",
                      "repeat": "stopped repeating itself verbatim, on its way to the generation budget"}


def score_example(example: Example, output: str | None, tool_calls: list | None = None,
                  error: str | None = None, finish_reason: str | None = None,
                  renamed_tools: dict | None = None) -> Verdict:
    """Score one model output against its example (pure: no I/O, no model). ``finish_reason`` "length" or "repeat"
    marks a failed answer as ``truncated``; ``renamed_tools`` maps API-safe tool names back (any output shape)."""
    v = Verdict(id=example.id, expected_kind=example.expected.kind,
                n_expected_calls=len(example.expected.tool_calls) if example.expected.kind == "tool_calls" else None)
    if error:
        v.error = error
        return v
    _score_output(v, example, output, tool_calls, renamed_tools)
    if finish_reason is not None:
        v.truncated = finish_reason in CUT_FINISH_REASONS
        if v.truncated and v.exact_match is False:
            v.failure_detail = f"{CUT_FINISH_REASONS[finish_reason]} ({v.failure_reason}: {v.failure_detail})"
            v.failure_reason = "truncated"
    return v


def _score_output(v: Verdict, example: Example, output, tool_calls, renamed_tools) -> None:
    if example.expected.kind == "json":
        _score_json(v, output, example)
        return
    parsed = rename_calls(parse_tool_calls(output, tool_calls, tool_names=example.tool_names), renamed_tools)
    v.parse_shape = parsed.shape
    v.predicted_calls = [c.to_dict() for c in parsed.calls]
    v.valid_json = parsed.valid_json
    if example.expected.kind == "no_call":
        v.abstention_correct = not parsed.calls
        v.exact_match = v.abstention_correct
        if parsed.calls:
            v.failure_reason = "called_when_irrelevant"
            v.failure_detail = f"called {[c.name for c in parsed.calls]}"
        return
    if not parsed.calls:
        v.args_exact_match = v.args_exact_match_lenient = v.exact_match = v.name_match = False
        v.field_precision = v.field_recall = v.field_f1 = 0.0
        v.field_precision_lenient = v.field_recall_lenient = v.field_f1_lenient = 0.0
        broken = bool(parsed.errors) and parsed.shape != "none"
        v.failure_reason = "too_large" if parsed.too_large else "invalid_json" if broken else "no_call"
        v.failure_detail = "; ".join(parsed.errors[:2]) if parsed.errors else "no tool call in the output"
        return
    _score_calls(v, parsed.calls, example)


# -- scoring saved predictions (``python -m fctune.score``) ----------------------------------------------
DETAIL_METADATA = ("complexity", "turn_type", "domain", "category", "multi_turn_kind", "source")


def prediction_fields() -> dict[str, tuple[type, ...]]:
    """The types a prediction row's fields may hold (None aside), derived from :class:`Generation`, the row every
    backend writes: a field of another type would fail later, in scoring, as a bare TypeError."""
    import typing

    from fctune.backends.base import Generation

    out = {}
    for name, tp in typing.get_type_hints(Generation).items():
        base = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        types = tuple(typing.get_origin(t) or t for t in base)
        out[name] = (int, float) if float in types else (int, str) if name == "id" else types
    return out


def index_predictions(predictions: list, known_ids, where: str = "predictions") -> tuple[dict[str, dict], dict]:
    """Predictions by id, checked row by row; returns ``(by_id, issues)``. A row that is not an object, has no id, or
    whose ``output`` / ``tool_calls`` has the wrong type is an error naming the file and line; unknown ids,
    duplicate ids (the first is kept) and ids without a prediction are listed in ``issues``."""
    known = list(known_ids)
    known_set = set(known)
    by_id: dict[str, dict] = {}
    unknown, duplicates = [], []
    for k, p in enumerate(predictions, 1):
        if not isinstance(p, dict):
            raise DataFileError(f"{where}:{k}: expected a JSON object, got {type(p).__name__}")
        if p.get("id") is None:
            raise DataFileError(f"{where}:{k}: field 'id' is missing")
        for name, types in prediction_fields().items():
            value = p.get(name)
            if value is not None and (not isinstance(value, types) or isinstance(value, bool) and bool not in types):
                raise DataFileError(f"{where}:{k}: field {name!r} must be {' or '.join(t.__name__ for t in types)}, "
                                    f"got {type(value).__name__}")
        if any(not isinstance(c, dict) for c in p.get("tool_calls") or []):
            raise DataFileError(f"{where}:{k}: field 'tool_calls' must be a list of objects")
        if any(not isinstance(v, str) for v in (p.get("renamed_tools") or {}).values()):
            raise DataFileError(f"{where}:{k}: field 'renamed_tools' must map names to names")
        pid = str(p["id"])
        if pid not in known_set:
            unknown.append(pid)
        elif pid in by_id:
            duplicates.append(pid)
        else:
            by_id[pid] = p
    missing = [i for i in known if i not in by_id]
    return by_id, {"unknown_ids": unknown, "duplicate_ids": duplicates, "missing_predictions": missing,
                   "coverage": round(len(by_id) / len(known), 4) if known else None}


def require_complete(issues: dict, n_expected: int, where: str, allow_partial: bool = False) -> None:
    """Scoring saved outputs: no prediction matching the split is always an error; unknown ids, duplicate ids and
    rows without a prediction are errors unless ``allow_partial`` (then they are listed in the summary)."""
    n_matched = n_expected - len(issues["missing_predictions"])
    if n_matched == 0:
        raise DataFileError(f"{where}: none of its ids is in the split ({len(issues['unknown_ids'])} unknown, e.g. "
                            f"{issues['unknown_ids'][:3]}): are these predictions for another split?")
    if allow_partial:
        return
    for key, what in (("duplicate_ids", "duplicate ids"), ("unknown_ids", "ids not in the split"),
                      ("missing_predictions", "split rows without a prediction")):
        if issues[key]:
            raise DataFileError(f"{where}: {len(issues[key])} {what} (e.g. {issues[key][:3]}); fix the file or pass "
                                "--allow-partial to score what matches")


def require_answers(details: list[dict], where: str) -> None:
    """Saved outputs of which every row is an error (an endpoint that failed throughout) are no score of 0: an
    error, so that no summary of zero scored rows reads as a finished run."""
    if details and all(d.get("error") for d in details):
        raise DataFileError(f"{where}: every one of its {len(details)} predictions is an error (the first: "
                            f"{str(details[0]['error'])[:120]!r}); nothing to score: rerun the evaluation")


def score_predictions(examples: list[Example], predictions: list[dict], where: str = "predictions"):
    """Verdicts for every example, plus the problems found in the predictions (never silently ignored).

    Returns ``(details, issues)``: ``details`` are verdict dicts with the raw output and the example's
    metadata; ``issues`` lists unknown ids, duplicate ids and examples with no prediction.
    """
    seen, issues = index_predictions(predictions, [e.id for e in examples], where)
    details = []
    for e in examples:
        p = seen.get(e.id)
        if p is None:
            continue
        output = p.get("output")
        v = score_example(e, output, p.get("tool_calls"), p.get("error"), p.get("finish_reason"),
                          p.get("renamed_tools")).to_dict()
        v["output"] = output
        if p.get("tool_calls"):
            v["raw_tool_calls"] = p["tool_calls"]
        v["metadata"] = {k: e.metadata.get(k) for k in DETAIL_METADATA if e.metadata.get(k) is not None}
        for k in ("latency_s", "prompt_tokens", "completion_tokens", "structured_mode", "finish_reason"):
            if k in p:
                v[k] = p[k]
        details.append(v)
    return details, issues


def write_scores(examples, details, issues, summary_path, details_path, extra: dict | None = None,
                 call_format: list[str] | None = None) -> dict:
    """Aggregate with :mod:`fctune.metrics` (strict reading under ``call_format``, lenient beside it) and write the
    summary JSON and the details JSONL."""
    from fctune.io import write_json_atomic, write_jsonl_atomic
    from fctune.metrics import summarize

    summary = summarize(details, {e.id: e for e in examples}, call_format=call_format)
    summary["prediction_issues"] = issues
    if extra:
        summary.update(extra)
    write_jsonl_atomic(details_path, details)
    write_json_atomic(summary_path, summary)
    return summary


def main(argv=None) -> int:
    import argparse
    import sys
    from pathlib import Path

    from fctune.cli import user_errors
    from fctune.io import read_jsonl, require_folder_or_absent
    from fctune.parse import CALL_SHAPES, call_format_from_flag
    from fctune.schema import read_examples

    ap = argparse.ArgumentParser(prog="python -m fctune.score",
                                 description="Score saved model outputs against a split (pure scoring, no model).")
    ap.add_argument("--expected", required=True, help="split JSONL (canonical examples)")
    ap.add_argument("--predictions", required=True,
                    help='JSONL of {"id", "output": raw text} or {"id", "tool_calls": [OpenAI shape]}')
    ap.add_argument("--out", required=True, help="folder for summary.json and details.jsonl")
    ap.add_argument("--call-format", default="any",
                    help="the model's declared call format for the strict reading: comma-separated parse shapes "
                         f"({', '.join(CALL_SHAPES)}) or 'any' (strict reads like lenient)")
    ap.add_argument("--allow-partial", action="store_true",
                    help="score what matches even when ids are unknown, duplicated or missing (listed in the summary)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    try:
        call_format = call_format_from_flag(args.call_format)
        require_folder_or_absent(out)
        examples = read_examples(args.expected)
        preds = read_jsonl(args.predictions)
        details, issues = score_predictions(examples, preds, where=args.predictions)
        require_complete(issues, len(examples), args.predictions, args.allow_partial)
        require_answers(details, args.predictions)
        summary = write_scores(examples, details, issues, out / "summary.json", out / "details.jsonl",
                               {"expected_file": args.expected, "predictions_file": args.predictions},
                               call_format=call_format)
    except user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for k in ("unknown_ids", "duplicate_ids", "missing_predictions"):
        if issues[k]:
            print(f"warning: {len(issues[k])} {k.replace('_', ' ')}: {issues[k][:5]}", file=sys.stderr)
    print(f"scored {summary['n_scored']}/{len(examples)}: exact {summary['exact_match_rate']}, "
          f"field F1 {summary['args_field_f1']}, valid JSON {summary['valid_json_rate']} -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
