"""Scoring rules, one row per rule, on hand-written outputs; then aggregation and the score command."""

import json
import subprocess
import sys

import pytest

from fctune.metrics import bootstrap_ci, summarize
from fctune.schema import Example, Expected, Message, ToolCall, ToolSpec
from fctune.score import compare_values, score_example

WEATHER = ToolSpec("get_weather", "Weather for a city", {
    "type": "object", "required": ["city"],
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                   "unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
                   "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                   "stops": {"type": "array", "items": {"type": "string"}},
                   "where": {"type": "object", "properties": {"lat": {"type": "number"}, "lng": {"type": "number"}}}}})
EMAIL = ToolSpec("send_email", "Send", {"type": "object", "required": ["to"], "properties": {"to": {"type": "string"}}})


def ex(calls=None, kind="tool_calls", tools=(WEATHER, EMAIL), json_obj=None, schema=None):
    return Example("e1", [Message("user", "q")], list(tools),
                   Expected(kind, tool_calls=[ToolCall(n, a) for n, a in (calls or [])], json=json_obj,
                            json_schema=schema), {"domain": "weather", "complexity": "simple", "turn_type": "single"})


def tc(name, args):
    return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"


PARIS = [("get_weather", {"city": "Paris", "days": 3})]

# (case, expected calls, output, exact(strict), exact(lenient), failure reason, field F1 strict)
CALL_CASES = [
    ("exact", PARIS, tc("get_weather", {"city": "Paris", "days": 3}), True, True, None, 1.0),
    ("int_vs_float_by_value", PARIS, tc("get_weather", {"city": "Paris", "days": 3.0}), True, True, None, 1.0),
    ("string_number_strict_type_error", PARIS, tc("get_weather", {"city": "Paris", "days": "3"}), False, True,
     "wrong_type", 2 / 3),
    ("string_case_whitespace_insensitive", PARIS, tc("get_weather", {"city": "  paris ", "days": 3}), True, True,
     None, 1.0),
    ("wrong_value", PARIS, tc("get_weather", {"city": "Lyon", "days": 3}), False, False, "wrong_value", 2 / 3),
    ("missing_arg", PARIS, tc("get_weather", {"city": "Paris"}), False, False, "missing_arg", 0.8),
    ("extra_arg", [("get_weather", {"city": "Paris"})], tc("get_weather", {"city": "Paris", "days": 2}), False, False,
     "extra_arg", 0.8),
    ("optional_omitted_equals_default", [("get_weather", {"city": "Paris", "unit": "c"})],
     tc("get_weather", {"city": "Paris"}), True, True, None, 1.0),
    ("optional_given_equals_default", [("get_weather", {"city": "Paris"})],
     tc("get_weather", {"city": "Paris", "unit": "c"}), True, True, None, 1.0),
    ("optional_non_default_missing", [("get_weather", {"city": "Paris", "unit": "f"})],
     tc("get_weather", {"city": "Paris"}), False, False, "missing_arg", 0.8),
    ("wrong_name", PARIS, tc("send_email", {"to": "x"}), False, False, "wrong_name", 0.0),
    ("no_call", PARIS, "It is sunny in Paris.", False, False, "no_call", 0.0),
    ("invalid_json_truncated", PARIS, '<tool_call>{"name": "get_weather", "arguments": {"city": "Pa', False, False,
     "invalid_json", 0.0),
    ("prose_around_call", PARIS, "Let me check. " + tc("get_weather", {"city": "Paris", "days": 3}) + " Done.",
     True, True, None, 1.0),
    ("parallel_other_order", [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})],
     tc("get_weather", {"city": "Oslo"}) + tc("get_weather", {"city": "Paris"}), True, True, None, 1.0),
    ("parallel_mixed_tools_other_order", [("get_weather", {"city": "Paris"}), ("send_email", {"to": "a@b.c"})],
     tc("send_email", {"to": "a@b.c"}) + tc("get_weather", {"city": "Paris"}), True, True, None, 1.0),
    ("extra_call", [("get_weather", {"city": "Paris"})],
     tc("get_weather", {"city": "Paris"}) + tc("get_weather", {"city": "Oslo"}), False, False, "extra_call", 2 / 3),
    ("missing_call", [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})],
     tc("get_weather", {"city": "Oslo"}), False, False, "missing_call", 2 / 3),
    ("list_order_sensitive", [("get_weather", {"city": "P", "stops": ["a", "b"]})],
     tc("get_weather", {"city": "P", "stops": ["b", "a"]}), False, False, "wrong_value", 0.5),
    ("unique_items_list_is_a_set", [("get_weather", {"city": "P", "tags": ["a", "b"]})],
     tc("get_weather", {"city": "P", "tags": ["b", "a"]}), True, True, None, 1.0),
    ("nested_object_recursive", [("get_weather", {"city": "P", "where": {"lat": 1.5, "lng": 2}})],
     tc("get_weather", {"city": "P", "where": {"lng": 2.0, "lat": 1.5}}), True, True, None, 1.0),
    ("nested_object_wrong_leaf", [("get_weather", {"city": "P", "where": {"lat": 1.5, "lng": 2}})],
     tc("get_weather", {"city": "P", "where": {"lat": 1.5, "lng": 3}}), False, False, "wrong_value", 0.75),
    ("bool_is_not_number", [("get_weather", {"city": "P", "days": 1})], tc("get_weather", {"city": "P", "days": True}),
     False, False, "wrong_type", 2 / 3),
    ("python_call_syntax", PARIS, 'get_weather(city="Paris", days=3)', True, True, None, 1.0),
    ("single_quoted_hermes", PARIS, "<tool_call>{'name': 'get_weather', 'arguments': {'city': 'Paris', 'days': 3}}"
                                    "</tool_call>", True, True, None, 1.0),
]


