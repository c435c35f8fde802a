"""A Hugging Face tokenizer rebuilt from a GGUF file's SentencePiece vocabulary, as llama.cpp reads it.

GGUF files with ``tokenizer.ggml.model == "llama"`` carry a SentencePiece vocabulary (pieces, scores, token
types) without merges. llama.cpp tokenizes them by repeatedly joining the adjacent pair whose joined piece has
the highest score: byte-pair encoding ranked by score. transformers 5.17 converts Gemma's such vocabularies
into a Unigram model instead, which reads the same scores as log-probabilities and prefers short pieces
("world" becomes ``▁w`` ``or`` ``ld``), and drops the BOS the file asks for. :func:`tokenizer_from_gguf` builds
the BPE tokenizer llama.cpp uses: merges ranked by the joined piece's score, byte fallback, control tokens as
special tokens, user-defined tokens matched whole, BOS/EOS added as the file's flags say.
"""

from __future__ import annotations

from pathlib import Path

from fctune.io import DataFileError

# llama.cpp's token types (gguf-py ``TokenType``).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPACE = "\u2581"


def read_gguf_vocab(path: str | Path) -> dict:
    """The ``tokenizer.ggml.*`` fields of a GGUF file as plain Python values."""
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields

    def array(key, cast, required=True):
        if key not in fields:
            if required:
                raise DataFileError(f"{path}: the GGUF file has no {key} field, so no tokenizer can be built from it")
            return None
        f = fields[key]
        return [cast(f.parts[i]) for i in f.data]

    def scalar(key, default=None):
        f = fields.get(key)
        return default if f is None else f.contents()

    vocab = {"model": scalar("tokenizer.ggml.model"),
             "tokens": array("tokenizer.ggml.tokens", lambda p: bytes(p).decode("utf-8")),
             "merges": "tokenizer.ggml.merges" in fields,
             "chat_template": scalar("tokenizer.chat_template")}
    vocab["scores"] = array("tokenizer.ggml.scores", lambda p: float(p[0]), required=False)
    vocab["types"] = (array("tokenizer.ggml.token_type", lambda p: int(p[0]), required=False)
                      or [NORMAL] * len(vocab["tokens"]))
    for name in ("bos", "eos", "unknown", "padding"):
        vocab[f"{name}_id"] = scalar(f"tokenizer.ggml.{name}_token_id")
    for flag, default in (("add_bos_token", True), ("add_eos_token", False), ("add_space_prefix", True)):
        vocab[flag] = bool(scalar(f"tokenizer.ggml.{flag}", default))
    return vocab


def needs_rebuild(vocab: dict) -> bool:
    """True for a SentencePiece vocabulary with scores and no merges (the case transformers may get wrong)."""
    return vocab["model"] == "llama" and vocab["scores"] is not None and not vocab["merges"]


def score_ranked_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """Every split of a normal piece into two normal pieces, best-scored joined piece first.

    This is how SentencePiece's BPE and llama.cpp's ``llm_tokenizer_spm`` choose the next pair to join, so a
    BPE model with these merges segments text the same way.
    """
    ids = {t: i for i, t in enumerate(tokens) if types[i] == NORMAL}
    ranked = []
    for piece, i in ids.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in ids and right in ids:
                ranked.append((-scores[i], i, ids[left], ids[right], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def tokenizer_from_gguf(path: str | Path, vocab: dict | None = None):
    """A ``PreTrainedTokenizerFast`` equal to llama.cpp's tokenization of this GGUF's SentencePiece vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    vocab = vocab or read_gguf_vocab(path)
    if not needs_rebuild(vocab):
        raise DataFileError(f"{path}: tokenizer.ggml.model is {vocab['model']!r} with merges={vocab['merges']}; "
                         "only SentencePiece vocabularies without merges are rebuilt")
    tokens, types = vocab["tokens"], vocab["types"]

    def name(key):
        i = vocab[key]
        return tokens[i] if i is not None and 0 <= i < len(tokens) else None

    unk = name("unknown_id")
    bpe = BPE({t: i for i, t in enumerate(tokens)}, score_ranked_merges(tokens, vocab["scores"], types),
              unk_token=unk, fuse_unk=True, byte_fallback=BYTE in types)
    tok = Tokenizer(bpe)
    steps = [normalizers.Replace(" ", SPACE)]
    if vocab["add_space_prefix"]:
        steps.insert(0, normalizers.Prepend(SPACE))
    tok.normalizer = normalizers.Sequence(steps)
    tok.decoder = decoders.Sequence(
        [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
        + ([decoders.Strip(content=" ", left=1)] if vocab["add_space_prefix"] else []))
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t, k in zip(tokens, types, strict=True)
                    if k == USER_DEFINED])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types, strict=True)
                            if k in (CONTROL, UNKNOWN)])

    bos, eos = name("bos_id"), name("eos_id")
    single, pair, specials = "$A", "$A $B", []
    if vocab["add_bos_token"] and bos:
        single, pair = f"{bos} {single}", f"{bos} $A {bos} $B"
        specials.append((bos, vocab["bos_id"]))
    if vocab["add_eos_token"] and eos:
        single, pair = f"{single} {eos}", f"{pair} {eos}"
        specials.append((eos, vocab["eos_id"]))
    tok.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token=unk, pad_token=name("padding_id"),
        add_bos_token=vocab["add_bos_token"], add_eos_token=vocab["add_eos_token"],
        chat_template=vocab["chat_template"], clean_up_tokenization_spaces=False)


def register_added_tokens(tokenizer, vocab: dict) -> list[str]:
    """Mark the GGUF's control and user-defined tokens as added tokens of a transformers-converted tokenizer, so
    that they are matched whole, as llama.cpp and the model's own tokenizer read them. transformers 5.17's conversion
    leaves some out (Qwen2.5's ``<tool_call>`` then becomes ``<``, ``tool``, ``_call``, ``>``: a prompt the model
    never saw in training). Ids do not change; returns the tokens registered."""
    from tokenizers import AddedToken

    have = set(tokenizer.get_added_vocab())
    new = [(t, ty) for t, ty in zip(vocab["tokens"], vocab["types"], strict=True)
           if ty in (CONTROL, USER_DEFINED) and t not in have]
    if not new:
        return []
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t, _ in new}
    tokenizer.add_tokens([AddedToken(t, special=ty == CONTROL, normalized=False) for t, ty in new])
    moved = [t for t, _ in new if tokenizer.convert_tokens_to_ids(t) != ids[t]]
    if moved:
        raise DataFileError(f"registering the GGUF's added tokens changed their ids: {moved[:5]}")
    return [t for t, _ in new]
