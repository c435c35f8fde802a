"""Self-distillation: a training row takes the base model's own answer only where that answer is the gold call
(the lenient reading), case by case; end to end, the split, its stats and a resumed run."""

import json

import pytest

from fctune.distill import DistillConfig, distill, distilled_target
from fctune.schema import Example, Expected, Message, ToolCall, ToolSpec, read_examples

TOOL = ToolSpec("math.hcf", "Highest common factor.", {"type": "object", "properties": {
    "a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]})
ROW = Example("r1", [Message("user", "HCF of 36 and 48?")], [TOOL],
              Expected("tool_calls", [ToolCall("math.hcf", {"a": 36, "b": 48})]))


@pytest.mark.parametrize("output,takes", [
    ('<tool_call>{"name": "math.hcf", "arguments": {"b": 48, "a": 36}}</tool_call>', True),
    ('```json\n{"name": "math.hcf", "arguments": {"a": 36, "b": 48}}\n```', True),   # any shape: lenient
    ('<tool_call>{"name": "math.hcf", "arguments": {"a": 36, "b": 12}}</tool_call>', False),  # another value
    ('<tool_call>{"name": "math.hcf", "arguments": {"a": "36", "b": "48"}}</tool_call>', False),  # strings for ints
    ("I cannot help with that.", False),
])
def test_a_row_takes_the_base_answer_only_where_it_is_the_gold_call(output, takes):
    calls = distilled_target(ROW, output)
    assert (calls is not None) is takes
    if takes:
        assert [c.to_dict() for c in calls] == [{"name": "math.hcf", "arguments": {"a": 36, "b": 48}}]


def test_rows_that_expect_no_call_keep_their_target():
    row = Example("r2", [Message("user", "Hi")], [TOOL], Expected("no_call", text="Hello!"))
    assert distilled_target(row, "Hello!") is None


@pytest.mark.slow
def test_distill_writes_the_split_its_stats_and_resumes(tmp_path, tiny_model_dir, phase1_data):
    cfg = DistillConfig(model=tiny_model_dir, train_file=str(phase1_data / "hermes_train.jsonl"),
                        output_dir=str(tmp_path / "d"), limit=6, batch_size=6, device="cpu", dtype="fp32")
    s = distill(cfg)
    out = tmp_path / "d"
    rows = read_examples(out / "hermes_train.jsonl")
    src = read_examples(phase1_data / "hermes_train.jsonl")[:6]
    assert [r.id for r in rows] == [r.id for r in src]
    assert s["rows"] == 6 and s["rows_answered"] == sum(r.expected.kind == "tool_calls" for r in src)
    # a random-weight model makes no gold call: every target is the gold one, and the stats say so
    assert s["base_answer_rows"] == 0 and [r.expected.to_dict() for r in rows] == [r.expected.to_dict() for r in src]
    stats = json.loads((out / "dataset_stats.json").read_text())
    assert stats["self_distillation"]["by_kind"] and (out / "hermes_val.jsonl").exists()
    answered = (out / "distill_predictions.jsonl").read_text().count("\n")
    assert answered == s["rows_answered"]
    again = distill(cfg)  # resumed: the answers are read back, not generated again
    assert again["resumed_answers"] == s["rows_answered"] == s["generated_answers"] and again["generated_answers"] == 0
