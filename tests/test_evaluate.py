"""Evaluation: the local backend with an adapter and the OpenAI backend against a real llama.cpp server give
the same file layout; killed runs resume; retries and error accounting; secrets stay out of outputs."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fctune.evaluate import EvalConfig, evaluate
from fctune.schema import read_examples, write_examples

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-test-SECRET-9f8e7d6c5b4a3210"


@pytest.fixture(scope="module")
def llama_server():
    from fctune.llama_server import LlamaServer, installed

    assert installed(), "llama-cpp-python[server] must be installed (scripts/bootstrap.sh --test does)"
    with LlamaServer("smollm2", n_ctx=4096) as srv:
        yield srv


@pytest.fixture(scope="module")
def offline_rows():
    """The offline generator's 120 rows of seed 21, which every split of this module picks from."""
    from fctune.offline import generate_examples

    return generate_examples(120, seed=21)


@pytest.fixture(scope="module")
def mini_split(tmp_path_factory, offline_rows):
    exs = offline_rows
    pick = [e for e in exs if e.expected.kind == "tool_calls" and e.metadata["turn_type"] == "single"][:5]
    pick += [e for e in exs if e.metadata.get("multi_turn_kind") == "sequential"][:2]
    pick += [e for e in exs if e.expected.kind == "json"][:2] + [e for e in exs if e.expected.kind == "no_call"][:1]
    d = tmp_path_factory.mktemp("split")
    write_examples(d / "mini_test.jsonl", pick)
    return d / "mini_test.jsonl"


@pytest.fixture(scope="module")
def short_split(tmp_path_factory, offline_rows):
    """Ten rows with the shortest serialized examples (fewest and smallest tools): for tests of what happens when a
    server goes away, where the answers do not matter but every prompt token costs the llama.cpp server ~10 ms on
    2 cores (mini_split's first three rows take ~27 s to answer there, these ~10 s)."""
    exs = sorted(offline_rows, key=lambda e: (len(json.dumps(e.to_dict())), e.id))
    d = tmp_path_factory.mktemp("short")
    write_examples(d / "short_test.jsonl", exs[:10])
    return d / "short_test.jsonl"


@pytest.fixture(scope="module")
def layout_split(tmp_path_factory, offline_rows):
    """One row of each kind the layout test checks (a call, a sequential multi-turn call, two structured rows, a
    no-call row), the call and no-call rows with the fewest tools: every row costs a llama.cpp server ~0.5-1k prompt
    tokens at ~100 tokens/s on 2 cores, and the layout needs each kind once, not mini_split's ten rows."""
    exs = offline_rows
    fewest = lambda rows: min(rows, key=lambda e: (len(e.tools), e.id))  # noqa: E731
    pick = [fewest([e for e in exs if e.expected.kind == "tool_calls" and e.metadata["turn_type"] == "single"]),
            fewest([e for e in exs if e.metadata.get("multi_turn_kind") == "sequential"])]
    pick += [e for e in exs if e.expected.kind == "json"][:2]
    pick += [fewest([e for e in exs if e.expected.kind == "no_call"])]
    d = tmp_path_factory.mktemp("layout")
    write_examples(d / "layout_test.jsonl", pick)
    return d / "layout_test.jsonl"


@pytest.fixture(scope="module")
def native_split(tmp_path_factory, offline_rows):
    """Rows whose tools llama-cpp-python's grammar-constrained tool calling answers in about a second (greedy,
    so stable); rows with enum parameters can take minutes there (see fctune.backends.openai_backend)."""
    keep = {"offline-21-000001", "offline-21-000008", "offline-21-000014", "offline-21-000019"}
    d = tmp_path_factory.mktemp("native")
    write_examples(d / "native_test.jsonl", [e for e in offline_rows if e.id in keep])
    return d / "native_test.jsonl"


@pytest.fixture(scope="module")
def tiny_adapter(tmp_path_factory, tiny_model_dir, mini_split):
    from fctune.train import TrainConfig, train

    d = tmp_path_factory.mktemp("adapters")
    train(TrainConfig(model=tiny_model_dir, name="tiny", train_file=str(mini_split), val_file="", output_dir=str(d),
                      max_steps=2, per_device_train_batch_size=2, gradient_accumulation_steps=1, save_steps=100,
                      max_seq_length=512))
    return d / "tiny"


