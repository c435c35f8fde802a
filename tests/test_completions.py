"""One model, one prompt, whatever the path: the prompt a real llama.cpp server receives in completions mode is the
model's own chat template with its tools, byte for byte, never HTML-escaped; renamed tool names map back in every
output shape; a cut answer is 'truncated'. The model with a tool template is the offline LLM stand-in,
Qwen2.5-Coder-0.5B-Instruct (its GGUF pieces are installed by scripts/bootstrap.sh)."""

import pytest

from fctune.backends.base import Generation
from fctune.formats.bfcl import load_category
from fctune.models import OFFLINE_LLM
from fctune.schema import Example, Expected, Message, ToolCall, ToolSpec

# a description with the characters an HTML-escaping template would turn into entities
TOOL = ToolSpec("math.hcf", "Highest common factor of <a> & <b> (\"integers\").",
                {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                 "required": ["a", "b"]})
ROW = Example("hcf-1", [Message("user", "What is the HCF of 36 and 48?")], [TOOL],
              Expected("tool_calls", [ToolCall("math.hcf", {"a": 36, "b": 48})]))


@pytest.fixture(scope="module", params=["cpp", "python"])
def qwen_backend(request, tmp_path_factory):
    """The stand-in behind both llama.cpp servers: its own llama-server (built by the bootstrap, the default) and
    llama-cpp-python's."""
    from fctune.evaluate import EvalConfig, make_backend
    from fctune.llama_server import llama_server_binary

    if request.param == "cpp" and not llama_server_binary():
        pytest.fail("no llama-server binary: scripts/bootstrap.sh builds it")
    cfg = EvalConfig(backend="llamacpp", model=OFFLINE_LLM, max_new_tokens=96, llama_server=request.param,
                     results_dir=str(tmp_path_factory.mktemp("srv")))
    backend = make_backend(cfg)
    assert ("llama-server" in backend.identity()["served_by"]) is (request.param == "cpp")
    yield backend
    backend.close()


