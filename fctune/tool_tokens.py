"""Tool-call tags a model cannot write: found before a model is evaluated or trained, and repaired.

Why this exists: a chat template names the tags a model's calls go in (Qwen2.5's ``<tool_call>`` ...
``</tool_call>``), and the tokenizer declares each tag one added token. In Qwen2.5-Coder-0.5B-Instruct and -1.5B,
those tokens' rows in the input and the output embeddings are the row every unused added token shares: they were
never trained. The model then cannot write its own tags (it writes fenced JSON, which a production parser reads as
no call), and reads the instructions around them badly. Unsloth's ``fix_untrained_tokens`` resets such rows to the
mean of the trained ones, which avoids NaNs but does not make the model choose a tag.

Detection (:func:`detect_model`, :func:`detect_gguf`): the tags of the call format the chat template declares
(:data:`fctune.parse.CALL_TAGS`) that are single added tokens, and whether their rows are shared with another added
token's (the shared-row test of :mod:`fctune.label_tokens`): a shared row is an untrained one.

Repairs (:data:`REPAIRS`): ``text`` feeds the tags as the ordinary pieces they are made of (``<``, ``tool``,
``_call``, ``>``), whose rows are trained: the tokenizer no longer matches them whole (the ids stay in the vocabulary,
so nothing else moves), in the prompt as in what the model writes, and the GGUF that llama.cpp serves is a copy whose
tag tokens are typed NORMAL instead of USER_DEFINED or CONTROL (a few bytes changed), so llama.cpp tokenizes them as
text too. No weight changes. ``fit`` (:mod:`fctune.tag_fit`) keeps the tokenizer and fits the tags' own rows instead,
every other weight frozen. ``auto`` repairs with text exactly where detection finds untrained tags: on the same
BFCL rows the fitted rows lost the parallel calls and the abstention that the text-fed model keeps (RESULTS.md), since
two rows fitted on a few dozen answers learn those answers' habits rather than how the model reads its own format.
``none`` leaves the tokenizer as the model ships it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fctune.errors import UserError
from fctune.label_tokens import SAME_ROW_COSINE, indistinguishable_tokens

log = logging.getLogger(__name__)

REPAIRS = {
    "auto": "text where the call format's tag tokens have untrained rows, else none",
    "text": "the tag tokens are no longer matched whole: they are read and written as their text pieces, whose rows "
            "are trained (tokenizer, and the GGUF llama.cpp serves: its tags typed NORMAL)",
    "fit": "the tag tokens' embedding rows fitted on the data engine's rows, every other weight frozen (the "
           "tokenizer as shipped; rows cached, a few KB; the GGUF llama.cpp serves gets them too)",
    "none": "the tokenizer as the model ships it",
}
REPAIR_VERSION = 1  # part of a repaired GGUF's cache name: bump when the repair changes


@dataclass
class TagCheck:
    """What :func:`detect_model` / :func:`detect_gguf` found, as recorded in metadata."""

    model: str
    call_format: list[str]
    tags: dict[str, int] = field(default_factory=dict)     # the format's tags that are single added tokens: id
    untrained: list[str] = field(default_factory=list)     # those whose input or output row is shared
    rows: dict[str, list[str]] = field(default_factory=dict)  # tag -> the embeddings ("input", "output") shared
    how: str = ""

    def line(self) -> str | None:
        """One line for the console; None when there is nothing to say (no tag is an added token)."""
        if not self.untrained:
            return None
        where = {t: " and ".join(self.rows.get(t, [])) for t in self.untrained}
        return (f"{self.model}: the tool-call tags {', '.join(self.untrained)} of its declared format "
                f"({'/'.join(self.call_format)}) are added tokens with untrained rows ("
                + "; ".join(f"{t}: {w} embedding" for t, w in where.items())
                + f", shared with the unused added tokens, cosine >= {SAME_ROW_COSINE}): the model cannot write them")


def call_tags(call_format: list[str]) -> list[str]:
    """Every tag string the call format's shapes are written with."""
    from fctune.parse import CALL_TAGS

    return [t for shape in call_format for t in CALL_TAGS.get(shape, ())]


def single_token_tags(tokenizer, call_format: list[str]) -> dict[str, int]:
    """The format's tags that the tokenizer reads as one added token (tag -> id)."""
    added = {str(tok): i for i, tok in tokenizer.added_tokens_decoder.items()}
    return {t: added[t] for t in call_tags(call_format) if t in added}


