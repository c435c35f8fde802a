"""Serve an exported model with tool calling: llama.cpp's OpenAI-compatible server (llama-cpp-python) with
``fctune.chat_handler``, which builds the prompt from the export's own chat template and returns the model's calls as
real ``tool_calls``.

    python -m fctune.serve --model paper_approach/exported/phi/phi.q8_0.gguf --tokenizer paper_approach/exported/phi/hf
    # then any OpenAI client: base_url=http://127.0.0.1:8080/v1, tools=[...]

GPU hosts: ``vllm serve EXPORT/hf --enable-auto-tool-choice --tool-call-parser hermes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ServeConfig:
    """Serve an exported GGUF with tool calling on an OpenAI-compatible endpoint (llama.cpp)."""

    model: str = field(default="", metadata={"help": "the exported GGUF file"})
    tokenizer: str | None = field(default=None, metadata={
        "help": "the export's hf/ folder (its chat template renders the tools; default: hf/ beside the GGUF)"})
    port: int = field(default=8080, metadata={"min": 1, "max": 65535, "help": "port on 127.0.0.1"})
    n_ctx: int = field(default=4096, metadata={"min": 256, "help": "context size in tokens"})
    threads: int | None = field(default=None, metadata={"min": 1, "help": (
        "CPU threads, for decoding and for prompts (default: OMP_NUM_THREADS where set, else every core)")})
    log_file: str | None = field(default=None, metadata={"help": "server log (default: none)"})


def serve(cfg: ServeConfig) -> dict:
    from pathlib import Path

    from fctune.errors import UserError
    from fctune.llama_server import LlamaServer

    gguf = Path(cfg.model)
    if not gguf.is_file():
        raise UserError(f"--model {cfg.model}: no such GGUF file")
    tok = Path(cfg.tokenizer) if cfg.tokenizer else gguf.parent / "hf"
    if not (tok / "tokenizer_config.json").exists():
        raise UserError(f"--tokenizer {tok}: no tokenizer there (the export's hf/ folder)")
    srv = LlamaServer(str(gguf), cfg.port, n_ctx=cfg.n_ctx, n_threads=cfg.threads, log_path=cfg.log_file,
                      tokenizer=str(tok)).start()
    srv.serve_until_interrupted(f"{gguf.name} with tool calling")
    return {"model": str(gguf), "base_url": srv.base_url}


def main(argv=None) -> int:
    from fctune.cli import run_script

    return run_script(ServeConfig, serve, argv, summary=lambda r: f"stopped serving {r['model']}")


if __name__ == "__main__":
    raise SystemExit(main())
