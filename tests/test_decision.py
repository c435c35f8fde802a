"""The decision rule, case by case: paired intervals, pass / fail / inconclusive with a row count, vetoes, min vs
mean, and the phase verdicts built on them from scored rows on disk."""

import json

import pytest

from fctune.compare import ModelResults, harm_sentence, judge_models, phase1_decision, phase2_decision
from fctune.decision import harm_status, judge, paired_difference, paired_ratio, rows_needed, status


def rows(n_right: int, n: int, offset: int = 0) -> dict:
    """Row id -> 1.0 for ``n_right`` of ``n`` rows (starting at ``offset``, wrapping), else 0.0."""
    right = {(offset + k) % n for k in range(n_right)}
    return {f"r{i}": 1.0 if i in right else 0.0 for i in range(n)}


# -- paired intervals -----------------------------------------------------------------------------------------
def test_identical_answers_give_a_ratio_of_one_with_no_width():
    r = paired_ratio(rows(40, 50), rows(40, 50))
    assert r["ratio"] == 1.0 and r["ci"] == [1.0, 1.0] and r["n"] == 50


def test_pairing_is_narrower_than_two_independent_intervals():
    """The SLM is right on all but 2 of the LLM's 40 right rows: pairing sees 2 differing rows, not 50 noisy ones."""
    slm, llm = rows(38, 50), rows(40, 50)
    r = paired_ratio(slm, llm)
    assert r["ratio"] == pytest.approx(0.95)
    assert r["ci"][1] == 1.0 and r["ci"][0] > 0.87
    # two independent intervals of these rates span a ratio from about 0.76 to 1.2
    assert r["ci"][1] - r["ci"][0] < 0.13


def test_only_shared_rows_count_and_an_llm_at_zero_has_no_ratio():
    slm = {"a": 1.0, "b": 1.0, "c": 0.0}
    assert paired_ratio(slm, {"a": 1.0, "x": 1.0})["n"] == 1
    r = paired_ratio(slm, {"a": 0.0, "b": 0.0, "c": 0.0})
    assert r["ratio"] is None and r["llm"] == 0.0 and r["n"] == 3
    assert paired_ratio(slm, {})["n"] == 0


def test_paired_difference():
    d = paired_difference(rows(45, 50), rows(30, 50))
    assert d["difference"] == pytest.approx(0.3) and d["ci"][0] > 0.15
    same = paired_difference(rows(30, 50), rows(30, 50, offset=1))
    assert same["ci"][0] < 0 < same["ci"][1]


# -- statuses and the rows that would decide --------------------------------------------------------------------
@pytest.mark.parametrize("ci,expected", [
    ([0.90, 1.10], "pass"),          # the lower bound exactly at the bar clears it
    ([0.95, None], "pass"),          # unbounded above
    ([0.50, 0.899], "fail"),         # the upper bound just below
    ([0.70, 0.95], "inconclusive"),  # the bar inside the interval
    (None, "missing"),
])
def test_status_against_the_bar(ci, expected):
    assert status(ci, 0.9) == expected


def test_rows_needed_grows_as_the_ratio_nears_the_bar():
    far = rows_needed(50, 1.2, [0.8, 1.6], 0.9)
    near = rows_needed(50, 0.95, [0.6, 1.3], 0.9)
    assert 50 < far < near
    # the interval's half-width scales as 1/sqrt(rows): at the returned count it reaches the bar
    se = (1.6 - 0.8) / (2 * 1.96)
    assert 1.96 * se * (50 / far) ** 0.5 == pytest.approx(1.2 - 0.9, rel=0.05)
    assert rows_needed(50, 0.9, [0.7, 1.1], 0.9) is None  # exactly at the bar: no sample size decides


# -- one model's verdict, table-driven --------------------------------------------------------------------------
OK_VETO = {"false calls": {"status": "ok"}, "extra calls": {"status": "ok"}}


def caps(**pairs) -> dict:
    return {name: paired_ratio(slm, llm) for name, (slm, llm) in pairs.items()}