def _check(model: str, call_format: list[str], tags: dict[str, int], added_ids: list[int], weights: dict,
           how: str) -> TagCheck:
    """The shared-row test on each embedding in ``weights`` ("input"/"output" -> a [vocab, dim] tensor)."""
    check = TagCheck(model, list(call_format), dict(tags), how=how)
    if not tags:
        return check
    for name, weight in weights.items():
        if weight is None:
            continue
        for tid in indistinguishable_tokens(weight, added_ids, set(tags.values())):
            tag = next(t for t, i in tags.items() if i == tid)
            check.rows.setdefault(tag, []).append(name)
    check.untrained = [t for t in tags if t in check.rows]
    return check


def detect_model(model, tokenizer, call_format: list[str], name: str) -> TagCheck:
    """The check on a loaded transformers model (its input and output embeddings)."""
    tags = single_token_tags(tokenizer, call_format)
    if not tags:
        return TagCheck(name, list(call_format), how="no tag of the format is an added token")
    inp = model.get_input_embeddings()
    out = model.get_output_embeddings()
    weights = {"input": inp.weight if inp is not None else None,
               "output": out.weight if out is not None and (inp is None or out.weight is not inp.weight) else None}
    return _check(name, call_format, tags, list(tokenizer.added_tokens_decoder), weights,
                  "rows of the loaded model's embeddings")


# -- GGUF files ---------------------------------------------------------------------------------------------------
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def gguf_layout(path: str | Path) -> dict:
    """Where things are in a GGUF file: the byte offset and element type of the ``tokenizer.ggml.token_type``
    array, and each tensor's (type, shape, absolute data offset). Reads only the header (a struct walk, not
    gguf's ``GGUFReader``, which builds a numpy view of every element of the vocabulary: ~12 s for Qwen2.5)."""
    import mmap

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != b"GGUF":
            raise UserError(f"{path}: not a GGUF file")
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
        pos = 24

        def string(p):
            (n,) = struct.unpack_from("<Q", buf, p)
            return bytes(buf[p + 8:p + 8 + n]).decode("utf-8", "replace"), p + 8 + n

        def skip(p, vtype):
            if vtype == _STRING:
                (n,) = struct.unpack_from("<Q", buf, p)
                return p + 8 + n
            if vtype == _ARRAY:
                etype, count = struct.unpack_from("<IQ", buf, p)
                p += 12
                if etype in _SCALAR:
                    return p + count * struct.calcsize(_SCALAR[etype])
                for _ in range(count):
                    p = skip(p, etype)
                return p
            return p + struct.calcsize(_SCALAR[vtype])

        out = {"version": version, "alignment": 32, "tensors": {}}
        for _ in range(n_kv):
            key, pos = string(pos)
            (vtype,) = struct.unpack_from("<I", buf, pos)
            pos += 4
            if key == "tokenizer.ggml.token_type" and vtype == _ARRAY:
                etype, count = struct.unpack_from("<IQ", buf, pos)
                out["token_type"] = {"offset": pos + 12, "format": "<" + _SCALAR[etype], "count": count}
            if key == "general.alignment" and vtype in _SCALAR:
                (out["alignment"],) = struct.unpack_from("<" + _SCALAR[vtype], buf, pos)
            pos = skip(pos, vtype)
        infos = []
        for _ in range(n_tensors):
            name, pos = string(pos)
            (n_dims,) = struct.unpack_from("<I", buf, pos)
            dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
            qtype, offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * n_dims)
            pos += 4 + 8 * n_dims + 12
            infos.append((name, qtype, dims, offset))
        align = out["alignment"]
        data_start = (pos + align - 1) // align * align
        out["tensors"] = {n: {"type": q, "shape": list(d), "offset": data_start + o} for n, q, d, o in infos}
        out["size"] = len(buf)
    return out


