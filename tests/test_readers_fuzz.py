"""Every file a user or a run can hand the project, with random JSON values put in its fields (hypothesis): each
reader gives a valid result or one user error naming the file — never another exception, which a command line would
print as a traceback. Per file kind, a valid file is the seed and one field, at any depth, takes a random value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fctune.errors import UserError

REPO = Path(__file__).resolve().parents[1]
RUNS = 2000  # generated files per file kind

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def _paths(node, path=()):
    """Every place in a JSON value a field could be replaced: (path, kind)."""
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


def _replaced(doc, path, value):
    if not path:
        return value
    doc = json.loads(json.dumps(doc))
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


def mutations(seed):
    paths = list(_paths(seed))
    return st.tuples(st.sampled_from(paths), JSON_VALUES).map(lambda pv: _replaced(seed, *pv))


FUZZ = settings(max_examples=RUNS, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

SPLIT_ROW = json.loads((REPO / "tests/bad_inputs/split_valid.jsonl").read_text().splitlines()[0])
PREDICTION = {"id": SPLIT_ROW["id"], "output": "<tool_call>{\"name\": \"get_weather\", \"arguments\": {}}</tool_call>",
              "tool_calls": [{"id": "c", "type": "function", "function": {"name": "get_weather",
                                                                           "arguments": "{\"city\": \"Paris\"}"}}],
              "finish_reason": "stop", "latency_s": 0.5, "completion_tokens": 7, "renamed_tools": {"a_b": "a.b"}}
GATES = yaml.safe_load((REPO / "comparison_framework/gates.yaml").read_text())
SUMMARY_FILE = sorted((REPO / "results/phase1/paper_approach/eval_results").glob("*_single_turn.json"))[0]


@pytest.mark.parametrize("kind", ["split", "predictions", "gates", "summary", "eval_config"])
def test_a_reader_given_random_values_gives_a_result_or_one_user_error(tmp_path, kind):
    from fctune.compare import discover, load_gates
    from fctune.config import config_from_sources
    from fctune.evaluate import EvalConfig
    from fctune.schema import Example, read_examples
    from fctune.score import index_predictions, score_predictions

    f = tmp_path / "f"
    seeds = {"split": SPLIT_ROW, "predictions": PREDICTION, "gates": GATES,
             "summary": json.loads(SUMMARY_FILE.read_text()),
             "eval_config": {"model": "smollm2", "limit": 3, "suites": ["single_turn"], "max_error_rate": 0.1,
                             "request_timeout_s": 30.0, "label": "x", "resume": True}}
    example = Example.from_dict(SPLIT_ROW, where="seed")

    def read(doc):
        if kind == "split":
            f.write_text(json.dumps(doc) + "\n")
            return read_examples(f)
        if kind == "predictions":
            by_id, _ = index_predictions([doc], [example.id], str(f))
            return score_predictions([example], list(by_id.values()))
        if kind == "gates":
            f.write_text(yaml.safe_dump(doc))
            return load_gates(f)
        if kind == "summary":
            d = tmp_path / "res"
            d.mkdir(exist_ok=True)
            (d / SUMMARY_FILE.name).write_text(json.dumps(doc))
            return discover([str(d)], ["single_turn"])
        f.write_text(yaml.safe_dump(doc))
        return config_from_sources(EvalConfig, yaml_path=f)

    read(seeds[kind])  # the seed itself is valid

    @FUZZ
    @given(mutations(seeds[kind]))
    def one(doc):
        try:
            read(doc)
        except UserError:
            pass

    one()
