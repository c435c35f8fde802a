"""Tool-call tags a model cannot write: found on the model's own embedding rows, named in one line, and repaired by
feeding them as text, in the local backend and in the GGUF llama.cpp serves. The model with untrained tags is the
offline LLM stand-in, Qwen2.5-Coder-0.5B-Instruct (its GGUF pieces are installed by scripts/bootstrap.sh); SmolLM2
has no tag among its added tokens."""

import json

import pytest

from fctune.formats.bfcl import load_category
from fctune.models import OFFLINE_LLM, load_tokenizer, resolve_model
from fctune.parse import parse_tool_calls
from fctune.tag_fit import SHIPPED
from fctune.tool_tokens import (
    detect_gguf,
    detect_model,
    gguf_layout,
    repaired_gguf,
    resolve_repair,
    text_tags_tokenizer,
)

TAGS = ["<tool_call>", "</tool_call>"]


@pytest.fixture(scope="module")
def qwen_tok():
    return load_tokenizer(OFFLINE_LLM)


@pytest.fixture(scope="module")
def qwen_check(qwen_tok):
    return detect_gguf(resolve_model(OFFLINE_LLM).location, qwen_tok, ["hermes_tags"], OFFLINE_LLM)


def test_detection_names_the_untrained_tags_of_the_stand_in(qwen_check):
    assert qwen_check.tags == {"<tool_call>": 151657, "</tool_call>": 151658}
    assert qwen_check.untrained == TAGS
    assert qwen_check.rows == {t: ["input", "output"] for t in TAGS}
    line = qwen_check.line()
    assert OFFLINE_LLM in line and "<tool_call>, </tool_call>" in line and "cannot write them" in line
    assert resolve_repair("auto", qwen_check) == "text" and resolve_repair("none", qwen_check) == "none"


def test_detection_is_silent_for_smollm2(smollm2_tokenizer_dir):
    from fctune.parse import declared_call_format
    from fctune.render import PromptRenderer

    tok = load_tokenizer("smollm2")
    fmt = declared_call_format(PromptRenderer(tok))
    check = detect_gguf(resolve_model("smollm2").location, tok, fmt, "smollm2")
    assert check.tags == {} and check.line() is None and resolve_repair("auto", check) == "none"