def _server_tokens(backend, prompt: str) -> list[int]:
    """llama-server's own tokens for ``prompt`` (its /tokenize, special tokens parsed, nothing added)."""
    import json
    import urllib.request

    root = str(backend.client.base_url).rstrip("/").removesuffix("/v1")
    body = json.dumps({"content": prompt, "add_special": False, "parse_special": True}).encode()
    req = urllib.request.Request(root + "/tokenize", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["tokens"]


def test_the_server_receives_the_chat_template_byte_for_byte(qwen_backend):
    tok = qwen_backend.renderer.tokenizer
    for e in [ROW, load_category("simple_python", limit=1)[0]]:
        expected = tok.apply_chat_template([m.to_dict() for m in e.messages], tools=[t.to_openai() for t in e.tools],
                                           add_generation_prompt=True, tokenize=False)
        ours = tok(expected, add_special_tokens=False)["input_ids"]
        req = qwen_backend.completion_request(e)
        assert req["prompt"] == expected
        assert "&lt;" not in expected and "&#34;" not in expected and "<tools>" in expected
        if "llama-server" in qwen_backend.identity()["served_by"]:
            # llama-server has no echo: its own tokens of the prompt must be ours, one for one
            assert _server_tokens(qwen_backend, req["prompt"]) == ours
            resp = qwen_backend.client.completions.create(**{**req, "max_tokens": 1})
        else:
            # echo: the server returns the prompt exactly as it received it, then the completion
            resp = qwen_backend.client.completions.create(**{**req, "max_tokens": 1, "echo": True})
            assert resp.choices[0].text[: len(expected)] == expected
        # and the completion read it as our tokenizer does (special tokens one token each, nothing added)
        assert resp.usage.prompt_tokens == len(ours)
    assert '"Highest common factor of <a> & <b> (\\"integers\\")."' in qwen_backend.completion_request(ROW)["prompt"]


def test_completions_mode_answers_are_scored_in_the_declared_format(qwen_backend):
    from fctune.score import score_example

    ident = qwen_backend.identity()
    assert ident["tools_mode"] == "completions" and ident["call_format"] == ["hermes_tags"]
    assert ident["prompt"]["prompt_format"] == "native" and "<|im_end|>" in ident["stop"]
    g = next(qwen_backend.generate([ROW]))
    assert g.error is None and g.finish_reason in ("stop", "length") and g.prompt_tokens > 100
    v = score_example(ROW, g.output, finish_reason=g.finish_reason)
    assert v.parse_shape is not None and v.truncated is (g.finish_reason == "length")


def test_renamed_tool_names_map_back_in_text_answers_too():
    """An API that needs ``math_hcf`` may answer with the call as text: the name maps back there as well."""
    from fctune.bfcl.checker import calls_from_output
    from fctune.score import score_example

    text = '<tool_call>{"name": "math_hcf", "arguments": {"a": 36, "b": 48}}</tool_call>'
    assert score_example(ROW, text).failure_reason == "wrong_name"
    assert score_example(ROW, text, renamed_tools={"math_hcf": "math.hcf"}).exact_match
    native = [{"type": "function", "function": {"name": "math.hcf", "arguments": '{"a": 36, "b": 48}'}}]
    assert score_example(ROW, None, native).exact_match  # structured tool_calls were already mapped by the backend
    assert calls_from_output(text, None, ["math.hcf"], renamed_tools={"math_hcf": "math.hcf"}) == [
        ("math.hcf", {"a": 36, "b": 48})]


@pytest.mark.parametrize("finish_reason,right,reason,detail", [
    ("length", False, "truncated", "cut at the generation budget (no_call"),  # cut and wrong: the budget is the suspect
    ("length", True, None, None),       # cut after a complete right answer: right
    ("repeat", False, "truncated", "stopped repeating itself verbatim"),  # --stop-repeats: stopped in a loop, wrong
    ("repeat", True, None, None),       # a right call, then a loop after it: right, as the budget cut would leave it
    ("stop", False, "no_call", None),
])
def test_truncated_is_its_own_failure_reason(finish_reason, right, reason, detail):
    from fctune.score import score_example

    out = '<tool_call>{"name": "math.hcf", "arguments": {"a": 36, "b": 48}}</tool_call>' if right else "Let me think"
    v = score_example(ROW, out, finish_reason=finish_reason)
    assert v.failure_reason == reason and v.truncated is (finish_reason in ("length", "repeat"))
    assert (v.failure_detail or "").startswith(detail or "")


def test_generation_budget_is_sized_from_the_data():
    """No legitimate answer is cut: every category's budget holds its longest expected answer, as the model's own
    tokenizer counts it, with room to spare."""
    from fctune.evaluate import answer_budget
    from fctune.models import load_tokenizer
    from fctune.render import format_hermes_calls

    tok = load_tokenizer(OFFLINE_LLM)
    for cat in ("simple_python", "multiple", "parallel", "parallel_multiple"):
        rows = load_category(cat)
        longest = max(len(tok(format_hermes_calls(e.expected.tool_calls))["input_ids"]) for e in rows)
        assert longest * 1.2 <= answer_budget(rows), cat
    assert answer_budget([ROW]) == 128  # the floor
    assert Generation(id="x", finish_reason="length").to_dict()["finish_reason"] == "length"


def test_our_tokenizer_reads_the_prompt_as_llama_cpp_does():
    """The same token ids on both paths: control and user-defined tokens (Qwen's <tool_call>) are one token each."""
    import llama_cpp

    from fctune.models import load_tokenizer, resolve_model
    from fctune.render import PromptRenderer

    tok = load_tokenizer(OFFLINE_LLM)
    vocab = llama_cpp.Llama(model_path=resolve_model(OFFLINE_LLM).location, vocab_only=True, verbose=False)
    renderer = PromptRenderer(tok)
    rows = [ROW] + load_category("parallel_multiple", limit=3) + load_category("irrelevance", limit=2)
    for e in rows:
        text = renderer.prompt(e) + '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><|im_end|>'
        assert tok(text, add_special_tokens=False)["input_ids"] == vocab.tokenize(text.encode(), add_bos=False,
                                                                                   special=True), e.id
