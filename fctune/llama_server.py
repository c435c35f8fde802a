"""llama.cpp's OpenAI-compatible server (PyPI ``llama-cpp-python[server]``) on 127.0.0.1, started and stopped
by pid. It serves a local GGUF as the offline LLM baseline and is the real peer of the OpenAI-backend tests.

    python -m fctune.llama_server --model smollm2 --port 8080      # serve until Ctrl-C
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("uvicorn") is not None


def _die_with_parent() -> None:
    """Linux: the server is killed when the process that started it dies, even by SIGKILL (SIGKILL, not SIGTERM:
    uvicorn answers SIGTERM by waiting for requests in flight, and a generation whose client is gone runs on)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LlamaServer:
    """``with LlamaServer(gguf) as srv: srv.base_url`` -> a running server, stopped on exit."""

    def __init__(self, model: str = "smollm2", port: int | None = None, chat_format: str = "chatml-function-calling",
                 n_ctx: int = 4096, n_threads: int | None = None, log_path: str | None = None,
                 startup_timeout_s: float = 120.0, extra_args: list[str] | None = None):
        from fctune.models import resolve_model

        ref = resolve_model(model)
        if ref.kind != "gguf":
            raise ServerError(f"{model!r} is not a GGUF file: llama.cpp serves GGUF models only")
        self.gguf, self.description = ref.location, ref.description
        self.port = port or free_port()
        # llama-cpp-python generates on cpu_count // 2 threads by default: half the machine idles during decoding
        self.chat_format, self.n_ctx, self.n_threads = chat_format, n_ctx, n_threads or os.cpu_count()
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", self.gguf, "--chat_format", self.chat_format,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx)]
        if self.n_threads:
            cmd += ["--n_threads", str(self.n_threads)]
        return cmd + self.extra_args

    def start(self) -> "LlamaServer":
        if not installed():
            raise ServerError("llama-cpp-python[server] is not installed: pip install -e '.[server]' "
                              "(scripts/bootstrap.sh does; the first build takes ~12 minutes on 2 cores)")
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        deadline = time.time() + self.startup_timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"llama.cpp server exited with code {self.proc.returncode} during start-up"
                                  + (f" (log: {self.log_path})" if self.log_path else ""))
            if self.healthy():
                log.info("llama.cpp server pid %d serving %s at %s", self.proc.pid, Path(self.gguf).name,
                         self.base_url)
                return self
            time.sleep(0.5)
        self.stop()
        raise ServerError(f"llama.cpp server did not answer within {self.startup_timeout_s:.0f}s")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/models", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.info("llama.cpp server pid %d stopped", self.proc.pid)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None) -> int:
    import argparse

    from fctune.cli import setup_logging

    ap = argparse.ArgumentParser(prog="python -m fctune.llama_server", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="GGUF file or 'smollm2'")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--chat-format", default="chatml-function-calling")
    args = ap.parse_args(argv)
    setup_logging()
    srv = LlamaServer(args.model, args.port, args.chat_format).start()
    print(f"serving at {srv.base_url} (pid {srv.proc.pid}); Ctrl-C stops it", flush=True)
    try:
        srv.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