CASES = [
    # (name, capabilities, vetoes, aggregate, expected status)
    ("equal on everything", caps(single=(rows(40, 50), rows(40, 50)), multi=(rows(20, 30), rows(20, 30))),
     OK_VETO, "min", "pass"),
    ("half the LLM's exact match", caps(single=(rows(11, 50), rows(22, 50)), multi=(rows(30, 30), rows(20, 30))),
     OK_VETO, "min", "fail"),
    ("straddling the bar", caps(single=(rows(10, 12, offset=2), rows(10, 12))), OK_VETO, "min", "inconclusive"),
    ("an over-caller", caps(single=(rows(40, 50), rows(40, 50))),
     {"false calls": {"status": "ok"}, "extra calls": {"status": "veto"}}, "min", "fail"),
    ("the LLM at zero on one capability", caps(single=(rows(40, 50), rows(40, 50)), multi=(rows(5, 30), rows(0, 30))),
     OK_VETO, "min", "incomplete"),
    # 1.5 and 0.7: the minimum fails, the mean (1.1) passes -- why min is the default
    ("one strong, one weak: min", caps(strong=(rows(45, 50), rows(30, 50)), weak=(rows(28, 50), rows(40, 50))),
     OK_VETO, "min", "fail"),
    ("one strong, one weak: mean", caps(strong=(rows(45, 50), rows(30, 50)), weak=(rows(28, 50), rows(40, 50))),
     OK_VETO, "mean", "pass"),
]


@pytest.mark.parametrize("name,capabilities,vetoes,aggregate,expected", CASES, ids=[c[0] for c in CASES])
def test_judge(name, capabilities, vetoes, aggregate, expected):
    j = judge(capabilities, vetoes, 0.9, aggregate)
    assert j["status"] == expected, j["why"]
    if expected == "inconclusive":
        assert j["rows_needed"] and j["rows_needed"] > 12 and "inside the interval" in j["why"]
    if name == "an over-caller":
        assert j["vetoed_by"] == ["extra calls"] and all(c["status"] == "pass" for c in j["capabilities"].values())
    if name == "the LLM at zero on one capability":
        assert "the LLM scores 0 on its 30 rows" in j["why"]
    if aggregate == "mean":
        assert j["mean_ratio"] == pytest.approx(1.1, abs=0.01) and "mean of capabilities, an option" in j["why"]


# -- the phase verdicts from scored rows on disk ----------------------------------------------------------------
GATES = {"capabilities": [{"name": "single-turn calls", "metric": "single_turn.args_exact_match_rate"},
                          {"name": "knowing when not to call", "metric": "safety.abstention_accuracy"}],
         "vetoes": [{"name": "false calls", "metric": "safety.false_call_rate", "op": "<=", "threshold": 0.1},
                    {"name": "extra calls", "metric": "calls.extra_call_rate", "op": "<=", "threshold": 0.1}],
         "relative": {"aggregate": "min"},
         "phase1": {"proceed_ratio": 0.9, "winner_margin": 0.05, "winner_metric": "single_turn.args_exact_match_rate"},
         "phase2": {"max_delta": 0.1}}


def scored(tmp_path, label, role, right: int, abstain: int, extra: int = 0, family=None, n=40, shape="hermes_tags",
           model=None):
    """A model with ``right`` of ``n`` single-turn rows exactly right (``extra`` of the wrong ones with an extra call)
    and ``abstain`` of 20 no-call rows correctly abstained, written as details files and read back."""
    single = []
    for i in range(n):
        ok = i < right
        calls = [{"name": "f", "arguments": {}}] * (2 if (not ok and i - right < extra) else 1)
        single.append({"id": f"s{i}", "expected_kind": "tool_calls", "args_exact_match": ok, "valid_json": True,
                       "field_f1": 1.0 if ok else 0.5, "parse_shape": shape, "predicted_calls": calls,
                       "n_expected_calls": 1, "exact_match": ok,
                       "failure_reason": None if ok else ("extra_call" if len(calls) > 1 else "wrong_value")})
    no_call = [{"id": f"n{i}", "expected_kind": "no_call", "abstention_correct": i < abstain,
                "exact_match": i < abstain,
                "parse_shape": "none" if i < abstain else shape, "predicted_calls": [] if i < abstain else [{}]}
               for i in range(20)]
    m = ModelResults(label, {"label": label, "role": role, "approach": "paper" if role != "llm" else "llm",
                             "family": family, "tools_mode": "prompt", "model": model})
    for suite, rs in (("single_turn", single), ("no_call", no_call)):
        p = tmp_path / f"{label}_{suite}_details.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in rs))
        m.details[suite] = p
        m.suites[suite] = {"n_scored": len(rs), "call_format": ["hermes_tags"]}
    return m


