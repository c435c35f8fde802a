"""An OpenAI-compatible endpoint on 127.0.0.1 that misbehaves in ordinary ways, scripted answer by answer: every odd
answer is an error of its request (retried, counted, never an exception, never scored as the model's answer), and a
server's Retry-After is honoured within the run's bound. Plus the pure reader, field by field."""

from __future__ import annotations

import json
import time

import pytest
from http_stub import JSON, StubHandler, serving

from fctune.backends.openai_backend import MalformedAnswer, OpenAIBackend, read_answer, retry_after_s
from fctune.score import score_example

GOOD_CALL = {"id": "t1", "type": "function",
             "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Paris\"}"}}


def _completion(message=None, finish="tool_calls", **extra) -> bytes:
    message = message if message is not None else {"role": "assistant", "content": None, "tool_calls": [GOOD_CALL]}
    return json.dumps({"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                       "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}, **extra}).encode()


GOOD = (200, JSON, _completion())


class _Scripted(StubHandler):
    """Answers each POST with the next (status, headers, body) of ``script``; the good answer once it runs out."""

    script: list = []
    seen: list = []

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append(time.monotonic())
        code, headers, body = self.script.pop(0) if self.script else GOOD
        self.reply(code, body, headers)


@pytest.fixture
def endpoint():
    _Scripted.seen = []
    with serving(_Scripted) as port:
        yield f"http://127.0.0.1:{port}/v1"


def _example():
    from fctune.offline.catalog import TOOL_BY_NAME
    from fctune.schema import Example, Expected, Message, ToolCall

    return Example("w1", [Message("user", "Weather in Paris?")], [TOOL_BY_NAME["get_current_weather"]],
                   Expected("tool_calls", [ToolCall("get_current_weather", {"location": "Paris"})]))


def _msg(**fields):
    return {"role": "assistant", "content": None, **fields}


# each: one odd answer, and what the recorded error must say
ODD = {
    "text/plain page": ((200, {"Content-Type": "text/plain"}, b"OK"), "not a completion object"),
    "html error page": ((200, {"Content-Type": "text/html"}, b"<html>gateway</html>"), "not a completion object"),
    "json list": ((200, JSON, b"[1, 2]"), "not a completion object"),
    "body not json": ((200, JSON, b"{not json"), "JSONDecodeError"),
    "no choices": ((200, JSON, json.dumps({"choices": []}).encode()), "choices is []"),
    "choices missing": ((200, JSON, json.dumps({"id": "x"}).encode()), "choices is missing"),
    "message missing": ((200, JSON, json.dumps({"choices": [{"index": 0}]}).encode()), "message is missing"),
    "function null": ((200, JSON, _completion(_msg(tool_calls=[{"id": "a", "type": "function", "function": None}]))),
                      "function is missing"),
    "name a number": ((200, JSON, _completion(_msg(tool_calls=[{"id": "a", "function": {"name": 3}}]))),
                      "name is 3, not str"),
    "arguments a list": ((200, JSON, _completion(_msg(tool_calls=[{"function": {"name": "f", "arguments": [1]}}]))),
                         "arguments is [1]"),
    "tool_calls an object": ((200, JSON, _completion(_msg(tool_calls={"name": "f"}))), "tool_calls is"),
    "content a number": ((200, JSON, _completion(_msg(content=7), finish="stop")), "content is 7"),
    "finish_reason a list": ((200, JSON, _completion(finish=["stop"])), "finish_reason is [\"stop\"]"),
    "usage a string": ((200, JSON, _completion(usage="lots")), "usage is \"lots\""),
    "token count a bool": ((200, JSON, _completion(usage={"completion_tokens": True})), "completion_tokens is true"),
}


@pytest.mark.parametrize("case", list(ODD))
def test_an_odd_answer_is_an_error_of_its_request_never_an_exception_or_an_answer(endpoint, case):
    answer, says = ODD[case]
    _Scripted.script = [answer] * 3  # the same odd answer every attempt: retried, then recorded as an error
    b = OpenAIBackend("m", base_url=endpoint, api_key="x", max_retries=2, backoff_base_s=0.01)
    (g,) = list(b.generate([_example()]))
    assert g.error and says in g.error, g.error
    assert g.attempts == 3 and len(_Scripted.seen) == 3
    assert b.stats()["failed_requests"] == 1 and b.stats()["retries"] == 2
    v = score_example(_example(), g.output, g.tool_calls, g.error)
    assert v.failure_reason is None and not v.exact_match  # an error, not the model's wrong answer


@pytest.mark.parametrize("case", ["text/plain page", "no choices", "function null"])
def test_an_odd_answer_then_a_good_one_is_the_good_one(endpoint, case):
    _Scripted.script = [ODD[case][0]]
    b = OpenAIBackend("m", base_url=endpoint, api_key="x", max_retries=2, backoff_base_s=0.01)
    (g,) = list(b.generate([_example()]))
    assert g.error is None and g.attempts == 2
    assert score_example(_example(), g.output, g.tool_calls).exact_match


@pytest.mark.parametrize("headers,at_least,at_most", [
    ({"Retry-After": "1"}, 0.9, 5.0),
    ({"retry-after-ms": "600"}, 0.5, 5.0),
    ({"Retry-After": "3600"}, 0.15, 1.5),  # asks an hour: waits the run's bound (backoff_max_s 0.2 here) instead
])
def test_retry_after_is_honoured_within_the_bound(endpoint, headers, at_least, at_most):
    _Scripted.script = [(429, {**JSON, **headers}, json.dumps({"error": {"message": "slow down"}}).encode())]
    backoff_max = 0.2 if headers.get("Retry-After") == "3600" else 30.0
    b = OpenAIBackend("m", base_url=endpoint, api_key="x", max_retries=2, backoff_base_s=0.01,
                      backoff_max_s=backoff_max)
    (g,) = list(b.generate([_example()]))
    waited = _Scripted.seen[1] - _Scripted.seen[0]
    assert g.error is None and g.attempts == 2 and at_least <= waited <= at_most, waited


