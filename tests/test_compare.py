"""Comparison: absolute gates, the full report opened in Chromium, and what must hold before any verdict (the
decision rule itself is tested case by case in test_decision.py)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fctune.compare import ModelResults, gate_table

REPO = Path(__file__).resolve().parents[1]
CFG = yaml.safe_load((REPO / "comparison_framework" / "gates.yaml").read_text())


def model(label, role, approach=None, family=None, ci_half=0.02, **metrics):
    """A model whose summaries carry the given single_turn metric values (with symmetric intervals)."""
    m = ModelResults(label, {"label": label, "role": role, "approach": approach, "family": family})
    m.suites["single_turn"] = {"metrics": {k: {"value": v, "ci": [v - ci_half, v + ci_half], "n": 50}
                                           for k, v in metrics.items()}}
    return m


@pytest.mark.parametrize("gate,value,status", [
    ("single_turn_exact_match", 0.70, "pass"), ("single_turn_exact_match", 0.69, "fail"),
    ("single_turn_field_f1", 0.80, "pass"), ("single_turn_field_f1", 0.79, "fail"),
])
def test_gates_at_their_thresholds(gate, value, status):
    g = next(x for x in CFG["gates"] if x["name"] == gate)
    name = g["metric"].split(".", 1)[1]
    rows = gate_table({"m": model("m", "finetuned", **{name: value})}, [g])
    assert rows[0]["status"] == status


def test_domain_std_gate_is_lower_is_better():
    g = next(x for x in CFG["gates"] if x["name"] == "domain_f1_std")
    for v, status in ((0.149, "pass"), (0.15, "fail")):
        m = ModelResults("m", {"role": "finetuned"})
        m.suites["domain_diverse"] = {"domain_f1_std": v, "metrics": {}}
        assert gate_table({"m": m}, [g])[0]["status"] == status


# -- end to end: real scoring of constructed predictions, then the report in a browser --------------------------
def _write_results(results: Path, splits: Path, label: str, info: dict, skill: float):
    """Score predictions that are right on the first `skill` share of each suite's rows."""
    from fctune.evaluate import result_paths
    from fctune.schema import read_examples
    from fctune.score import score_predictions, write_scores
    from fctune.suites import SUITES

    for suite, spec in SUITES.items():
        exs = read_examples(splits / spec.file)
        preds = []
        for i, e in enumerate(exs):
            good = i < skill * len(exs)
            if e.expected.kind == "json":
                out = json.dumps(e.expected.json) if good else "{'broken': "
            elif e.expected.kind == "no_call":
                out = "None of these tools fits the request." if good else \
                    '<tool_call>' + json.dumps({"name": e.tools[0].name, "arguments": {}}) + '</tool_call>'
            else:
                out = "".join("<tool_call>" + json.dumps(c.to_dict()) + "</tool_call>" for c in e.expected.tool_calls) \
                    if good else "Sorry, I am not sure."
            preds.append({"id": e.id, "output": out, "prompt_tokens": 400, "completion_tokens": 40})
        details, issues = score_predictions(exs, preds)
        s, d = result_paths(results, label, suite)
        write_scores(exs, details, issues, s, d, {"model": {"label": label, **info}, "suite": suite,
                                                   "token_usage": {"prompt_tokens": 400 * len(exs),
                                                                   "completion_tokens": 40 * len(exs)}},
                     call_format=["hermes_tags"])


@pytest.fixture(scope="module")
def three_models(tmp_path_factory):
    from fctune.schema import write_examples
    from fctune.suites import SUITES, SuiteConfig, build_suite

    root = tmp_path_factory.mktemp("cmp")
    splits = root / "splits"
    for spec in SUITES.values():
        rows, _ = build_suite(spec, SuiteConfig(exclude=[]))
        write_examples(splits / spec.file, rows)
    res = root / "paper_approach" / "eval_results"
    _write_results(res, splits, "llm-azure", {"role": "llm", "approach": "llm", "backend": "openai", "kind": "azure"},
                   0.9)
    _write_results(res, splits, "phi-ft", {"role": "finetuned", "approach": "paper", "family": "phi",
                                           "backend": "local", "device": "cuda", "model": "phi-4-mini",
                                           "adapter": "adapters/phi"}, 0.9)
    _write_results(res, splits, "phi-base", {"role": "base", "approach": "paper", "family": "phi", "backend": "local",
                                             "model": "phi-4-mini"}, 0.3)
    return root