def gguf_rows(path: str | Path, layout: dict, tensor: str, ids: list[int]):
    """Rows ``ids`` of a [vocab, dim] tensor of a GGUF file, dequantized (float32 torch tensor, one row per id)."""
    import numpy as np
    import torch
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize

    info = layout["tensors"][tensor]
    dim = info["shape"][0]  # GGUF lists the fastest-moving dimension first: [dim, vocab]
    qtype = GGMLQuantizationType(info["type"])
    block, block_bytes = GGML_QUANT_SIZES[qtype]
    row_bytes = dim // block * block_bytes
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=info["offset"], shape=(info["shape"][1] * row_bytes,))
    rows = np.stack([np.asarray(data[i * row_bytes:(i + 1) * row_bytes]) for i in ids])
    return torch.from_numpy(np.ascontiguousarray(dequantize(rows, qtype), dtype=np.float32).reshape(len(ids), dim))


def detect_gguf(path: str | Path, tokenizer, call_format: list[str], name: str) -> TagCheck:
    """The check on a GGUF file's embedding rows, read for the added tokens only (milliseconds, no dequantized
    model): ``token_embd.weight`` is the input embedding, ``output.weight`` the output one (absent: tied)."""
    tags = single_token_tags(tokenizer, call_format)
    if not tags:
        return TagCheck(name, list(call_format), how="no tag of the format is an added token")
    layout = gguf_layout(path)
    added = sorted(tokenizer.added_tokens_decoder)
    weights = {}
    for role, tensor in (("input", "token_embd.weight"), ("output", "output.weight")):
        if tensor in layout["tensors"]:
            rows = gguf_rows(path, layout, tensor, added)
            # indistinguishable_tokens indexes rows by token id: place the added rows at their ids
            full = rows.new_zeros((max(added) + 1, rows.shape[1]))
            full[added] = rows
            weights[role] = full
    return _check(name, call_format, tags, added, weights, f"rows of {Path(path).name}'s embeddings")