def test_reader_keeps_what_scoring_uses_from_a_well_formed_answer():
    body = json.loads(_completion())
    a = read_answer(body, completions=False)
    assert a == {"text": "", "tool_calls": [{"id": "t1", "name": "get_current_weather",
                                             "arguments": "{\"location\": \"Paris\"}"}],
                 "finish_reason": "tool_calls", "prompt_tokens": 10, "completion_tokens": 5}
    # arguments sent as an object are the same call; content parts are joined text
    obj = json.loads(_completion(_msg(content=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                                      tool_calls=[{"function": {"name": "f", "arguments": {"x": 1}}}])))
    a = read_answer(obj, completions=False)
    assert a["text"] == "ab" and a["tool_calls"][0]["arguments"] == "{\"x\": 1}"
    assert read_answer({"choices": [{"text": "hi", "finish_reason": "stop"}]}, completions=True)["text"] == "hi"
    with pytest.raises(MalformedAnswer, match="choices\\[0\\].text is 5"):
        read_answer({"choices": [{"text": 5}]}, completions=True)


class _Err(Exception):
    def __init__(self, headers):
        self.response = type("R", (), {"headers": headers})()


@pytest.mark.parametrize("headers,wait", [
    ({}, None), ({"retry-after": "2.5"}, 2.5), ({"retry-after-ms": "150"}, 0.15), ({"retry-after": "soon"}, None),
    ({"retry-after": "nan"}, None), ({"retry-after": "-4"}, 0.0), ({"retry-after": "inf"}, None),
])
def test_retry_after_reading(headers, wait):
    assert retry_after_s(_Err(headers)) == wait
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_s(_Err({"retry-after": date})) <= 31


class _Echo(StubHandler):
    """Writes the caller's API key back: into the answer's text and a call's arguments, or into a 400's message."""

    fail = False

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.fail:
            body, code = json.dumps({"error": {"message": f"bad request for key {key}"}}).encode(), 400
        else:
            code = 200
            body = _completion({"role": "assistant", "content": f"your key is {key}", "tool_calls": [
                {"id": "t", "type": "function", "function": {"name": "get_current_weather",
                                                             "arguments": json.dumps({"location": key})}}]})
        self.reply(code, body)


@pytest.mark.parametrize("fail", [False, True])
def test_a_key_the_endpoint_echoes_reaches_no_file_and_no_output(tmp_path, fail):
    """The key comes from a variable whose name says nothing of a secret (--api-key-env GATEWAY_PASS_X)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    _Echo.fail = fail
    key = "gw-live-7f3a9c21d4e8b6"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_"))}
    env.update(GATEWAY_PASS_X=key, FCTUNE_ENV_FILE=str(tmp_path / "no.env"), PYTHONWARNINGS="ignore")
    with serving(_Echo) as port:
        r = subprocess.run([sys.executable, "docker/unsloth-paper/scripts/eval_function_call.py", "--backend",
                            "openai", "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m",
                            "--api-key-env", "GATEWAY_PASS_X", "--split-files", "tests/bad_inputs/split_valid.jsonl",
                            "--results-dir", str(tmp_path / "res"), "--max-retries", "0", "--label", "echo"],
                           cwd=repo, capture_output=True, text=True, timeout=120, env=env)
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.returncode == (2 if fail else 0), r.stderr[-2000:]
    written = list((tmp_path / "res").rglob("*"))
    assert any(p.name.endswith("_predictions.jsonl") for p in written)
    for p in written:
        if p.is_file():
            assert key not in p.read_text(errors="replace"), p
    assert key not in r.stdout + r.stderr
    preds = next(p for p in written if p.name.endswith("_predictions.jsonl")).read_text()
    assert "***" in preds  # masked, not dropped: the row is still there, with what else the endpoint wrote


def test_tools_whose_api_names_collide_are_sent_apart_and_mapped_back(tmp_path):
    from fctune.backends.openai_backend import api_name, unique_api_names
    from fctune.schema import Example, Expected, Message, ToolCall
    from fctune.schema import ToolSpec as Tool

    assert unique_api_names(["math.add", "math_add", "math-add", "math.add"], api_name) == {
        "math.add": "math_add", "math_add": "math_add_2", "math-add": "math-add"}
    params = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    tools = [Tool("math.add", "adds", params), Tool("math_add", "adds too", params)]
    e = Example("c1", [Message("user", "add 1")], tools, Expected("tool_calls", [ToolCall("math_add", {"a": 1})]))
    b = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key="x")
    kwargs, back = b._request(e, None)
    sent = [t["function"]["name"] for t in kwargs["tools"]]
    assert sent == ["math_add", "math_add_2"] and back == {"math_add": "math.add", "math_add_2": "math_add"}
    g = b._to_generation(e, {"text": "", "tool_calls": [{"id": "t", "name": "math_add_2", "arguments": '{"a": 1}'}],
                             "finish_reason": "tool_calls", "prompt_tokens": 1, "completion_tokens": 1},
                         back, 1, 0.1, None)
    assert score_example(e, g.output, g.tool_calls).exact_match
