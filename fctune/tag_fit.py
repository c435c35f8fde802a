"""The fit repair: a model's untrained tool-call tag rows fitted, every other weight frozen.

Why a second repair: the text repair (:mod:`fctune.tool_tokens`) changes no weight but changes the tokenizer, so
every consumer of the model (llama.cpp, a vLLM parser, an exported folder) must read the tags as text too. The fit
keeps the tokenizer as shipped and gives the two tags rows of their own, the way the model's other tokens were
trained: where the model starts a call it now chooses ``<tool_call>``, and reading that id it goes on as if it had
read the tag. Only the tags' rows move (input and output; one row each when the embeddings are tied).

How (:func:`fit_tag_rows`): rows of the offline data engine (never BFCL's), rendered with the model's own prompt
as training does; the loss is the usual next-token loss on the assistant tokens, so the rows learn both to be chosen
at the call's start and end and to be read well by what follows; gradient steps go through the frozen model to
those rows only. Each row starts at the mean of the rows of the text pieces the tag is made of (``<``, ``tool``,
``_call``, ``>``), which the model knows. Held-out engine rows measure, before and after, the loss and how often
greedy choice writes each tag where the gold answer has it and nowhere else.

The result is a small artefact (the rows, float32, and their provenance: rows, seed, steps, loss, the source
model's digest), cached beside the model conversions and applied by :func:`apply_rows` to a loaded model and by
:func:`fitted_gguf` to the GGUF llama.cpp serves (the rows quantized in the tensor's own type).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from fctune.errors import UserError
from fctune.tool_tokens import TagCheck, edited_gguf, text_tags_tokenizer

log = logging.getLogger(__name__)

FIT_VERSION = 1  # part of a fitted artefact's cache name: bump when the fit changes
# Rows fitted once and shipped with fctune (the offline LLM stand-in's), found by the same name as in the cache, so
# the default run applies them in a second instead of fitting them for minutes on a small CPU
SHIPPED = Path(__file__).parent / "tag_rows"


@dataclass
class FitSettings:
    """How the rows are fitted (recorded with the artefact; changing any of these makes a new one)."""

    train_rows: int = 32      # engine rows whose assistant tokens the rows are fitted on
    val_rows: int = 32        # held-out engine rows, measured before and after
    epochs: int = 2
    lr: float = 1e-3          # Adam, decayed to 0, on rows whose norms are ~0.5: larger steps overshoot
    seed: int = 0
    max_length: int = 1024    # longer rendered rows are left out, not cut (a cut row may lose its closing tag)
    # the answers fitted on: "gold" = the engine's; "self" = the model's own greedy answers with its tags fed as text
    # (right or wrong), written back in the declared format, so the fit moves the tags and not when the model calls
    targets: str = "gold"

    def key(self) -> str:
        return f"n{self.train_rows}e{self.epochs}lr{self.lr:g}s{self.seed}" + ("" if self.targets == "gold" else
                                                                                f"-{self.targets}")


def _engine_rows(settings: FitSettings):
    """Training and held-out rows of the data engine's default mix (seeded; disjoint by construction: one draw)."""
    from fctune.offline.engine import generate_engine_examples

    rows = generate_engine_examples(settings.train_rows + settings.val_rows, seed=settings.seed)
    return rows[:settings.train_rows], rows[settings.train_rows:]


def _self_targets(model, pieces, text_renderer, examples, max_new_tokens: int = 256) -> tuple[list, dict]:
    """The examples with their scored turn replaced by the model's own greedy answer, tags fed as text: its calls
    (any shape the lenient reading finds) as the target calls, else its text as a no-call answer."""
    import dataclasses

    import torch
    from tqdm import tqdm

    from fctune.models import stop_token_ids
    from fctune.parse import parse_tool_calls
    from fctune.schema import Expected

    stops = stop_token_ids(pieces)
    dev = model.get_input_embeddings().weight.device
    out, counts = [], {"calls": 0, "no_call": 0}
    with torch.no_grad():
        for e in tqdm(examples, desc="the model's own answers", unit="row"):
            ids = pieces(text_renderer.prompt(e), add_special_tokens=False, return_tensors="pt")["input_ids"].to(dev)
            gen = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                                 pad_token_id=stops[0], attention_mask=torch.ones_like(ids))
            answer = pieces.decode(gen[0, ids.shape[1]:], skip_special_tokens=True).strip()
            calls = parse_tool_calls(answer).calls
            counts["calls" if calls else "no_call"] += 1
            expected = Expected("tool_calls", tool_calls=list(calls)) if calls else Expected("no_call", text=answer)
            out.append(dataclasses.replace(e, expected=expected))
    return out, counts