@pytest.mark.parametrize("case,calls,output,exact,exact_lenient,reason,f1", CALL_CASES,
                         ids=[c[0] for c in CALL_CASES])
def test_call_rules(case, calls, output, exact, exact_lenient, reason, f1):
    v = score_example(ex(calls), output)
    assert v.args_exact_match is exact
    assert v.args_exact_match_lenient is exact_lenient
    assert v.failure_reason == reason
    assert v.field_f1 == pytest.approx(f1)
    assert v.exact_match is exact


def test_field_precision_and_recall_separately():
    v = score_example(ex([("get_weather", {"city": "Paris", "days": 3})]), tc("get_weather", {"city": "Paris"}))
    assert (v.field_precision, v.field_recall) == (1.0, pytest.approx(2 / 3))
    v = score_example(ex([("get_weather", {"city": "Paris"})]), tc("get_weather", {"city": "Paris", "days": 4}))
    assert (v.field_precision, v.field_recall) == (pytest.approx(2 / 3), 1.0)


@pytest.mark.parametrize("output,correct,reason", [
    ("I can't help with that.", True, None),
    (tc("get_weather", {"city": "Paris"}), False, "called_when_irrelevant"),
    ("", True, None),
])
def test_abstention(output, correct, reason):
    v = score_example(ex(kind="no_call"), output)
    assert v.abstention_correct is correct and v.exact_match is correct and v.failure_reason == reason
    assert v.field_f1 is None and v.args_exact_match is None


SCHEMA = {"type": "object", "required": ["name", "age"], "additionalProperties": False,
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}


@pytest.mark.parametrize("output,valid_json,schema_valid,exact,reason", [
    ('{"name": "Ada", "age": 36}', True, True, True, None),
    ('Here: ```json\n{"name": "ada ", "age": 36}\n```', True, True, True, None),
    ('{"name": "Ada", "age": "36"}', True, False, False, "schema_violation"),
    ('{"name": "Ada"}', True, False, False, "schema_violation"),
    ('{"name": "Bob", "age": 36}', True, True, False, "wrong_value"),
    ("{'name': 'Ada', 'age': 36}", False, True, True, "invalid_json"),
    ('{"name": "Ada", "age": ', False, False, False, "invalid_json"),
])
def test_structured_rows(output, valid_json, schema_valid, exact, reason):
    v = score_example(ex(kind="json", tools=(), json_obj={"name": "Ada", "age": 36}, schema=SCHEMA), output)
    assert (v.valid_json, v.schema_valid, v.exact_match, v.failure_reason) == (valid_json, schema_valid, exact, reason)


def test_backend_error_is_not_a_wrong_answer():
    v = score_example(ex(PARIS), None, error="APITimeoutError after 4 attempts")
    assert v.error and v.failure_reason is None and v.exact_match is None
    s = summarize([v.to_dict(), score_example(ex(PARIS), tc("get_weather", {"city": "Paris", "days": 3})).to_dict()],
                  {})
    assert s["n_errors"] == 1 and s["n_scored"] == 1 and s["args_exact_match_rate"] == 1.0


