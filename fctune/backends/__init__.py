"""The evaluation backends, declared once in :data:`BACKENDS`: ``--backend``'s choices and help, the LLM-baseline
choices of the pipeline (``--llm``), Fledgling (``--llm-backend``) and the query writer (``--query-writer``), the
default model and how each is built all read it. A backend is built from an evaluation config
(:class:`fctune.evaluate.EvalConfig`): the fields each one reads are named where it is built."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fctune.backends.base import Backend
from fctune.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendSpec:
    """An evaluation backend, declared once in :data:`BACKENDS`: ``--backend``'s choices and help, the LLM-baseline
    choices of the pipeline, Fledgling and the query writer, the default model and the construction all read it."""

    help: str
    build: Callable[..., Backend]
    endpoint: bool = True           # an OpenAI-compatible endpoint: it can be the LLM baseline
    model_env: str | None = None    # the .env variable naming an API's model (no model is assumed for an API)
    tools_mode: str = "native"      # what --tools-mode auto means for it
    # --model is a file on this machine (fctune.models resolves it): labels use its short name, and its tokenizer
    # renders completions-mode prompts without --tokenizer; an API's --model is only a name
    local_model: bool = False


def _build_local(cfg) -> Backend:
    from fctune.backends.local import LocalBackend

    return LocalBackend(cfg.model, cfg.adapter, cfg.max_new_tokens or 256, cfg.batch_size, cfg.prompt_format,
                        cfg.device, cfg.dtype, cfg.engine, cfg.stop_repeats, cfg.repair_tokens)


def _endpoint_options(cfg) -> dict:
    """What every OpenAI-compatible backend shares: concurrency, retries, budget and how tools are sent."""
    tools_mode = cfg.tools_mode if cfg.tools_mode != "auto" else BACKENDS[cfg.backend].tools_mode
    common = dict(max_concurrency=cfg.max_concurrency, timeout_s=cfg.request_timeout_s, max_retries=cfg.max_retries,
                  backoff_base_s=cfg.backoff_base_s, max_tokens=cfg.max_new_tokens or 256,
                  structured_mode=cfg.structured_mode, tools_mode=tools_mode, api_names=cfg.api_names)
    if tools_mode == "completions":
        common.update(completions_renderer(cfg))
    elif cfg.backend == "llamacpp":
        log.warning("--tools-mode %s with --backend llamacpp goes through llama-cpp-python's chat handler, which "
                    "HTML-escapes the chat template (&lt;tools&gt;); scores are not comparable with other paths "
                    "(the default, completions, renders the model's own template)", tools_mode)
    return common


def _build_llamacpp(cfg) -> Backend:
    from fctune.backends.openai_backend import OpenAIBackend
    from fctune.llama_server import LlamaServer
    from fctune.models import resolve_model

    common = _endpoint_options(cfg)
    log_path = Path(cfg.results_dir) / "llama_server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # completions mode sends raw prompts, which llama.cpp's own server decodes --max-concurrency at a time; the
    # chat modes stay on llama-cpp-python's server, whose chat handler turns tools into tool_calls
    engine = cfg.llama_server if common["tools_mode"] == "completions" else "python"
    ref = resolve_model(cfg.model)
    served, tool_tokens = _repaired_gguf(cfg, ref, common)
    srv = LlamaServer(served, log_path=str(log_path), engine=engine, parallel=cfg.max_concurrency).start()
    return OpenAIBackend(Path(ref.location).name, base_url=srv.base_url, api_key="not-needed", on_close=srv.stop,
                         server_failure=srv.failure,
                         extra_identity={"served_by": srv.served_by,
                                         "model_description": ref.description,
                                         **({"tool_tokens": tool_tokens} if tool_tokens else {}),
                                         # the port is new each run; with it in the identity no run could resume
                                         "endpoint_host": LLAMACPP_HOST}, **common)


def _repaired_gguf(cfg, ref, common: dict) -> tuple[str, dict | None]:
    """The GGUF llama.cpp serves for ``--repair-tokens`` and what metadata records: in completions mode the tags of
    the declared call format are checked on the file's embedding rows and, when repaired, the prompt renderer reads
    them as text and the server gets a copy of the file whose tags are ordinary tokens (fctune.tool_tokens)."""
    from fctune.models import cache_dir
    from fctune.parse import declared_call_format
    from fctune.render import PromptRenderer
    from fctune.tool_tokens import detect_gguf, repair_tokenizer, repaired_gguf

    renderer = common.get("renderer")
    if ref.kind != "gguf" or renderer is None:  # chat modes: the server renders the GGUF's own template
        return ref.location, None
    check = detect_gguf(ref.location, renderer.tokenizer, declared_call_format(renderer), ref.spec)
    if not check.tags and cfg.repair_tokens != "text":
        return ref.location, None
    tok, info = repair_tokenizer(cfg.repair_tokens, renderer.tokenizer, check)
    if info["repair"] == "fit":  # rows fitted on the dequantized model (once, cached), written into a GGUF copy
        from fctune.models import load_causal_lm
        from fctune.tag_fit import fit_dtype, fitted_gguf, fitted_rows, summary

        rows, meta = fitted_rows(lambda: load_causal_lm(ref.spec, dtype=fit_dtype()), renderer.tokenizer, check,
                                 ref.location, renderer.mode)
        path, info["gguf"] = fitted_gguf(ref.location, rows, meta, cache_dir() / "models")
        info["fitted"] = summary(meta)
        return str(path), info
    if not info["tags_as_text"]:
        return ref.location, info
    common["renderer"] = PromptRenderer(tok, renderer.mode)
    path, info["gguf"] = repaired_gguf(ref.location, [check.tags[t] for t in info["tags_as_text"]],
                                       cache_dir() / "models")
    return str(path), info


def _build_azure(cfg) -> Backend:
    from fctune.backends.openai_backend import OpenAIBackend

    endpoint = os.environ.get("AZURE_OPENAI_ENDPOINT")
    key = os.environ.get("AZURE_OPENAI_API_KEY")
    version = os.environ.get("AZURE_OPENAI_API_VERSION", "2024-10-21")
    deployment = cfg.model
    missing = [n for n, v in (("AZURE_OPENAI_ENDPOINT", endpoint), ("AZURE_OPENAI_API_KEY", key),
                              ("AZURE_OPENAI_DEPLOYMENT or --model", deployment)) if not v]
    if missing:
        raise UserError(f"--backend azure needs {', '.join(missing)} (set them in .env; see .env.example)")
    return OpenAIBackend(deployment, azure_endpoint=endpoint, api_key=key, api_version=version,
                         **_endpoint_options(cfg))


def _build_openai(cfg) -> Backend:
    from fctune.backends.openai_backend import OpenAIBackend

    base_url = cfg.base_url or os.environ.get("OPENAI_BASE_URL")
    key = os.environ.get(cfg.api_key_env)
    if not base_url and not key:
        raise UserError(f"--backend openai needs --base-url (or OPENAI_BASE_URL) for a local server, or "
                        f"{cfg.api_key_env} for api.openai.com")
    return OpenAIBackend(cfg.model, base_url=base_url, api_key=key, **_endpoint_options(cfg))


BACKENDS: dict[str, BackendSpec] = {
    "local": BackendSpec("a model on this machine", _build_local, endpoint=False, local_model=True),
    "openai": BackendSpec("OPENAI_BASE_URL / OPENAI_API_KEY or --base-url", _build_openai, model_env="OPENAI_MODEL"),
    "azure": BackendSpec("AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_VERSION, AZURE_OPENAI_DEPLOYMENT, "
                         "AZURE_OPENAI_API_KEY", _build_azure, model_env="AZURE_OPENAI_DEPLOYMENT"),
    # completions: the model's own chat template rendered here (llama-cpp-python's chat handler HTML-escapes it)
    "llamacpp": BackendSpec("starts llama.cpp's OpenAI-compatible server on 127.0.0.1 for the GGUF --model and talks "
                            "to it like any endpoint", _build_llamacpp, tools_mode="completions", local_model=True),
}
LLM_BACKENDS = [name for name, b in BACKENDS.items() if b.endpoint]  # what an LLM baseline can be
API_MODEL_ENV = {name: b.model_env for name, b in BACKENDS.items() if b.model_env}

# The LLM baseline's backends, in one help text for every option that chooses one
LLM_BACKEND_HELP = "; ".join(f"{name} = {b.help}" for name, b in BACKENDS.items() if b.endpoint)
# Every backend, for the options that take any of them (--backend, --query-writer)
BACKEND_HELP = "; ".join(f"{name} = {b.help}" for name, b in BACKENDS.items())


AUTO_LLM_HELP = ("auto = azure if AZURE_OPENAI_ENDPOINT is set, openai if OPENAI_BASE_URL or OPENAI_API_KEY is, else "
                 "llamacpp")  # what auto_llm_backend() decides


def auto_llm_backend() -> tuple[str, str]:
    """Which LLM endpoint .env names: (backend, why). Azure first, then any OpenAI-compatible one, else llama.cpp."""
    if os.environ.get("AZURE_OPENAI_ENDPOINT"):
        return "azure", "AZURE_OPENAI_ENDPOINT is set"
    if os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"):
        return "openai", "OPENAI_BASE_URL / OPENAI_API_KEY is set"
    return "llamacpp", "no Azure/OpenAI endpoint in .env: llama.cpp server on 127.0.0.1 with a local GGUF"


LLAMACPP_HOST = "llama.cpp server on 127.0.0.1 (started for the run)"


def completions_renderer(cfg) -> dict:
    """The prompt renderer and stop strings for completions mode: the model's tokenizer and chat template, rendered
    exactly as the local backend renders them (``--prompt-format`` applies here too)."""
    from fctune.models import load_tokenizer, stop_token_ids
    from fctune.render import PromptRenderer

    spec = cfg.tokenizer or (cfg.model if BACKENDS[cfg.backend].local_model else None)
    if not spec:
        raise UserError(f"--tools-mode completions with --backend {cfg.backend} needs --tokenizer: the model's "
                        "tokenizer (hub id, folder or .gguf) renders the prompt the server completes")
    tok = load_tokenizer(spec)
    renderer = PromptRenderer(tok, cfg.prompt_format or "auto")
    return {"renderer": renderer, "stop": [tok.convert_ids_to_tokens(i) for i in stop_token_ids(tok)]}


def make_backend(cfg) -> Backend:
    """The backend ``cfg`` names, built (local model loaded, or endpoint client made)."""
    if cfg.stop_repeats and cfg.backend != "local":
        raise UserError(f"--stop-repeats is for the local backend (a model this process decodes); --backend "
                        f"{cfg.backend} answers whole, as its server decodes it")
    return BACKENDS[cfg.backend].build(cfg)
