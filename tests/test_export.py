"""Export and serving: the exported template renders as training did, the GGUF carries it, and a served model
answers an OpenAI client with real ``tool_calls`` (llama.cpp on 127.0.0.1, no mock)."""

import json
import subprocess
import sys

import pytest

from fctune.chat_handler import split_reply
from fctune.errors import UserError
from fctune.export import ExportConfig, export, gguf_chat_template
from fctune.offline import generate_examples
from fctune.render import PromptRenderer
from fctune.schema import write_examples


def test_split_reply_reads_hermes_blocks_as_tool_calls():
    content, calls = split_reply('Sure.\n<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>\n'
                                 '<tool_call>{"name": "g", "arguments": {}}</tool_call>')
    assert content == "Sure." and [c["function"]["name"] for c in calls] == ["f", "g"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"x": 1} and calls[0]["id"] != calls[1]["id"]
    content, calls = split_reply("<tool_call>not json</tool_call> and text")
    assert calls == [] and content == "<tool_call>not json</tool_call> and text"  # left as text, as vLLM does
    assert split_reply("just text") == ("just text", [])


@pytest.fixture(scope="module")
def memorised_model(tmp_path_factory, smollm2_tokenizer_dir):
    """A 2-layer random-init model with SmolLM2's tokenizer, trained (fully, in a few seconds) until its greedy reply
    to one tool-calling row is that row's call: something whose served answer can be checked exactly."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), tie_word_embeddings=True))
    example = next(e for e in generate_examples(40, seed=3) if e.expected.kind == "tool_calls")
    feats = PromptRenderer(tok, "auto").training_features(example)
    ids = torch.tensor([feats["input_ids"]])
    # the logits only where a label is (the vocabulary projection is most of the cost): position p predicts p + 1
    pos = torch.tensor([i - 1 for i, m in enumerate(feats["assistant_masks"]) if m and i > 0])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(300):
        hidden = model.model(input_ids=ids).last_hidden_state[0, pos]
        loss = torch.nn.functional.cross_entropy(model.lm_head(hidden), ids[0, pos + 1])
        if loss.item() < 0.005:
            break
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert loss.item() < 0.05, loss.item()
    out = tmp_path_factory.mktemp("memorised")
    model.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    write_examples(out / "row.jsonl", [example])
    return out, example


def test_export_serve_and_answer_with_real_tool_calls(tmp_path, memorised_model, monkeypatch):
    from openai import OpenAI

    from fctune.llama_server import LlamaServer, installed

    if not installed():
        pytest.skip("llama-cpp-python[server] is not installed (scripts/bootstrap.sh installs it)")
    src, example = memorised_model
    monkeypatch.chdir(tmp_path)  # a relative output folder, as the pipeline gives (the converter runs elsewhere)
    info = export(ExportConfig(merged=str(src / "model"), output="exp", gguf_types=["f16"],
                               parity_file=str(src / "row.jsonl")))
    assert info["chat_template"]["prompt_format"] == "hermes"  # SmolLM2's template ignores tools
    assert info["template_parity"]["rows"] == 1 and info["template_parity"]["identical"] == 1
    gguf = tmp_path / "exp" / "model.f16.gguf"
    assert info["gguf"]["model.f16.gguf"]["chat_template_is_the_exported_one"]
    assert "<tool_call>" in gguf_chat_template(gguf) and "tojson" in gguf_chat_template(gguf)
    assert (tmp_path / "exp" / "hf" / "README.md").exists() and (tmp_path / "exp" / "export.json").exists()

    from fctune.chat_template import openai_request

    messages, tools = openai_request(example, PromptRenderer(__import__("transformers").AutoTokenizer
                                                             .from_pretrained(src / "model"), "auto"), "string")
    with LlamaServer(str(gguf), tokenizer=str(tmp_path / "exp" / "hf"), n_ctx=2048,
                     log_path=str(tmp_path / "server.log")) as srv:
        client = OpenAI(base_url=srv.base_url, api_key="none")
        resp = client.chat.completions.create(model="m", messages=messages, tools=tools, temperature=0,
                                              max_tokens=96)
    choice = resp.choices[0]
    want = example.expected.tool_calls[0]
    assert choice.finish_reason == "tool_calls", choice.message.content
    got = choice.message.tool_calls[0].function
    assert got.name == want.name and json.loads(got.arguments) == want.arguments


def test_export_of_an_adapter_checks_the_template_on_its_validation_rows(tmp_path, tiny_model_dir):
    from fctune.train import TrainConfig, train

    exs = [e for e in generate_examples(80, seed=5)][:12]
    write_examples(tmp_path / "train.jsonl", exs)
    write_examples(tmp_path / "val.jsonl", exs[:6])
    train(TrainConfig(model=tiny_model_dir, name="a", train_file=str(tmp_path / "train.jsonl"),
                      val_file=str(tmp_path / "val.jsonl"), output_dir=str(tmp_path / "ad"), max_steps=2,
                      per_device_train_batch_size=2, gradient_accumulation_steps=1, save_steps=100,
                      max_seq_length=512))
    info = export(ExportConfig(adapter=str(tmp_path / "ad" / "a"), output=str(tmp_path / "exp"), gguf_types=["none"]))
    parity = info["template_parity"]
    assert parity["file"].endswith("val.jsonl") and parity["rows"] == 6 and parity["identical"] == 6
    assert parity["argument_styles"] == ["object", "string"]
    assert "vllm serve" in info["serve"]["vllm"] and "--tool-call-parser hermes" in info["serve"]["vllm"]
    assert info["gguf"] == {} and info["adapter_version_id"]


def test_push_to_hub_without_a_token_is_one_clear_error(tmp_path, tiny_model_dir, monkeypatch):
    # any merged model does (the memorised one is built for the test above: a minute of one worker's time, paid again
    # by each worker that runs a test asking for it)
    row = tmp_path / "row.jsonl"
    write_examples(row, generate_examples(4, seed=3)[:1])
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    with pytest.raises(UserError, match="no HF_TOKEN"):
        export(ExportConfig(merged=tiny_model_dir, output=str(tmp_path / "e"), gguf_types=["none"],
                            parity_file=str(row), push_to_hub="me/model"))
    r = subprocess.run([sys.executable, "-m", "fctune.export", "--merged", tiny_model_dir, "--output",
                        str(tmp_path / "e2"), "--gguf-types", "none", "--parity-file", str(row),
                        "--push-to-hub", "me/model"], capture_output=True, text=True,
                       env={k: v for k, v in __import__("os").environ.items() if "TOKEN" not in k})
    assert r.returncode == 2
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:")] == [
        "error: --push-to-hub me/model: no HF_TOKEN set (put it in .env; it needs write access)"]


def test_tool_names_go_as_is_to_a_server_that_takes_any_name():
    """Hosted APIs reject ``math.factorial`` (renamed, mapped back); a served model must see its in-process names."""
    from fctune.backends.openai_backend import OpenAIBackend
    from fctune.schema import Example, Expected, Message, ToolCall, ToolSpec

    tool = ToolSpec("math.factorial", "n!", {"type": "object", "properties": {"n": {"type": "integer"}}})
    e = Example("r", [Message("user", "5!"), Message("assistant", None, [ToolCall("math.factorial", {"n": 5})]),
                      Message("tool", "120", tool_call_id="call_0", name="math.factorial"), Message("user", "and 6!")],
                [tool], Expected("tool_calls", tool_calls=[ToolCall("math.factorial", {"n": 6})]))
    api = OpenAIBackend("m", base_url="http://127.0.0.1:1/v1")._request(e, None)[0]
    as_is = OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", api_names="as-is")
    kwargs = as_is._request(e, None)[0]
    assert api["tools"][0]["function"]["name"] == "math_factorial"
    assert kwargs["tools"][0]["function"]["name"] == "math.factorial"
    assert kwargs["messages"][1]["tool_calls"][0]["function"]["name"] == "math.factorial"
    assert as_is.identity()["api_names"] == "as-is" and "api_names" not in OpenAIBackend("m", base_url="x").identity()


def test_the_pipeline_runs_the_round_trip_after_each_fine_tuned_models_evaluation():
    from fctune.pipeline import PipelineConfig, plan

    def step6(**kw):
        return [tag for g in next(s for s in plan(PipelineConfig(llm="none", fledgling=False, **kw))
                                  if s.name == "evaluate").groups for tag, _, _ in g]

    full = step6(profile="full", models=["phi=smollm2", "llama=/m/llama"])
    assert full.index("paper-phi-ft-roundtrip") == full.index("paper-phi-ft") + 1
    assert "paper-llama-ft-roundtrip" in full
    assert not any(t.endswith("-roundtrip") for t in step6(profile="smoke"))  # off for the smoke budget
    assert "paper-phi-llama-ft-roundtrip" in step6(profile="smoke", roundtrip="on")  # one stand-in for both
