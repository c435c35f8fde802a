"""Offline source, dataset preparation, config parsing and the prepare script."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fctune.config import ConfigError, parse_config
from fctune.data import PrepareConfig, dedupe_key, load_catalog, load_offline, prepare
from fctune.domains import DOMAINS
from fctune.formats.bfcl import CATEGORIES, load_category
from fctune.offline import emit_rows, generate_examples

REPO = Path(__file__).resolve().parents[1]


def test_offline_source_is_deterministic_and_covers_everything():
    a = generate_examples(600, seed=7)
    b = generate_examples(600, seed=7)
    assert [e.to_dict() for e in a] == [e.to_dict() for e in b]
    assert [e.to_dict() for e in generate_examples(50, seed=8)] != [e.to_dict() for e in a[:50]]
    md = [e.metadata for e in a]
    assert {m["domain"] for m in md} == set(DOMAINS)
    assert {m["scenario"] for m in md} >= {"single", "parallel", "irrelevant", "needs_clarification",
                                           "clarification", "sequential", "context_dependent", "structured"}
    assert {m["complexity"] for m in md} == {"simple", "moderate", "complex"}
    assert {m.get("multi_turn_kind") for m in md if m["turn_type"] == "multi"} == {
        "clarification", "sequential", "context_dependent"}
    assert all(m["source"] == "fctune-offline-v1" for m in md)
    # every call names an offered tool, and every required parameter is present
    for e in a:
        for c in e.expected.tool_calls:
            tool = e.tool(c.name)
            assert tool is not None, e.id
            assert set(tool.required) <= set(c.arguments), (e.id, c)
    # sequential rows have a tool result right before the scored turn
    seq = [e for e in a if e.metadata.get("multi_turn_kind") == "sequential"]
    assert seq and all(e.messages[-1].role == "tool" for e in seq)


@pytest.mark.parametrize("shape", ["hermes", "xlam", "openai"])
def test_offline_rows_read_back_through_their_converter(shape):
    res = load_offline(300, seed=1, shape=shape)
    engine = res.source["engine"]
    # rows the engine dropped (failed checks, catalog rows naming a BFCL function) are counted, never emitted
    assert res.rows_read == engine["rows_written"] > 250
    if shape != "xlam":  # xLAM's mix has no catalog rows
        assert engine["dropped"]["catalog_excluded_name"] > 0
    assert not res.skipped, res.skipped_examples
    assert all(e.metadata["source"] == "fctune-offline-v2" for e in res.examples)
    cat = load_catalog(300, seed=1, shape=shape)
    assert cat.rows_read == 300 and not cat.skipped and cat.source["kind"] == "offline-catalog"
    assert all(e.metadata["source"] == "fctune-offline-v1" for e in cat.examples)
    if shape == "hermes":
        rows = emit_rows(generate_examples(300, seed=1), "hermes", seed=1)
        calls = [t["value"] for r in rows for t in r["conversations"] if "<tool_call>" in t["value"]]
        assert any("{'arguments'" in c for c in calls) and any('{"arguments"' in c for c in calls)


def test_prepare_phase1_offline(tmp_path):
    cfg = PrepareConfig(phase=1, output_dir=str(tmp_path), tokenizer="none")
    stats = prepare(cfg)
    counts = {k: stats["splits"][k]["count"] for k in ("train", "val", "test")}
    assert counts == {"train": 100, "val": 50, "test": 50}
    files = {k: tmp_path / f"hermes_{k}.jsonl" for k in counts}
    rows = {k: [json.loads(line) for line in f.read_text().splitlines()] for k, f in files.items()}
    ids = [r["id"] for v in rows.values() for r in v]
    assert len(ids) == len(set(ids))
    from fctune.schema import Example

    keys = {k: {dedupe_key(Example.from_dict(r)) for r in v} for k, v in rows.items()}
    assert not (keys["train"] & keys["test"]) and not (keys["train"] & keys["val"]) and not (keys["val"] & keys["test"])
    # stratified: each split has every complexity and both turn types
    for k in counts:
        assert set(stats["splits"][k]["complexity"]) == {"simple", "moderate", "complex"}
        assert set(stats["splits"][k]["turn_type"]) == {"single", "multi"}
    saved = json.loads((tmp_path / "dataset_stats.json").read_text())
    assert saved["source"]["kind"] == "offline" and saved["fallback"] is None
    assert saved["metadata"]["config"]["phase"] == 1 and "versions" in saved["metadata"]
    assert set(saved["metadata"]["data_sha256"]) == {str(f) for f in files.values()}


def test_prepare_local_file_skips_bad_rows_with_reasons(tmp_path):
    good = emit_rows(generate_examples(40, seed=2), "hermes", seed=2)
    src = tmp_path / "rows.jsonl"
    lines = [json.dumps(r) for r in good]
    lines.insert(3, json.dumps({"id": "bad1", "conversations": [{"from": "human", "value": ""}]}))
    lines.insert(5, json.dumps({"id": "bad2", "query": "q", "tools": "[{\"name\": ", "answers": "[]"}))
    lines.insert(7, json.dumps({"unexpected": True}))
    src.write_text("\n".join(lines) + "\n")
    # the catalog's rows name tools BFCL also has (get_current_weather ...): kept here, and reported
    stats = prepare(PrepareConfig(source=str(src), train_size=20, val_size=5, test_size=5,
                                  output_dir=str(tmp_path / "out"), tokenizer="none", decontaminate="report"))
    assert stats["decontamination"]["rows_with_bfcl_function_name"] > 0
    assert stats["skipped"] == {"empty_turn": 1, "unparseable_json": 1, "bad_shape": 1}
    where = {s["where"].rsplit(":", 1)[1] for s in stats["skipped_examples"]}
    assert where == {"4", "6", "8"}  # 1-based line numbers of the bad rows
    assert stats["splits"]["train"]["count"] == 20


def test_prepare_hub_failure_is_clear_unless_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    cfg = PrepareConfig(source="NousResearch/hermes-function-calling-v1", train_size=10, val_size=5, test_size=5,
                        output_dir=str(tmp_path), tokenizer="none")
    from fctune.data import SourceUnavailable

    with pytest.raises(SourceUnavailable, match="--source offline"):
        prepare(cfg)
    cfg.fallback = "offline"
    stats = prepare(cfg)
    assert stats["fallback"]["requested"] == "NousResearch/hermes-function-calling-v1"
    assert stats["source"]["kind"] == "offline"


def test_config_yaml_preset_and_flag_precedence(tmp_path):
    from dataclasses import dataclass, field

    @dataclass
    class C:
        preset: str | None = None
        lr: float = 1.0
        steps: int = 10
        tags: list[str] = field(default_factory=list)
        flag: bool = False

    presets = {"smoke": {"lr": 0.5, "steps": 2}}
    y = tmp_path / "c.yaml"
    y.write_text("preset: smoke\nsteps: 5\ntags: [a, b]\n")
    c = parse_config(C, ["--config", str(y), "--flag"], presets=presets)
    assert (c.lr, c.steps, c.tags, c.flag) == (0.5, 5, ["a", "b"], True)
    c = parse_config(C, ["--config", str(y), "--steps", "7", "--flag", "false"], presets=presets)
    assert (c.steps, c.flag) == (7, False)
    y.write_text("stepz: 1\n")
    from fctune.config import config_from_sources

    with pytest.raises(ConfigError, match="unknown field 'stepz'"):
        config_from_sources(C, yaml_path=y)


def test_prepare_script_help_and_run(tmp_path):
    out = subprocess.run([sys.executable, "paper_approach/prepare_hermes_dataset.py", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for flag in ("--source", "--dataset-config", "--fallback", "--phase", "--train-size", "--seed", "--output-dir",
                 "--tokenizer", "--config", "--shape", "--prefix"):
        assert flag in out.stdout, flag
    run = subprocess.run([sys.executable, "paper_approach/prepare_hermes_dataset.py", "--phase", "1",
                          "--output-dir", str(tmp_path), "--tokenizer", "none"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "hermes_train.jsonl (100)" in run.stdout
    bad = subprocess.run([sys.executable, "paper_approach/prepare_hermes_dataset.py", "--source",
                          str(tmp_path / "missing.jsonl")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "missing.jsonl: no such file or folder" in bad.stderr


@pytest.mark.parametrize("category", CATEGORIES)
def test_bfcl_categories_load(category):
    exs = load_category(category, limit=5)
    assert len(exs) == 5
    for e in exs:
        assert e.metadata["bfcl"]["category"] == category
        assert e.tools and all(t.parameters["type"] == "object" for t in e.tools)
        if "irrelevance" in category:
            assert e.expected.kind == "no_call"
        else:
            assert e.expected.kind == "tool_calls" and e.metadata["bfcl"]["possible_answer"]


def test_bfcl_types_map_to_json_schema():
    e = load_category("simple_python", limit=1)[0]
    fn = e.metadata["bfcl"]["functions"][0]
    assert fn["parameters"]["type"] == "dict"  # the original is kept for the checker
    assert e.tools[0].parameters["properties"]["base"]["type"] == "integer"
    assert e.expected.tool_calls[0].arguments == {"base": 10, "height": 5}  # optional "" answers are omitted
    sampled = load_category("simple_python", sample=10, seed=1)
    assert len(sampled) == 10 and sampled == sorted(sampled, key=lambda x: int(x.id.rsplit("_", 1)[1]))
