"""Model output is adversarial input: no text may crash, hang or blow up the parser or the scorers.

A seeded generator builds thousands of outputs from the fragments models (and broken models) write — tags,
fences, brackets, quotes, escapes, Python call syntax, unary operators — plus the adversarial shapes that once
crashed or stalled scoring (10,000-deep nesting, 10,000 unary minus signs, unbalanced brackets, a 2 MB literal).
Every call must return within a time limit and raise nothing.
"""

from __future__ import annotations

import json
import random
import time

import pytest

from fctune.bfcl.checker import calls_from_output
from fctune.parse import MAX_CALLS, MAX_DEPTH, MAX_OUTPUT_CHARS, loads_lenient, parse_json_output, parse_tool_calls
from fctune.schema import Example, Expected, Message, ToolCall, ToolSpec
from fctune.score import score_example

FRAGMENTS = ["{", "}", "[", "]", "(", ")", '"', "'", "\\", ":", ",", " ", "\n", "-", "+", "~", "1", "2.5e3", "null",
             "true", "None", "name", "arguments", '"name"', '"arguments"', "get_weather", "f", "(a=", "=", ".",
             "<tool_call>", "</tool_call>", "<|tool_call|>", "<|/tool_call|>", "<functioncall>", "[TOOL_CALLS]",
             "<|python_tag|>", "```", "```json\n", "\u00e9", "\U0001f600", "\x00", "__import__('os')", "lambda: 0",
             '{"name": "get_weather", "arguments": {"city": "Paris"}}', "get_weather(city='Paris')", "*", "**"]

