"""Adding a backend, a suite or a data format is one registration plus its code (issue 22): each test registers a
tiny one and runs it through the same paths as the built-in ones, with nothing else edited."""

import json
from pathlib import Path

import pytest

from fctune import evaluate as evaluate_module
from fctune import formats as formats_module
from fctune import suites as suites_module
from fctune.backends import BackendSpec
from fctune.backends.base import Generation
from fctune.data import convert_rows
from fctune.evaluate import EvalConfig, evaluate
from fctune.formats import FormatSpec, RowError, detect_format
from fctune.pipeline import PipelineConfig, plan
from fctune.render import format_hermes_calls
from fctune.schema import Example, Expected, Message, ToolCall, ToolSpec
from fctune.suites import SuiteConfig, SuiteSpec, run_suite


class EchoBackend:
    """A backend that answers every row with its expected calls, in Hermes tags: the example of a registration."""

    def __init__(self, model: str):
        self.model = model

    def identity(self) -> dict:
        return {"backend": "echo", "model": self.model}

    def generate(self, examples):
        for e in examples:
            text = format_hermes_calls(e.expected.tool_calls) if e.expected.kind == "tool_calls" else \
                json.dumps(e.expected.json) if e.expected.kind == "json" else "No tool fits this request."
            yield Generation(e.id, output=text, latency_s=0.0, finish_reason="stop")

    def set_max_new_tokens(self, n: int) -> None:
        pass

    def stats(self) -> dict:
        return {}

    def close(self) -> None:
        pass


def _echo_single_turn(tmp_path, monkeypatch) -> dict:
    """The echo backend registered, and its summary on a freshly built single-turn split."""
    monkeypatch.setitem(evaluate_module.BACKENDS, "echo", BackendSpec("answers with the expected calls",
                                                                      lambda cfg: EchoBackend(cfg.model)))
    split = tmp_path / "splits"
    run_suite("single_turn", SuiteConfig(output_dir=str(split), exclude=[]))
    r = evaluate(EvalConfig(backend="echo", model="echo-1", label="echo", splits_dir=str(split),
                            suites=["single_turn"], results_dir=str(tmp_path / "res")))
    return json.loads(Path(r["suites"]["single_turn"]["summary"]).read_text())


def test_a_backend_is_one_registration(tmp_path, monkeypatch):
    summary = _echo_single_turn(tmp_path, monkeypatch)
    assert summary["exact_match_rate"] == 1.0 and summary["model"]["backend"] == "echo"


def test_a_suite_is_one_registration(tmp_path, monkeypatch):
    spec = SuiteSpec("simple_calls", "simple_calls_test.jsonl", "complexity", {"simple": 6}, "test_single_turn.py",
                     ("args_exact_match_rate",), "args_exact_match_rate", turn_type="single")
    monkeypatch.setitem(suites_module.SUITES, "simple_calls", spec)
    out = run_suite("simple_calls", SuiteConfig(output_dir=str(tmp_path), exclude=[]))
    rows = [json.loads(x) for x in Path(out["split"]).read_text().splitlines()]
    assert len(rows) == 6 and {r["metadata"]["complexity"] for r in rows} == {"simple"}
    # the evaluation offers it, and the pipeline's step 3 builds it, from the registration alone
    assert "simple_calls" in EvalConfig().suites
    step3 = next(s for s in plan(PipelineConfig(gpus="none", llm="none")) if s.name == "test_splits")
    assert "simple_calls" in [tag for g in step3.groups for tag, _, _ in g]
    assert f"comparison_framework/test_splits/{spec.file}" in step3.outputs
    # and the comparison gives it a capability table and a CSV file
    from fctune.report import csv_names
    from fctune.suite_specs import capability_tables

    assert capability_tables()["simple_calls"] == ["args_exact_match_rate"]
    assert csv_names()["simple_calls"] == "simple_calls.csv"


def _read_qa(row: dict, index: int, hermes_config: str) -> Example:
    """A made-up shape: {"question", "tool", "call": {"name", "args"}}."""
    if not isinstance(row.get("call"), dict):
        raise RowError("bad_shape", f"row {index}: 'call' is not an object")
    tool = ToolSpec(row["tool"]["name"], row["tool"].get("description", ""), row["tool"]["parameters"])
    return Example(f"qa-{index}", [Message("user", row["question"])], [tool],
                   Expected("tool_calls", [ToolCall(row["call"]["name"], row["call"]["args"])]))


def test_a_format_is_one_registration(monkeypatch):
    monkeypatch.setitem(formats_module.FORMATS, "qa", FormatSpec(
        lambda r: "question" in r and "call" in r, _read_qa,
        lambda e, rng: {"question": e.messages[0].content, "tool": e.tools[0].to_openai()["function"],
                        "call": {"name": e.expected.tool_calls[0].name, "args": e.expected.tool_calls[0].arguments}}))
    tool = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                  "required": ["city"]}}
    rows = [{"question": "Weather in Oslo?", "tool": tool, "call": {"name": "get_weather", "args": {"city": "Oslo"}}},
            {"question": "Weather in Lima?", "tool": tool, "call": "get_weather(Lima)"}]
    assert detect_format(rows[0]) == "qa"
    res = convert_rows(enumerate(rows), where="qa.jsonl")
    assert [e.expected.tool_calls[0].arguments for e in res.examples] == [{"city": "Oslo"}]
    assert res.skipped == {"bad_shape": 1} and res.skipped_examples[0]["where"] == "qa.jsonl:1"
    assert formats_module.write_row("qa", res.examples[0])["call"] == rows[0]["call"]


def test_a_metric_is_one_registration(tmp_path, monkeypatch):
    from fctune import metrics as metrics_module
    from fctune.compare import load_gates, ratio_to_llm
    from fctune.io import DataFileError
    from fctune.metrics import MetricSpec, register_metric

    # a lower-is-better rate over every row: the share of answers cut at the generation budget (registered into a
    # copy of the registry, so the test leaves the real one as it was)
    monkeypatch.setattr(metrics_module, "METRICS", dict(metrics_module.METRICS))
    register_metric("truncation_rate", MetricSpec("truncated", ("tool_calls", "json", "no_call"),
                                                  higher_is_better=False))
    summary = _echo_single_turn(tmp_path, monkeypatch)
    # in every summary's rates and headline keys, with its row count and interval
    assert summary["truncation_rate"] == 0.0 and summary["metrics"]["truncation_rate"]["n"] == 50
    # compared with the LLM the other way round (above 1 = better than the LLM), and never a capability ratio
    assert ratio_to_llm("truncation_rate", 0.1, 0.2) == 2.0 and ratio_to_llm("args_field_f1", 0.1, 0.2) == 0.5
    gates = Path("comparison_framework/gates.yaml").read_text()
    bad = tmp_path / "gates.yaml"
    bad.write_text(gates.replace("metric: multi_turn.args_field_f1}", "metric: single_turn.truncation_rate}"))
    with pytest.raises(DataFileError, match="better when lower"):
        load_gates(bad)