def test_a_tiny_model_whose_tag_rows_are_shared_is_found_and_one_with_its_own_rows_is_not(qwen_tok):
    """The same check on a loaded model: two tag rows equal to an unused added token's row are untrained; given rows
    of their own they are not."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(qwen_tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    model = Qwen2ForCausalLM(cfg)
    unused = qwen_tok.convert_tokens_to_ids("<|box_start|>")
    with torch.no_grad():
        for emb in (model.get_input_embeddings(), model.get_output_embeddings()):
            for t in TAGS:
                emb.weight[qwen_tok.convert_tokens_to_ids(t)] = emb.weight[unused]
    shared = detect_model(model, qwen_tok, ["hermes_tags"], "tiny")
    assert shared.untrained == TAGS and shared.rows["<tool_call>"] == ["input", "output"]
    with torch.no_grad():
        for emb in (model.get_input_embeddings(), model.get_output_embeddings()):
            for t in TAGS:
                emb.weight[qwen_tok.convert_tokens_to_ids(t)] = torch.randn(16)
    assert detect_model(model, qwen_tok, ["hermes_tags"], "tiny").untrained == []


def test_the_text_repair_splits_only_the_tags_and_decodes_to_the_same_text(qwen_tok):
    repaired = text_tags_tokenizer(qwen_tok, TAGS)
    text = '<|im_start|>assistant\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><|im_end|>'
    before = qwen_tok(text, add_special_tokens=False)["input_ids"]
    after = repaired(text, add_special_tokens=False)["input_ids"]
    assert 151657 in before and 151657 not in after and 151658 not in after
    assert after[0] == before[0] == qwen_tok.convert_tokens_to_ids("<|im_start|>") and after[-1] == before[-1]
    assert repaired.convert_ids_to_tokens(after[3:7]) == ["<", "tool", "_call", ">Ċ"]
    assert repaired.decode(after, skip_special_tokens=False) == text
    assert len(repaired) == len(qwen_tok) and repaired.chat_template == qwen_tok.chat_template


def test_the_repaired_gguf_differs_only_in_the_tags_token_types(tmp_path):
    src = resolve_model(OFFLINE_LLM).location
    path, meta = repaired_gguf(src, [151657, 151658], tmp_path)
    assert {int(k): v for k, v in meta["token_types_before"].items()} == {151657: 4, 151658: 4}  # USER_DEFINED
    assert meta["bytes_changed"] == 8 and path.stat().st_size == meta["file_bytes"]
    tt = gguf_layout(path)["token_type"]
    with open(src, "rb") as a, open(path, "rb") as b:
        x, y = a.read(), b.read()
    diff = [i for i in range(tt["offset"], tt["offset"] + 4 * tt["count"]) if x[i] != y[i]]
    assert diff and all(tt["offset"] + 4 * 151657 <= i < tt["offset"] + 4 * 151659 for i in diff)
    end = tt["offset"] + 4 * tt["count"]
    assert x[:tt["offset"]] == y[:tt["offset"]] and x[end:] == y[end:]
    assert repaired_gguf(src, [151657, 151658], tmp_path)[0] == path  # cached: made once
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == meta["sha256"]


def test_llama_cpp_reads_the_repaired_gguf_as_the_repaired_tokenizer_does(qwen_tok, tmp_path):
    import llama_cpp

    from fctune.render import PromptRenderer

    path, _ = repaired_gguf(resolve_model(OFFLINE_LLM).location, [151657, 151658], tmp_path)
    repaired = text_tags_tokenizer(qwen_tok, TAGS)
    vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    renderer = PromptRenderer(repaired)
    for e in load_category("parallel_multiple", limit=2) + load_category("simple_python", limit=1):
        text = renderer.prompt(e) + '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><|im_end|>'
        ids = repaired(text, add_special_tokens=False)["input_ids"]
        assert 151657 not in ids and ids == vocab.tokenize(text.encode(), add_bos=False, special=True), e.id


@pytest.mark.server
@pytest.mark.slow
def test_the_stand_in_served_repaired_writes_a_real_call_in_its_declared_format(tmp_path):
    """The same BFCL row through the project's llama.cpp server: as the model ships it writes no tag (fenced JSON,
    no call in the strict reading); repaired (text, the default, and fit, with the rows shipped for the stand-in)
    it writes <tool_call> itself and the strict reading reads the call."""
    from fctune.evaluate import EvalConfig, make_backend

    row = load_category("simple_python", limit=1)[0]
    out = {}
    for repair in ("none", "auto", "fit"):
        backend = make_backend(EvalConfig(backend="llamacpp", model=OFFLINE_LLM, max_new_tokens=96,
                                          max_concurrency=1, repair_tokens=repair,
                                          results_dir=str(tmp_path / repair)))
        try:
            ident = backend.identity()
            out[repair] = (ident, next(backend.generate([row])))
        finally:
            backend.close()
    none_ident, none_answer = out["none"]
    auto_ident, auto_answer = out["auto"]
    assert none_ident["tool_tokens"]["repair"] == "none" and "<tool_call>" not in none_answer.output
    assert auto_ident["tool_tokens"]["tags_as_text"] == TAGS and auto_ident["tool_tokens"]["gguf"]["bytes_changed"] == 8
    assert auto_ident["model_description"] == none_ident["model_description"]
    fit_ident, fit_answer = out["fit"]
    assert fit_ident["tool_tokens"]["repair"] == "fit" and fit_ident["tool_tokens"]["tags_as_text"] == []
    assert fit_ident["tool_tokens"]["fitted"]["path"].startswith(str(SHIPPED))  # applied in a second, not fitted
    assert set(fit_ident["tool_tokens"]["gguf"]["tensors"]) == {"token_embd.weight", "output.weight"}
    for answer in (auto_answer, fit_answer):
        parsed = parse_tool_calls(answer.output)
        assert "<tool_call>" in answer.output, answer.output
        assert parsed.shape == "hermes_tags" and parsed.calls, answer.output
        assert parsed.calls[0].name == row.expected.tool_calls[0].name