def decide(tmp_path, phase, *models, gates=GATES):
    by = {m.label: m for m in models}
    llm = next(m for m in models if m.role == "llm")
    judged = judge_models(by, llm, gates, 0.9, regression_veto=phase == 2)
    return (phase1_decision if phase == 1 else phase2_decision)(by, llm, judged, gates), judged


@pytest.mark.parametrize("slm,verdict", [
    ({"right": 32, "abstain": 20}, "DEPLOY TO PRODUCTION"),       # equal to the LLM on the same rows
    ({"right": 16, "abstain": 20}, "ANALYZE FAILURE MODES"),      # half the LLM's exact match
    ({"right": 29, "abstain": 20}, "INCONCLUSIVE"),               # 29 vs 32: the bar is inside the interval
    ({"right": 32, "abstain": 20, "extra": 0}, "DEPLOY TO PRODUCTION"),
    ({"right": 30, "abstain": 20, "extra": 8}, "ANALYZE FAILURE MODES"),   # an over-caller: vetoed (8/40 > 10%)
    ({"right": 32, "abstain": 15}, "ANALYZE FAILURE MODES"),      # calls where no tool fits on 5 of 20 rows
])
def test_phase2(tmp_path, slm, verdict):
    d, judged = decide(tmp_path, 2, scored(tmp_path, "llm", "llm", 32, 20), scored(tmp_path, "ft", "finetuned", **slm))
    assert d["verdict"] == verdict, d["reason"]
    if verdict == "INCONCLUSIVE":
        assert d["rows_needed"] > 40 and f"about {d['rows_needed']} test rows" in d["reason"]
    if slm.get("extra"):
        assert judged["ft"]["vetoed_by"] == ["extra calls"]


def test_phase2_strict_reading_does_not_read_calls_outside_the_declared_format(tmp_path):
    """The same right answers written as fenced JSON by a model that declared <tool_call> tags count as no call."""
    llm = scored(tmp_path, "llm", "llm", 32, 20)
    fenced = scored(tmp_path, "ft", "finetuned", 32, 20, shape="fenced_json")
    d, judged = decide(tmp_path, 2, llm, fenced)
    assert judged["ft"]["capabilities"]["single-turn calls"]["slm"] == 0.0
    assert d["verdict"] == "ANALYZE FAILURE MODES"


@pytest.mark.parametrize("phi,llama,verdict", [
    (36, 36, "PROCEED TO PHASE 2"),
    (30, 20, "FOCUS ON WINNER"),     # neither reaches the bar; phi is ahead by far on the same rows
    (24, 23, "ITERATE"),             # both clearly below, no clear winner
])
def test_phase1(tmp_path, phi, llama, verdict):
    d, _ = decide(tmp_path, 1, scored(tmp_path, "llm", "llm", 36, 20),
                  scored(tmp_path, "phi-ft", "finetuned", phi, 20, family="phi"),
                  scored(tmp_path, "llama-ft", "finetuned", llama, 20, family="llama"))
    assert d["verdict"] == verdict, d["reason"]
    if verdict == "FOCUS ON WINNER":
        assert d["winner"] == "phi" and d["winner_check"]["ci"][0] > 0


# -- do no harm: a fine-tune against its own base -----------------------------------------------------------------
@pytest.mark.parametrize("ci,expected", [
    ([-0.12, -0.03], "regression"),   # the whole interval below -2 points
    ([-0.05, 0.01], "ok"),            # straddles 0: not shown to be worse
    ([-0.05, -0.01], "ok"),           # worse, but not by more than the allowance
    ([-0.05, -0.02], "ok"),           # at the allowance: not beyond it
    ([0.01, 0.06], "ok"),
    (None, "missing"),
])
def test_harm_status(ci, expected):
    assert harm_status(ci, 0.02) == expected