TOOL = ToolSpec(name="get_weather", description="weather", parameters={
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
CALL_ROW = Example(id="c", messages=[Message(role="user", content="Weather in Paris?")], tools=[TOOL],
                   expected=Expected(kind="tool_calls", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
JSON_ROW = Example(id="j", messages=[Message(role="user", content="Give JSON")], tools=[],
                   expected=Expected(kind="json", json={"a": 1}, json_schema={
                       "type": "object", "properties": {"a": {"type": "integer"}}}))

# (name, text): each once crashed, exhausted memory or took quadratic time before the parser was bounded
ADVERSARIAL = [
    ("nested_objects_10k", '{"a":' * 10_000 + "1" + "}" * 10_000),
    ("nested_lists_10k", "[" * 10_000 + "]" * 10_000),
    ("nested_in_tag", "<tool_call>" + "[" * 5_000 + "]" * 5_000 + "</tool_call>"),
    ("unary_minus_10k", "f(a=" + "-" * 10_000 + "1)"),
    ("unary_minus_in_json", '{"name": "f", "arguments": {"a": ' + "-" * 10_000 + "1}}"),
    ("open_braces_40k", "{" * 40_000),
    ("open_brackets_mixed_40k", "[{" * 20_000),
    ("string_never_closed", '{"a": "' + "{" * 40_000),
    ("quote_brace_alternation", "'{'" * 30_000),
    ("python_literal_2mb", "f(a=[" + ",".join(["1"] * 700_000) + "])"),
    ("python_literal_just_under_bound", "f(a=[" + ",".join(["1"] * 45_000) + "])"),
    ("many_tags", "<tool_call>{" * 20_000),
    ("many_calls", "<tool_call>" + json.dumps([{"name": "get_weather", "arguments": {"city": "x"}}] * 500)
     + "</tool_call>"),
    ("many_fences", "```json\n{" * 10_000),
    ("backslashes", '{"a": "' + "\\" * 50_001),
]


def _random_output(rng: random.Random) -> str:
    n = rng.choice([1, 3, 10, 40, 200])
    return "".join(rng.choice(FRAGMENTS) for _ in range(n))


def _assert_quick(fn, *args, limit_s: float = 2.0):
    t0 = time.perf_counter()
    out = fn(*args)
    dt = time.perf_counter() - t0
    assert dt < limit_s, f"{fn.__name__} took {dt:.2f}s on {len(args[0] or '')} characters"
    return out


@pytest.mark.parametrize("name,text", ADVERSARIAL, ids=[n for n, _ in ADVERSARIAL])
def test_adversarial_outputs_are_verdicts_not_exceptions(name, text):
    parsed = _assert_quick(parse_tool_calls, text, None, ["get_weather"])
    assert len(parsed.calls) <= MAX_CALLS
    if len(text) > MAX_OUTPUT_CHARS:
        assert parsed.too_large and parsed.shape == "too_large" and not parsed.calls
    v = _assert_quick(score_example, CALL_ROW, text)
    assert v.exact_match is False
    assert v.failure_reason in ("too_large", "invalid_json", "no_call", "extra_call", "wrong_value")
    j = _assert_quick(score_example, JSON_ROW, text)
    assert j.exact_match is False and j.failure_reason in ("too_large", "invalid_json", "schema_violation",
                                                           "missing_arg", "extra_arg", "wrong_value", "wrong_type")
    _assert_quick(calls_from_output, text, None, ["get_weather"])


def test_over_the_bounds_verdicts_name_the_bound():
    big = "x" * (MAX_OUTPUT_CHARS + 1)
    assert score_example(CALL_ROW, big).failure_reason == "too_large"
    assert score_example(JSON_ROW, big).failure_reason == "too_large"
    many = "<tool_call>" + json.dumps([{"name": "get_weather", "arguments": {"city": "Paris"}}] * (MAX_CALLS + 1))
    v = score_example(CALL_ROW, many)
    assert v.failure_reason == "too_large" and "65 calls" in v.failure_detail
    deep = '{"name": "get_weather", "arguments": {"city": ' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "}}"
    assert score_example(CALL_ROW, "<tool_call>" + deep + "</tool_call>").failure_reason == "invalid_json"
    # just inside the bounds still reads
    ok = "<tool_call>" + json.dumps([{"name": "get_weather", "arguments": {"city": "Paris"}}] * MAX_CALLS)
    assert len(parse_tool_calls(ok).calls) == MAX_CALLS


def test_deep_tool_calls_from_a_predictions_file_are_a_verdict():
    args: dict = {}
    cur = args
    for _ in range(900):  # deep, but within what json.loads reads from a predictions file
        cur["a"] = {}
        cur = cur["a"]
    calls = [{"id": "1", "type": "function", "function": {"name": "get_weather", "arguments": args}}]
    v = score_example(CALL_ROW, None, calls)
    assert v.exact_match is False and v.failure_reason == "invalid_json"
    assert score_example(CALL_ROW, None, 5).failure_reason == "no_call"  # "tool_calls": 5


def test_loads_lenient_raises_only_value_error():
    for text in ["[" * 10_000, "-" * 10_000 + "1", "(" * 1_000 + ")" * 1_000, "{" * 100_001]:
        with pytest.raises(ValueError):
            loads_lenient(text)


def test_thousands_of_random_outputs_never_raise():
    rng = random.Random(20261125)
    slowest = 0.0

    def read_all_ways(text, i):
        t0 = time.perf_counter()
        parsed = parse_tool_calls(text, None, ["get_weather"] if i % 2 else None)
        parse_json_output(text)
        score_example(CALL_ROW if i % 3 else JSON_ROW, text)
        calls_from_output(text, None, ["get_weather"])
        return parsed, time.perf_counter() - t0

    for i in range(4_000):
        text = _random_output(rng)
        parsed, took = read_all_ways(text, i)
        # a slow input stays slow when read again; a pause of the machine's does not (seen: 2.9 s, once, in a full run
        # on 2 busy cores, where no input of these takes over 50 ms alone): an input's cost is its fastest read
        if took > 0.25:
            took = min([took] + [read_all_ways(text, i)[1] for _ in range(2)])
        slowest = max(slowest, took)
        assert isinstance(parsed.calls, list)
        for c in parsed.calls:
            assert isinstance(c.name, str) and isinstance(c.arguments, dict)
    assert slowest < 1.0, f"slowest random output took {slowest:.2f}s"


def test_random_outputs_scaled_up_stay_linear():
    """The same random text at 4x the length takes at most ~4x the time (quadratic scans took 16x)."""
    rng = random.Random(7)
    base = "".join(rng.choice(["{", "[", '"', "'", "a", " ", "\\", ":", ","]) for _ in range(6_000))

    def cost(text):  # the fastest of 5 reads: a pause of the machine lengthens one read, never the fastest
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            parse_tool_calls(text)
            parse_json_output(text)
            times.append(time.perf_counter() - t0)
        return min(times)

    small, large = cost(base), cost(base * 4)
    assert large < max(12 * small, 0.05), f"{small:.4f}s -> {large:.4f}s for 4x the text"
