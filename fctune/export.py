"""Export a fine-tuned adapter for deployment: a merged safetensors folder whose chat template renders tools the way
the model was trained, checked against the training renderer row by row, and GGUF files for llama.cpp that carry
the same template; optionally pushed to the Hugging Face hub.

    python -m fctune.export --adapter paper_approach/adapters/phi --output paper_approach/exported/phi
    python -m fctune.export --adapter ... --gguf-types f16 q8_0 q4_k_m --push-to-hub me/phi-fc

Outputs in OUTPUT: ``hf/`` (``from_pretrained`` and vLLM load it: ``vllm serve OUTPUT/hf --enable-auto-tool-choice
--tool-call-parser hermes``), ``<name>.<type>.gguf`` (llama.cpp: ``python -m fctune.serve --model ...``),
``export.json`` (what was exported from what, the template check, sizes and sha256).

The GGUF converter is llama.cpp's own ``convert_hf_to_gguf.py``, taken from the source distribution of the
llama-cpp-python version installed (fetched once with pip into the cache) or given with ``--converter``; q4_k_m
is made from the f16 file by llama.cpp's quantizer through llama-cpp-python's binding.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fctune.config import now_iso
from fctune.errors import UserError
from fctune.io import sha256_file, write_json_atomic

log = logging.getLogger(__name__)

CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")       # what convert_hf_to_gguf.py writes itself
QUANTIZER_TYPES = {"q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}  # llama_ftype values of llama.cpp's quantizer
# vLLM's parser for the call format each prompt format trains: both write Hermes <tool_call> JSON blocks
VLLM_TOOL_PARSER = {"hermes": "hermes", "native": "hermes"}


@dataclass
class ExportConfig:
    """Export a fine-tuned adapter: merged folder with a tools-aware chat template, GGUF files, optional hub push."""

    adapter: str = field(default="", metadata={"help": "adapter folder (adapter_config.json, metadata.json)"})
    merged: str | None = field(default=None, metadata={
        "help": "instead of --adapter: a merged (or fully fine-tuned) model folder to export as it is"})
    prompt_format: str = field(default="auto", metadata={
        "help": "with --merged: the prompt format it was trained with (an adapter records its own)",
        "choices": ["auto", "native", "hermes"]})
    output: str | None = field(default=None, metadata={"help": "output folder (default paper_approach/exported/"
                                                                "<adapter name>)"})
    gguf_types: list[str] = field(default_factory=lambda: ["f16", "q8_0"], metadata={
        "help": f"GGUF files to write: {', '.join(CONVERTER_TYPES + tuple(QUANTIZER_TYPES))} (none: no GGUF)"})
    dtype: str = field(default="auto", metadata={"help": "merged weights' dtype", "choices": ["auto", "bf16", "fp16",
                                                                                              "fp32"]})
    parity_file: str | None = field(default=None, metadata={
        "help": "rows to check the exported template on (default: the adapter's validation split)"})
    parity_limit: int = field(default=200, metadata={"min": 1, "help": "at most this many rows of PARITY_FILE"})
    allow_template_mismatch: bool = field(default=False, metadata={
        "help": "write the export even when the template renders some rows differently from training"})
    converter: str | None = field(default=None, metadata={
        "help": "llama.cpp's convert_hf_to_gguf.py (default: from the llama-cpp-python sdist, cached)"})
    push_to_hub: str | None = field(default=None, metadata={"help": "hub repository (user/name) to upload to"})
    private: bool = field(default=True, metadata={"help": "create the hub repository private"})


# -- the converter -------------------------------------------------------------------------------------------
def llama_cpp_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        raise UserError("llama-cpp-python is not installed (pip install -e '.[server]'): its source holds the GGUF "
                        "converter; or pass --converter PATH/convert_hf_to_gguf.py") from None


def ensure_converter(path: str | None = None) -> Path:
    """llama.cpp's ``convert_hf_to_gguf.py`` with its ``conversion/`` and ``gguf-py/`` beside it."""
    if path:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"--converter {path}: no such file")
        return p
    from fctune.models import cache_dir

    version = llama_cpp_version()
    home = cache_dir() / f"llama.cpp-convert-{version}"
    script = home / "convert_hf_to_gguf.py"
    if script.is_file():
        return script
    log.info("fetching llama.cpp's GGUF converter from the llama-cpp-python %s source distribution (once)", version)
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                            f"llama-cpp-python=={version}", "-d", tmp], capture_output=True, text=True)
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if r.returncode != 0 or not sdists:
            raise UserError(f"could not fetch the llama-cpp-python {version} source distribution for its GGUF "
                            f"converter (pip: {(r.stderr or r.stdout).strip().splitlines()[-1:] or ['no output']}); "
                            f"pass --converter PATH/convert_hf_to_gguf.py")
        prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
        wanted = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")
        part = home.with_name(home.name + ".part")
        with tarfile.open(sdists[0]) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(prefix)
                       and m.name[len(prefix):].startswith(wanted) and (m.isfile() or m.isdir())]
            for m in members:
                m.name = m.name[len(prefix):]
            tar.extractall(part, members=members, filter="data")
        part.rename(home)
    return script