def _files(results: Path, label: str, suite: str):
    return [results / f"{label}_{suite}{s}" for s in (".json", "_details.jsonl", "_predictions.jsonl")]


@pytest.mark.server
def test_local_adapter_and_llamacpp_endpoint_give_the_same_layout(tmp_path, tiny_model_dir, tiny_adapter,
                                                                  layout_split, native_split, llama_server):
    local = evaluate(EvalConfig(model=tiny_model_dir, adapter=str(tiny_adapter), label="tiny-ft", role="finetuned",
                                split_files=[str(layout_split)], results_dir=str(tmp_path), max_new_tokens=16,
                                batch_size=4))
    remote = evaluate(EvalConfig(backend="openai", base_url=llama_server.base_url, model="smollm2", label="llm-smol",
                                 role="llm", split_files=[str(layout_split)], results_dir=str(tmp_path),
                                 max_new_tokens=48, max_concurrency=2, tools_mode="prompt"))
    assert local["suites"].keys() == remote["suites"].keys() == {"layout"}
    summaries = []
    for label in ("tiny-ft", "llm-smol"):
        for f in _files(tmp_path, label, "layout"):
            assert f.exists(), f
        s = json.loads((tmp_path / f"{label}_layout.json").read_text())
        details = [json.loads(x) for x in (tmp_path / f"{label}_layout_details.jsonl").read_text().splitlines()]
        assert s["n_examples"] == len(details) == 5 and s["n_errors"] == 0
        assert sorted(d["expected_kind"] for d in details) == ["json", "json", "no_call", "tool_calls", "tool_calls"]
        assert all("latency_s" in d for d in details)
        summaries.append(s)
    # the same layout; "warnings" is there only when a run has something to warn about (the tiny model's 0% valid)
    assert set(summaries[0]) - {"warnings"} == set(summaries[1]) - {"warnings"}
    local_id, remote_id = summaries[0]["model"], summaries[1]["model"]
    assert local_id["backend"] == "local" and local_id["adapter_version_id"]
    assert remote_id["backend"] == "openai" and remote_id["endpoint_host"].startswith("http://127.0.0.1:")
    assert summaries[1]["token_usage"]["completion_tokens"] > 0
    assert summaries[0]["throughput"]["examples_per_s"] > 0 and summaries[0]["throughput"]["generated_tokens_per_s"] > 0
    # llama-cpp-python rejects response_format json_schema: structured rows fell back to the prompt, recorded
    assert summaries[1]["structured_modes"] == {"prompt": 2}
    assert remote_id["tools_mode"] == "prompt"
    # the native path: tools=, tool_calls read back from the server, arguments as JSON strings
    native = evaluate(EvalConfig(backend="openai", base_url=llama_server.base_url, model="smollm2", label="llm-native",
                                 role="llm", split_files=[str(native_split)], results_dir=str(tmp_path),
                                 max_new_tokens=64, max_concurrency=1, tools_mode="native"))
    s = json.loads(Path(native["suites"]["native"]["summary"]).read_text())
    details = [json.loads(x) for x in (tmp_path / "llm-native_native_details.jsonl").read_text().splitlines()]
    assert s["n_errors"] == 0 and s["model"]["tools_mode"] == "native"
    assert s["parse_shapes"].get("openai_tool_calls", 0) >= 2
    assert any(d.get("raw_tool_calls") for d in details)