def _tied(model) -> bool:
    """Whether the input and output embeddings are one tensor (then one row per tag serves both)."""
    return model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def _targets(features: dict) -> tuple[list[int], list[int]]:
    """The positions whose next token is an assistant token, and those tokens: where the loss is taken."""
    ids, mask = features["input_ids"], features["assistant_masks"]
    pos = [i for i in range(len(ids) - 1) if mask[i + 1]]
    return pos, [ids[i + 1] for i in pos]


def _features(renderer, examples, max_length: int) -> list[dict]:
    out = []
    for e in examples:
        f = renderer.training_features(e)
        if len(f["input_ids"]) <= max_length and sum(f["assistant_masks"]):
            out.append(f)
    return out


class _Rows:
    """The tag rows as parameters, and the frozen model's forward pass with them in place."""

    def __init__(self, model, ids: list[int], init_in, init_out, tied: bool):
        import torch

        self.model, self.ids, self.tied = model, ids, tied
        self.inp = torch.nn.Parameter(init_in.clone().float())
        self.out = self.inp if tied else torch.nn.Parameter(init_out.clone().float())
        self.id_t = torch.tensor(ids)

    def params(self):
        return [self.inp] if self.tied else [self.inp, self.out]

    def logits_at(self, input_ids, positions):
        """Logits at ``positions`` of one row, the tag rows replaced in the input and in the output."""
        import torch

        emb_layer = self.model.get_input_embeddings()
        dev = emb_layer.weight.device
        ids = torch.tensor([input_ids], device=dev)
        emb = emb_layer(ids)
        where = torch.isin(ids, self.id_t.to(dev))
        if where.any():
            which = (ids[where].unsqueeze(1) == self.id_t.to(dev).unsqueeze(0)).float().argmax(1)
            emb = emb.clone()
            emb[where] = self.inp.to(dev, emb.dtype)[which]
        hidden = self.model.get_decoder()(inputs_embeds=emb).last_hidden_state[0, positions]
        logits = self.model.get_output_embeddings()(hidden).float()
        tag_logits = hidden.float() @ self.out.to(dev).t()
        return logits.index_copy(1, self.id_t.to(dev), tag_logits)


def _measure(rows: _Rows, feats: list[dict]) -> dict:
    """Loss on the assistant tokens, and greedy choice at every assistant position: each tag's recall where the gold
    token is the tag, and the share of other positions where a tag would be written instead."""
    import torch

    total, n = 0.0, 0
    hit = dict.fromkeys(rows.ids, 0)
    want = dict.fromkeys(rows.ids, 0)
    false, other = 0, 0
    with torch.no_grad():
        for f in feats:
            pos, nxt = _targets(f)
            gold = torch.tensor(nxt)
            logits = rows.logits_at(f["input_ids"], pos).cpu()
            total += torch.nn.functional.cross_entropy(logits, gold, reduction="sum").item()
            n += len(pos)
            pick = logits.argmax(1)
            for t in rows.ids:
                want[t] += int((gold == t).sum())
                hit[t] += int(((gold == t) & (pick == t)).sum())
            is_tag = torch.isin(gold, rows.id_t)
            other += int((~is_tag).sum())
            false += int((torch.isin(pick, rows.id_t) & ~is_tag).sum())
    return {"loss": round(total / max(n, 1), 4), "assistant_tokens": n,
            "nats_per_row": round(total / max(len(feats), 1), 3),
            "tag_recall": {str(t): round(hit[t] / want[t], 4) if want[t] else None for t in rows.ids},
            "tag_positions": {str(t): want[t] for t in rows.ids},
            "false_tag_rate": round(false / max(other, 1), 5)}