# -- the text repair ------------------------------------------------------------------------------------------------
def text_tags_tokenizer(tokenizer, tags: list[str]):
    """A copy of ``tokenizer`` that no longer reads ``tags`` as added tokens: they become the ordinary pieces they are
    made of, and those pieces decode back to the same text. The ids of every token stay as they were."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="fctune-tags-") as tmp:
        tokenizer.save_pretrained(tmp)
        tj = Path(tmp) / "tokenizer.json"
        state = json.loads(tj.read_text())
        state["added_tokens"] = [t for t in state.get("added_tokens", []) if t["content"] not in tags]
        tj.write_text(json.dumps(state, ensure_ascii=False))
        cfg_path = Path(tmp) / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
        if cfg.get("added_tokens_decoder"):  # an empty one written back would drop every added token on loading
            cfg["added_tokens_decoder"] = {k: v for k, v in cfg["added_tokens_decoder"].items()
                                           if v.get("content") not in tags}
            cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=1))
        repaired = AutoTokenizer.from_pretrained(tmp)
    still = [t for t in tags if len(repaired(t, add_special_tokens=False)["input_ids"]) == 1]
    if still:
        raise UserError(f"the text repair could not unregister {still}: the tokenizer still reads them whole")
    repaired.padding_side = tokenizer.padding_side
    return repaired


def edited_gguf(src: Path, out: Path, edit) -> tuple[Path, dict]:
    """A cached copy of the GGUF ``src`` at ``out``, changed in place by ``edit(file, layout) -> dict`` (what it
    changed, kept as the copy's provenance beside it): made once, in a temporary file renamed onto ``out`` only once
    the edit succeeded, so a failed or interrupted edit leaves nothing a later run would take for a repaired file."""
    import time

    from fctune.io import sha256_file, write_json_atomic
    from fctune.models import content_digest

    meta_path = out.with_suffix(".json")
    if out.exists() and meta_path.exists():
        return out, json.loads(meta_path.read_text())
    t0 = time.time()
    layout = gguf_layout(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    try:
        with open(tmp, "r+b") as f:
            changed = edit(f, layout)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    meta = {**changed, "source": str(src), "source_sha256_16": content_digest(src), "file_bytes": out.stat().st_size,
            "seconds": round(time.time() - t0, 2), "sha256": sha256_file(out)[:16]}
    write_json_atomic(meta_path, meta)
    return out, meta


def repaired_gguf(path: str | Path, token_ids: list[int], cache: Path) -> tuple[Path, dict]:
    """A copy of the GGUF whose ``token_ids`` are typed NORMAL (llama.cpp then tokenizes them as text), cached by the
    source's content and the ids; returns (path, provenance). Made once: a file copy and a few bytes written."""
    from fctune.models import content_digest

    src = Path(path)
    ids = sorted(set(token_ids))

    def retype(f, layout) -> dict:
        tt = layout.get("token_type")
        if tt is None:
            raise UserError(f"{src}: the GGUF has no tokenizer.ggml.token_type array; its tags cannot be retyped")
        size = struct.calcsize(tt["format"])
        before = {}
        for i in ids:
            if not 0 <= i < tt["count"]:
                raise UserError(f"{src}: token id {i} is outside its vocabulary of {tt['count']}")
            f.seek(tt["offset"] + i * size)
            (before[i],) = struct.unpack(tt["format"], f.read(size))
            f.seek(tt["offset"] + i * size)
            f.write(struct.pack(tt["format"], 1))  # NORMAL
        return {"repair": "text", "token_ids": ids, "token_types_before": before, "token_type_after": "NORMAL (1)",
                "bytes_changed": size * len(ids), "repair_version": REPAIR_VERSION}

    out = cache / f"{src.stem}-{content_digest(src)}-text{'-'.join(map(str, ids))}-r{REPAIR_VERSION}.gguf"
    return edited_gguf(src, out, retype)


def resolve_repair(choice: str, check: TagCheck) -> str:
    """``auto`` -> text where the check found untrained tags, else none; the others as they are."""
    if choice not in REPAIRS:
        raise UserError(f"--repair-tokens {choice!r}: one of {', '.join(REPAIRS)}")
    if choice == "auto":
        return "text" if check.untrained else "none"
    return choice


def record(check: TagCheck, repair: str, tags: list[str] | None = None) -> dict:
    """What metadata keeps of the check and the repair applied (the fit adds ``fitted``: the rows' provenance)."""
    return {"check": asdict(check), "repair": repair, "tags_as_text": list(tags or [])}


def sentence(info: dict | None) -> str | None:
    """The report's sentence about a model's repaired tags; None where nothing was repaired."""
    if not info or info.get("repair") in (None, "none"):
        return None
    if info["repair"] == "fit" and info.get("fitted"):
        fitted = info["fitted"]
        return (f"its tool-call tags {' and '.join(fitted['tags'])}, whose embedding rows are untrained, given rows "
                f"fitted by fctune (the rows of {fitted['rows_changed']} tokens changed, every other weight frozen; "
                "--repair-tokens none keeps them)")
    if not info.get("tags_as_text"):
        return None
    return (f"its tool-call tags {' and '.join(info['tags_as_text'])}, whose embedding rows are untrained, fed as text "
            "by fctune (no weight changed; --repair-tokens none keeps them)")


def repair_tokenizer(choice: str, tokenizer, check: TagCheck, adapter: str | None = None) -> tuple[object, dict]:
    """The tokenizer to use under ``--repair-tokens choice`` and what metadata records of it; logs the check's line.
    An adapter is evaluated with the tokenizer it was trained with: ``auto`` repairs nothing there. ``fit`` leaves
    the tokenizer as it is; the caller applies the rows (:mod:`fctune.tag_fit`)."""
    repair = "none" if adapter and choice == "auto" else resolve_repair(choice, check)
    if repair == "fit":
        if adapter:
            raise UserError("--repair-tokens fit repairs a base model; an adapter is evaluated with the tokenizer and "
                            "rows it was trained with (--repair-tokens auto or none)")
        if not check.untrained:
            raise UserError(f"--repair-tokens fit: {check.model} has no untrained tag of its call format "
                            f"({check.how or 'its tags have rows of their own'}); nothing to fit")
        log.warning("%s; repaired: their rows fitted (--repair-tokens fit)", check.line())
        return tokenizer, record(check, "fit")
    tags = list(check.tags) if repair == "text" else []
    if tags:
        tokenizer = text_tags_tokenizer(tokenizer, tags)
    line = check.line()
    if line:
        log.warning("%s; %s", line, f"repaired: fed as text (--repair-tokens {choice})" if tags else
                    f"not repaired (--repair-tokens {choice}{', the adapter keeps its tokenizer' if adapter else ''})")
    elif tags:
        log.info("%s: tags %s fed as text (--repair-tokens %s)", check.model, ", ".join(tags), choice)
    return tokenizer, record(check, repair, tags)
