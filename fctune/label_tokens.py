"""Special tokens the training labels need but the base model cannot tell apart, and how LoRA is told to train them.

Why this exists: Qwen2.5-Coder-0.5B-Instruct's ``<tool_call>`` and ``</tool_call>`` (and the other unused added
tokens) have the same output-embedding row, a little shorter than ``<|im_start|>``'s. Their logits are then equal
whatever the hidden state, so no LoRA on the attention/MLP projections can make the model write one rather than the
other: greedy decoding picks ``<|im_start|>`` where the label says ``<tool_call>``, and a fine-tune learns every
call's JSON yet still writes ``<|im_start|>{...}<|im_start|>`` (RESULTS.md). The remedy is to train those rows
too: PEFT's ``trainable_token_indices`` trains only the rows named, beside the LoRA weights, and saves them in the
adapter.
"""
from __future__ import annotations

import logging

from fctune.errors import UserError

log = logging.getLogger(__name__)

# Two rows whose cosine similarity is at least this are the same row for the model (rounding and quantisation
# leave differences in the third decimal; trained tokens' rows are far apart: about 0.9 at most among Qwen's).
SAME_ROW_COSINE = 0.999


def label_token_ids(dataset) -> set[int]:
    """Every token id that is a training target (``assistant_masks`` set) in a tokenised dataset."""
    ids: set[int] = set()
    for row in dataset:
        ids.update(t for t, m in zip(row["input_ids"], row["assistant_masks"], strict=True) if m)
    return ids


def indistinguishable_tokens(weight, added_ids: list[int], targets: set[int]) -> list[int]:
    """The added tokens among ``targets`` whose row of ``weight`` (output embeddings) is, up to
    ``SAME_ROW_COSINE``, the row of another added token: the model gives them equal logits."""
    import torch

    added = sorted(i for i in set(added_ids) if i < weight.shape[0])
    if len(added) < 2:
        return []
    rows = torch.nn.functional.normalize(weight[added].detach().float(), dim=1)
    sim = rows @ rows.T
    sim.fill_diagonal_(-1.0)
    best_match = sim.max(dim=1).values.tolist()
    return [t for t, best in zip(added, best_match, strict=True) if t in targets and best >= SAME_ROW_COSINE]


def choose_trainable_tokens(spec: str, model, tokenizer, targets: set[int]) -> dict:
    """Resolve ``--trainable-tokens`` (auto | none | comma-separated tokens) to ids, with the reason recorded."""
    if spec == "none":
        return {"mode": "none", "ids": [], "tokens": []}
    if spec == "auto":
        out = model.get_output_embeddings()
        if out is None:
            return {"mode": "auto", "ids": [], "tokens": [], "why": "the model has no output embeddings to check"}
        ids = indistinguishable_tokens(out.weight, list(tokenizer.added_tokens_decoder), targets)
        why = (f"added tokens in the training labels whose output-embedding row is another added token's "
               f"(cosine >= {SAME_ROW_COSINE}): the model gives them equal logits")
    else:
        ids = []
        for tok in (t.strip() for t in spec.split(",") if t.strip()):
            tid = tokenizer.convert_tokens_to_ids(tok)
            if tid is None or tid == tokenizer.unk_token_id:
                raise UserError(f"--trainable-tokens {tok!r}: not a token of this tokenizer")
            ids.append(tid)
        why = "named with --trainable-tokens"
    ids = sorted(set(ids))
    return {"mode": spec if spec == "auto" else "list", "ids": ids,
            "tokens": tokenizer.convert_ids_to_tokens(ids), "why": why}


def peft_token_indices(model, ids: list[int]) -> dict[str, list[int]] | None:
    """``LoraConfig.trainable_token_indices`` for these ids: the input embedding, and the output embedding when the
    two are not tied (PEFT keeps tied ones tied itself)."""
    if not ids:
        return None
    names = {id(m): n.rsplit(".", 1)[-1] for n, m in model.named_modules()}
    out = {names[id(model.get_input_embeddings())]: list(ids)}
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is model.get_input_embeddings().weight
    if head is not None and not tied:
        out[names[id(head)]] = list(ids)
    return out
