"""Suites build offline with the exact counts, never overlap training data, and score predictions."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fctune.data import PrepareConfig, dedupe_key, prepare
from fctune.domains import DOMAINS, detect_domain, normalize_domain
from fctune.errors import UserError
from fctune.schema import ToolSpec, read_examples
from fctune.suites import SUITES, SuiteConfig, build_suite, run_suite

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("tools,metadata,domain", [
    ([ToolSpec("get_current_weather", "Current conditions")], {}, "weather"),
    ([ToolSpec("fetch", "Get the 5-day forecast and humidity")], {}, "weather"),
    ([ToolSpec("get_stock_quote", "Latest price of a stock ticker")], {}, "finance"),
    ([ToolSpec("sendEmail", "Send a message")], {}, "communication"),
    ([ToolSpec("run_sql", "Run a SQL query on a table")], {}, "database"),
    ([ToolSpec("list_directory", "List files in a folder")], {}, "files"),
    ([ToolSpec("get_directions", "Route between two places")], {}, "maps"),
    ([ToolSpec("web_search", "Search the web")], {}, "search"),
    ([ToolSpec("add_to_cart", "Add a product to the shopping cart")], {}, "e-commerce"),
    ([ToolSpec("create_event", "Create a calendar event")], {}, "calendar"),
    ([ToolSpec("get_follower_count", "Followers of a social profile")], {}, "social"),
    ([ToolSpec("get_camera_stream", "Stream from a security camera")], {}, "other"),
    ([ToolSpec("get_camera_feed", "Live feed of a camera")], {"category": "E-commerce Platforms"}, "e-commerce"),
    ([ToolSpec("x", "y")], {"domain": "finance"}, "finance"),
])
def test_domain_detection(tools, metadata, domain):
    assert detect_domain(tools, metadata) == domain


def test_normalize_domain_labels():
    assert normalize_domain("ecommerce") == "e-commerce"
    assert normalize_domain("Weather Services") == "weather"
    assert normalize_domain("IoT and Home Automation") is None


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    prepare(PrepareConfig(phase=1, output_dir=str(d), tokenizer="none"))
    return d


@pytest.mark.parametrize("suite", list(SUITES))
def test_suites_build_offline_with_exact_counts(suite, prepared, tmp_path):
    spec = SUITES[suite]
    cfg = SuiteConfig(output_dir=str(tmp_path), exclude=[str(prepared / "hermes_train.jsonl"),
                                                         str(prepared / "hermes_val.jsonl")])
    rows, report = build_suite(spec, cfg)
    assert len(rows) == sum(spec.quotas.values()) and not report["shortfall"]
    got = {k: sum(1 for e in rows if str(e.metadata.get(spec.key)) == k) for k in spec.quotas}
    assert got == spec.quotas
    train_keys = {dedupe_key(e) for e in read_examples(prepared / "hermes_train.jsonl")}
    assert not train_keys & {dedupe_key(e) for e in rows}
    assert all(e.expected.kind == spec.kind for e in rows)
    if suite == "multi_turn":
        assert all(e.metadata["turn_type"] == "multi" for e in rows)
        seq = [e for e in rows if e.metadata["multi_turn_kind"] == "sequential"]
        assert all(any(m.role == "tool" for m in e.messages) for e in seq)
    if suite == "domain_diverse":
        assert set(got) == set(DOMAINS) and "other_domain_rows" in report
    if suite == "no_call":
        # a request offered only another domain's tools; the data's own text answers are the rest
        fits = [e for e in rows if e.metadata["no_call_kind"] == "no_tool_fits"]
        assert fits and all(e.metadata["tools_domain"] != e.metadata["domain"] for e in fits)
        assert all([m.role for m in e.messages] == ["user"] and e.tools for e in fits)
        assert len({e.messages[0].content for e in fits}) == len(fits)


def test_suite_reports_shortfall_instead_of_padding(tmp_path):
    from fctune.offline import generate_examples
    from fctune.schema import write_examples

    few = [e for e in generate_examples(200, seed=5) if e.metadata["turn_type"] == "multi"][:12]
    write_examples(tmp_path / "few.jsonl", few)
    rows, report = build_suite(SUITES["multi_turn"], SuiteConfig(source=str(tmp_path / "few.jsonl"), exclude=[]))
    assert len(rows) == 12 and report["shortfall"]
    assert sum(s["found"] for s in report["shortfall"].values()) + sum(
        q for k, q in SUITES["multi_turn"].quotas.items() if k not in report["shortfall"]) >= 12


def test_suite_script_builds_then_scores(tmp_path):
    cmd = [sys.executable, "comparison_framework/test_single_turn.py", "--output-dir", str(tmp_path / "splits"),
           "--exclude", ""]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    split = tmp_path / "splits" / "single_turn_test.jsonl"
    examples = read_examples(split)
    preds = []
    for i, e in enumerate(examples):  # a perfect answer for half, nothing for the rest
        text = "".join("<tool_call>" + json.dumps(c.to_dict()) + "</tool_call>" for c in e.expected.tool_calls)
        preds.append({"id": e.id, "output": text if i % 2 == 0 else "I don't know."})
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(p) for p in preds) + "\n")
    out = subprocess.run(cmd + ["--predictions", str(tmp_path / "p.jsonl"), "--model", "toy",
                                "--results-dir", str(tmp_path / "res")], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "res" / "toy_single_turn.json").read_text())
    assert summary["args_exact_match_rate"] == 0.5 and summary["n_scored"] == 50
    assert (tmp_path / "res" / "toy_single_turn_details.jsonl").exists()
    assert set(summary["breakdown"]["complexity"]) == {"simple", "moderate", "complex"}


def test_run_suite_requires_model_with_predictions(tmp_path):
    with pytest.raises(UserError, match="--model"):
        run_suite("single_turn", SuiteConfig(output_dir=str(tmp_path), exclude=[], predictions=str(tmp_path / "x")))
