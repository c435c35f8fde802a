"""Local models: base model + optional LoRA adapter (or a merged model), batched greedy generation.

Prompts come from the same :class:`~fctune.render.PromptRenderer` that training used (the prompt format
recorded in the adapter's metadata is reused), are decoded greedily (deterministic) and stopped at the end of
the assistant turn. Three engines (:data:`ENGINES`):

- ``padded``: batches of prompts of similar length, padded on the left, one ``generate()`` call each. A batch
  runs until its longest answer ends, so one answer that never stops holds every row of its batch for the whole
  budget.
- ``static``: the same batches over a static KV cache of one size for the whole call; on a GPU transformers then
  compiles the decoding step (``torch.compile``, mode "reduce-overhead": CUDA graphs), which removes the per-token
  cost of launching a small model's hundreds of kernels from Python. To keep one compiled shape, a short last batch
  is filled up to ``batch_size`` with copies of its last prompt (their answers are dropped) and the cache length is
  rounded up (:func:`static_cache_length`); so that few batches are short, the evaluation loop hands this engine the
  rows of consecutive splits or BFCL categories in one call (``--pool-tasks auto``,
  :func:`fctune.evaluate.task_groups`).
  The first batch pays the compilation. On a CPU nothing is compiled (transformers compiles only on accelerators):
  the same batches and cache, eager.
- ``continuous``: transformers' continuous batching (``init_continuous_batching``): a finished answer leaves the
  batch at the next step and a waiting prompt takes its place, keys and values live in a paged cache, and no row
  is padded; answers come out in the order they finish. Not the default: where answers mostly run to the budget
  there is little to reclaim, and its cache is sized from the GPU's free memory. In bf16 the engines (and padded
  batches between two runs) may give different tokens; on the CPU in fp32 they give the same (tested).

On a CPU, where reading the weights dominates a decoding step, the padded engine also:

- keeps each layer's keys and values in a buffer with room to grow (:func:`preallocated_cache`) instead of
  transformers' DynamicCache, which concatenates the whole cache into a new tensor at every step;
- hands a model with grouped KV heads (SmolLM2: 3 for 9 query heads) to torch's attention as it is
  (:func:`grouped_kv_sdpa`), where transformers' SDPA attention copies the keys and values out to one per query head
  in every layer at every step whenever a mask is passed, which a left-padded batch always does;
- prefills each prompt of a batch on its own (:meth:`LocalBackend._prefill_each_row`) instead of the whole batch
  padded to its longest prompt;
- lets finished rows leave a batch (:meth:`LocalBackend._decode_leaving`): it decodes in segments of
  ``ROWS_LEAVE_EVERY`` steps, and between segments the rows that ended (a stop token, their budget, a loop stopped)
  are dropped from the batch and its cache. Each row may then have its own budget, so the evaluation loop answers
  consecutive suites of different budgets in one pass (``--pool-tasks``) and their rows share wide batches.

Each gives the same tokens as the plain path (tested); BENCHMARKS.md has what each saves. In fp32 a row's tokens do
not depend on the rows beside it (tested); in bf16 they may, as they already depend on --batch-size.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from fctune.backends.base import Generation
from fctune.errors import UserError
from fctune.parse import declared_call_format
from fctune.schema import Example

log = logging.getLogger(__name__)

ENGINES = {  # the local backend's decoding engines (module docstring); --engine's choices come from here
    "padded": "length-sorted batches of --batch-size padded on the left, each decoded until its longest answer ends",
    "static": "the padded batches over a static KV cache; on a GPU the decoding step is compiled (CUDA graphs): the "
              "first batch pays the compilation, every later step skips Python's kernel launches",
    "continuous": "transformers' continuous batching: a finished answer leaves the batch and the next prompt takes "
                  "its place (paged KV cache sized from free GPU memory)",
}
# The static cache's length: the next power of two, at least STATIC_CACHE_MIN, so that the calls of a run (one per
# task) mostly share one length: a new length recompiles the decoding step, which costs tens of seconds.
STATIC_CACHE_MIN = 2048


# A greedy answer caught in a loop repeats one block verbatim until the budget cuts it, holding its whole batch.
# --stop-repeats N stops an answer once its last N tokens are one block of at most N // REPEAT_MIN_COPIES tokens over
# and over (at least that many copies). Off by default: on the CPU main job most answers that ran to the budget were
# not verbatim loops (6 of 62 stopped at N = 64, 3.9% of the time saved, no verdict changed; BENCHMARKS.md).
REPEAT_MIN_COPIES = 4
# On a CPU the padded engine decodes in segments of this many steps; between them, finished rows leave the batch. A
# finished row waits at most this many steps; each segment is one generate() call (a few milliseconds of set-up).
ROWS_LEAVE_EVERY = 16
# A preallocated cache grows by at least this many tokens (or half of what it holds) when it is full: a batch's
# prompt plus its answers then take one or two copies of the cache instead of one per generated token.
KV_GROWTH_MIN = 256


def repeating_period(ids, window: int) -> int | None:
    """The shortest period ``p`` (at most ``window // REPEAT_MIN_COPIES``) with which the last ``window`` of ``ids``
    repeat verbatim (every token equal to the one ``p`` before it), or None (pure; ``ids`` a list of token ids)."""
    if window < REPEAT_MIN_COPIES or len(ids) < window:
        return None
    tail = list(ids[-window:])
    return next((p for p in range(1, window // REPEAT_MIN_COPIES + 1) if tail[p:] == tail[:-p]), None)


class RepeatStop:
    """A ``generate()`` stopping criterion: a row whose last ``window`` generated tokens repeat one block
    (:func:`repeating_period`) is finished; ``fired[row]`` keeps how many tokens it had generated then."""

    def __init__(self, window: int, prompt_len: int, rows: int):
        self.window, self.prompt_len = window, prompt_len
        self.fired: list[int | None] = [None] * rows

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        n = input_ids.shape[1] - self.prompt_len
        if n < self.window:
            return done
        tail = input_ids[:, -self.window:]
        for p in range(1, self.window // REPEAT_MIN_COPIES + 1):  # the same rule as repeating_period, all rows at once
            done |= (tail[:, p:] == tail[:, :-p]).all(dim=1)
        for row in done.nonzero().flatten().tolist():
            if row < len(self.fired) and self.fired[row] is None:
                self.fired[row] = n
        return done


def static_cache_length(longest_prompt: int, max_new_tokens: int) -> int:
    """The static KV cache's length for prompts up to ``longest_prompt`` tokens and a budget of ``max_new_tokens``."""
    return max(STATIC_CACHE_MIN, 1 << (longest_prompt + max_new_tokens - 1).bit_length())


GROUPED_KV_SDPA = "fctune_sdpa_grouped_kv"  # the attention implementation's name in transformers' registries


def grouped_kv_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                    is_causal: bool | None = None, **kwargs):
    """transformers' SDPA attention, except that a masked call on a CPU passes grouped keys and values to torch's
    ``scaled_dot_product_attention`` with ``enable_gqa`` instead of repeating them per query head.

    transformers repeats them (``repeat_kv``) unless the mask is None, because on CUDA a mask sends a grouped call to
    the slow math kernel; torch's CPU kernel takes both and gives the same values bit for bit (tested), without
    writing those copies (most of a small model's decoding step on a CPU). Every other call (no mask, one KV head per
    query head, a position bias, attention weights asked for, not a CPU) is transformers' own."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if (attention_mask is None or getattr(module, "num_key_value_groups", 1) == 1 or query.device.type != "cpu"
            or key.shape[-1] != value.shape[-1] or kwargs.get("position_bias") is not None
            or kwargs.get("output_attentions")):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    # with a mask transformers passes is_causal=False: the mask carries causality and padding
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                           dropout_p=dropout, scale=scaling, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


@functools.cache
def _register_grouped_kv_sdpa() -> str:
    """Registers :func:`grouped_kv_sdpa` with transformers (once), with SDPA's own mask; returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(GROUPED_KV_SDPA, grouped_kv_sdpa)
    AttentionMaskInterface.register(GROUPED_KV_SDPA, sdpa_mask)
    return GROUPED_KV_SDPA


