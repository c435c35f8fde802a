"""GGUF tokenizers: the SentencePiece rebuild checked against llama.cpp reading the same file, and the fast
conversion of byte-pair vocabularies checked against transformers' own GGUF path.

The rebuild's tests write a small GGUF whose vocabulary is learned here by byte-pair encoding (scores = -rank, as
SentencePiece writes them), with control, user-defined and byte tokens, and no merges: the shape of Gemma's.
"""

import collections
from pathlib import Path

import pytest

from fctune.gguf_tokenizer import (
    FAST_CONVERSION_ARCHS,
    converted_by_transformers,
    needs_rebuild,
    read_gguf_metadata,
    read_gguf_vocab,
    score_ranked_merges,
    tokenizer_from_gguf,
)

CORPUS = ("please book a flight from paris to new york tomorrow morning. the weather in zurich is cold. "
          "call get_weather with the city and the unit. book the hotel for two nights in paris. "
          "booking flights and hotels: the assistant calls the booking function.")
TEXTS = [
    "please book a flight to zurich",
    " the  hotel\n\nin Paris!",                        # double space, a user-defined token, unseen capitals
    "<start_of_turn>user\nbook a hotel<end_of_turn>\n<start_of_turn>model\n",
    "émoji 🤖 and 中文",                                  # byte fallback
    "booking flights, bookings, booked",
    "the weather in the city of the booking",
    "unitthea old", "toandhotel he", "bookingisin he",  # words run together: the merge order decides
    "",
    "   ",
]


def learn_bpe(text: str, n_merges: int) -> tuple[list[str], list[str]]:
    words = collections.Counter("\u2581" + w for w in text.split(" "))
    seqs = {w: list(w) for w in words}
    pieces = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(seqs[w], seqs[w][1:], strict=False):
                pairs[a, b] += c
        if not pairs:
            break
        (a, b), _ = pairs.most_common(1)[0]
        pieces.append(a + b)
        for w in words:
            s, out, i = seqs[w], [], 0
            while i < len(s):
                if s[i:i + 2] == [a, b]:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    return sorted(set(text.replace(" ", "\u2581"))), pieces


@pytest.fixture(scope="module")
def spm_gguf(tmp_path_factory):
    gguf = pytest.importorskip("gguf")
    chars, pieces = learn_bpe(CORPUS, 150)
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "\n\n"]
    types = [3, 3, 3, 2, 3, 3, 4]
    tokens += [f"<0x{i:02X}>" for i in range(256)]
    types += [6] * 256
    scores = [0.0] * len(tokens)
    for rank, piece in enumerate(pieces + chars):
        tokens.append(piece)
        types.append(1)
        scores.append(-float(rank))
    path = tmp_path_factory.mktemp("gguf") / "spm-vocab.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(8)
    w.add_head_count(1)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_rebuilt_tokenizer_equals_llama_cpp_on_the_same_file(spm_gguf):
    llama_cpp = pytest.importorskip("llama_cpp")
    ref = llama_cpp.Llama(model_path=str(spm_gguf), vocab_only=True, verbose=False)
    tok = tokenizer_from_gguf(spm_gguf)
    for text in TEXTS:
        ours = tok(text).input_ids
        theirs = ref.tokenize(text.encode(), add_bos=True, special=True)
        assert ours == theirs, (text, tok.convert_ids_to_tokens(ours), tok.convert_ids_to_tokens(theirs))
    # whole learned words stay whole, as llama.cpp keeps them
    assert tok.tokenize(" book a flight") == ["\u2581book", "\u2581a", "\u2581flight"]


def test_rebuilt_tokenizer_round_trips_and_keeps_special_tokens_whole(spm_gguf):
    tok = tokenizer_from_gguf(spm_gguf)
    assert (tok.bos_token, tok.eos_token, tok.unk_token, tok.pad_token) == ("<bos>", "<eos>", "<unk>", "<pad>")
    for text in TEXTS:
        assert tok.decode(tok(text).input_ids, skip_special_tokens=False) == "<bos>" + text
    ids = tok("<start_of_turn>model\n").input_ids
    assert ids[:2] == [2, tok.convert_tokens_to_ids("<start_of_turn>")]


def test_only_sentencepiece_vocabularies_without_merges_are_rebuilt(spm_gguf):
    vocab = read_gguf_vocab(spm_gguf)
    assert needs_rebuild(vocab)
    assert not needs_rebuild(dict(vocab, merges=True))
    assert not needs_rebuild(dict(vocab, model="gpt2"))
    with pytest.raises(ValueError, match="only SentencePiece vocabularies"):
        tokenizer_from_gguf(spm_gguf, dict(vocab, model="gpt2"))


def test_merges_are_ranked_by_the_joined_pieces_score():
    tokens = ["a", "b", "c", "ab", "bc", "abc"]
    scores = [0, 0, 0, -2.0, -1.0, -3.0]        # "bc" outranks "ab"
    merges = score_ranked_merges(tokens, scores, [1] * 6)
    assert merges == [("b", "c"), ("a", "b"), ("a", "bc"), ("ab", "c")]