def test_openai_tool_calls_are_scored():
    v = score_example(ex(PARIS), None, tool_calls=[
        {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris","days":3}'}}])
    assert v.exact_match and v.parse_shape == "openai_tool_calls"


@pytest.mark.parametrize("pred,exp,mode,err", [
    (5, 5.0, "strict", None), ("5", 5, "strict", "wrong_type"), ("5", 5, "lenient", None),
    ("true", True, "lenient", None), ("true", True, "strict", "wrong_type"), (None, None, "strict", None),
    ("A  b", "a b", "strict", None), ([1, 2], [2, 1], "strict", "wrong_value"), ({"a": 1}, {"a": 1, "b": 2},
                                                                                    "strict", "wrong_value"),
])
def test_compare_values(pred, exp, mode, err):
    assert compare_values(pred, exp, {}, mode) == err


def test_summary_rates_breakdowns_and_ci():
    exs, vs = {}, []
    for i, (dom, ok) in enumerate([("weather", True), ("weather", True), ("finance", False), ("finance", True)]):
        e = ex(PARIS)
        e.id = f"e{i}"
        e.metadata = {"domain": dom, "complexity": "simple", "turn_type": "single"}
        exs[e.id] = e
        out = tc("get_weather", {"city": "Paris", "days": 3}) if ok else "no idea"
        vs.append(score_example(e, out).to_dict())
    s = summarize(vs, exs)
    assert s["args_exact_match_rate"] == 0.75 and s["valid_json_rate"] == 0.75
    assert s["metrics"]["args_exact_match_rate"]["n"] == 4
    lo, hi = s["metrics"]["args_exact_match_rate"]["ci"]
    assert 0 <= lo <= 0.75 <= hi <= 1
    assert s["breakdown"]["domain"]["weather"]["args_field_f1"]["value"] == 1.0
    assert s["breakdown"]["domain"]["finance"]["args_field_f1"]["value"] == 0.5
    assert s["domain_f1_std"] == 0.25
    assert s["failure_reasons"] == {"no_call": 1}
    assert bootstrap_ci([1.0, 0.0] * 20) == bootstrap_ci([1.0, 0.0] * 20)  # seeded


def test_score_command(tmp_path):
    from fctune.schema import write_examples

    e1, e2, e3 = ex(PARIS), ex(PARIS), ex(kind="no_call")
    e1.id, e2.id, e3.id = "a", "b", "c"
    write_examples(tmp_path / "split.jsonl", [e1, e2, e3])
    preds = [{"id": "a", "output": tc("get_weather", {"city": "Paris", "days": 3})},
             {"id": "a", "output": "dup"},
             {"id": "zzz", "output": "unknown"},
             {"id": "c", "tool_calls": [{"type": "function", "function": {"name": "send_email", "arguments": "{}"}}]}]
    (tmp_path / "pred.jsonl").write_text("\n".join(json.dumps(p) for p in preds) + "\n")
    cmd = [sys.executable, "-m", "fctune.score", "--expected", str(tmp_path / "split.jsonl"),
           "--predictions", str(tmp_path / "pred.jsonl"), "--out", str(tmp_path / "out")]
    strict = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    # a duplicate id is an error by default (which of the two would count?), nothing is written
    assert strict.returncode == 2 and "1 duplicate ids (e.g. ['a'])" in strict.stderr
    assert not (tmp_path / "out").exists()
    out = subprocess.run(cmd + ["--allow-partial"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    for key in ("valid_json_rate", "name_match_rate", "args_exact_match_rate", "args_field_precision",
                "args_field_recall", "args_field_f1"):
        assert key in s
    assert s["prediction_issues"]["duplicate_ids"] == ["a"]
    assert s["prediction_issues"]["unknown_ids"] == ["zzz"]
    assert s["prediction_issues"]["missing_predictions"] == ["b"]
    assert "missing predictions" in out.stderr
    details = [json.loads(x) for x in (tmp_path / "out" / "details.jsonl").read_text().splitlines()]
    assert [d["id"] for d in details] == ["a", "c"]
    assert details[1]["failure_reason"] == "called_when_irrelevant"