class LocalBackend:
    def __init__(self, model: str, adapter: str | None = None, max_new_tokens: int = 256, batch_size: int = 8,
                 prompt_format: str | None = None, device: str = "auto", dtype: str = "auto", engine: str = "padded",
                 stop_repeats: int = 0, repair_tokens: str = "auto"):
        import torch

        from fctune.config import cpu_has_native_bf16
        from fctune.models import ensure_pad_token, load_causal_lm, load_tokenizer, resolve_model, stop_token_ids
        from fctune.render import PromptRenderer

        self.model_spec, self.adapter = model, adapter
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.adapter_meta = self._adapter_metadata(adapter)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
        self.engine = engine
        if stop_repeats and engine == "continuous":
            raise UserError("--stop-repeats needs the padded or static engine (continuous batching takes no stopping "
                            "criteria)")
        if stop_repeats and stop_repeats < 2 * REPEAT_MIN_COPIES:
            raise UserError(f"--stop-repeats {stop_repeats}: at least {2 * REPEAT_MIN_COPIES} tokens (0 = off)")
        self.stop_repeats = stop_repeats
        self.prefill_rows = True  # on a CPU the padded engine prefills each prompt on its own (_prefill_each_row)
        # on a CPU the padded engine's finished rows leave the batch (_decode_leaving); measured on CPUs only
        self.rows_leave = device == "cpu" and engine == "padded"
        if dtype == "auto":
            if device == "cuda":
                tdtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            else:  # bf16 is several times faster than fp32 on CPUs with native bf16 instructions
                tdtype = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
        else:
            tdtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
        self.model_ref = resolve_model(model)
        t0 = time.time()
        self.tokenizer = load_tokenizer(adapter if adapter else model)
        ensure_pad_token(self.tokenizer)
        self.tokenizer.padding_side = "left"
        net = load_causal_lm(model, dtype=tdtype)
        if adapter:
            from peft import PeftModel

            net = PeftModel.from_pretrained(net, adapter).merge_and_unload()  # same outputs, faster generation
        self.model = net.to(device).eval()
        # continuous batching picks its own paged attention from the model's, so it keeps transformers' SDPA
        if device == "cpu" and engine != "continuous" and self.model.config._attn_implementation == "sdpa":
            self.model.set_attn_implementation(_register_grouped_kv_sdpa())
        fmt = prompt_format or ((self.adapter_meta.get("prompt") or {}).get("prompt_format") if self.adapter_meta
                                else None) or "auto"
        self.renderer = PromptRenderer(self.tokenizer, fmt)
        # tags the model cannot write (untrained rows) are found here and, unless told otherwise, fed as text
        from fctune.tool_tokens import detect_model, repair_tokenizer

        check = detect_model(self.model, self.tokenizer, declared_call_format(self.renderer), model)
        self.tool_tokens = None
        if check.tags or repair_tokens == "text":
            self.tokenizer, self.tool_tokens = repair_tokenizer(repair_tokens, self.tokenizer, check, adapter)
            if self.tool_tokens["tags_as_text"]:
                ensure_pad_token(self.tokenizer)
                self.tokenizer.padding_side = "left"
                self.renderer = PromptRenderer(self.tokenizer, fmt)
            if self.tool_tokens["repair"] == "fit":  # the tokenizer stays; the tags get rows of their own
                from fctune.tag_fit import apply_rows, fitted_rows, summary

                rows, meta = fitted_rows(lambda: self.model, self.tokenizer, check, self.model_ref.location, fmt)
                apply_rows(self.model, rows)
                self.tool_tokens["fitted"] = summary(meta)
        self.stop_ids = stop_token_ids(self.tokenizer)
        self.dtype = str(tdtype).replace("torch.", "")
        self.load_s = round(time.time() - t0, 2)
        self._n, self._gen_tokens, self._time = 0, 0, 0.0
        self._compiled_logged = False
        log.info("local model %s%s on %s (%s), prompt format %s, loaded in %.1fs", model,
                 f" + adapter {adapter}" if adapter else "", device, tdtype, self.renderer.mode, self.load_s)

    @staticmethod
    def _adapter_metadata(adapter: str | None) -> dict:
        from fctune.errors import UserError

        if not adapter:
            return {}
        p = Path(adapter)
        if not (p / "adapter_config.json").exists():
            raise UserError(f"{adapter}: not an adapter folder (adapter_config.json missing)")
        if not any((p / w).exists() for w in ("adapter_model.safetensors", "adapter_model.bin")):
            raise UserError(f"{adapter}: the adapter's weights (adapter_model.safetensors) are missing; only its "
                            "configuration is there")
        meta = p / "metadata.json"
        return json.loads(meta.read_text()) if meta.exists() else {}

    def identity(self) -> dict:
        return {"backend": "local", "model": self.model_spec, "model_description": self.model_ref.description,
                "adapter": self.adapter, "adapter_version_id": self.adapter_meta.get("version_id"),
                "adapter_base_model": self.adapter_meta.get("base_model"), "device": self.device, "dtype": self.dtype,
                "prompt": self.renderer.describe(), "call_format": declared_call_format(self.renderer),
                "max_new_tokens": self.max_new_tokens, "engine": self.engine,
                "batch_size": self.batch_size if self.engine != "continuous" else None, "decoding": "greedy",
                # after how many steps a finished answer leaves its batch (None: it stays until the longest ends)
                "rows_leave_every": 1 if self.engine == "continuous" else ROWS_LEAVE_EVERY if self.rows_leave else None,
                "stop_repeats": self.stop_repeats or None,
                **({"tool_tokens": self.tool_tokens} if self.tool_tokens else {})}

    def set_max_new_tokens(self, n: int) -> None:
        self.max_new_tokens = n

    @property
    def mixes_budgets(self) -> bool:
        """Whether rows of different budgets share batches at no cost to the shorter ones (their rows leave the
        batch at their own budget): the evaluation loop then pools suites of different budgets into one pass."""
        return self.rows_leave

    def prompt_for(self, example: Example) -> str:
        """The exact text generation starts from (the training renderer's prompt)."""
        return self.renderer.prompt(example)

    def generate(self, examples: list[Example], budgets: list[int] | None = None) -> Iterator[Generation]:
        """Greedy answers, yielded batch by batch. ``budgets``: each example's own generation budget (default: the
        one set last), so that tasks of different budgets can share a pass; an answer is cut at its own budget."""
        if budgets is None:
            budgets = [self.max_new_tokens] * len(examples)
        if len(budgets) != len(examples):
            raise ValueError(f"{len(budgets)} budgets for {len(examples)} examples")
        prompts = [(e, self.tokenizer(self.prompt_for(e), add_special_tokens=False)["input_ids"], budget)
                   for e, budget in zip(examples, budgets, strict=True)]
        if not prompts:
            return
        run = self._generate_continuous if self.engine == "continuous" else self._generate_padded
        yield from run(prompts)

    def _generation(self, example: Example, prompt_ids: list[int], ids: list[int], latency_s: float,
                    repeat_at: int | None = None) -> Generation:
        """One answer from its generated ids: cut at the first stop token, special tokens kept (some models write
        <tool_call> as one), the stop token itself dropped; an answer that ``RepeatStop`` finished after
        ``repeat_at`` tokens ends there (what follows is padding), finish reason "repeat"."""
        if repeat_at is not None:
            ids = ids[:repeat_at]
        n = next((i + 1 for i, t in enumerate(ids) if t in self.stop_ids), len(ids))
        stopped = bool(n) and ids[n - 1] in self.stop_ids
        body = ids[: n - 1] if stopped else ids[:n]
        self._gen_tokens += n
        reason = "stop" if stopped else "repeat" if repeat_at is not None else "length"
        return Generation(id=example.id, output=self.tokenizer.decode(body, skip_special_tokens=False),
                          latency_s=round(latency_s, 4), finish_reason=reason,
                          prompt_tokens=len(prompt_ids), completion_tokens=n)

    def _generate_padded(self, prompts: list[tuple[Example, list[int], int]]) -> Iterator[Generation]:

        order = sorted(prompts, key=lambda p: len(p[1]))  # similar lengths: little padding per batch
        static, options = self.engine == "static", {}
        if static:
            # one cache length for every batch of the call (transformers keeps the largest it has seen across
            # calls), so the compiled decoding step keeps its shapes; rounded up so the next calls mostly fit too
            options = {"cache_implementation": "static",
                       "max_cache_len": static_cache_length(len(order[-1][1]), max(p[2] for p in order))}
            if self.device == "cuda" and not self._compiled_logged:
                log.info("static engine: the first batch compiles the decoding step (CUDA graphs); later ones reuse it")
                self._compiled_logged = True
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            rows = [ids for _, ids, _ in batch]
            budgets = [budget for *_, budget in batch]
            if not static and self.device == "cpu":  # measured on CPUs only (module docstring)
                cache = preallocated_cache(self.model.config)
                if self.prefill_rows:
                    self._prefill_each_row(cache, rows)
                options = {"past_key_values": cache}
            if static:  # every batch batch_size rows, so the compiled step keeps its shape: copies of the longest
                # prompt (no extra padding), their answers dropped below
                rows += [rows[-1]] * (self.batch_size - len(rows))
            enc = self.tokenizer.pad({"input_ids": rows}, return_tensors="pt")
            enc = {k: v.to(self.device) for k, v in enc.items()}
            t0 = time.time()
            if self.rows_leave:
                answers, fired = self._decode_leaving(enc, options["past_key_values"], budgets)
            else:
                out, repeat = self._greedy(enc["input_ids"].shape[1], len(batch), max(budgets), **enc, **options)
                new = out[:len(batch), enc["input_ids"].shape[1]:].tolist()
                # a row of a smaller budget than the batch's is cut at its own (what it wrote until then is the same)
                answers = [row[:budget] for row, budget in zip(new, budgets, strict=True)]
                fired = repeat.fired if repeat else [None] * len(batch)
            dt = time.time() - t0
            for (e, ids, _), answer, repeat_at in zip(batch, answers, fired, strict=True):
                yield self._generation(e, ids, answer, dt / len(batch), repeat_at)
            self._n += len(batch)
            self._time += dt

    def _greedy(self, prompt_width: int, rows: int, max_new_tokens: int, **inputs):
        """One ``generate()`` call as every engine decodes: greedy, stopped at the stop tokens and, with
        ``--stop-repeats``, at a verbatim loop (the ``RepeatStop`` counts tokens after ``prompt_width``). Returns
        the output ids and the RepeatStop (None when off)."""
        import torch

        repeat = RepeatStop(self.stop_repeats, prompt_width, rows) if self.stop_repeats else None
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                      eos_token_id=self.stop_ids, pad_token_id=self.tokenizer.pad_token_id,
                                      stopping_criteria=[repeat] if repeat else None)
        return out, repeat

    def _decode_leaving(self, enc: dict, cache, budgets: list[int]) -> tuple[list[list[int]], list[int | None]]:
        """Greedy decoding of one left-padded batch whose finished rows leave it: ``generate()`` runs
        ``ROWS_LEAVE_EVERY`` steps at a time (fewer when a row's budget ends sooner) and continues from ``cache``;
        between calls, the rows that wrote a stop token, reached their budget or were stopped looping
        (``--stop-repeats``) are dropped from the ids, the mask and the cache. Returns each row's generated ids (up
        to and including its stop token; a looping row's go on with padding after the step it was stopped at) and
        that step, or None."""
        import torch

        ids, mask = enc["input_ids"], enc["attention_mask"]
        prompt_width = ids.shape[1]
        stops = set(self.stop_ids)
        answers: list[list[int]] = [[] for _ in budgets]
        fired: list[int | None] = [None] * len(budgets)
        alive = list(range(len(budgets)))
        while alive:
            steps = min(ROWS_LEAVE_EVERY, min(budgets[i] - len(answers[i]) for i in alive))
            out, repeat = self._greedy(prompt_width, len(alive), steps, input_ids=ids, attention_mask=mask,
                                       past_key_values=cache)
            new = out[:, ids.shape[1]:]
            keep = []
            for j, (i, row) in enumerate(zip(alive, new.tolist(), strict=True)):
                end = next((k + 1 for k, t in enumerate(row) if t in stops), None)
                answers[i] += row[:end]  # a row that ended stops at its stop token; the rest is padding
                if repeat and repeat.fired[j] is not None:
                    fired[i] = repeat.fired[j]
                elif end is None and len(answers[i]) < budgets[i]:
                    keep.append(j)
            if not keep:
                break
            # the cache holds every token but the last one generated; the next call feeds that one
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], new.shape[1])], dim=1)
            if len(keep) < len(alive):
                rows = torch.tensor(keep, device=ids.device)
                cache.batch_select_indices(rows)
                out, mask = out[rows], mask[rows]
            ids, alive = out, [alive[j] for j in keep]
        return answers, fired

    def _prefill_each_row(self, cache, rows: list[list[int]]) -> None:
        """Fills ``cache`` with the keys and values of every prompt but its last token, each prompt run on its own
        and laid out as the left-padded batch's prefill would lay it out; ``generate()`` then feeds only the last
        column. The batch's prefill would run every row to the longest prompt's length (1.5x the tokens on the CPU
        main job's local suites) under an explicit mask; a row alone needs neither. The padding's keys and values
        stay zeros: the attention mask hides them, as it hides the ones a padded prefill computes. Models with
        sliding-window or other special cache layers keep the padded prefill."""
        import torch
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        longest = max(len(r) for r in rows)
        if longest < 2 or len({len(r) for r in rows}) == 1:  # nothing to prefill, or no padding to save
            return
        own = [DynamicCache(config=self.model.config) for _ in rows]
        if not all(type(x) is DynamicLayer for c in own for x in c.layers):
            return
        with torch.inference_mode():
            for ids, c in zip(rows, own, strict=True):
                if len(ids) > 1:
                    self.model(input_ids=torch.tensor([ids[:-1]], device=self.device), past_key_values=c,
                               use_cache=True, logits_to_keep=1)
            widest = own[[len(r) for r in rows].index(longest)]  # its tensors give the shapes
            for i, layer in enumerate(cache.layers):
                full = widest.layers[i]
                keys = full.keys.new_zeros(len(rows), full.keys.shape[1], longest - 1, full.keys.shape[3])
                values = full.values.new_zeros(len(rows), full.values.shape[1], longest - 1, full.values.shape[3])
                for row, (ids, c) in enumerate(zip(rows, own, strict=True)):
                    if len(ids) > 1:
                        keys[row, :, longest - len(ids):] = c.layers[i].keys[0]
                        values[row, :, longest - len(ids):] = c.layers[i].values[0]
                layer.update(keys, values)

    def _generate_continuous(self, prompts: list[tuple[Example, list[int], int]]) -> Iterator[Generation]:
        from transformers import GenerationConfig

        gen_cfg = GenerationConfig(max_new_tokens=max(p[2] for p in prompts), do_sample=False,
                                   eos_token_id=self.stop_ids, pad_token_id=self.tokenizer.pad_token_id)
        by_request = {}
        t0 = time.time()
        try:
            # a fresh manager per call: it sizes its paged cache and batch from this call's prompts and budget
            with self.model.continuous_batching_context_manager(generation_config=gen_cfg, block=True,
                                                                timeout=30) as cb:
                for i, (e, ids, budget) in enumerate(prompts):
                    request = cb.add_request(ids, request_id=f"row{i}", max_new_tokens=budget)
                    by_request[request] = (e, ids)
                left = len(by_request)
                while left:
                    result = cb.get_result(timeout=1)
                    if result is None or not result.is_finished():
                        if result is None and not cb.is_running():
                            raise RuntimeError(f"continuous batching stopped with {left} of {len(by_request)} "
                                               "answers outstanding (see the log above); --engine padded avoids it")
                        continue
                    e, ids = by_request[result.request_id]
                    if result.error is not None:
                        raise RuntimeError(f"continuous batching failed on row {e.id}: {result.error}")
                    left -= 1
                    # the answer's own time in the batch (from its first scheduled step to its last), which is
                    # what a caller of a serving engine would wait, not a share of a batch's time
                    start, end = result.lifespan
                    latency = end - start if start > 0 and end > 0 else (time.time() - t0) / len(by_request)
                    yield self._generation(e, ids, list(result.generated_tokens), latency)
                    self._n += 1
        finally:
            self._time += time.time() - t0

    def stats(self) -> dict:
        return {"examples": self._n, "generated_tokens": self._gen_tokens, "generation_s": round(self._time, 2),
                "examples_per_s": round(self._n / self._time, 3) if self._time else None,
                "generated_tokens_per_s": round(self._gen_tokens / self._time, 1) if self._time else None,
                "load_s": self.load_s}

    def close(self) -> None:
        del self.model