@pytest.mark.parametrize("base,ft,base_shape,regressed", [
    (80, 90, "hermes_tags", False),   # better everywhere
    (80, 72, "hermes_tags", True),    # loses 8 points on single calls, the same 8 rows every time: a tight interval
    (80, 79, "hermes_tags", False),   # loses one row: the interval straddles the allowance
    (80, 72, "fenced_json", True),    # the base wrote fenced JSON: its lenient reading (80) is its best one
])
def test_do_no_harm_against_the_base(tmp_path, base, ft, base_shape, regressed):
    llm = scored(tmp_path, "llm", "llm", 80, 20, n=100)
    b = scored(tmp_path, "base", "base", base, 20, n=100, shape=base_shape, model="qwen")
    f = scored(tmp_path, "ft", "finetuned", ft, 20, n=100, model="qwen")
    d, judged = decide(tmp_path, 2, llm, b, f)
    nh = judged["ft"]["do_no_harm"]
    single = nh["checks"]["single-turn calls"]
    assert nh["bases"] == ["base"] and single["n"] == 100
    assert single["difference"] == pytest.approx((ft - base) / 100)
    assert single["base_reading"] == ("lenient" if base_shape == "fenced_json" else "strict")
    assert (nh["regressions"] == ["single-turn calls"]) is regressed
    text = harm_sentence("ft", nh)
    if regressed:
        # phase 2: a veto, named with its size; the model equal to the LLM elsewhere is not deployed
        assert "no regression against its base" in judged["ft"]["vetoed_by"]
        assert d["verdict"] != "DEPLOY TO PRODUCTION" and "-8.0 points" in text and "-8.0 points" in d["reason"]
    else:
        assert text is None and judged["ft"]["vetoed_by"] == []


def test_do_no_harm_is_shown_but_does_not_veto_in_phase_1(tmp_path):
    llm = scored(tmp_path, "llm", "llm", 72, 20, n=100)
    b = scored(tmp_path, "base", "base", 80, 20, n=100, model="qwen")
    f = scored(tmp_path, "ft", "finetuned", 72, 20, n=100, model="qwen")
    d, judged = decide(tmp_path, 1, llm, b, f)
    assert d["verdict"] == "PROCEED TO PHASE 2"
    assert judged["ft"]["do_no_harm"]["regressions"] == ["single-turn calls"]


def test_a_base_of_another_model_is_not_its_base(tmp_path):
    llm = scored(tmp_path, "llm", "llm", 80, 20, n=100)
    other = scored(tmp_path, "base", "base", 95, 20, n=100, model="another")
    f = scored(tmp_path, "ft", "finetuned", 80, 20, n=100, model="qwen")
    d, judged = decide(tmp_path, 2, llm, other, f)
    assert judged["ft"]["do_no_harm"]["bases"] == [] and d["verdict"] == "DEPLOY TO PRODUCTION"
    assert "no result of its base model" in d["reason"]


# -- every sentence about a verdict is true of its numbers --------------------------------------------------------
MEAN_GATES = {**GATES, "relative": {"aggregate": "mean"}}


@pytest.mark.parametrize("gates,phase,verdict", [
    (GATES, 2, "ANALYZE FAILURE MODES"),
    (MEAN_GATES, 2, "DEPLOY TO PRODUCTION"),
    (GATES, 1, "ITERATE"),
    (MEAN_GATES, 1, "PROCEED TO PHASE 2"),
])
def test_verdict_sentences_are_true_of_a_model_at_half_the_llm_on_one_capability(tmp_path, gates, phase, verdict):
    """Single calls at 50% of the LLM, abstention at 200%: min fails it, mean passes it; neither sentence may say
    'every capability' passed, and the mean's says where its lowest capability is."""
    llm = scored(tmp_path, "llm", "llm", 32, 10)
    ft = scored(tmp_path, "ft", "finetuned", 16, 20)
    d, judged = decide(tmp_path, phase, llm, ft, gates=gates)
    assert d["verdict"] == verdict, d["reason"]
    reason = d["reason"]
    assert judged["ft"]["min_ratio"] == pytest.approx(0.5)
    if gates is MEAN_GATES:
        assert "every capability" not in reason and "mean of its capability ratios" in reason
        assert "lowest capability is at 50.0%" in reason
        assert f"{judged['ft']['mean_ratio']:.1%}" in reason
    else:
        assert "on every capability" in reason and "below the bar on single-turn calls" in reason


@pytest.mark.parametrize("gates", [GATES, MEAN_GATES])
def test_passing_sentences_under_each_aggregate(tmp_path, gates):
    llm = scored(tmp_path, "llm", "llm", 32, 20)
    ft = scored(tmp_path, "ft", "finetuned", 32, 20)
    for phase, verdict in ((1, "PROCEED TO PHASE 2"), (2, "DEPLOY TO PRODUCTION")):
        d, judged = decide(tmp_path, phase, llm, ft, gates=gates)
        assert d["verdict"] == verdict
        if gates is GATES:
            assert "on every capability (paired lower bounds; lowest ratio 100.0%)" in d["reason"]
        else:
            assert "mean of its capability ratios (100.0%" in d["reason"] and "every capability" not in d["reason"]
