"""llama.cpp's OpenAI-compatible server on 127.0.0.1, started and stopped by pid. It serves a local GGUF as the
offline LLM baseline and is the real peer of the OpenAI-backend tests. Two servers:

- ``cpp``: llama.cpp's own ``llama-server``, built by ``scripts/bootstrap.sh`` from the same llama.cpp source as
  the Python wheel (cached binary, path in ``.venv/.fctune-llama-server``; ``FCTUNE_LLAMA_SERVER`` names another).
  It decodes ``parallel`` requests side by side in one batch (slots, continuous batching), so an evaluation's
  ``--max-concurrency N`` no longer waits in line (BENCHMARKS.md, table 7).
- ``python``: ``llama-cpp-python[server]``, which answers one request at a time (requests in flight wait in line).
  Used where no ``llama-server`` binary is there, and for an exported model's chat handler (fctune.serve), which
  only it can load; the choice and why are in the log and in every run's metadata (``served_by``).

    python -m fctune.llama_server --model smollm2 --port 8080      # serve until Ctrl-C
    python -m fctune.llama_server --check                          # does this build decode a long prompt?

A server that dies is noticed at once: :meth:`LlamaServer.failure` reports the process's exit (a signal by name)
with the tail of its log, and the OpenAI backend raises it instead of retrying a dead endpoint.

CPUs with AMX: llama-cpp-python 0.3.36 built with ``-march=native`` on such a CPU compiles ggml's AMX kernels, and
where the machine does not grant AMX tile state to processes they die in ``libggml-cpu`` (a general protection
fault during tile setup) on any prompt longer than a few tokens. ``scripts/bootstrap.sh`` therefore builds it
without them (``-mno-amx-*``, recorded in ``.venv/.fctune-llama-build``) and runs :func:`check_long_prompt`. A
build that has them anyway (``AMX_INT8 = 1`` in its system info) is started with llama.cpp's extra buffer types
off (``use_extra_bufts=False`` in the model params, which is what routes weights to the AMX kernels), with a
warning in the server log and ``llama_cpp_build()`` saying so.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from fctune.errors import UserError

log = logging.getLogger(__name__)


class ServerError(UserError, RuntimeError):
    """The llama.cpp server cannot start or has died; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("uvicorn") is not None


BUILD_RECORD = Path(sys.prefix) / ".fctune-llama-build"   # written by scripts/bootstrap.sh
LONG_PROMPT = " ".join(["Weather in Paris, Tokyo and Lima today and tomorrow, in Celsius please."] * 16)


SERVER_RECORD = Path(sys.prefix) / ".fctune-llama-server"  # written by scripts/bootstrap.sh: the binary's path
SERVER_ENV = "FCTUNE_LLAMA_SERVER"


def llama_server_binary() -> str | None:
    """The ``llama-server`` binary to use: $FCTUNE_LLAMA_SERVER, else the one scripts/bootstrap.sh built; None
    when neither exists (a named one that is missing is an error, not a silent fallback)."""
    named = os.environ.get(SERVER_ENV)
    if named:
        if not os.access(named, os.X_OK):
            raise ServerError(f"{SERVER_ENV}={named}: no executable llama-server there")
        return named
    if SERVER_RECORD.exists():
        path = SERVER_RECORD.read_text().strip()
        if os.access(path, os.X_OK):
            return path
        log.warning("%s names %s, which is gone: rerun scripts/bootstrap.sh to rebuild it", SERVER_RECORD, path)
    return None


def llama_cpp_build() -> dict:
    """What llama.cpp this environment has: version, the bootstrap's build flags, ggml's CPU features, and whether
    the AMX kernels are compiled in (then the extra buffer types are switched off, see the module doc)."""
    from importlib import metadata

    info: dict = {"installed": installed()}
    if not info["installed"]:
        return info
    import llama_cpp

    info["version"] = metadata.version("llama-cpp-python")
    info["system_info"] = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    info["amx_kernels"] = has_amx_kernels()
    info["extra_buffer_types"] = not info["amx_kernels"]
    info["build"] = BUILD_RECORD.read_text().strip() if BUILD_RECORD.exists() else "not built by scripts/bootstrap.sh"
    info["llama_server_binary"] = llama_server_binary()
    return info


