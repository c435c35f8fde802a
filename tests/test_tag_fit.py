"""The fit repair: a model whose tool-call tag rows are untrained (shared with the unused added tokens, as in
Qwen2.5-Coder-0.5B/1.5B) cannot choose its tags; with only those rows fitted, every other weight frozen, greedy
decoding writes them, in a loaded model and in the GGUF llama.cpp serves. The tiny models here are random-weight
Qwen2 models with the stand-in's own tokenizer, so the shared rows are the real failure and the fit the real code."""

import pytest

from fctune.models import OFFLINE_LLM, load_tokenizer, resolve_model
from fctune.tag_fit import FitSettings, apply_rows, fit_tag_rows, fitted_gguf, fitted_rows, source_digest
from fctune.tool_tokens import detect_model, gguf_layout, gguf_rows

TAGS = ["<tool_call>", "</tool_call>"]
SMALL = FitSettings(train_rows=24, val_rows=8, epochs=3, lr=0.05)


@pytest.fixture(scope="module")
def qwen_tok():
    return load_tokenizer(OFFLINE_LLM)


def tiny_qwen(tok, tied: bool):
    """A random 1-layer Qwen2 whose tag rows are the row of an unused added token, as in the stand-in."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tied)
    model = Qwen2ForCausalLM(cfg).eval()
    unused = tok.convert_tokens_to_ids("<|box_start|>")
    embs = {id(e.weight): e for e in (model.get_input_embeddings(), model.get_output_embeddings())}
    with torch.no_grad():
        for emb in embs.values():
            for t in TAGS:
                emb.weight[tok.convert_tokens_to_ids(t)] = emb.weight[unused]
    return model


@pytest.mark.parametrize("tied", [True, False])
def test_fitting_only_the_tag_rows_makes_greedy_choice_write_them(qwen_tok, tied):
    import torch

    model = tiny_qwen(qwen_tok, tied)
    check = detect_model(model, qwen_tok, ["hermes_tags"], "tiny")
    assert check.untrained == TAGS
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rows, meta = fit_tag_rows(model, qwen_tok, check, settings=SMALL)
    assert meta["tied_embeddings"] is tied and meta["rows_changed"] == f"2 of {len(qwen_tok):,}"
    ids = [151657, 151658]
    assert rows["ids"] == ids
    b, a = meta["held_out_before"], meta["held_out_after"]
    # before: the shared row is never the greedy choice; after: both tags are written where the gold answer has them
    assert b["tag_recall"] == {"151657": 0.0, "151658": 0.0}
    assert all(a["tag_recall"][str(i)] >= 0.9 for i in ids), a
    # (where else greedy choice writes a tag is not asserted here: a random model's other logits are all near zero, so
    # any raised row wins there; a trained model's are not, and its false-tag rate is what the stand-in's fit records)
    assert a["loss"] < b["loss"]
    assert meta["training_loss_by_epoch"][-1] < meta["training_loss_by_epoch"][0]
    # the fit leaves the model as it was; applying the rows changes exactly those rows
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n
    apply_rows(model, rows)
    changed = {n: (p != before[n]).any(dim=-1).nonzero().flatten().tolist() for n, p in model.named_parameters()
               if not torch.equal(p, before[n])}
    assert list(changed.values()) == [ids] * (1 if tied else 2), changed
    assert detect_model(model, qwen_tok, ["hermes_tags"], "tiny").untrained == []


def test_the_local_backend_fits_once_and_its_answer_starts_with_a_real_tag(qwen_tok, tmp_path, monkeypatch):
    """--repair-tokens fit in the local backend: the rows are fitted on first use and cached by the model's
    content; greedy generation from an engine row's prompt then starts with the tag's own id, where the model as
    shipped never writes it; the identity records the fitted rows."""
    from fctune.backends.local import LocalBackend
    from fctune.offline.engine import generate_engine_examples
    from fctune.parse import parse_tool_calls

    monkeypatch.setenv("FCTUNE_CACHE", str(tmp_path / "cache"))
    model_dir = tmp_path / "tiny"
    tiny_qwen(qwen_tok, tied=True).save_pretrained(model_dir)
    qwen_tok.save_pretrained(model_dir)
    monkeypatch.setattr("fctune.tag_fit.FitSettings", lambda: SMALL)
    rows = [e for e in generate_engine_examples(40, seed=7) if e.expected.tool_calls][:3]
    out = {}
    for repair in ("none", "fit"):
        backend = LocalBackend(str(model_dir), max_new_tokens=4, batch_size=3, device="cpu", dtype="fp32",
                               repair_tokens=repair)
        out[repair] = (backend.tool_tokens, [g.output for g in backend.generate(rows)])
    assert out["none"][0]["repair"] == "none" and not any("<tool_call>" in o for o in out["none"][1])
    info, answers = out["fit"]
    assert info["repair"] == "fit" and info["fitted"]["rows_changed"] == f"2 of {len(qwen_tok):,}"
    assert all(o.startswith("<tool_call>") for o in answers), answers
    assert parse_tool_calls(answers[0]).shape == "hermes_tags"
    cached = list((tmp_path / "cache" / "models").glob("tiny-*-fit151657-151658-*.safetensors"))
    assert len(cached) == 1 and source_digest(model_dir) in cached[0].name
    again = LocalBackend(str(model_dir), max_new_tokens=4, device="cpu", dtype="fp32", repair_tokens="fit")
    assert again.tool_tokens["fitted"]["path"] == str(cached[0])  # read back, not fitted again


def test_fit_is_refused_where_there_is_nothing_to_fit_and_for_an_adapter(qwen_tok):
    import torch

    from fctune.errors import UserError
    from fctune.tool_tokens import repair_tokenizer

    model = tiny_qwen(qwen_tok, tied=False)
    with torch.no_grad():
        for emb in (model.get_input_embeddings(), model.get_output_embeddings()):
            for t in TAGS:
                emb.weight[qwen_tok.convert_tokens_to_ids(t)] = torch.randn(32)
    trained = detect_model(model, qwen_tok, ["hermes_tags"], "tiny")
    with pytest.raises(UserError, match="no untrained tag"):
        repair_tokenizer("fit", qwen_tok, trained)
    shared = detect_model(tiny_qwen(qwen_tok, tied=True), qwen_tok, ["hermes_tags"], "tiny")
    with pytest.raises(UserError, match="repairs a base model"):
        repair_tokenizer("fit", qwen_tok, shared, adapter="some/adapter")


def test_the_fitted_gguf_changes_only_the_tag_rows_each_quantized_in_its_tensors_type(tmp_path):
    """The stand-in's GGUF keeps an input (token_embd, Q5_0) and an output (output, Q8_0) embedding: each gets its
    fitted rows in its own type, in place, and not one other byte moves."""
    import numpy as np
    import torch
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    src = resolve_model(OFFLINE_LLM).location
    layout = gguf_layout(src)
    g = torch.Generator().manual_seed(0)
    dim = layout["tensors"]["token_embd.weight"]["shape"][0]
    rows = {"ids": [151657, 151658], "input": torch.randn(2, dim, generator=g) * 0.05,
            "output": torch.randn(2, dim, generator=g) * 0.05}
    path, meta = fitted_gguf(src, rows, {"path": "test"}, tmp_path)
    assert set(meta["tensors"]) == {"token_embd.weight", "output.weight"}
    x, y = np.fromfile(src, np.uint8), np.fromfile(path, np.uint8)
    assert len(x) == len(y) == meta["file_bytes"]
    allowed = np.zeros(len(x), bool)
    for tensor, which in (("token_embd.weight", "input"), ("output.weight", "output")):
        read = gguf_rows(path, gguf_layout(path), tensor, rows["ids"])
        err = meta["max_abs_quantization_error"][tensor]
        assert err < 0.01 and torch.allclose(read, rows[which], atol=err + 1e-6), tensor
        info = layout["tensors"][tensor]
        block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(info["type"])]
        row_bytes = info["shape"][0] // block * block_bytes
        allowed[info["offset"] + 151657 * row_bytes:info["offset"] + 151659 * row_bytes] = True
    changed = np.nonzero(x != y)[0]
    assert len(changed) and allowed[changed].all()
    assert fitted_gguf(src, rows, {"path": "test"}, tmp_path)[0] == path  # cached: made once


def test_cached_rows_are_read_back_without_loading_a_model(qwen_tok, tmp_path, monkeypatch):
    monkeypatch.setenv("FCTUNE_CACHE", str(tmp_path))
    model = tiny_qwen(qwen_tok, tied=True)
    folder = tmp_path / "m"
    model.save_pretrained(folder)
    check = detect_model(model, qwen_tok, ["hermes_tags"], "tiny")
    first, meta = fitted_rows(lambda: model, qwen_tok, check, folder, settings=SMALL)

    def no_model():
        raise AssertionError("a cached fit loads no model")

    second, meta2 = fitted_rows(no_model, qwen_tok, check, folder, settings=SMALL)
    assert meta2["path"] == meta["path"] and second["ids"] == first["ids"]
    assert (second["input"] == first["input"]).all()


def test_self_targets_fit_the_rows_on_the_models_own_answers(qwen_tok):
    """targets=self: each training row's scored turn is the model's own greedy answer (tags fed as text), counted
    as calls or no-call answers, and the rows are fitted on those; the held-out measure stays on the gold rows."""
    import dataclasses

    model = tiny_qwen(qwen_tok, tied=True)
    check = detect_model(model, qwen_tok, ["hermes_tags"], "tiny")
    settings = dataclasses.replace(SMALL, train_rows=6, val_rows=4, epochs=1, targets="self")
    rows, meta = fit_tag_rows(model, qwen_tok, check, settings=settings)
    counts = meta["self_targets"]
    # a random model writes no call: every target is its own text (the prompt still holds the tags, read as input)
    assert counts == {"calls": 0, "no_call": 6} and meta["rows"]["train"] == 6
    assert settings.key().endswith("-self") and FitSettings().key() == "n32e2lr0.001s0"
