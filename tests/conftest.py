"""Shared fixtures: tiny random-weight models the tests build, and prepared data."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (-n N) each worker gets its share of the cores, set before torch is imported, so that the
# workers' torch threads and the subprocesses and servers they start do not contend for the same cores.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _workers))


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir():
    """The packaged SmolLM2 tokenizer (converted once from the GGUF into the fctune cache)."""
    from fctune.models import materialize, resolve_model

    return materialize(resolve_model("smollm2"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_tokenizer_dir):
    """A 2-layer random-weight Llama with SmolLM2's tokenizer and chat template (a few MB, trains in seconds)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                      tie_word_embeddings=True, initializer_range=0.2)  # logits big enough to learn from
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def phase1_data(tmp_path_factory):
    from fctune.data import PrepareConfig, prepare

    d = tmp_path_factory.mktemp("datasets")
    prepare(PrepareConfig(phase=1, output_dir=str(d), tokenizer="none"))
    return d