@pytest.mark.server
def test_killed_run_resumes_without_redoing_finished_rows(tmp_path, llama_server):
    from fctune.offline import generate_examples

    split = tmp_path / "resume_test.jsonl"
    # six call rows with the fewest tools (short prompts): what is tested is the kill and the resume, not the answers
    calls = [e for e in generate_examples(80, seed=4) if e.expected.kind == "tool_calls"]
    write_examples(split, sorted(calls, key=lambda e: (len(e.tools), e.id))[:6])
    cmd = [sys.executable, "docker/unsloth-paper/scripts/eval_function_call.py", "--backend", "openai",
           "--base-url", llama_server.base_url, "--model", "smollm2", "--label", "r", "--split-file", str(split),
           "--results-dir", str(tmp_path / "res"), "--max-concurrency", "1", "--max-new-tokens", "16",
           "--tools-mode", "prompt"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    preds = tmp_path / "res" / "r_resume_predictions.jsonl"
    deadline = time.time() + 600  # a loaded machine answers slowly; the kill comes at row 2 regardless
    while time.time() < deadline and (not preds.exists() or preds.read_text().count("\n") < 2):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = [json.loads(x)["id"] for x in preds.read_text().splitlines() if x.strip()]
    assert 2 <= len(before) < 6
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    s = json.loads((tmp_path / "res" / "r_resume.json").read_text())
    assert s["throughput"]["resumed"] == len(before)
    assert s["throughput"]["generated"] == 6 - len(before)
    final = [json.loads(x)["id"] for x in preds.read_text().splitlines()]
    assert sorted(final) == sorted(e.id for e in read_examples(split)) and len(set(final)) == 6


@pytest.mark.server
def test_llamacpp_backend_run_resumes_although_its_new_server_has_a_new_port(tmp_path, mini_split):
    """--backend llamacpp starts its own server on a free port each run; the port must not break resuming."""
    split = tmp_path / "two_test.jsonl"
    write_examples(split, read_examples(mini_split)[:2])
    cfg = dict(backend="llamacpp", model="smollm2", label="own-server", role="llm", split_files=[str(split)],
               results_dir=str(tmp_path), max_new_tokens=4, max_concurrency=1)
    evaluate(EvalConfig(**cfg))
    # the second run on llama-cpp-python's server: which server answered is not part of what makes rows the same
    evaluate(EvalConfig(**cfg, llama_server="python"))
    s = json.loads((tmp_path / "own-server_two.json").read_text())
    assert s["throughput"]["resumed"] == 2 and s["throughput"]["generated"] == 0
    assert "127.0.0.1:" not in s["model"]["endpoint_host"]
    assert s["model"]["served_by"] == "llama.cpp server (llama-cpp-python), one request at a time"
    assert not list(tmp_path.glob("*.stale-*"))


def test_llama_cpp_keeps_to_its_share_of_the_cores(monkeypatch):
    # llama-cpp-python reads prompts on every core unless told otherwise: beside another busy process, its threads
    # spin waiting for each other (a test's 9 requests 2.4x slower on 2 cores); OMP_NUM_THREADS sets both counts
    from fctune import llama_server as ls

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cmd = ls.LlamaServer("smollm2", engine="python").command()
    assert cmd[cmd.index("--n_threads") + 1] == cmd[cmd.index("--n_threads_batch") + 1] == "1"
    assert ls.LlamaServer("smollm2", engine="python", n_threads=3).command()[-2:] == ["--n_threads_batch", "3"]
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert ls.cores_to_use() == os.cpu_count()


def test_llama_server_choice_is_named_and_never_silent(monkeypatch, tmp_path):
    # which server serves a GGUF: llama.cpp's llama-server where a binary is there (named by the environment or
    # built by the bootstrap), llama-cpp-python's otherwise; a named binary that is missing is an error
    from fctune import llama_server as ls

    monkeypatch.setenv(ls.SERVER_ENV, str(tmp_path / "missing"))
    with pytest.raises(ls.ServerError, match="no executable llama-server"):
        ls.LlamaServer("smollm2", engine="auto")
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv(ls.SERVER_ENV, str(binary))
    srv = ls.LlamaServer("smollm2", engine="auto", parallel=4, n_ctx=2048)
    cmd = srv.command()
    assert srv.engine == "cpp" and cmd[0] == str(binary) and "4 parallel slot(s)" in srv.served_by
    assert ls.parallel_slots(srv.served_by) == 4  # what the report reads back
    assert cmd[cmd.index("-np") + 1] == "4" and cmd[cmd.index("-c") + 1] == "8192"  # n_ctx per slot
    one = ls.LlamaServer("smollm2", engine="python", parallel=4)
    assert one.engine == "python" and one.parallel == 1 and "--serve" in one.command()
    assert ls.parallel_slots(one.served_by) is None and ls.parallel_slots(None) is None
    with pytest.raises(ls.ServerError, match="chat handler runs in llama-cpp-python"):
        ls.LlamaServer("smollm2", engine="cpp", tokenizer=str(tmp_path))
    monkeypatch.delenv(ls.SERVER_ENV)
    monkeypatch.setattr(ls, "SERVER_RECORD", tmp_path / "no-record")
    with pytest.raises(ls.ServerError, match="no llama-server binary"):
        ls.LlamaServer("smollm2", engine="cpp")
    assert ls.LlamaServer("smollm2", engine="auto", parallel=4).engine == "python"


@pytest.mark.server
def test_server_stopped_mid_run_is_recorded_as_errors_not_wrong_answers(tmp_path, short_split):
    from fctune.backends.openai_backend import OpenAIBackend
    from fctune.llama_server import LlamaServer
    from fctune.metrics import summarize
    from fctune.score import score_predictions

    examples = read_examples(short_split)
    srv = LlamaServer("smollm2").start()
    backend = OpenAIBackend("smollm2", base_url=srv.base_url, max_concurrency=1, max_retries=2, backoff_base_s=0.05,
                            timeout_s=30, max_tokens=32, tools_mode="prompt")
    gens = []
    try:
        for g in backend.generate(examples):
            gens.append(g)
            if len(gens) == 3:
                srv.stop()
    finally:
        srv.stop()
    errors = [g for g in gens if g.error]
    assert len(gens) == 10 and len(errors) >= 6
    assert all(g.attempts == 3 for g in errors) and all("Connection" in g.error for g in errors)
    assert backend.stats()["retries"] >= 2 * len(errors) and backend.stats()["failed_requests"] == len(errors)
    details, _ = score_predictions(examples, [g.to_dict() for g in gens])
    s = summarize(details, {e.id: e for e in examples})
    assert s["n_errors"] == len(errors) and s["n_scored"] == 10 - len(errors)
    assert all(d["failure_reason"] is None for d in details if d["error"])


class _Flaky(BaseHTTPRequestHandler):
    """Answers each POST from a script of status codes, then a real chat-completion body with a tool call (or, when
    ``text`` is set, with that text and no call)."""

    script: list = []
    calls: list = []
    text: str | None = None

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.calls.append(self.path)
        code = self.script.pop(0) if self.script else 200
        if code != 200:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"error": {"message": f"status {code}", "type": "test"}}).encode())
            return
        message = {"role": "assistant", "content": None, "tool_calls": [{
            "id": "t1", "type": "function",
            "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Paris\"}"}}]}
        if self.text is not None:
            message = {"role": "assistant", "content": self.text}
        body = {"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop" if self.text else "tool_calls", "message": message}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def flaky_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Flaky.calls, _Flaky.text = [], None
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def _weather_example():
    from fctune.offline.catalog import TOOL_BY_NAME
    from fctune.schema import Example, Expected, Message, ToolCall

    return Example("w1", [Message("user", "Weather in Paris?")], [TOOL_BY_NAME["get_current_weather"]],
                   Expected("tool_calls", [ToolCall("get_current_weather", {"location": "Paris"})]))