def test_report_files_and_chromium_render(three_models, tmp_path):
    out = subprocess.run([sys.executable, "comparison_framework/compare_approaches.py", "--results-dirs",
                          str(three_models / "paper_approach" / "eval_results"), str(three_models / "missing_dir"),
                          "--output-dir", str(tmp_path / "reports")], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    reports = tmp_path / "reports"
    for f in ("phase1_comparison.json", "phase1_report.html", "csv/single_turn.csv", "csv/json_quality.csv",
              "csv/llm_comparison.csv", "csv/multi_turn.csv", "csv/domain_diverse.csv", "csv/structured_json.csv",
              "csv/gates.csv", "csv/do_no_harm.csv"):
        assert (reports / f).exists(), f
    r = json.loads((reports / "phase1_comparison.json").read_text())
    assert r["llm_baseline"] == "llm-azure" and set(r["models"]) == {"llm-azure", "phi-ft", "phi-base"}
    # right on the same rows as the LLM: every paired ratio is 1 with no width
    assert r["decision"]["verdict"] == "PROCEED TO PHASE 2", r["decision"]
    assert all(c["ratio"] == 1.0 and c["status"] == "pass" for c in r["verdicts"]["phi-ft"]["capabilities"].values())
    assert r["verdicts"]["phi-base"]["status"] == "fail"
    assert [q["measurable"] for q in r["questions"]] == [False, False, True, True]
    assert {(m.get("family"), m["role"]) for m in r["missing_models"]} >= {("llama", "finetuned"), ("llama", "base")}
    assert any("missing_dir" in p for p in r["problems"])
    assert r["capabilities"]["single_turn"]["phi-ft"]["args_exact_match_rate"]["ratio_to_llm"] > 0.9
    assert r["failure_analysis"]["phi-base"]["single_turn"]["reasons"][0]["reason"] == "no_call"
    assert r["cost"]["llm-azure"]["cost_per_1m_tokens_usd"] > r["cost"]["phi-ft"]["cost_per_1m_tokens_usd"]
    assert r["roi"] and "phi-ft" in r["roi"]
    # do no harm: the fine-tune against its own base, on every capability; better everywhere, so nothing is flagged
    harm = r["do_no_harm"]["phi-ft"]
    assert harm["bases"] == ["phi-base"] and harm["regressions"] == [] and r["decision"]["regressions"] == []
    assert set(harm["checks"]) == set(r["verdicts"]["phi-ft"]["capabilities"])
    assert all(c["difference"] > 0 and c["status"] == "ok" for c in harm["checks"].values())
    html = (reports / "phase1_report.html").read_text()
    import re

    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert {u for u in urls if not u.startswith(("http://www.w3.org/", "http://purl.org/dc/", "http://creativecommons.org/",
                                                  "https://matplotlib.org"))} == set()
    assert "<link" not in html and "src=" not in html  # self-contained: nothing to fetch
    # a decision document: the verdict first, then the capability table, the vetoes and the four questions; no raw
    # JSON or Python reprs in what a reader sees (charts, the script and quoted model outputs aside)
    text = re.sub(r"<svg.*?</svg>|<script>.*?</script>|<pre>.*?</pre>", "", html, flags=re.S)
    for heading in ("PROCEED TO PHASE 2", "Capabilities against the LLM", "Vetoes", "The four questions",
                    "Failure modes", "Cost", "Strict and lenient readings", "Against its own base (do no harm)"):
        assert heading in text, heading
    assert text.index("PROCEED TO PHASE 2") < text.index("Capabilities against the LLM") < text.index("Details")
    assert r["decision"]["lenient"]["verdict"] == "PROCEED TO PHASE 2" and "In the lenient reading" in text
    assert "{'" not in text and '{"' not in text and "{&#x27;" not in text and "{&quot;" not in text

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed (scripts/bootstrap.sh --test installs it)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", (reports / "phase1_report.html").as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert 'data-charts-rendered="' in dom.stdout, dom.stderr[-2000:]
    rendered = int(dom.stdout.split('data-charts-rendered="')[1].split('"')[0])
    assert rendered >= 7  # ratio bars, 5 capability charts, the domain heat map
    shot = reports / "phase1_report.png"
    subprocess.run([chromium, *flags, "--window-size=1280,2400", f"--screenshot={shot}",
                    (reports / "phase1_report.html").as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000
    if os.environ.get("FCTUNE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["FCTUNE_KEEP_SCREENSHOT"])


def test_every_fledgling_run_keeps_its_gate(three_models, tmp_path):
    from fctune.compare import CompareConfig, compare

    dirs = [str(three_models / "paper_approach" / "eval_results")]
    for name, fine_tune in (("fled_a", True), ("fled_b", False)):
        d = tmp_path / name
        d.mkdir()
        (d / "fledgling_gate.json").write_text(json.dumps({
            "decision": "FINE-TUNE" if fine_tune else "SKIP", "fine_tune": fine_tune, "reason": name,
            "base_model": {"label": f"{name}-base"}}))
        dirs.append(str(d))
    r = compare(CompareConfig(results_dirs=dirs, output_dir=str(tmp_path / "reports")))
    assert [(g["reason"], g["fine_tune"], g["results_dir"]) for g in r["fledgling"]["gates"]] == [
        ("fled_a", True, dirs[1]), ("fled_b", False, dirs[2])]
    # one run fine-tuned, so a missing Fledgling fine-tuned model is not excused by the gate
    missing = [m for m in r["missing_models"] if m.get("approach") == "fledgling" and m["role"] == "finetuned"]
    assert missing and missing[0]["note"] == "no result"
    html = (tmp_path / "reports" / "phase1_report.html").read_text()
    assert "(fled_a-base)" in html and "(fled_b-base)" in html


def test_a_second_result_for_the_same_model_and_suite_is_reported(three_models, tmp_path):
    from fctune.compare import discover

    res = three_models / "paper_approach" / "eval_results"
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(res / "phi-ft_single_turn.json", copy / "phi-ft_single_turn_copy.json")
    _, problems, _ = discover([str(res), str(copy)], ["single_turn"])
    assert problems == []  # an identical copy is harmless
    rerun = json.loads((res / "phi-ft_single_turn.json").read_text())
    rerun["args_exact_match_rate"] = 0.0
    (copy / "phi-ft_single_turn_copy.json").write_text(json.dumps(rerun))
    models, problems, _ = discover([str(res), str(copy)], ["single_turn"])
    assert models["phi-ft"].suites["single_turn"]["args_exact_match_rate"] == 0.0
    assert any("a second, different single_turn result for 'phi-ft'" in p and "phi-ft_single_turn_copy.json" in p
               for p in problems), problems


def test_no_verdict_without_the_llm_on_every_compared_suite(three_models, tmp_path):
    """An LLM found only on other suites (here: one suite left) is not a baseline; neither is no LLM at all."""
    from fctune.compare import CompareConfig, compare
    from fctune.errors import UserError

    res = tmp_path / "res"
    shutil.copytree(three_models / "paper_approach" / "eval_results", res)
    for suite in ("multi_turn", "domain_diverse", "structured_json"):
        (res / f"llm-azure_{suite}.json").unlink()
    with pytest.raises(UserError, match=r"'llm-azure' has no scored rows on domain_diverse, multi_turn .*found: "
                                        r"no_call, single_turn"):
        compare(CompareConfig(results_dirs=[str(res)], output_dir=str(tmp_path / "rep")))
    for f in res.glob("llm-azure_*"):
        f.unlink()
    with pytest.raises(UserError, match="no LLM baseline result"):
        compare(CompareConfig(results_dirs=[str(res)], output_dir=str(tmp_path / "rep")))
    assert not (tmp_path / "rep").exists()


def test_a_served_model_is_shown_beside_its_in_process_scores_and_prices_the_cost(three_models, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "phi-ft_roundtrip.json").write_text(json.dumps({
        "label": "phi-ft", "served_label": "phi-ft-served", "gguf": "phi.f16.gguf",
        "metrics": [{"name": "single-turn calls", "metric": "single_turn.args_exact_match_rate", "n": 50,
                     "in_process": 0.9, "served": 0.9, "difference": 0.0, "ci": [-0.04, 0.04], "differs": False},
                    {"name": "valid JSON", "metric": "json_quality.valid_json_rate", "n": 80, "in_process": 0.95,
                     "served": 0.7, "difference": -0.25, "ci": [-0.35, -0.15], "differs": True}],
        "bfcl": [], "served_throughput": {"requests": 80, "latency_p50_s": 1.2, "latency_p95_s": 3.4,
                                          "generated_tokens_per_s": 25.0,
                                          "machine": {"description": "Test CPU (2 cores), llama.cpp on the CPU"}}}))
    out = subprocess.run([sys.executable, "comparison_framework/compare_approaches.py", "--results-dirs",
                          str(three_models / "paper_approach" / "eval_results"), "--served-dir", str(served),
                          "--output-dir", str(tmp_path / "reports")], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads((tmp_path / "reports" / "phase1_comparison.json").read_text())
    assert r["served"]["phi-ft"]["metrics"][1]["differs"] is True
    basis = r["cost"]["phi-ft"]["basis"]
    assert "25.0 generated tokens/s measured in the round trip on Test CPU (2 cores)" in basis and "p95 3.4 s" in basis
    # the gates file's $2.50/h over the measured 25 tokens/s, per 1M tokens (not the assumed 2,000 tokens/s)
    assert r["cost"]["phi-ft"]["cost_per_1m_tokens_usd"] == pytest.approx(2.50 / (25.0 * 3600) * 1e6, abs=1e-3)
    html = (tmp_path / "reports" / "phase1_report.html").read_text()
    assert "Served against in-process" in html and "DIFFERS" in html and "same within interval" in html


def test_the_report_says_when_one_fine_tune_stood_for_both_families():
    from fctune.report import _stand_in_notes

    llm = {"approach": "llm", "role": "llm", "backend": "azure", "endpoint_host": "x.openai.azure.com"}
    joined = {"models": {"paper-phi-llama-ft": {"approach": "paper", "role": "finetuned", "family": "phi+llama",
                                                "model": "smollm2"}, "llm-gpt": llm}, "llm_baseline": "llm-gpt"}
    assert _stand_in_notes(joined) == [
        "paper-phi-llama-ft stands for phi+llama: they were given the same base model (smollm2), so it was trained "
        "and evaluated once; the Phi/Llama comparison needs the real models."]
    real = {"models": {"paper-phi-ft": {"approach": "paper", "role": "finetuned", "family": "phi", "model": "p"},
                       "paper-llama-ft": {"approach": "paper", "role": "finetuned", "family": "llama", "model": "l"},
                       "llm-gpt": llm}, "llm_baseline": "llm-gpt"}
    assert _stand_in_notes(real) == []


@pytest.mark.parametrize("slots", [1, 4])
def test_the_report_says_when_the_llm_answers_depend_on_batching(slots, tmp_path, monkeypatch):
    """A llama-server LLM with more than one slot gives answers that can change between runs; the report says so
    (and how to avoid it), and says nothing of the kind for one slot."""
    from fctune import llama_server as ls
    from fctune.report import _stand_in_notes

    binary = tmp_path / "llama-server"  # an executable is all a server description needs; none is started
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv(ls.SERVER_ENV, str(binary))
    srv = ls.LlamaServer("smollm2", engine="cpp", parallel=slots)
    llm = {"approach": "llm", "role": "llm", "backend": "llamacpp", "model": "q", "served_by": srv.served_by}
    notes = _stand_in_notes({"models": {"llm-q": llm}, "llm_baseline": "llm-q"})
    batching = [n for n in notes if "side by side" in n]
    if slots == 1:
        assert batching == []
    else:
        assert batching == ["llm-q was answered by llama-server decoding 4 requests side by side: its greedy answers "
                            "depend on which requests shared a batch, so another run can differ by a few rows; "
                            "--max-concurrency 1 gives the same answers every run."]