def test_template_less_gemma_vocabulary_gets_gemma_turns_and_stops_at_end_of_turn(spm_gguf):
    from fctune.models import stop_token_ids
    from fctune.render import PromptRenderer
    from fctune.schema import Example, Expected, Message

    tok = tokenizer_from_gguf(spm_gguf)
    r = PromptRenderer(tok)
    assert r.describe()["chat_template_fallback"] == "gemma"
    ex = Example(id="x1", messages=[Message(role="system", content="be brief"), Message(role="user", content="hi")],
                 tools=[], expected=Expected(kind="text", text="hello"))
    assert r.prompt(ex) == "<bos><start_of_turn>user\nbe brief\n\nhi<end_of_turn>\n<start_of_turn>model\n"
    feats = r.training_features(ex)
    marked = tok.decode([t for t, m in zip(feats["input_ids"], feats["assistant_masks"], strict=True) if m])
    assert marked == "hello<end_of_turn>\n"
    assert tok.convert_tokens_to_ids("<end_of_turn>") in stop_token_ids(tok)


def test_a_gguf_without_a_vocabulary_is_a_clear_error(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "no-vocab.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ValueError, match=r"no-vocab\.gguf: the GGUF file has no tokenizer\.ggml\.tokens field"):
        read_gguf_vocab(path)


def test_the_fast_reader_reads_what_gguf_reads(spm_gguf):
    gguf = pytest.importorskip("gguf")
    fields = gguf.GGUFReader(str(spm_gguf)).fields

    def field(key):
        f = fields[key]
        return [f.parts[i].tolist() if f.types[-1] != gguf.GGUFValueType.STRING else bytes(f.parts[i]).decode()
                for i in f.data]

    vocab = read_gguf_vocab(spm_gguf)
    assert vocab["tokens"] == field("tokenizer.ggml.tokens")
    assert vocab["scores"] == [x[0] for x in field("tokenizer.ggml.scores")]
    assert vocab["types"] == [x[0] for x in field("tokenizer.ggml.token_type")]
    assert (vocab["bos_id"], vocab["eos_id"], vocab["unknown_id"], vocab["padding_id"]) == (2, 1, 3, 0)
    assert (vocab["add_bos_token"], vocab["add_space_prefix"], vocab["add_eos_token"]) == (True, False, False)
    assert vocab["model"] == "llama" and not vocab["merges"] and vocab["chat_template"] is None


def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 not a gguf file at all")
    with pytest.raises(ValueError, match=r"model\.gguf: not a GGUF file this reader understands"):
        read_gguf_metadata(path)


def _saved_files(tokenizer, folder) -> dict[str, bytes]:
    tokenizer.save_pretrained(folder)
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


def _byte_level_gguf(path, arch: str) -> None:
    """A GGUF with a small byte-level BPE vocabulary (GPT-2's 256 byte symbols, a few merges, control and
    user-defined tokens, a chat template): the shape of SmolLM2's and Qwen2.5's, small enough for transformers'
    own GGUF path to read in a blink."""
    gguf = pytest.importorskip("gguf")
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
                 *range(ord("\u00ae"), ord("\u00ff") + 1)]
    rest = [b for b in range(256) if b not in printable]
    symbols = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(rest))]
    merges = ["\u0120 t", "h e", "\u0120t he", "i n", "\u0120 a", "o o", "\u0120 b", "\u0120b oo", "k i", "n g"]
    tokens = symbols + [m.replace(" ", "") for m in merges] + ["<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                                                "<tool_call>"]
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(8)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2" if arch == "qwen2" else "smollm")
    w.add_token_list(tokens)
    w.add_token_types([1] * (len(tokens) - 4) + [3, 3, 3, 4])
    w.add_token_merges(merges)
    w.add_bos_token_id(len(tokens) - 4)
    w.add_eos_token_id(len(tokens) - 2)
    w.add_pad_token_id(len(tokens) - 4)
    w.add_add_bos_token(False)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("arch", FAST_CONVERSION_ARCHS)
def test_the_fast_conversion_saves_what_transformers_own_gguf_path_saves(arch, tmp_path):
    """Each architecture's converter, tokenizer class (qwen2: Qwen2Tokenizer, llama: TokenizersBackend) and saved
    settings, byte for byte."""
    from transformers import AutoTokenizer

    src = tmp_path / "model.gguf"
    _byte_level_gguf(src, arch)
    fast = converted_by_transformers(src, read_gguf_metadata(src))
    theirs = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=src.name)
    assert type(fast) is type(theirs)
    files = _saved_files(theirs, tmp_path / "theirs")
    assert {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= set(files)
    assert _saved_files(fast, tmp_path / "fast") == files
    text = "<|im_start|>user\n the booking<|im_end|>"
    assert fast(text).input_ids == theirs(text).input_ids


@pytest.mark.slow
def test_the_fast_conversion_of_the_packaged_model_is_transformers_own(tmp_path):
    """The offline default, SmolLM2 (49,152 tokens, its real merges and special tokens): byte-identical files.
    (Qwen2.5's, the LLM stand-in's, were checked the same way once: 2.8 s against 40 s, identical; BENCHMARKS.md.)"""
    from transformers import AutoTokenizer

    from fctune.models import resolve_model

    src = Path(resolve_model("smollm2").location)
    metadata = read_gguf_metadata(src)
    assert metadata["general.architecture"] in FAST_CONVERSION_ARCHS
    theirs = _saved_files(AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name), tmp_path / "theirs")
    assert _saved_files(converted_by_transformers(src, metadata), tmp_path / "fast") == theirs


def test_an_architecture_not_checked_is_left_to_transformers(tmp_path):
    assert converted_by_transformers(tmp_path / "x.gguf", {"general.architecture": "phi3"}) is None
    assert converted_by_transformers(tmp_path / "x.gguf", {"general.architecture": "llama",
                                                           "general.name": "Mistral-7B-Instruct"}) is None
