"""The local backend's decoding engines: the same greedy answers, told apart in the run's identity."""

import pytest

from fctune.offline.generator import generate_examples


@pytest.mark.slow
def test_every_engine_writes_the_same_answers(tiny_model_dir, monkeypatch):
    # fp32 on the CPU: no batch-shape rounding, so greedy decoding must give the same tokens whichever way the rows
    # are batched (padded on the left in threes; the same over a static cache, the second batch of one row filled
    # up to three with copies; or continuous with a paged cache)
    from transformers.cache_utils import StaticCache

    from fctune.backends.local import STATIC_CACHE_MIN, LocalBackend

    static_caches = []  # the static engine must really decode over a static cache (one length for the call)
    made = StaticCache.__init__

    def spy(self, *a, **kw):
        static_caches.append(kw.get("max_cache_len"))
        made(self, *a, **kw)

    monkeypatch.setattr(StaticCache, "__init__", spy)
    rows = generate_examples(12, seed=5)[:4]
    answers, identities = {}, {}
    for engine in ("padded", "static", "continuous"):
        backend = LocalBackend(tiny_model_dir, max_new_tokens=8, batch_size=3, dtype="fp32", engine=engine)
        answers[engine] = {g.id: (g.output, g.completion_tokens, g.finish_reason) for g in backend.generate(rows)}
        identities[engine] = backend.identity()
        assert backend.stats()["examples"] == len(rows)
    assert set(answers["padded"]) == {e.id for e in rows}
    assert answers["continuous"] == answers["padded"]
    assert answers["static"] == answers["padded"]
    assert len(static_caches) == 2 and len(set(static_caches)) == 1 and static_caches[0] == STATIC_CACHE_MIN
    assert all(n for _, n, _ in answers["padded"].values())
    assert identities["padded"]["engine"] == "padded" and identities["padded"]["batch_size"] == 3
    # after how many steps a finished answer leaves its batch: the padded engine's segments on a CPU, continuous
    # batching's next step; the static engine's batches keep their shape
    assert {e: i["rows_leave_every"] for e, i in identities.items()} == {"padded": 16, "static": None,
                                                                        "continuous": 1}
    assert identities["continuous"]["engine"] == "continuous" and identities["continuous"]["batch_size"] is None
    assert identities["static"]["engine"] == "static" and identities["static"]["batch_size"] == 3


def test_engine_is_checked_and_padded_is_the_default(tiny_model_dir):
    from fctune.backends.local import LocalBackend

    with pytest.raises(ValueError, match="engine 'paged'"):
        LocalBackend(tiny_model_dir, engine="paged")
    assert LocalBackend(tiny_model_dir, device="cpu").engine == "padded"


@pytest.mark.parametrize("ids, window, period", [
    ([5, 6, 7] + [1] * 8, 8, 1),                 # one token over and over
    ([9] + [1, 2] * 6, 8, 2),                    # a two-token block
    ([3, 4, 5] * 5, 12, 3),                      # the whole tail one block, four copies
    ([3, 4, 5] * 3 + [3, 4], 8, None),           # a three-token block fits only 2.7 times into 8 tokens
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 8, None),  # no repetition
    ([1, 1, 1, 1, 1, 1, 1, 2], 8, None),         # the loop left at the last token
    ([1] * 7, 8, None),                          # fewer tokens than the window
    ([1, 2] * 6, 9, 2),                          # the window need not be a multiple of the period
    ([1, 2] * 6, 7, None),                       # 7 tokens hold under four copies of a two-token block
])
def test_repeating_period_finds_a_verbatim_loop_at_the_tail(ids, window, period):
    import torch

    from fctune.backends.local import RepeatStop, repeating_period

    assert repeating_period(ids, window) == period
    # the stopping criterion applies the same rule to every row of a batch at once, on tensors
    stop = RepeatStop(window, prompt_len=0, rows=1)
    assert stop(torch.tensor([ids]), None).tolist() == [period is not None]
    assert stop.fired == [len(ids) if period else None]