@pytest.mark.parametrize("script,attempts,ok", [
    ([429, 429, 500], 4, True),      # retried with backoff, then answered
    ([503], 2, True),
    ([500, 500, 500, 500, 500], 4, False),  # still failing after 3 retries: an error, not an answer
    ([400], 1, False),               # not retryable
])
def test_retries_on_429_and_5xx(flaky_server, script, attempts, ok):
    from fctune.backends.openai_backend import OpenAIBackend
    from fctune.score import score_example

    _Flaky.script = list(script)
    b = OpenAIBackend("m", base_url=flaky_server, api_key="x", max_retries=3, backoff_base_s=0.01)
    (g,) = list(b.generate([_weather_example()]))
    assert g.attempts == attempts and len(_Flaky.calls) == attempts
    if ok:
        assert g.error is None and score_example(_weather_example(), g.output, g.tool_calls).exact_match
    else:
        assert g.error and score_example(_weather_example(), g.output, g.tool_calls, g.error).failure_reason is None


@pytest.mark.server
def test_secrets_never_reach_logs_metadata_or_results(tmp_path, llama_server, native_split):
    env = dict(os.environ, OPENAI_API_KEY=SECRET, AZURE_OPENAI_API_KEY=SECRET + "-az", HF_TOKEN="hf_" + "x" * 20)
    out = subprocess.run([sys.executable, "docker/unsloth-paper/scripts/eval_function_call.py", "--backend", "openai",
                          "--base-url", llama_server.base_url.replace("http://", f"http://user:{SECRET}@"),
                          "--model", "smollm2", "--split-file", str(native_split), "--results-dir", str(tmp_path),
                          "--max-new-tokens", "32", "--label", "llm"], cwd=REPO, capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    blobs = [out.stdout, out.stderr] + [p.read_text() for p in tmp_path.rglob("*") if p.is_file()]
    for secret in (SECRET, "hf_" + "x" * 20):
        assert not any(secret in b for b in blobs)
    s = json.loads((tmp_path / "llm_native.json").read_text())
    assert s["model"]["endpoint_host"] == llama_server.base_url.rsplit("/v1", 1)[0]


def test_azure_without_settings_is_a_clear_error(tmp_path, mini_split):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env["FCTUNE_ENV_FILE"] = str(tmp_path / "none.env")
    out = subprocess.run([sys.executable, "docker/unsloth-paper/scripts/eval_function_call.py", "--backend", "azure",
                          "--split-file", str(mini_split), "--results-dir", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2
    assert "AZURE_OPENAI_ENDPOINT" in out.stderr and "AZURE_OPENAI_API_KEY" in out.stderr


def test_endpoint_host_keeps_no_credentials():
    from fctune.secrets import endpoint_host, redact_config

    assert endpoint_host("https://user:pw@my.openai.azure.com:8443/openai?key=1") == "https://my.openai.azure.com:8443"
    assert redact_config({"api_key": "abc123456", "nested": {"token": "t0k3n-value"},
                          "api_key_env": "OPENAI_API_KEY"}) \
        == {"api_key": "***", "nested": {"token": "***"}, "api_key_env": "OPENAI_API_KEY"}


def test_per_suite_throughput_is_the_suites_own_share():
    from fctune.evaluate import suite_throughput

    t = suite_throughput({"examples": 50, "generated_tokens": 5000, "generation_s": 20.0},
                         {"examples": 80, "generated_tokens": 6500, "generation_s": 30.0, "load_s": 4.0})
    assert t == {"load_s": 4.0, "examples": 30, "generated_tokens": 1500, "generation_s": 10.0,
                 "examples_per_s": 3.0, "generated_tokens_per_s": 150.0}


def test_pooled_tasks_share_a_budget_and_never_a_row_id():
    from types import SimpleNamespace

    from fctune.evaluate import EvalTask, task_groups

    def task(name, budget, ids):  # the grouping reads a task's row ids and its budget, nothing else
        return EvalTask(name, [SimpleNamespace(id=i) for i in ids], [budget], {})

    tasks = [task("a", 128, ["a1", "a2"]), task("b", 128, ["b1"]), task("c", 256, ["c1"]), task("d", 256, ["d1"]),
             task("e", 256, ["d1", "e2"]), task("f", 128, ["f1"])]
    names = lambda groups: [[(t.name, b) for t, b in g] for g in groups]  # noqa: E731
    pooled = names(task_groups(iter(tasks), lambda t: t.budget_rows[0], pool=True))
    # a new budget starts a new pass; so does a row id already in the pass (its answer could not be told apart)
    assert pooled == [[("a", 128), ("b", 128)], [("c", 256), ("d", 256)], [("e", 256)], [("f", 128)]]
    assert names(task_groups(iter(tasks), lambda t: t.budget_rows[0], pool=False)) == \
        [[(t.name, t.budget_rows[0])] for t in tasks]
    # a backend that gives each row its own budget pools across budgets; a repeated row id still splits the pass
    assert names(task_groups(iter(tasks), lambda t: t.budget_rows[0], pool=True, mixed=True)) == \
        [[("a", 128), ("b", 128), ("c", 256), ("d", 256)], [("e", 256), ("f", 128)]]


@pytest.mark.parametrize("backend, engine, rows_leave, option, pools", [
    ("local", "static", False, "auto", (True, False)), ("local", "padded", False, "auto", (False, False)),
    ("local", "padded", True, "auto", (True, True)), ("local", "continuous", False, "auto", (False, False)),
    ("openai", "static", False, "auto", (False, False)), ("local", "padded", False, "true", (True, False)),
    ("local", "padded", True, "false", (False, True)), ("local", "static", False, "false", (False, False)),
    ("openai", "padded", False, "true", (True, False))])
def test_pool_tasks_auto_means_the_static_engine_or_rows_that_leave_their_batch(backend, engine, rows_leave, option,
                                                                                 pools):
    from types import SimpleNamespace

    from fctune.evaluate import EvalConfig, pools_tasks

    made = SimpleNamespace(mixes_budgets=True) if rows_leave else SimpleNamespace()  # an API backend has no such flag
    assert pools_tasks(EvalConfig(backend=backend, engine=engine, pool_tasks=option), made) == pools


def test_pooled_task_throughput_is_its_share_of_the_pass():
    from fctune.evaluate import pooled_share

    t = pooled_share({"examples": 40, "generated_tokens": 900, "generation_s": 8.0, "wall_s": 10.0, "load_s": 2.0},
                     rows=10, tokens=300, names=["x", "y"])
    assert t["examples"] == 10 and t["generated_tokens"] == 300 and t["generation_s"] == 2.0
    assert t["examples_per_s"] == 5.0 and t["generated_tokens_per_s"] == 150.0 and t["wall_s"] == 2.5
    assert t["pooled_with"] == ["x", "y"] and t["pool"]["examples"] == 40


def test_urls_keep_no_credentials_or_query_secrets(monkeypatch):
    """Credentials inside --base-url (not from .env, so not known as secrets) never reach run.command or run.config."""
    from fctune.config import run_metadata
    from fctune.secrets import redact_text

    url = "http://user:pw-9x8y7z6w@host:8080/v1?api_token=tok-5e6f7g8h&model=x"
    monkeypatch.setattr(sys, "argv", ["eval_function_call.py", "--base-url", url, f"--base-url={url}"])
    meta = run_metadata(EvalConfig(backend="openai", model="m", base_url=url))
    blob = json.dumps(meta)
    assert "pw-9x8y7z6w" not in blob and "tok-5e6f7g8h" not in blob
    clean = "http://***@host:8080/v1?api_token=***&model=x"
    assert meta["config"]["base_url"] == clean and meta["command"].count(clean) == 2
    assert redact_text(f"GET {url} failed") == f"GET {clean} failed"  # what the log filter applies
    assert redact_text("https://example.com/a?b=c") == "https://example.com/a?b=c"  # nothing secret: unchanged


def test_every_request_failing_exits_nonzero_without_a_summary(tmp_path, mini_split):
    """A baseline whose every request failed is not a finished step: exit 2, no summary, the rows kept for a rerun."""
    from fctune.llama_server import free_port

    port = free_port()  # nothing listens there: every request is refused, for real
    out = subprocess.run([sys.executable, "docker/unsloth-paper/scripts/eval_function_call.py", "--backend", "openai",
                          "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m", "--split-file",
                          str(mini_split), "--results-dir", str(tmp_path), "--label", "llm", "--max-retries", "1",
                          "--backoff-base-s", "0.01"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    err = [x for x in out.stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and "10 of 10 requests failed" in err[0] and "APIConnectionError x10" in err[0]
    assert not (tmp_path / "llm_mini.json").exists()
    preds = [json.loads(x) for x in (tmp_path / "llm_mini_predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 10 and all(p["error"] for p in preds)


def test_zero_valid_calls_with_answers_is_a_warning_in_the_summary_file(tmp_path, flaky_server, mini_split,
                                                                        monkeypatch):
    """Every answer is text where calls were expected: a format mismatch to check, said in the log and the file."""
    from fctune.evaluate import EvalConfig, evaluate

    _Flaky.text = "Sure, the weather in Paris is mild today."
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")  # the test server reads none
    r = evaluate(EvalConfig(backend="openai", base_url=flaky_server, model="m",
                            split_files=[str(mini_split)], results_dir=str(tmp_path), label="llm"))
    summary = json.loads(Path(r["suites"]["mini"]["summary"]).read_text())
    assert summary["valid_json_rate"] == 0
    assert summary["warnings"] == ["valid_json_rate is 0 with 9 non-empty outputs"]


def test_error_rate_under_the_bound_still_scores(tmp_path, mini_split):
    from fctune.evaluate import TooManyErrors, check_error_rate

    ok = [{"id": str(i), "output": "x"} for i in range(9)]
    check_error_rate(ok + [{"id": "9", "error": "APITimeoutError: t"}], 0.1, "m", tmp_path)  # 10% is allowed
    with pytest.raises(TooManyErrors, match="2 of 11 requests failed"):
        check_error_rate(ok + [{"id": "9", "error": "E: a"}, {"id": "10", "error": "E: b"}], 0.1, "m", tmp_path)
    with pytest.raises(TooManyErrors, match="1 of 1 requests failed"):  # all failed fails even at 100%
        check_error_rate([{"id": "0", "error": "E: a"}], 1.0, "m", tmp_path)


@pytest.mark.server
def test_llamacpp_server_killed_mid_run_stops_the_run_with_its_exit(tmp_path, short_split):
    """The server dies (here: SIGKILL) after a few answers: the run stops at once with the server's exit and log
    tail, exit 2, no summary; the answered rows stay for a rerun."""
    proc = subprocess.Popen([sys.executable, "docker/unsloth-paper/scripts/eval_function_call.py", "--backend",
                             "llamacpp", "--model", "smollm2", "--split-file", str(short_split), "--results-dir",
                             str(tmp_path), "--label", "llm", "--max-concurrency", "4", "--max-new-tokens", "48"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    preds = tmp_path / "llm_short_predictions.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and (not preds.exists() or len(preds.read_text().splitlines()) < 2):
        time.sleep(0.2)
    # the run's one child is the server (llama.cpp's llama-server, or llama-cpp-python's where none was built)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 1, children
    os.kill(int(children[0]), signal.SIGKILL)
    t_kill = time.time()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr[-2000:]
    assert time.time() - t_kill < 30  # at once, not after every row's retries
    err = [x for x in stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and "was killed by SIGKILL" in err[0] and "llama_server.log" in err[0], stderr[-2000:]
    assert (tmp_path / "llama_server.log").read_text().count("was killed by SIGKILL") == 1
    assert not (tmp_path / "llm_short.json").exists()
    kept = [json.loads(x) for x in preds.read_text().splitlines()]
    assert sum(1 for p in kept if not p.get("error")) >= 2


@pytest.mark.parametrize("status,says", [(401, "refused the credentials"), (404, "not found at http://127.0.0.1")])
def test_unusable_endpoint_is_one_line_not_a_traceback(tmp_path, flaky_server, mini_split, status, says):
    _Flaky.script = [status] * 20
    env = dict(os.environ, FCTUNE_ENV_FILE=str(tmp_path / "none.env"))
    out = subprocess.run([sys.executable, "docker/unsloth-paper/scripts/eval_function_call.py", "--backend", "openai",
                          "--base-url", flaky_server, "--model", "m", "--split-file", str(mini_split), "--results-dir",
                          str(tmp_path), "--label", "llm", "--max-concurrency", "1"], cwd=REPO, capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    err = [x for x in out.stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and says in err[0], out.stderr[-2000:]
    assert not (tmp_path / "llm_mini.json").exists()


def test_stop_repeats_is_refused_for_a_backend_that_decodes_elsewhere():
    # an API or llama.cpp server answers whole: no early stop can be applied there, so asking for one is an error
    # (before any request), not a setting silently ignored
    from fctune.errors import UserError
    from fctune.evaluate import make_backend

    with pytest.raises(UserError, match="--stop-repeats is for the local backend"):
        make_backend(EvalConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="m", stop_repeats=64))
