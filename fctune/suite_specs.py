"""The test suites, declared once: each suite's split file, the quotas it is drawn with, the script that builds it,
the metrics the comparison reads and the one the report's readings table shows. The evaluation, the comparison and
the report read this registry; :mod:`fctune.suites` builds the splits it describes (it needs the data sources, which
the readers of the registry do not)."""

from __future__ import annotations

from dataclasses import dataclass

from fctune.domains import DOMAINS


@dataclass(frozen=True)
class SuiteSpec:
    """A test suite, declared once: the pipeline's step 3, the evaluation, the comparison's capability tables, the
    report's readings and CSV files all read it from :data:`SUITES`."""

    name: str
    file: str
    key: str                      # metadata field the quotas are over
    quotas: dict
    script: str                   # the documented script that builds it, under comparison_framework/
    metrics: tuple[str, ...]      # the comparison's metrics for this capability, the first ones shown first
    headline: str                 # the one metric the report's strict-vs-lenient readings table shows
    kind: str = "tool_calls"      # expected kind the suite scores
    turn_type: str | None = None


_CALL_METRICS = ("args_exact_match_rate", "args_field_f1", "args_field_precision", "args_field_recall",
                 "name_match_rate", "valid_json_rate")
SUITES = {
    "single_turn": SuiteSpec("single_turn", "single_turn_test.jsonl", "complexity",
                             {"simple": 20, "moderate": 20, "complex": 10}, "test_single_turn.py",
                             (*_CALL_METRICS, "args_exact_match_rate_lenient"), "args_exact_match_rate",
                             turn_type="single"),
    "multi_turn": SuiteSpec("multi_turn", "multi_turn_test.jsonl", "multi_turn_kind",
                            {"clarification": 10, "sequential": 10, "context_dependent": 10}, "test_multi_turn.py",
                            _CALL_METRICS, "args_field_f1", turn_type="multi"),
    "domain_diverse": SuiteSpec("domain_diverse", "domain_diverse_test.jsonl", "domain", {d: 5 for d in DOMAINS},
                                "test_domain_diversity.py",
                                ("args_field_f1", "args_exact_match_rate", "valid_json_rate", "domain_f1_std"),
                                "args_field_f1"),
    "structured_json": SuiteSpec("structured_json", "structured_json_test.jsonl", "domain",
                                 {d: 3 for d in DOMAINS}, "test_structured_json.py",
                                 ("valid_json_rate", "schema_valid_rate", "json_exact_match_rate", "field_f1"),
                                 "valid_json_rate", kind="json"),
    "no_call": SuiteSpec("no_call", "no_call_test.jsonl", "no_call_kind", {"no_tool_fits": 20, "in_data": 10},
                         "test_no_call.py", ("abstention_accuracy", "exact_match_rate"), "abstention_accuracy",
                         kind="no_call"),
}


def capability_tables() -> dict[str, list[str]]:
    """The comparison's tables: one per suite with the metrics the suite declares, plus JSON quality pooled over the
    suites' rows. Read from the registry when called, so a suite registered at run time gets its table and CSV."""
    return {**{name: list(s.metrics) for name, s in SUITES.items()}, "json_quality": ["valid_json_rate"]}