@pytest.mark.slow
def test_stop_repeats_ends_looping_answers_early_and_leaves_the_others_alone(tiny_model_dir, tmp_path):
    # the tiny model (random weights) writes 64 different tokens a row: the stop must not touch them; with its layers'
    # weights halved it writes one token over and over: each answer must stop once 16 tokens loop, as the start of
    # the answer it gives without the stop (same batches, fp32), marked "repeat"
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from fctune.backends.local import LocalBackend

    looping = tmp_path / "looping"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".layers." in name:
                p.mul_(0.5)
    model.save_pretrained(looping)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(f"{tiny_model_dir}/{f}", looping / f)
    rows = generate_examples(12, seed=5)[:4]

    def answers(model_dir, stop_repeats):
        backend = LocalBackend(str(model_dir), max_new_tokens=64, batch_size=2, dtype="fp32", stop_repeats=stop_repeats)
        return backend, {g.id: (g.output, g.finish_reason, g.completion_tokens) for g in backend.generate(rows)}

    free, free_stopped = answers(tiny_model_dir, 0)[1], answers(tiny_model_dir, 16)[1]
    assert free_stopped == free and {r for _, r, _ in free.values()} == {"length"}
    full_backend, full = answers(looping, 0)
    stop_backend, stopped = answers(looping, 16)
    assert stop_backend.identity()["stop_repeats"] == 16 and full_backend.identity()["stop_repeats"] is None
    for rid, (out, reason, n) in stopped.items():
        assert full[rid][1] == "length" and full[rid][2] == 64
        assert reason == "repeat" and n == 16 and full[rid][0].startswith(out)
    assert stop_backend.stats()["generated_tokens"] == 16 * len(rows)
    from fctune.errors import UserError

    with pytest.raises(UserError, match="continuous"):
        LocalBackend(tiny_model_dir, engine="continuous", stop_repeats=16)
    with pytest.raises(UserError, match="at least 8"):
        LocalBackend(tiny_model_dir, stop_repeats=4)


def test_preallocated_cache_decodes_the_tokens_dynamic_cache_does(tiny_model_dir, monkeypatch):
    """The CPU's padded engine writes keys and values into growing buffers instead of concatenating the cache every
    step: greedy answers of a left-padded batch are the same tokens as with transformers' DynamicCache while the
    buffers grow many times over (growth forced down to 2 tokens); a layer whose rows were selected or cropped
    (replaced tensors) is copied into a new buffer and goes on with the right values."""
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    import fctune.backends.local as local

    monkeypatch.setattr(local, "KV_GROWTH_MIN", 2)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    ids = torch.randint(5, 1000, (3, 12), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding, as the padded engine makes it
    mask[2, :9] = 0
    layer_class = local._preallocated_layer_class()
    update, buffers = layer_class.update, []

    def spy(self, *a, **kw):  # every buffer the first layer wrote into
        result = update(self, *a, **kw)
        if self is cache.layers[0] and self._keys_buffer.data_ptr() not in buffers:
            buffers.append(self._keys_buffer.data_ptr())
        return result

    monkeypatch.setattr(layer_class, "update", spy)
    out = {}
    for kind in ("dynamic", "preallocated"):
        cache = DynamicCache(config=model.config) if kind == "dynamic" else local.preallocated_cache(model.config)
        with torch.inference_mode():
            out[kind] = model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache, max_new_tokens=40,
                                       min_new_tokens=40, do_sample=False, pad_token_id=0)
    layer = cache.layers[0]
    assert isinstance(layer, layer_class) and layer.keys.shape[-2] == 12 + 40 - 1  # the last token is never fed back
    assert layer.keys.data_ptr() == layer._keys_buffer.data_ptr()  # a view of the buffer, not a copy
    assert len(buffers) == 4  # room for 18, 28, 43, then 66 tokens: the buffer grew three times while decoding
    assert torch.equal(out["dynamic"], out["preallocated"])

    layer = local.preallocated_cache(model.config).layers[0]
    k = torch.randn(3, 2, 5, 4)
    layer.update(k, k + 1)
    layer.batch_select_indices(torch.tensor([0, 2]))  # rows 0 and 2 kept: tensors of their own now
    layer.crop(-1)  # and the last position dropped
    new = torch.randn(2, 2, 1, 4)
    keys, values = layer.update(new, new + 1)
    assert torch.equal(keys, torch.cat([k[[0, 2], :, :4], new], dim=-2))
    assert torch.equal(values, torch.cat([k[[0, 2], :, :4] + 1, new + 1], dim=-2))
    assert keys.data_ptr() == layer._keys_buffer.data_ptr()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_grouped_kv_attention_decodes_the_tokens_sdpa_does(tiny_model_dir, monkeypatch, dtype):
    """On a CPU the padded and static engines hand the grouped keys and values (the tiny model: 2 KV heads for 4
    query heads) to torch's attention as they are: greedy answers of a left-padded batch are the same tokens as with
    transformers' SDPA attention, which repeats them per query head at every masked call, and this one never does."""
    import torch
    import transformers.integrations.sdpa_attention as sdpa_attention
    from transformers import AutoModelForCausalLM

    from fctune.backends import local

    repeats = []
    repeat_kv = sdpa_attention.repeat_kv
    monkeypatch.setattr(sdpa_attention, "repeat_kv", lambda x, n: repeats.append(n) or repeat_kv(x, n))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=getattr(torch, dtype)).eval()
    ids = torch.randint(5, 1000, (3, 12), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding, as the padded engine makes it
    mask[2, :8] = 0
    out, copies = {}, {}
    for impl in ("sdpa", local._register_grouped_kv_sdpa()):
        model.set_attn_implementation(impl)
        repeats.clear()
        with torch.inference_mode():
            out[impl] = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=24, min_new_tokens=24,
                                       do_sample=False, pad_token_id=0)
        copies[impl] = len(repeats)
    assert copies == {"sdpa": 2 * 2 * 24, local.GROUPED_KV_SDPA: 0}  # 2 layers x keys and values x 24 steps
    assert torch.equal(out["sdpa"], out[local.GROUPED_KV_SDPA])


