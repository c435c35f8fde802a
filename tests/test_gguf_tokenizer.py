"""The GGUF SentencePiece tokenizer rebuild, checked against llama.cpp reading the same file.

The test writes a small GGUF whose vocabulary is learned here by byte-pair encoding (scores = -rank, as
SentencePiece writes them), with control, user-defined and byte tokens, and no merges: the shape of Gemma's.
"""

import collections

import pytest

from fctune.gguf_tokenizer import needs_rebuild, read_gguf_vocab, score_ranked_merges, tokenizer_from_gguf

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
