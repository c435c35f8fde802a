"""Hugging Face tokenizers from a GGUF file's metadata, read fast and built as llama.cpp reads them.

GGUF files with ``tokenizer.ggml.model == "llama"`` carry a SentencePiece vocabulary (pieces, scores, token
types) without merges. llama.cpp tokenizes them by repeatedly joining the adjacent pair whose joined piece has
the highest score: byte-pair encoding ranked by score. transformers 5.17 converts Gemma's such vocabularies
into a Unigram model instead, which reads the same scores as log-probabilities and prefers short pieces
("world" becomes ``▁w`` ``or`` ``ld``), and drops the BOS the file asks for. :func:`tokenizer_from_gguf` builds
the BPE tokenizer llama.cpp uses: merges ranked by the joined piece's score, byte fallback, control tokens as
special tokens, user-defined tokens matched whole, BOS/EOS added as the file's flags say.

Byte-pair vocabularies with merges (``gpt2``: SmolLM2, Qwen2.5, Llama 3) are converted by transformers' own
converter (:func:`converted_by_transformers`), fed by one fast read of the metadata.
"""

from __future__ import annotations

import struct
from pathlib import Path

from fctune.io import DataFileError

# llama.cpp's token types (gguf-py ``TokenType``).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPACE = "\u2581"
# The metadata arrays read as lists of strings; the reader skips other string arrays, counting them.
VOCABULARY_KEYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.merges")
# Architectures whose tokenizer :func:`converted_by_transformers` builds; the files it saves are checked byte for
# byte against ``AutoTokenizer.from_pretrained(gguf_file=...)``'s (tests/test_gguf_tokenizer.py: a small file of
# each, and SmolLM2's; Qwen2.5's checked once, BENCHMARKS.md). transformers renames some architectures on the way
# (a llama file named "mistral" becomes mistral), so any other is left to transformers' own, slower path.
FAST_CONVERSION_ARCHS = ("llama", "qwen2")


def read_gguf_metadata(path: str | Path) -> dict:
    """A GGUF file's metadata (its vocabulary and merges as lists of strings), without its tensors.

    transformers' own reader (``struct`` over a memory map) is used rather than gguf's ``GGUFReader``, which makes
    a numpy view of every array element and is two orders of magnitude slower on a large vocabulary (it is what
    ``AutoTokenizer.from_pretrained(gguf_file=...)`` reads with, twice; BENCHMARKS.md)."""
    from transformers.integrations.gguf import read_gguf_metadata as read

    try:
        metadata, _ = read(str(path), VOCABULARY_KEYS)
    except (ValueError, struct.error, UnicodeDecodeError) as e:
        raise DataFileError(f"{path}: not a GGUF file this reader understands ({e})") from None
    return metadata


def read_gguf_vocab(path: str | Path, metadata: dict | None = None) -> dict:
    """The ``tokenizer.ggml.*`` fields of a GGUF file as plain Python values (``metadata``: the file's, when read
    already)."""
    fields = read_gguf_metadata(path) if metadata is None else metadata

    def array(key, required=True):
        if key not in fields:
            if required:
                raise DataFileError(f"{path}: the GGUF file has no {key} field, so no tokenizer can be built from it")
            return None
        return list(fields[key])

    vocab = {"model": fields.get("tokenizer.ggml.model"),
             "tokens": array("tokenizer.ggml.tokens"),
             "merges": "tokenizer.ggml.merges" in fields,
             "chat_template": fields.get("tokenizer.chat_template")}
    # numeric arrays come as Python floats and ints (struct), so they are used as they are
    vocab["scores"] = array("tokenizer.ggml.scores", required=False)
    vocab["types"] = array("tokenizer.ggml.token_type", required=False) or [NORMAL] * len(vocab["tokens"])
    for name in ("bos", "eos", "unknown", "padding"):
        vocab[f"{name}_id"] = fields.get(f"tokenizer.ggml.{name}_token_id")
    for flag, default in (("add_bos_token", True), ("add_eos_token", False), ("add_space_prefix", True)):
        vocab[flag] = bool(fields.get(f"tokenizer.ggml.{flag}", default))
    return vocab


def converted_by_transformers(path: str | Path, metadata: dict):
    """The tokenizer ``AutoTokenizer.from_pretrained(folder, gguf_file=...)`` makes of this file (the same
    converter, class and settings; the files it saves are byte-identical), from metadata read once, fast; None for
    an architecture outside :data:`FAST_CONVERSION_ARCHS`. transformers 5.17 reads a GGUF's metadata with
    ``GGUFReader`` for every architecture but one, twice, which costs tens of seconds a load on a small CPU; this
    reads it once, fast (BENCHMARKS.md)."""
    from transformers import TokenizersBackend
    from transformers.integrations.ggml import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer
    from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES, tokenizer_class_from_name

    arch = metadata.get("general.architecture")
    if arch not in FAST_CONVERSION_ARCHS or "mistral" in str(metadata.get("general.name", "")).lower():
        return None
    # the metadata keys renamed as transformers' GGUF loader renames them: the converter's input and the
    # tokenizer's settings
    sections = {section: {name: metadata[f"tokenizer.{key}"] for key, name in renames.items()
                          if f"tokenizer.{key}" in metadata}
                for section, renames in GGUF_TOKENIZER_MAPPING.items()}
    backend, settings = convert_gguf_tokenizer(arch, sections["tokenizer"])
    if settings.get("add_prefix_space", False) is None:
        # transformers' GGUF path reads add_prefix_space before the converter's settings arrive, so a converter's
        # None stands as the default, False (what its saved tokenizer_config.json says)
        settings["add_prefix_space"] = False
    name = TOKENIZER_MAPPING_NAMES.get(arch)
    cls = tokenizer_class_from_name(name) if name else TokenizersBackend
    # from_pretrained, as transformers' path goes, so the saved settings are the same (is_local, the file's folder)
    return cls.from_pretrained(str(Path(path).parent), tokenizer_object=backend,
                               **sections["tokenizer_config"], **settings)


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