@functools.cache
def _preallocated_layer_class():
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        """A DynamicLayer whose keys and values are views of a larger buffer: a step writes its new tokens in place,
        where DynamicLayer concatenates the whole cache into a new tensor. Everything else (its length, the mask
        sizes, cropping, selecting rows) reads ``keys``/``values`` as DynamicLayer does; after an operation that
        replaced them with tensors of their own, the next update copies them into a new buffer."""

        _keys_buffer = _values_buffer = None

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            held = self.get_seq_length()
            need = held + key_states.shape[-2]
            buf = self._keys_buffer
            in_buffer = buf is not None and (held == 0 or (self.keys.data_ptr() == buf.data_ptr()
                                                           and self.keys.shape[0] == buf.shape[0]))
            if not in_buffer or need > buf.shape[-2]:
                room = need + max(KV_GROWTH_MIN, need // 2)
                self._keys_buffer = self._grown(key_states, self.keys, held, room)
                self._values_buffer = self._grown(value_states, self.values, held, room)
            self._keys_buffer[..., held:need, :].copy_(key_states)
            self._values_buffer[..., held:need, :].copy_(value_states)
            self.keys = self._keys_buffer[..., :need, :]
            self.values = self._values_buffer[..., :need, :]
            return self.keys, self.values

        @staticmethod
        def _grown(new, old, held: int, room: int):
            b, h, _, d = new.shape
            buf = new.new_empty(b, h, room, d)
            if held:
                buf[..., :held, :].copy_(old)
            return buf

    return PreallocatedLayer


def preallocated_cache(config):
    """A DynamicCache for ``config`` whose full-attention layers keep their keys and values in growing buffers
    (PreallocatedLayer); sliding-window and other special layers stay as transformers makes them."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=config)
    layer = _preallocated_layer_class()
    cache.layers = [layer() if type(x) is DynamicLayer else x for x in cache.layers]
    return cache
