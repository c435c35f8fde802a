"""Every bad input is one clear line: each entry point, given a file from tests/bad_inputs/ (or a bad flag), exits 2
with one ``error:`` line that names the file, the row and the field, and no traceback.

One row per defect found by probing the entry points; each row failed (a traceback, a silent exit 0, or a message
without the file or row) before the fix it checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BAD = "tests/bad_inputs"
PREPARE = ["paper_approach/prepare_hermes_dataset.py", "--tokenizer", "none", "--output-dir", "{tmp}/prep"]
SCORE = ["-m", "fctune.score", "--out", "{tmp}/score"]
BFCL = ["-m", "fctune.bfcl", "score", "--category", "simple_python", "--out", "{tmp}/bfcl"]
TRAIN = ["docker/unsloth-paper/scripts/train_function_call.py", "--output-dir", "{tmp}/adapters"]
EVAL = ["docker/unsloth-paper/scripts/eval_function_call.py", "--results-dir", "{tmp}/res"]
COMPARE = ["comparison_framework/compare_approaches.py", "--output-dir", "{tmp}/rep"]

# (case, argv after the interpreter, what the one error line must contain)
CASES = [
    ("metadata_not_a_dict", PREPARE + ["--source", f"{BAD}/prepare_metadata_not_dict.jsonl"],
     ["prepare_metadata_not_dict.jsonl:1", "'metadata' is a str"]),
    ("tool_call_name_null", PREPARE + ["--source", f"{BAD}/prepare_tool_call_name_null.jsonl"],
     ["prepare_tool_call_name_null.jsonl:1", "<tool_call> without a name"]),
    ("tools_block_5000_deep", PREPARE + ["--source", f"{BAD}/prepare_tools_5000_deep.jsonl"],
     ["prepare_tools_5000_deep.jsonl:1", "<tools>"]),
    ("prepare_not_utf8", PREPARE + ["--source", f"{BAD}/prepare_not_utf8.jsonl"],
     ["prepare_not_utf8.jsonl:2", "not UTF-8"]),
    ("corrupt_parquet", PREPARE + ["--source", f"{BAD}/prepare_corrupt.parquet"],
     ["prepare_corrupt.parquet", "not a readable parquet file"]),
    ("tool_calls_is_a_number", PREPARE + ["--source", f"{BAD}/prepare_tool_calls_is_5.jsonl"],
     ["prepare_tool_calls_is_5.jsonl:1", "tool_calls: expected a list"]),
    ("json_schema_unknown_type", PREPARE + ["--source", f"{BAD}/split_json_schema_unknown_type.jsonl"],
     ["split_json_schema_unknown_type.jsonl:1", "json_schema/properties/a/type"]),
    ("three_usable_rows", PREPARE + ["--source", f"{BAD}/prepare_three_rows.jsonl"],
     ["prepare_three_rows.jsonl", "only 3 usable rows", "empty"]),
    ("bfcl_function_name", PREPARE + ["--source", f"{BAD}/prepare_bfcl_name.jsonl"],
     ["prepare_bfcl_name.jsonl", "'calculate_triangle_area' in row", "--decontaminate drop"]),
    ("mistyped_local_source", PREPARE + ["--source", "data/my_rowz.jsonl", "--fallback", "offline"],
     ["data/my_rowz.jsonl", "no such file"]),
    ("prepare_negative_size", PREPARE + ["--train-size", "-3"], ["--train-size", "below the minimum 1"]),
    ("score_row_is_a_list", SCORE + ["--expected", f"{BAD}/split_valid.jsonl", "--predictions",
                                     f"{BAD}/predictions_row_is_list.jsonl"],
     ["predictions_row_is_list.jsonl:1", "expected a JSON object"]),
    ("score_row_without_id", SCORE + ["--expected", f"{BAD}/split_valid.jsonl", "--predictions",
                                      f"{BAD}/predictions_no_id.jsonl"], ["predictions_no_id.jsonl:1", "'id'"]),
    ("score_split_not_utf8", SCORE + ["--expected", f"{BAD}/split_not_utf8.jsonl", "--predictions",
                                      f"{BAD}/predictions_no_id.jsonl"], ["split_not_utf8.jsonl:1", "not UTF-8"]),
    ("score_no_matching_ids", SCORE + ["--expected", f"{BAD}/split_valid.jsonl", "--predictions",
                                       f"{BAD}/predictions_unknown_ids.jsonl"],
     ["predictions_unknown_ids.jsonl", "none of its ids is in the split"]),
    ("score_out_is_a_file", ["-m", "fctune.score", "--out", f"{BAD}/split_valid.jsonl", "--expected",
                             f"{BAD}/split_valid.jsonl", "--predictions", f"{BAD}/predictions_unknown_ids.jsonl"],
     ["--out", "is a file"]),
    ("bfcl_unknown_ids", BFCL + ["--predictions", f"{BAD}/predictions_unknown_ids.jsonl"],
     ["predictions_unknown_ids.jsonl", "none of its ids"]),
    ("bfcl_row_is_a_list", BFCL + ["--predictions", f"{BAD}/predictions_row_is_list.jsonl"],
     ["predictions_row_is_list.jsonl:1", "expected a JSON object"]),
    ("bfcl_row_without_id", BFCL + ["--predictions", f"{BAD}/predictions_no_id.jsonl"],
     ["predictions_no_id.jsonl:1", "'id'"]),
    ("bfcl_duplicate_ids", BFCL + ["--predictions", f"{BAD}/bfcl_predictions_duplicate.jsonl"],
     ["bfcl_predictions_duplicate.jsonl", "1 duplicate ids"]),
    ("summary_model_is_a_string", COMPARE + ["--results-dirs", f"{BAD}/results_model_is_string"],
     ["llm-x_single_turn.json", "field 'model' must be an object"]),
    ("gates_malformed", COMPARE + ["--gates", f"{BAD}/gates_malformed.yaml"],
     ["gates_malformed.yaml", "not valid YAML"]),
    ("gates_without_capabilities", COMPARE + ["--gates", f"{BAD}/gates_without_capabilities.yaml"],
     ["gates_without_capabilities.yaml", "field capabilities is missing"]),
    ("lora_r_negative", TRAIN + ["--lora-r", "-1"], ["--lora-r", "-1 is below the minimum 1"]),
    ("lora_r_fraction_in_yaml", TRAIN + ["--config", f"{BAD}/train_lora_r_fraction.yaml"],
     ["train_lora_r_fraction.yaml", "'lora_r'", "1.7 is not a whole number"]),
    ("zero_epochs", TRAIN + ["--num-train-epochs", "0"], ["--num-train-epochs", "must be greater than 0"]),
    ("negative_limit", EVAL + ["--limit", "-47"], ["--limit", "-47 is below the minimum 1"]),
    ("batch_size_zero", EVAL + ["--batch-size", "0"], ["--batch-size", "0 is below the minimum 1"]),
    ("max_concurrency_zero", EVAL + ["--max-concurrency", "0"], ["--max-concurrency", "below the minimum 1"]),
    ("error_rate_over_one", EVAL + ["--max-error-rate", "1.5"], ["--max-error-rate", "above the maximum 1"]),
    ("openai_without_model", EVAL + ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"],
     ["--backend openai needs --model", "OPENAI_MODEL"]),
    ("only_step_past_the_last", ["-m", "fctune.pipeline", "--only-step", "9", "--dry-run"],
     ["--only-step", "9 is above the maximum 7"]),
    ("from_step_past_the_last", ["-m", "fctune.pipeline", "--from-step", "42", "--dry-run"],
     ["--from-step", "42 is above the maximum 7"]),
    ("pipeline_openai_key_without_model", ["-m", "fctune.pipeline", "--dry-run", "--llm", "openai"],
     ["--llm openai", "OPENAI_MODEL"]),
]


def _run(case, tmp: Path):
    name, argv, _ = case
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_"))}
    env.update(FCTUNE_ENV_FILE=str(tmp / "no.env"), PYTHONWARNINGS="ignore")
    cmd = [sys.executable, *[a.replace("{tmp}", str(tmp / name)) for a in argv]]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240, env=env)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_inputs")
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip([c[0] for c in CASES], pool.map(lambda c: _run(c, tmp), CASES), strict=True))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(case, outcomes):
    name, _, wants = case
    r = outcomes[name]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.returncode == 2, f"exit {r.returncode}\n{r.stdout[-1000:]}\n{r.stderr[-1000:]}"
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr[-2000:]
    for w in wants:
        assert w in errors[0], f"{w!r} not in {errors[0]!r}"


def test_every_corpus_file_is_used():
    used = {a.split("/", 2)[2] for _, argv, _ in CASES for a in argv if a.startswith(BAD + "/")}
    on_disk = {p.name for p in (REPO / BAD).iterdir() if p.name != "README.md"}
    assert on_disk <= used | {"split_valid.jsonl"}, on_disk - used