def cores_to_use() -> int:
    """Threads for llama.cpp in this process: ``OMP_NUM_THREADS`` where set (the pipeline and the test workers set it
    to each process's share of the cores, and torch honours it too), else every core. llama-cpp-python's own defaults
    are half the cores for decoding, which leaves the rest idle, and all of them for prompts, which oversubscribes a
    shared machine."""
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return int(omp) if omp.isdigit() and int(omp) > 0 else (os.cpu_count() or 1)


def has_amx_kernels() -> bool:
    """Whether the installed llama.cpp was compiled with ggml's AMX kernels (its CPU feature list says so)."""
    import llama_cpp

    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


def _avoid_amx_kernels() -> bool:
    """Switch off llama.cpp's extra buffer types in every model this process loads when the build has AMX kernels."""
    import llama_cpp.llama_cpp as ll

    if not has_amx_kernels():
        return False
    default = ll.llama_model_default_params

    def params():
        p = default()
        p.use_extra_bufts = False  # Llama() takes no such keyword: the field must be set in the params struct
        return p

    ll.llama_model_default_params = params
    print("fctune: this llama.cpp build has AMX kernels: extra buffer types (AMX, repacking) are off "
          "(see fctune/llama_server.py)", file=sys.stderr, flush=True)
    return True


def check_long_prompt(model: str = "smollm2", timeout_s: float = 300) -> dict:
    """Decode a ~200-token prompt in a child process: a build that crashes on long prompts fails here, by name."""
    from fctune.models import resolve_model

    gguf = resolve_model(model).location
    t0 = time.time()
    try:
        r = subprocess.run([sys.executable, "-m", "fctune.llama_server", "--check-model", gguf], capture_output=True,
                           text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ServerError(f"llama.cpp did not decode a long prompt of {Path(gguf).name} within {timeout_s:.0f}s") \
            from None
    if r.returncode != 0:
        raise ServerError(f"llama.cpp {exit_description(r.returncode)} decoding a long prompt of {Path(gguf).name}; "
                          f"rebuild it with scripts/bootstrap.sh (see fctune/llama_server.py). Last output: "
                          f"{' | '.join((r.stdout + r.stderr).strip().splitlines()[-3:])}")
    out = {"ok": True, "model": Path(gguf).name, "seconds": round(time.time() - t0, 1), "reply": r.stdout.strip()}
    if llama_server_binary():  # the C++ server is another build of the same kernels: it must decode it too
        t0 = time.time()
        with LlamaServer(model, engine="cpp", parallel=1, startup_timeout_s=timeout_s) as srv:
            body = json.dumps({"prompt": LONG_PROMPT, "max_tokens": 8, "temperature": 0}).encode()
            req = urllib.request.Request(srv.base_url + "/completions", body, {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                    reply = json.loads(resp.read())["choices"][0]["text"]
            except (urllib.error.URLError, OSError) as e:
                raise ServerError(f"llama-server failed on a long prompt of {Path(gguf).name}: "
                                  f"{srv.failure() or e}") from None
        out["llama_server"] = {"binary": srv.binary, "seconds": round(time.time() - t0, 1), "reply": reply}
    return out


def _check_model(gguf: str) -> int:
    import llama_cpp

    _avoid_amx_kernels()
    threads = cores_to_use()
    llm = llama_cpp.Llama(model_path=gguf, n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
    n = len(llm.tokenize(LONG_PROMPT.encode()))
    out = llm(LONG_PROMPT, max_tokens=8)
    print(f"decoded a {n}-token prompt: {out['choices'][0]['text']!r}", flush=True)
    return 0


def exit_description(code: int | None) -> str:
    """``exited with code 3`` or ``was killed by SIGSEGV``."""
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def log_tail(path: str | None, n: int = 8) -> str:
    if not path:
        return "(no log)"
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return f"(log {path} unreadable)"
    return f"last lines of {path}: " + " | ".join(x.strip() for x in lines[-n:] if x.strip())


def _die_with_parent() -> None:
    """Linux: the server is killed when the process that started it dies, even by SIGKILL (SIGKILL, not SIGTERM:
    uvicorn answers SIGTERM by waiting for requests in flight, and a generation whose client is gone runs on)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def parallel_slots(served_by: str | None) -> int | None:
    """How many requests llama-server decoded side by side for a run whose metadata says ``served_by``
    (LlamaServer.served_by); None where another server answered. More than one slot makes greedy answers depend on
    which requests happened to share a batch, so two runs can differ by a few rows (BENCHMARKS.md, table 7)."""
    found = re.fullmatch(r"llama\.cpp llama-server \(.*\), (\d+) parallel slot\(s\)", served_by or "")
    return int(found.group(1)) if found else None


class LlamaServer:
    """``with LlamaServer(gguf) as srv: srv.base_url`` -> a running server, stopped on exit."""

    def __init__(self, model: str = "smollm2", port: int | None = None, chat_format: str = "chatml-function-calling",
                 n_ctx: int = 4096, n_threads: int | None = None, log_path: str | None = None,
                 startup_timeout_s: float = 120.0, extra_args: list[str] | None = None, tokenizer: str | None = None,
                 engine: str = "python", parallel: int = 1):
        """``tokenizer``: an exported model's hf/ folder; the server then renders prompts with its chat template and
        returns real ``tool_calls`` (fctune.serve's handler) instead of ``chat_format``'s. ``engine``: python (whose
        ``chat_format`` handler turns chat requests with tools into tool_calls), cpp (raw completions in parallel
        slots; chat requests use the GGUF's own template), or auto (cpp where its binary exists). ``parallel``:
        requests the cpp server decodes side by side, each with ``n_ctx`` tokens of context."""
        from fctune.models import resolve_model

        ref = resolve_model(model)
        if ref.kind != "gguf":
            raise ServerError(f"{model!r} is not a GGUF file: llama.cpp serves GGUF models only")
        self.gguf, self.description = ref.location, ref.description
        self.port = port or free_port()
        self.chat_format, self.n_ctx = chat_format, n_ctx
        self.n_threads = n_threads or cores_to_use()
        self.tokenizer = tokenizer
        if tokenizer:
            from fctune.chat_handler import HANDLER_NAME

            self.chat_format = HANDLER_NAME
        if engine not in ("auto", "cpp", "python"):
            raise ValueError(f"engine {engine!r}: auto, cpp or python")
        if engine == "cpp" and tokenizer:
            raise ServerError("an exported model's chat handler runs in llama-cpp-python's server only")
        binary = llama_server_binary() if engine != "python" and not tokenizer else None
        if engine == "cpp" and not binary:
            raise ServerError("--llama-server cpp: no llama-server binary (scripts/bootstrap.sh builds one; or set "
                              f"{SERVER_ENV})")
        self.engine, self.binary = ("cpp", binary) if binary else ("python", None)
        self.parallel = max(1, parallel) if binary else 1
        if engine == "auto" and self.engine == "python" and parallel > 1:
            log.warning("llama.cpp: llama-cpp-python's server answers one request at a time (%s); %d concurrent "
                        "requests will wait in line (scripts/bootstrap.sh builds llama-server, which batches them)",
                        "an exported model's handler" if tokenizer else "no llama-server binary", parallel)
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None
        self._stopping = self._reported = False
        self._report_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def served_by(self) -> str:
        """What serves the model, for the run's metadata (``parallel_slots`` reads the slots back)."""
        if self.engine == "cpp":
            return f"llama.cpp llama-server ({self.binary}), {self.parallel} parallel slot(s)"
        return "llama.cpp server (llama-cpp-python), one request at a time"

    def command(self) -> list[str]:
        if self.engine == "cpp":
            # each slot gets n_ctx tokens of context; -t: cores_to_use() for decoding and, by default, for prompts;
            # -fa off: flash attention ('auto' turns it on) made CPU evaluation slower at every width; -b 512:
            # the prompt batch of llama-cpp-python's server (BENCHMARKS.md)
            return [self.binary, "-m", self.gguf, "--host", "127.0.0.1", "--port", str(self.port),
                    "-c", str(self.n_ctx * self.parallel), "-np", str(self.parallel),
                    "-t", str(self.n_threads), "--no-webui", "-fa", "off", "-b", "512", *self.extra_args]
        # through this module's --serve, which switches off AMX kernels when the build has them, then runs
        # llama_cpp.server's own main with the arguments that follow
        return [sys.executable, "-m", "fctune.llama_server", "--serve", "--model", self.gguf,
               "--chat_format", self.chat_format,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
               # both counts: llama-cpp-python reads prompts on every core by default (n_threads_batch), and llama.cpp's
               # threads spin while they wait for each other: beside one busy process on 2 cores, prompts read on both
               # cores made a test's 9 requests 2.4x slower than on its share of one (BENCHMARKS.md)
               "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads), *self.extra_args]

    def start(self) -> LlamaServer:
        if self.engine == "python" and not installed():
            raise ServerError("llama-cpp-python[server] is not installed: pip install -e '.[server]' "
                              "(scripts/bootstrap.sh does; the first build takes ~5 minutes on 2 cores)")
        # the health check below accepts whoever answers on the port: it must be ours, so the port must be free now
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError:
                raise ServerError(f"127.0.0.1:{self.port} is already in use (another server there?): choose another "
                                  "--port, or stop what holds it") from None
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        env = None
        if self.tokenizer:
            from fctune.chat_handler import TOKENIZER_ENV

            env = {**os.environ, TOKENIZER_ENV: str(Path(self.tokenizer).resolve())}
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent, env=env)
        deadline = time.time() + self.startup_timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"llama.cpp server {exit_description(self.proc.returncode)} during start-up; "
                                  f"{log_tail(self.log_path)}")
            if self.healthy():
                log.info("%s: pid %d serving %s at %s", self.served_by, self.proc.pid, Path(self.gguf).name,
                         self.base_url)
                return self
            time.sleep(0.5)
        self.stop()
        raise ServerError(f"llama.cpp server did not answer within {self.startup_timeout_s:.0f}s")

    def failure(self) -> str | None:
        """None while the server process runs; once it has exited, what happened (a signal by name) and the tail
        of its log, also written at the end of the log (a crashed server writes nothing itself)."""
        if self.proc is None or self.proc.poll() is None or self._stopping:
            return None
        what = f"llama.cpp server (pid {self.proc.pid}) {exit_description(self.proc.returncode)}"
        with self._report_lock:  # every request thread notices the exit; the log gets the line once
            if not self._reported and self.log_path:
                with open(self.log_path, "a") as f:
                    f.write(f"\n[fctune {time.strftime('%H:%M:%S')}] {what}\n")
            self._reported = True
        return f"{what}; {log_tail(self.log_path)}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/models", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        self._stopping = True
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

    def serve_until_interrupted(self, what: str) -> None:
        """Run in the foreground (``python -m fctune.llama_server`` / ``fctune.serve``) until the server exits or
        Ctrl-C, then stop it."""
        print(f"serving {what} at {self.base_url} (pid {self.proc.pid}); Ctrl-C stops it", flush=True)
        try:
            self.proc.wait()
        except KeyboardInterrupt:
            return
        finally:
            self.stop()
        # it ended by itself: say how, rather than exit 0 as if it had been asked to stop
        raise ServerError(f"llama.cpp server {exit_description(self.proc.returncode)}; {log_tail(self.log_path)}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _serve(args: list[str]) -> int:
    """Child process of :class:`LlamaServer`: llama_cpp.server's main, AMX kernels off when the build has them."""
    _avoid_amx_kernels()
    from fctune.chat_handler import TOKENIZER_ENV, register_handler

    if os.environ.get(TOKENIZER_ENV):  # an exported model: prompts from its own template, calls as tool_calls
        register_handler(os.environ[TOKENIZER_ENV])
    from llama_cpp.server.__main__ import main as server_main

    sys.argv = ["llama_cpp.server", *args]
    server_main()
    return 0


def main(argv=None) -> int:
    import argparse

    from fctune.cli import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve"]:
        return _serve(argv[1:])
    if argv[:1] == ["--check-model"] and len(argv) == 2:
        return _check_model(argv[1])

    ap = argparse.ArgumentParser(prog="python -m fctune.llama_server", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="GGUF file or 'smollm2'")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--chat-format", default="chatml-function-calling")
    ap.add_argument("--check", action="store_true", help="decode a long prompt in a child process and print the "
                    "build (what scripts/bootstrap.sh runs after building llama-cpp-python)")
    args = ap.parse_args(argv)
    setup_logging()
    if args.check:
        import json

        try:
            print(json.dumps({**llama_cpp_build(), "long_prompt": check_long_prompt(args.model)}, indent=1))
        except ServerError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if not 0 < args.port < 65536:
        print(f"error: --port {args.port}: not a TCP port (1-65535)", file=sys.stderr)
        return 2
    try:
        LlamaServer(args.model, args.port, args.chat_format).start().serve_until_interrupted(args.model)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