def _byte_level_with_fallback(tokenizer_json: dict) -> bool:
    """A byte-level BPE (GPT-2 style) vocabulary that also says ``byte_fallback``: transformers writes that when it
    converts such a tokenizer out of a GGUF file (SmolLM2's). Byte fallback can never fire after a byte-level
    pre-tokenizer, but llama.cpp's converter takes the flag for a SentencePiece vocabulary, writes the GGUF as one,
    and llama.cpp then fails on the first prompt (no newline token)."""
    model, pre = tokenizer_json.get("model") or {}, tokenizer_json.get("pre_tokenizer") or {}
    pres = [pre] + list(pre.get("pretokenizers") or [])
    return model.get("type") == "BPE" and bool(model.get("byte_fallback")) and any(
        p.get("type") == "ByteLevel" for p in pres)


def conversion_folder(hf: Path, tmp: Path) -> tuple[Path, str | None]:
    """The folder the converter reads: ``hf`` itself, or a copy (weights linked) whose tokenizer.json has
    ``byte_fallback`` off where it is a byte-level BPE (see above); the second value says what was changed."""
    tj = hf / "tokenizer.json"
    data = json.loads(tj.read_text()) if tj.exists() else {}
    if not _byte_level_with_fallback(data):
        return hf, None
    tmp.mkdir(parents=True, exist_ok=True)
    for f in hf.iterdir():
        if f.name != "tokenizer.json":
            (tmp / f.name).symlink_to(f.resolve())
    data["model"]["byte_fallback"] = False
    (tmp / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    return tmp, "byte_fallback off in the converter's copy of tokenizer.json (a byte-level BPE vocabulary)"


def convert(merged: Path, out: Path, outtype: str, converter: Path) -> None:
    # absolute paths: the converter runs in its own folder (it imports conversion/ and gguf-py/ from there)
    r = subprocess.run([sys.executable, str(converter.resolve()), str(merged.resolve()), "--outfile",
                        str(out.resolve()), "--outtype", outtype], capture_output=True, text=True,
                       cwd=converter.resolve().parent)
    if r.returncode != 0 or not out.exists():
        tail = " | ".join((r.stderr or r.stdout).strip().splitlines()[-4:])
        raise UserError(f"llama.cpp's converter could not write {out.name} from {merged}: {tail}")


def quantize(src: Path, out: Path, kind: str) -> None:
    """llama.cpp's quantizer (``llama_model_quantize``) through llama-cpp-python, in a child process (a crash in
    native code must not take the export with it)."""
    code = ("import sys, llama_cpp as l; p = l.llama_model_quantize_default_params(); p.ftype = int(sys.argv[3]); "
            "sys.exit(l.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), p))")
    r = subprocess.run([sys.executable, "-c", code, str(src), str(out), str(QUANTIZER_TYPES[kind])],
                       capture_output=True, text=True)
    if r.returncode != 0 or not out.exists():
        raise UserError(f"llama.cpp's quantizer could not write {out.name} ({kind}) from {src.name}: exit "
                        f"{r.returncode}; {' | '.join((r.stderr or r.stdout).strip().splitlines()[-3:])}")


def gguf_chat_template(path: Path) -> str | None:
    """The chat template a GGUF file carries (``tokenizer.chat_template``)."""
    from fctune.gguf_tokenizer import read_gguf_metadata

    return read_gguf_metadata(path).get("tokenizer.chat_template")


# -- the template --------------------------------------------------------------------------------------------
def write_chat_template(hf: Path, adapter_meta: dict) -> dict:
    """Give the merged folder's tokenizer the template the model was trained with tools in; return what was done."""
    from transformers import AutoTokenizer

    from fctune.chat_template import hermes_chat_template
    from fctune.render import PromptRenderer

    tok = AutoTokenizer.from_pretrained(hf)
    trained = PromptRenderer(tok, adapter_meta.get("prompt", {}).get("prompt_format", "auto"))
    if trained.fallback_template:  # no template in the tokenizer: training used fctune's fallback turn format
        log.warning("the base tokenizer has no chat template; the export carries fctune's %s fallback",
                    trained.fallback_template)
    if trained.mode == "hermes":
        tok.chat_template = hermes_chat_template(tok.chat_template, trained.tool_role_ok)
        kind = "fctune hermes tools over the model's own turn format"
    else:
        kind = "the model's own template (it renders tools)"
    tok.save_pretrained(hf)
    return {"prompt_format": trained.mode, "template": kind, "tool_role": trained.tool_role_ok,
            "fallback_turn_format": trained.fallback_template}


def check_template(hf: Path, base_tokenizer_source: str, prompt_format: str, rows_file: str, limit: int) -> dict:
    from transformers import AutoTokenizer

    from fctune.chat_template import template_parity
    from fctune.models import load_tokenizer
    from fctune.render import PromptRenderer
    from fctune.schema import read_examples

    examples = read_examples(rows_file)[:limit]
    trained = PromptRenderer(load_tokenizer(base_tokenizer_source), prompt_format)
    result = template_parity(examples, trained, AutoTokenizer.from_pretrained(hf))
    return {"file": rows_file, **result}


# -- the run -------------------------------------------------------------------------------------------------
def export(cfg: ExportConfig) -> dict:
    from fctune.merge import MergeConfig, merge

    if bool(cfg.adapter) == bool(cfg.merged):
        raise UserError("give one of --adapter (a LoRA adapter folder) and --merged (a model folder)")
    adapter = Path(cfg.adapter or cfg.merged)
    if cfg.adapter and not (adapter / "adapter_config.json").exists():
        raise UserError(f"--adapter {cfg.adapter}: not an adapter folder (adapter_config.json missing)")
    if cfg.merged and not (adapter / "config.json").exists():
        raise UserError(f"--merged {cfg.merged}: not a model folder (config.json missing)")
    bad = [t for t in cfg.gguf_types if t not in CONVERTER_TYPES + tuple(QUANTIZER_TYPES) + ("none",)]
    if bad:
        raise UserError(f"--gguf-types {bad}: not one of {', '.join(CONVERTER_TYPES + tuple(QUANTIZER_TYPES))}, none")
    meta_path = adapter / "metadata.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if cfg.merged:
        meta.setdefault("prompt", {"prompt_format": cfg.prompt_format})
    name = meta.get("adapter") or adapter.name
    out = Path(cfg.output or f"paper_approach/exported/{name}")
    hf = out / "hf"
    out.mkdir(parents=True, exist_ok=True)

    if cfg.merged:
        merged = copy_model(adapter, hf)
    else:
        merged = merge(MergeConfig(adapter=str(adapter), output=str(hf), dtype=cfg.dtype))
    template = write_chat_template(hf, meta)
    rows_file = cfg.parity_file or (meta.get("dataset") or {}).get("val_file")
    if rows_file and Path(rows_file).exists():
        parity = check_template(hf, str(adapter), template["prompt_format"], rows_file, cfg.parity_limit)
    else:
        parity = {"file": rows_file, "rows": 0, "skipped": "no rows to check on (pass --parity-file)"}
        log.warning("the exported chat template was not checked: %s", parity["skipped"])
    if parity.get("rows") and parity["identical"] < parity["rows"]:
        msg = (f"the exported chat template renders {parity['rows'] - parity['identical']} of {parity['rows']} rows "
               f"of {rows_file} differently from training; first: {parity['first_difference']}")
        if not cfg.allow_template_mismatch:
            raise UserError(msg + " (--allow-template-mismatch writes the export anyway)")
        log.warning(msg)
    from transformers import AutoTokenizer

    exported_template = AutoTokenizer.from_pretrained(hf).chat_template
    files = {}
    types = [t for t in cfg.gguf_types if t != "none"]
    tokenizer_fix = None
    if types:
        converter = ensure_converter(cfg.converter)
        source, tokenizer_fix = conversion_folder(hf, out / ".convert-source")
        made: dict[str, Path] = {}
        for t in sorted(types, key=lambda t: t in QUANTIZER_TYPES):  # the quantizer starts from the f16 file
            path = out / f"{name}.{t}.gguf"
            if t in CONVERTER_TYPES:
                convert(source, path, t, converter)
            else:
                src = made.get("f16")
                if src is None:
                    src = out / f"{name}.f16.tmp.gguf"
                    convert(source, src, "f16", converter)
                quantize(src, path, t)
                if src.name.endswith(".tmp.gguf"):
                    src.unlink()
            made[t] = path
            carried = gguf_chat_template(path)
            files[path.name] = {"type": t, "bytes": path.stat().st_size, "sha256": sha256_file(path),
                                "chat_template_is_the_exported_one": carried == exported_template}
            if carried != exported_template:
                raise UserError(f"{path}: the GGUF does not carry the exported chat template")
            log.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
        if source != hf:
            import shutil

            shutil.rmtree(source)
    info = {
        "exported_at": now_iso(),
        "adapter": str(adapter),
        "adapter_version_id": meta.get("version_id"),
        "base_model": merged["base_model"],
        "merged": str(hf),
        "chat_template": template,
        "template_parity": parity,
        "gguf": files,
        "converter": {"llama_cpp_python": llama_cpp_version() if types else None,
                      "script": "convert_hf_to_gguf.py" if types else None, "tokenizer_fix": tokenizer_fix},
        "serve": {
            "llama.cpp": f"python -m fctune.serve --model {out / (name + '.' + types[-1] + '.gguf')} --tokenizer {hf}"
            if types else None,
            "vllm": f"vllm serve {hf} --enable-auto-tool-choice --tool-call-parser "
                    f"{VLLM_TOOL_PARSER[template['prompt_format']]}",
        },
    }
    write_json_atomic(out / "export.json", info)
    write_model_card(hf, info, meta)
    if cfg.push_to_hub:
        info["hub"] = push(cfg.push_to_hub, out, cfg.private)
        write_json_atomic(out / "export.json", info)
    return info


def copy_model(src: Path, hf: Path) -> dict:
    """A merged folder exported as it is: its files copied (the chat template is then rewritten in the copy)."""
    import shutil

    if hf.exists():
        shutil.rmtree(hf)
    shutil.copytree(src, hf, ignore=shutil.ignore_patterns("checkpoints", "*.gguf"))
    return {"base_model": str(src)}


def write_model_card(hf: Path, info: dict, meta: dict) -> None:
    """README.md for the hub: where the model came from, how it was trained and checked, how to serve it."""
    lines = [f"# {Path(info['adapter']).name} (fine-tuned for function calling with fctune)", "",
             f"- base model: `{info['base_model']}`", f"- adapter version: `{info['adapter_version_id']}`",
             f"- prompt format: {info['chat_template']['prompt_format']} ({info['chat_template']['template']})",
             f"- template check: {info['template_parity'].get('identical', 0)} of "
             f"{info['template_parity'].get('rows', 0)} rows render as in training",
             f"- training: {meta.get('global_step')} steps, final train loss {meta.get('final_train_loss')}, "
             f"final validation loss {meta.get('final_val_loss')}", "",
             "## Serve", "", f"    {info['serve']['vllm']}"]
    if info["serve"]["llama.cpp"]:
        lines.append(f"    {info['serve']['llama.cpp']}")
    lines += ["", "## Chat template", "", "```jinja", saved_chat_template(hf), "```", ""]
    (hf / "README.md").write_text("\n".join(lines))


def saved_chat_template(hf: Path) -> str:
    jinja = hf / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text()
    return json.loads((hf / "tokenizer_config.json").read_text()).get("chat_template", "")


def push(repo: str, out: Path, private: bool) -> dict:
    """Upload the export to the hub; no network or no token is one clear error."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise UserError("--push-to-hub needs huggingface_hub (pip install huggingface_hub)") from None
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if not token:
        raise UserError(f"--push-to-hub {repo}: no HF_TOKEN set (put it in .env; it needs write access)")
    api = HfApi(token=token)
    try:
        api.create_repo(repo, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo, folder_path=str(out), commit_message="fctune export")
    except Exception as e:  # noqa: BLE001 - network, auth and hub errors all end the same way for the user
        raise UserError(f"--push-to-hub {repo}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    return {"repo": repo, "commit": getattr(commit, "oid", None), "url": f"https://huggingface.co/{repo}"}


def main(argv=None) -> int:
    from fctune.cli import run_script

    return run_script(ExportConfig, export, argv, summary=lambda i: (
        f"exported {i['adapter']} -> {i['merged']} and {len(i['gguf'])} GGUF file(s); template check "
        f"{i['template_parity'].get('identical', 0)}/{i['template_parity'].get('rows', 0)} rows; "
        f"serve with: {i['serve']['llama.cpp'] or i['serve']['vllm']}"))


if __name__ == "__main__":
    raise SystemExit(main())