def test_cpu_engines_use_grouped_kv_attention_but_continuous_batching(tiny_model_dir):
    from fctune.backends.local import GROUPED_KV_SDPA, LocalBackend

    implementations = {engine: LocalBackend(tiny_model_dir, dtype="fp32", engine=engine).model.config
                       ._attn_implementation for engine in ("padded", "static", "continuous")}
    assert implementations == {"padded": GROUPED_KV_SDPA, "static": GROUPED_KV_SDPA, "continuous": "sdpa"}


def test_prefilling_each_prompt_alone_gives_the_padded_batch_answers(tiny_model_dir, monkeypatch):
    """The CPU's padded engine prefills each prompt on its own, laid out as the left-padded batch: the same answers
    as prefilling the padded batch at once, and the prefill really ran one row at a time, without padding."""
    from fctune.backends.local import LocalBackend

    rows = generate_examples(12, seed=7)[:5]
    backend = LocalBackend(tiny_model_dir, max_new_tokens=24, batch_size=5, dtype="fp32")
    lengths = [len(backend.tokenizer(backend.prompt_for(e), add_special_tokens=False)["input_ids"]) for e in rows]
    assert len(set(lengths)) > 1  # prompts of different lengths: the batch is padded
    passes = []
    backend.model.register_forward_pre_hook(lambda m, a, kw: passes.append(tuple(kw["input_ids"].shape)),
                                            with_kwargs=True)
    answers = {}
    for rows_alone in (False, True):
        backend.prefill_rows = rows_alone
        passes.clear()
        answers[rows_alone] = {g.id: (g.output, g.completion_tokens, g.finish_reason) for g in backend.generate(rows)}
        prefill = sorted(shape for shape in passes if shape[1] > 1)
        if rows_alone:
            assert prefill == sorted((1, n - 1) for n in lengths)
        else:
            assert prefill == [(5, max(lengths))]
    assert answers[True] == answers[False]
    assert any(n > 1 for _, n, _ in answers[True].values())


def test_finished_rows_leave_the_batch_with_the_answers_they_would_have_given(tiny_model_dir, monkeypatch):
    """The CPU's padded engine decodes in segments and drops the rows that finished between them: with rows of
    different budgets and stop tokens met at different steps, every answer is the same tokens as the batch that
    ran to its longest answer gives, cut at the row's own budget (fp32), and the batch really narrowed."""
    import fctune.backends.local as local
    from fctune.backends.local import LocalBackend

    monkeypatch.setattr(local, "ROWS_LEAVE_EVERY", 3)
    rows = generate_examples(12, seed=7)[:5]
    budgets = [20, 7, 13, 20, 4]
    backend = LocalBackend(tiny_model_dir, max_new_tokens=20, batch_size=5, dtype="fp32")
    assert backend.rows_leave and backend.mixes_budgets  # the default on a CPU
    widths = []
    generate = backend.model.generate
    backend.model.generate = lambda **kw: widths.append(kw["input_ids"].shape[0]) or generate(**kw)

    def answers(leave):
        backend.rows_leave = leave
        widths.clear()
        return {g.id: (g.output, g.completion_tokens, g.finish_reason) for g in backend.generate(rows, budgets)}

    # two rows stop early: a token each of them writes (the 6th of row 0, the 10th of row 3) becomes a stop token
    backend.rows_leave = False
    written = {}
    spy = backend._generation
    backend._generation = lambda e, p, ids, *a: written.setdefault(e.id, ids) and spy(e, p, ids, *a)
    list(backend.generate(rows))
    backend._generation = spy
    backend.stop_ids = [*backend.stop_ids, written[rows[0].id][5], written[rows[3].id][9]]
    whole, leaving = answers(False), answers(True)
    assert widths[0] == 5 and widths[-1] < 5 and widths == sorted(widths, reverse=True)
    assert leaving == whole
    assert {rid: reason for rid, (_, _, reason) in whole.items()}[rows[0].id] == "stop"
    assert whole[rows[0].id][1] <= 6 and whole[rows[3].id][1] <= 10
    for e, budget in zip(rows, budgets, strict=True):  # no row wrote more than its own budget
        assert whole[e.id][1] <= budget
        assert whole[e.id][2] == "stop" or whole[e.id][1] == budget
    with pytest.raises(ValueError, match="2 budgets for 5 examples"):
        list(backend.generate(rows, [4, 4]))