def _text_nats_per_row(model, renderer, examples, max_length: int) -> float:
    """The same held-out answers' negative log-likelihood with the tags fed as text (the text repair), per row: the
    answer's text is the same, so nats per row compare the two repairs whatever the tokens they are cut into."""
    import torch

    total, rows = 0.0, 0
    with torch.no_grad():
        dev = model.get_input_embeddings().weight.device
        for f in _features(renderer, examples, max_length):
            pos, nxt = _targets(f)
            hidden = model.get_decoder()(input_ids=torch.tensor([f["input_ids"]], device=dev)).last_hidden_state[0, pos]
            logits = model.get_output_embeddings()(hidden).float().cpu()
            total += torch.nn.functional.cross_entropy(logits, torch.tensor(nxt), reduction="sum").item()
            rows += 1
    return round(total / max(rows, 1), 3)


def fit_tag_rows(model, tokenizer, check: TagCheck, prompt_format: str = "auto",
                 settings: FitSettings | None = None) -> tuple[dict, dict]:
    """Fit the rows of ``check.tags`` on a loaded model (its weights left as they are, its parameters frozen);
    returns (rows, provenance), rows being ``{"ids", "input", "output"}`` float32 tensors on the CPU."""
    import torch
    from tqdm import tqdm

    from fctune.render import PromptRenderer

    settings = settings or FitSettings()
    if not check.tags:
        raise UserError(f"{check.model}: no tag of its call format is an added token; there is no row to fit")
    t0 = time.time()
    torch.manual_seed(settings.seed)
    tags = list(check.tags)
    ids = [check.tags[t] for t in tags]
    emb_in = model.get_input_embeddings().weight
    emb_out = model.get_output_embeddings().weight
    tied = _tied(model)
    pieces = text_tags_tokenizer(tokenizer, tags)
    piece_ids = [pieces(t, add_special_tokens=False)["input_ids"] for t in tags]
    with torch.no_grad():
        init_in = torch.stack([emb_in[p].float().mean(0) for p in piece_ids]).cpu()
        init_out = torch.stack([emb_out[p].float().mean(0) for p in piece_ids]).cpu()
    for p in model.parameters():
        p.requires_grad_(False)
    renderer = PromptRenderer(tokenizer, prompt_format)
    train_ex, val_ex = _engine_rows(settings)
    text_renderer = PromptRenderer(pieces, prompt_format)
    self_counts = None
    if settings.targets == "self":
        train_ex, self_counts = _self_targets(model, pieces, text_renderer, train_ex)
    elif settings.targets != "gold":
        raise UserError(f"fit targets {settings.targets!r}: gold or self")
    # held-out rows that fit max_length in both tokenizations, so the two repairs are measured on the same rows
    fits_text = {e.id for e, f in zip(val_ex, (text_renderer.training_features(e) for e in val_ex), strict=True)
                 if len(f["input_ids"]) <= settings.max_length}
    val_ex_kept = [e for e in val_ex if e.id in fits_text]
    train, val = (_features(renderer, x, settings.max_length) for x in (train_ex, val_ex_kept))
    if not any(t in f["input_ids"] for f in train for t in ids):
        raise UserError(f"{check.model}: the engine rows rendered with its prompt never contain {tags}: the prompt "
                        "format does not write calls in these tags, so they need no fitting")
    with torch.no_grad():  # the model as shipped: its own (untrained) tag rows
        before = _measure(_Rows(model, ids, emb_in[ids].float().cpu(), emb_out[ids].float().cpu(), tied), val)
    rows = _Rows(model, ids, init_in, init_out, tied)
    opt = torch.optim.Adam(rows.params(), lr=settings.lr)
    total_steps = settings.epochs * len(train)
    # linear decay to zero: a few thousand numbers move fast under Adam, and late large steps overshoot
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / total_steps)
    gen = torch.Generator().manual_seed(settings.seed)
    curve = []
    model.eval()
    bar = tqdm(total=settings.epochs * len(train), desc="fitting tag rows", unit="row")
    for epoch in range(settings.epochs):
        order = torch.randperm(len(train), generator=gen).tolist()
        run, k = 0.0, 0
        for j in order:
            pos, nxt = _targets(train[j])
            loss = torch.nn.functional.cross_entropy(rows.logits_at(train[j]["input_ids"], pos),
                                                     torch.tensor(nxt, device=emb_in.device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            run, k = run + loss.item(), k + 1
            bar.update(1)
            bar.set_postfix(loss=f"{run / k:.3f}")
        curve.append(round(run / max(k, 1), 4))
        log.info("tag rows: epoch %d/%d, training loss %.4f", epoch + 1, settings.epochs, curve[-1])
    bar.close()
    after = _measure(rows, val)
    after["text_repair_nats_per_row"] = _text_nats_per_row(model, text_renderer, val_ex_kept, settings.max_length)
    out = {"ids": ids, "input": rows.inp.detach().cpu().clone(), "output": rows.out.detach().cpu().clone()}
    meta = {"repair": "fit", "model": check.model, "tags": tags, "token_ids": ids, "tied_embeddings": tied,
            "rows_changed": f"{len(ids)} of {emb_in.shape[0]:,}", "init": "mean of the rows of each tag's text pieces",
            "settings": asdict(settings), "rows": {"source": "fctune offline data engine, default mix",
                                                   "train": len(train), "held_out": len(val),
                                                   "left_out_longer_than_max_length":
                                                       len(train_ex) + len(val_ex) - len(train) - len(val)},
            **({"self_targets": self_counts} if self_counts else {}),
            "training_loss_by_epoch": curve, "held_out_before": before, "held_out_after": after,
            "device": str(emb_in.device), "dtype": str(emb_in.dtype).replace("torch.", ""),
            "seconds": round(time.time() - t0, 1), "fit_version": FIT_VERSION}
    return out, meta


def apply_rows(model, rows: dict) -> None:
    """Write fitted rows into a loaded model's embeddings (input, and output when untied)."""
    import torch

    emb_in = model.get_input_embeddings().weight
    emb_out = model.get_output_embeddings().weight
    with torch.no_grad():
        for k, i in enumerate(rows["ids"]):
            emb_in[i] = rows["input"][k].to(emb_in.device, emb_in.dtype)
            if not _tied(model):
                emb_out[i] = rows["output"][k].to(emb_out.device, emb_out.dtype)


# -- the artefact ---------------------------------------------------------------------------------------------------
def source_digest(source: str | Path) -> str:
    """16 hex digits naming the model the rows belong to: a file's content (a GGUF), a folder's weight and config
    files, or, for a hub id, the id itself (its revision is not pinned: delete the cached rows after an update)."""
    import hashlib

    from fctune.models import content_digest

    p = Path(source)
    if p.is_file():
        return content_digest(p)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in (".safetensors", ".bin") or f.name == "config.json")
        return hashlib.sha256("|".join(f"{f.name}:{content_digest(f)}" for f in files).encode()).hexdigest()[:16]
    return hashlib.sha256(f"hub:{source}".encode()).hexdigest()[:16]


def artefact_path(source: str | Path, ids: list[int], settings: FitSettings, cache: Path) -> Path:
    """Where the rows fitted for ``source`` are cached: named by what :func:`source_digest` says of it."""
    stem = Path(str(source)).stem.replace("/", "_") or "model"
    return cache / f"{stem}-{source_digest(source)}-fit{'-'.join(map(str, ids))}-{settings.key()}-r{FIT_VERSION}" \
                   ".safetensors"


def save_rows(path: Path, rows: dict, meta: dict) -> None:
    import torch
    from safetensors.torch import save_file

    from fctune.io import write_json_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    save_file({"ids": torch.tensor(rows["ids"]), "input": rows["input"].contiguous(),
               "output": rows["output"].contiguous()}, str(tmp))
    tmp.replace(path)
    write_json_atomic(path.with_suffix(".json"), {**meta, "file": path.name, "file_bytes": path.stat().st_size})


def load_rows(path: Path) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    try:
        t = load_file(str(path))
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable fitted-rows file ({e}); delete it to fit again") from e
    return {"ids": t["ids"].tolist(), "input": t["input"], "output": t["output"]}, meta


def fitted_rows(load_model, tokenizer, check: TagCheck, source: str | Path, prompt_format: str = "auto",
                settings: FitSettings | None = None) -> tuple[dict, dict]:
    """The rows for ``source``'s tags: read from the cache, or fitted once on ``load_model()`` (a callable, so a
    cached fit loads no model) and cached. Returns (rows, provenance with the artefact's path)."""
    from fctune.models import cache_dir

    settings = settings or FitSettings()
    ids = [check.tags[t] for t in check.untrained]
    path = artefact_path(source, ids, settings, cache_dir() / "models")
    for where in (SHIPPED / path.name, path):
        if where.exists() and where.with_suffix(".json").exists():
            rows, meta = load_rows(where)
            log.info("%s: tag rows fitted earlier, read from %s", check.model, where)
            return rows, {**meta, "path": str(where)}
    log.warning("%s: fitting the rows of %s, every other weight frozen (once; cached in %s)", check.model,
                ", ".join(check.untrained), path.parent)
    fit_check = TagCheck(check.model, check.call_format, {t: check.tags[t] for t in check.untrained},
                         list(check.untrained), dict(check.rows), check.how)
    rows, meta = fit_tag_rows(load_model(), tokenizer, fit_check, prompt_format, settings)
    meta["source"], meta["source_sha256_16"] = str(source), source_digest(source)
    save_rows(path, rows, meta)
    log.info("%s: rows fitted in %.0fs: held-out loss %.3f -> %.3f, tag recall %s, false tags %.4f%%", check.model,
             meta["seconds"], meta["held_out_before"]["loss"], meta["held_out_after"]["loss"],
             meta["held_out_after"]["tag_recall"], 100 * meta["held_out_after"]["false_tag_rate"])
    return rows, {**meta, "path": str(path), "file_bytes": path.stat().st_size}


def summary(meta: dict) -> dict:
    """What a result's metadata keeps of the fitted rows (the full provenance is beside the artefact)."""
    keep = ("tags", "token_ids", "rows_changed", "tied_embeddings", "path", "source_sha256_16", "seconds",
            "held_out_before", "held_out_after", "settings")
    return {k: meta[k] for k in keep if k in meta}


def fit_dtype():
    """The dtype a model is loaded in to be fitted: bf16 on a GPU or a CPU with native bf16, else float32."""
    import torch

    from fctune.config import cpu_has_native_bf16

    return torch.bfloat16 if torch.cuda.is_available() or cpu_has_native_bf16() else torch.float32


def fitted_gguf(path: str | Path, rows: dict, rows_meta: dict, cache: Path) -> tuple[Path, dict]:
    """A copy of the GGUF whose tag rows are the fitted ones, each quantized in its tensor's own type and written in
    place (``token_embd.weight``; ``output.weight`` too when the file has one); cached by the source and the rows."""
    import hashlib

    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    from fctune.models import content_digest

    src = Path(path)

    def write_rows(f, layout) -> dict:
        written, error, changed = {}, {}, 0
        for tensor, which in (("token_embd.weight", "input"), ("output.weight", "output")):
            info = layout["tensors"].get(tensor)
            if info is None:
                continue
            qtype = GGMLQuantizationType(info["type"])
            block, block_bytes = GGML_QUANT_SIZES[qtype]
            row_bytes = info["shape"][0] // block * block_bytes
            values = rows[which].numpy().astype(np.float32)
            try:
                packed = quantize(values, qtype)
            except NotImplementedError as e:
                raise UserError(f"{src}: {tensor} is {qtype.name}, which the gguf package cannot quantize ({e}); "
                                "use --repair-tokens text for this file") from e
            error[tensor] = float(np.abs(dequantize(packed, qtype).reshape(values.shape) - values).max())
            for k, i in enumerate(rows["ids"]):
                f.seek(info["offset"] + i * row_bytes)
                f.write(packed[k].tobytes())
            written[tensor] = qtype.name
            changed += row_bytes * len(rows["ids"])
        return {"repair": "fit", "token_ids": rows["ids"], "tensors": written, "max_abs_quantization_error": error,
                "rows": rows_meta.get("path"), "bytes_changed": changed, "fit_version": FIT_VERSION}

    digest = hashlib.sha256(rows["input"].numpy().tobytes() + rows["output"].numpy().tobytes()).hexdigest()[:12]
    return edited_gguf(src, cache / f"{src.stem}-{content_digest(src)}-fitrows-{digest}-r{FIT_VERSION}.gguf",
                       write_rows)
