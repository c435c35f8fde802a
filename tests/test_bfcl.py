"""BFCL scoring on cases built from real BFCL rows, the score command, and a run through a backend."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fctune.bfcl.checker import calls_from_output, check_bfcl, standardize_string
from fctune.formats.bfcl import CATEGORIES, load_category

REPO = Path(__file__).resolve().parents[1]
# Rows whose ground truth cannot satisfy their own function schema (upstream data defects): the leaderboard
# marks every model wrong on them too.
UNSATISFIABLE = {
    "live_simple_106-63-0": "missing_required",      # required params with an empty list of possible answers
    "live_simple_112-68-0": "missing_required",
    "live_multiple_862-181-3": "unexpected_param",   # answer uses a parameter the schema does not have
    "live_multiple_964-207-0": "missing_required",   # answer names 'question', the schema requires 'statement'
}


def row(category, rid):
    return next(e for e in load_category(category) if e.id == rid)


def verdict(e, output):
    b = e.metadata["bfcl"]
    return check_bfcl(b["category"], b["functions"], b["possible_answer"],
                      calls_from_output(output, None, e.tool_names))


def as_tags(calls):
    return "".join("<tool_call>" + json.dumps({"name": n, "arguments": a}) + "</tool_call>" for n, a in calls)


@pytest.mark.parametrize("category", CATEGORIES)
def test_ground_truth_scores_one(category):
    failed = {}
    for e in load_category(category):
        out = as_tags([(c.name, c.arguments) for c in e.expected.tool_calls]) if e.expected.kind == "tool_calls" \
            else "None of these functions fit."
        err = verdict(e, out)
        if err:
            failed[e.id] = err[0]
    assert set(failed) == {k for k in UNSATISFIABLE if k in {e.id for e in load_category(category)}}
    for rid, etype in failed.items():
        assert UNSATISFIABLE[rid] in etype


TRIANGLE = ("simple_python", "simple_python_0")  # base int, height int, unit optional ("units" or omitted)


@pytest.mark.parametrize("args,ok,etype", [
    ({"base": 10, "height": 5}, True, None),
    ({"base": 10, "height": 5, "unit": "Units"}, True, None),               # string normalization
    ({"base": "10", "height": 5}, False, "type_error:simple"),
    ({"base": 10}, False, "simple_function_checker:missing_required"),
    ({"base": 10, "height": 5, "color": "red"}, False, "simple_function_checker:unexpected_param"),
    ({"base": 11, "height": 5}, False, "value_error:others"),
    ({"base": 10, "height": 5, "unit": "meters"}, False, "value_error:string"),
])
def test_simple_rules_on_a_real_row(args, ok, etype):
    e = row(*TRIANGLE)
    err = verdict(e, as_tags([("calculate_triangle_area", args)]))
    assert (err is None) is ok and (err[0] if err else None) == etype


def test_python_call_syntax_and_wrong_count():
    e = row(*TRIANGLE)
    assert verdict(e, "calculate_triangle_area(base=10, height=5)") is None
    err = verdict(e, "[calculate_triangle_area(base=10, height=5), calculate_triangle_area(base=10, height=5)]")
    assert err[0] == "simple_function_checker:wrong_count"
    assert verdict(e, "The area is 25.")[0] == "ast_decoder:no_call"


def test_int_accepted_where_float_expected():
    for e in load_category("simple_python"):
        fn = e.metadata["bfcl"]["functions"][0]
        floats = [p for p, d in fn["parameters"]["properties"].items() if d.get("type") == "float"]
        args = e.expected.tool_calls[0].arguments
        hit = [p for p in floats if isinstance(args.get(p), float) and args[p].is_integer()]
        if hit:
            as_int = dict(args, **{hit[0]: int(args[hit[0]])})
            assert verdict(e, as_tags([(fn["name"], as_int)])) is None, e.id
            return
    pytest.fail("no simple_python row with an integral float answer")


def test_tuple_accepted_as_list():
    for cat in ("simple_python", "parallel", "multiple"):
        for e in load_category(cat):
            for fn in e.metadata["bfcl"]["functions"]:
                for p, d in fn["parameters"]["properties"].items():
                    if d.get("type") == "tuple":
                        call = next((c for c in e.expected.tool_calls
                                     if c.name == fn["name"] and p in c.arguments), None)
                        if call and len(e.expected.tool_calls) == 1:
                            args = ", ".join(f"{k}={tuple(v) if k == p else v!r}" for k, v in call.arguments.items())
                            assert verdict(e, f"{fn['name']}({args})") is None, e.id
                            return
    pytest.skip("no tuple-typed parameter in these categories")


def test_parallel_calls_in_another_order_and_one_to_one():
    e = row("parallel", "parallel_0")
    calls = [(c.name, c.arguments) for c in e.expected.tool_calls]
    assert len(calls) >= 2
    assert verdict(e, as_tags(calls[::-1])) is None
    assert verdict(e, as_tags([calls[0]] * len(calls)))[0] == "parallel_function_checker_no_order:cannot_find_match"
    assert verdict(e, as_tags(calls[:1]))[0] == "parallel_function_checker_no_order:wrong_count"


def test_multiple_must_choose_the_right_function():
    e = next(x for x in load_category("multiple") if len(x.tools) > 1)
    right = e.expected.tool_calls[0]
    wrong = next(t for t in e.metadata["bfcl"]["functions"] if t["name"] != right.name)
    assert verdict(e, as_tags([(right.name, right.arguments)])) is None
    assert verdict(e, as_tags([(wrong["name"], right.arguments)]))[0] == "simple_function_checker:wrong_func_name"


def test_irrelevance_is_correct_without_a_call():
    e = load_category("irrelevance", limit=1)[0]
    assert verdict(e, "I can't do that with these tools.") is None
    fn = e.metadata["bfcl"]["functions"][0]["name"]
    assert verdict(e, as_tags([(fn, {})]))[0] == "irrelevance:called_a_function"


def test_leaderboard_string_normalization():
    assert standardize_string("April 1, 2024") == standardize_string("april 1 2024")
    assert standardize_string("New-York") == "newyork"


def test_score_command(tmp_path):
    exs = load_category("simple_python", limit=3)
    preds = [{"id": exs[0].id, "output": as_tags([(c.name, c.arguments) for c in exs[0].expected.tool_calls])},
             {"id": exs[1].id, "output": "no idea"}]
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in preds) + "\n")
    cmd = [sys.executable, "-m", "fctune.bfcl", "score", "--category", "simple_python", "--predictions", str(p),
           "--out", str(tmp_path / "o")]
    strict = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert strict.returncode == 2 and "398 split rows without a prediction" in strict.stderr
    out = subprocess.run(cmd + ["--allow-partial"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert (s["accuracy"], s["correct"], s["total"]) == (0.5, 1, 2)
    assert len(s["missing_predictions"]) == 398 and "no prediction" in out.stderr
    d = [json.loads(x) for x in (tmp_path / "o" / "details.jsonl").read_text().splitlines()]
    assert d[1]["valid"] is False and d[1]["error_type"] == "ast_decoder:no_call"


@pytest.mark.slow
def test_bfcl_run_through_the_local_backend(tmp_path, tiny_model_dir):
    from fctune.bfcl import BfclConfig, run_bfcl

    s = run_bfcl(BfclConfig(model=tiny_model_dir, label="tiny", categories=["simple_python", "irrelevance",
                                                                              "live_parallel"],
                            limit=3, results_dir=str(tmp_path), max_new_tokens=8, batch_size=3))
    assert set(s["categories"]) == {"simple_python", "irrelevance", "live_parallel"}
    assert all(v["total"] == 3 for v in s["categories"].values())
    assert s["non_live_ast_categories"] == ["simple_python"] and s["live_ast_categories"] == ["live_parallel"]
    assert s["hallucination"]["irrelevance"] is not None
    assert (tmp_path / "tiny_bfcl.json").exists() and (tmp_path / "tiny_bfcl_details.jsonl").exists()
    assert s["model"]["backend"] == "local" and s["bfcl_eval_version"]


@pytest.mark.slow
def test_pooled_categories_answer_as_one_by_one_and_resume_per_category(tmp_path, tiny_model_dir):
    # the static engine pools categories of one budget into one pass (--pool-tasks auto): batches then mix
    # categories, yet in fp32 on the CPU every answer must be the same tokens as the padded engine's category by
    # category (--pool-tasks false), and each category keeps its own predictions file, resume and score
    from fctune.bfcl import BfclConfig, run_bfcl

    cats = ["simple_python", "irrelevance", "multiple"]
    common = dict(model=tiny_model_dir, categories=cats, limit=3, max_new_tokens=8, batch_size=4, dtype="fp32")
    one_by_one = run_bfcl(BfclConfig(label="padded", results_dir=str(tmp_path / "p"), pool_tasks="false", **common))
    pooled = run_bfcl(BfclConfig(label="static", engine="static", results_dir=str(tmp_path / "s"), **common))

    def answers(folder, label):
        return {c: [(r["id"], r["output"], r["completion_tokens"]) for r in map(json.loads, (
            folder / f"{label}_bfcl_{c}_predictions.jsonl").read_text().splitlines())] for c in cats}

    first = answers(tmp_path / "s", "static")
    assert first == answers(tmp_path / "p", "padded")
    assert all(len(rows) == 3 and all(i.startswith(c) for i, _, _ in rows) for c, rows in first.items())
    for c in cats:
        assert pooled["categories"][c]["generated"] == 3 and pooled["categories"][c]["total"] == 3
        assert pooled["categories"][c]["pooled_with"] == cats and one_by_one["categories"][c]["pooled_with"] is None
    assert pooled["throughput"]["examples"] == 9
    assert {c: pooled["categories"][c]["correct"] for c in cats} == {c: one_by_one["categories"][c]["correct"]
                                                                     for c in cats}
    # a run killed mid-pass: one category lost its last answer; the rerun generates that row alone
    path = tmp_path / "s" / "static_bfcl_irrelevance_predictions.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))
    again = run_bfcl(BfclConfig(label="static", engine="static", results_dir=str(tmp_path / "s"), **common))
    assert {c: again["categories"][c]["generated"] for c in cats} == {"simple_python": 0, "irrelevance": 1,
                                                                      "multiple": 0}
    assert answers(tmp_path / "s", "static") == first


def test_rescore_summarizes_saved_predictions_and_lists_what_is_missing(tmp_path):
    from fctune.bfcl import rescore

    exs = load_category("simple_python", limit=3)
    rows = [{"id": e.id, "output": as_tags([(c.name, c.arguments) for c in e.expected.tool_calls])} for e in exs]
    # a line appended by hand for a row already answered: the first answer counts, the duplicate is reported
    rows.append({"id": exs[0].id, "output": "no call"})
    (tmp_path / "m_bfcl_simple_python_predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = rescore(str(tmp_path), "m", ["simple_python", "irrelevance"], limit=3)
    assert s["categories"]["simple_python"]["accuracy"] == 1.0
    assert s["categories"]["simple_python"]["duplicate_ids"] == [exs[0].id]
    assert s["categories_without_predictions"] == ["irrelevance"]
    assert json.loads((tmp_path / "m_bfcl.json").read_text())["rescored_from_saved_predictions"] is True


@pytest.mark.slow
def test_categories_of_different_budgets_share_one_pass_on_the_cpu(tmp_path, tiny_model_dir):
    # on a CPU the padded engine's finished rows leave their batch, so categories whose budgets differ (each sized
    # from its own answers) are answered in one pass (--pool-tasks auto), every row cut at its own category's
    # budget: the same tokens (fp32) as one category at a time
    from fctune.bfcl import BfclConfig, run_bfcl

    cats = ["irrelevance", "simple_python", "parallel"]
    common = dict(model=tiny_model_dir, categories=cats, limit=2, batch_size=6, dtype="fp32")
    pooled = run_bfcl(BfclConfig(label="m", results_dir=str(tmp_path / "pooled"), **common))
    alone = run_bfcl(BfclConfig(label="m", results_dir=str(tmp_path / "alone"), pool_tasks="false", **common))
    budgets = {c: pooled["categories"][c]["max_new_tokens"] for c in cats}
    assert len(set(budgets.values())) == 3 and budgets == {c: alone["categories"][c]["max_new_tokens"] for c in cats}
    assert all(pooled["categories"][c]["pooled_with"] == cats and alone["categories"][c]["pooled_with"] is None
               for c in cats)

    def answers(folder):
        return {c: [(r["id"], r["output"], r["completion_tokens"], r["finish_reason"]) for r in map(json.loads, (
            tmp_path / folder / f"m_bfcl_{c}_predictions.jsonl").read_text().splitlines())] for c in cats}

    got = answers("pooled")
    assert got == answers("alone")
    assert all(len(rows) == 2 and all(n <= budgets[c] for _, _, n, _ in rows) for c, rows in got.items())
    assert any(n == budgets[c] for c, rows in got.items() for _, _, n, _ in rows)  # some row ran to its budget
