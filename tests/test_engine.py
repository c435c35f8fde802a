"""The offline data engine: generated schemas, row kinds, verification, masking and BFCL decontamination."""

import json
import random
from collections import Counter

import jsonschema
import pytest

from fctune.data import PrepareConfig, load_offline, parse_mix, prepare
from fctune.decontam import ContaminationError, bfcl_reference, check_contamination, decontaminate
from fctune.errors import UserError
from fctune.masking import mask_example, mask_share
from fctune.offline.engine import ENGINE_MIX, KINDS, EngineReport, generate_engine_examples, verify_example
from fctune.offline.schemagen import build_catalog, words
from fctune.schema import Example, Expected, Message, ToolCall, ToolSpec, write_examples


def _specs(catalog):
    return [f.spec().to_openai() for f in catalog]


def test_schema_generator_is_deterministic_by_seed_and_wide():
    a, b = build_catalog(3000, seed=5), build_catalog(3000, seed=5)
    assert _specs(a) == _specs(b)
    assert _specs(build_catalog(300, seed=6)) != _specs(a[:300])
    names = [f.name for f in a]
    assert len(set(names)) == 3000
    assert len({f.domain for f in a}) >= 40
    assert {f.action for f in a} == {"get", "search", "create", "update", "cancel", "calculate"}
    kinds = Counter()
    for f in a:
        jsonschema.Draft202012Validator.check_schema(f.spec().parameters)  # each is a valid JSON Schema
        for p in f.spec().parameters["properties"].values():
            kinds[p.get("type")] += 1
            kinds["enum"] += "enum" in p
            kinds["format"] += "format" in p
            kinds["default"] += "default" in p
            kinds["range"] += "minimum" in p
    for k in ("string", "integer", "number", "boolean", "array", "object", "enum", "format", "default", "range"):
        assert kinds[k] > 20, (k, kinds)
    # optional parameters exist, and required ones always come first in the schema's list
    assert any(len(f.required) < len(f.params) for f in a)


def test_the_catalog_never_uses_an_excluded_name():
    ref = bfcl_reference()
    assert ref is not None, "bfcl-eval is a test dependency (scripts/bootstrap.sh installs it)"
    cat = build_catalog(3000, seed=0, exclude=ref.names)
    assert not {f.name.lower() for f in cat} & ref.names_lower
    plain = build_catalog(3000, seed=0)
    assert {f.name.lower() for f in plain} & ref.names_lower, "the check above would prove nothing"


def test_every_generated_row_validates_against_its_own_schema():
    report = EngineReport()
    rows = generate_engine_examples(1500, seed=11, report=report)
    assert len(rows) >= 1450 and sum(report.dropped.values()) == 1500 - len(rows)
    checked = 0
    for e in rows:
        assert verify_example(e) is None, e.id
        tools = {t.name: t for t in e.tools}
        calls = list(e.expected.tool_calls) if e.expected.kind == "tool_calls" else []
        calls += [c for m in e.messages for c in (m.tool_calls or [])]
        for c in calls:  # independently of verify_example: the schema the model sees accepts the call
            jsonschema.validate(c.arguments, tools[c.name].parameters, format_checker=jsonschema.FormatChecker())
            checked += 1
    assert checked > 1000


def test_verification_drops_invented_values_and_bad_types():
    def free_text(e):  # a string argument without an enum or a format: any string is schema-valid there
        props = e.tools[0].parameters["properties"]
        return [(k, v) for k, v in e.expected.tool_calls[0].arguments.items()
                if isinstance(v, str) and "enum" not in props[k] and "format" not in props[k]]

    e = next(e for e in generate_engine_examples(300, seed=2) if e.metadata["row_kind"] == "single" and free_text(e))
    call = e.expected.tool_calls[0]
    name, value = free_text(e)[0]
    e.expected.tool_calls = [ToolCall(call.name, {**call.arguments, name: value + " Springfield"})]
    assert verify_example(e) == "value_not_in_text"
    e.expected.tool_calls = [ToolCall(call.name, {**call.arguments, name: 12345})]
    assert verify_example(e) == "schema_invalid"
    e.expected.tool_calls = [ToolCall("not_offered", call.arguments)]
    assert verify_example(e) == "call_to_unoffered_tool"


def test_a_rewrite_may_leave_a_schema_default_unsaid_and_nothing_else():
    """The query writer's check (schema_defaults=True): an argument equal to its parameter's default may go unsaid;
    any other unsaid value, or a default-valued one in the engine's own check, still drops the row."""
    tool = ToolSpec("get_weather", "", {"type": "object", "required": ["city"], "properties": {
        "city": {"type": "string"}, "units": {"type": "string", "enum": ["celsius", "fahrenheit"],
                                                "default": "celsius"}}})

    def row(text, args):
        return Example(id="r", messages=[Message("user", text)], tools=[tool],
                       expected=Expected("tool_calls", [ToolCall("get_weather", args)]), metadata={})

    implied = row("What's the weather like in Paris?", {"city": "Paris", "units": "celsius"})
    assert verify_example(implied, schema_defaults=True) is None
    assert verify_example(implied) == "value_not_in_text"
    other = row("What's the weather like in Paris?", {"city": "Paris", "units": "fahrenheit"})
    assert verify_example(other, schema_defaults=True) == "value_not_in_text"
    invented = row("What's the weather like?", {"city": "Paris", "units": "celsius"})
    assert verify_example(invented, schema_defaults=True) == "value_not_in_text"


def test_row_kinds_in_the_stated_proportions():
    n = 4000
    rows = generate_engine_examples(n, seed=3)
    share = Counter(e.metadata["row_kind"] for e in rows)
    total = sum(ENGINE_MIX.values())
    for kind, w in ENGINE_MIX.items():
        assert abs(share[kind] / n - w / total) < 0.025, (kind, share[kind] / n, w)
    assert set(share) == {k for k, w in ENGINE_MIX.items() if w > 0}  # implied is off by default
    assert set(ENGINE_MIX) == set(KINDS) | {"catalog"}  # every kind has a stated share, zero or not
    # every kind is what it says
    by = {k: [e for e in rows if e.metadata["row_kind"] == k] for k in share}
    assert all(len(e.tools) == 1 for e in by["single"])
    assert all(len(e.tools) >= 2 for e in by["choose"])
    assert all(len(e.expected.tool_calls) >= 2 and len({c.name for c in e.expected.tool_calls}) == 1
               for e in by["parallel_same"])
    assert all(len({c.name for c in e.expected.tool_calls}) >= 2 for e in by["parallel_multi"])
    assert all(e.expected.kind == "no_call" and e.expected.text for e in by["no_call"] + by["clarify"])
    asked = [e.metadata["asked_for"] not in e.tool_names for e in by["no_call"]]
    assert all(asked), "a no-call row must not offer the function its request needs"
    assert {e.metadata["multi_turn_variant"] for e in by["multi_turn"]} == {"chain", "follow_up", "clarify_answered"}
    assert all(any(m.role == "tool" for m in e.messages) for e in by["multi_turn"]
               if e.metadata["multi_turn_variant"] != "clarify_answered")


def test_the_mix_can_be_changed_and_is_recorded(tmp_path):
    mix = parse_mix(["no_call=0.5", "catalog=0"])
    assert mix["no_call"] == 0.5 and mix["catalog"] == 0 and mix["single"] == ENGINE_MIX["single"]
    rows = generate_engine_examples(2000, seed=4, mix=mix)
    share = Counter(e.metadata["row_kind"] for e in rows)
    assert abs(share["no_call"] / 2000 - 0.5 / sum(mix.values())) < 0.03 and share["catalog"] == 0
    for bad in (["no_call"], ["nothing=0.2"], ["no_call=lots"], ["no_call=-1"]):
        with pytest.raises(UserError, match="--mix"):
            parse_mix(bad)
    stats = prepare(PrepareConfig(source="offline", train_size=60, val_size=10, test_size=10, seed=1,
                                  output_dir=str(tmp_path), tokenizer="none", mix=["no_call=0.5"]))
    assert stats["source"]["engine"]["mix"]["no_call"] == 0.5
    assert stats["splits"]["train"]["row_kind"]["no_call"] > 15


def test_prepare_reports_decontamination_and_fails_on_a_planted_bfcl_name(tmp_path):
    stats = prepare(PrepareConfig(source="offline", train_size=80, val_size=10, test_size=10, seed=2,
                                  output_dir=str(tmp_path / "clean"), tokenizer="none"))
    d = stats["decontamination"]
    assert d["checked"] and d["mode"] == "fail" and d["rows_with_bfcl_function_name"] == 0
    assert d["reference"]["function_names"] > 1000 and d["reference"]["questions"] > 3000
    assert "rows_with_question_ngram_overlap" in d
    assert stats["source"]["engine"]["catalog_functions"] == 3000

    rows = load_offline(60, seed=3).examples
    planted = rows[5]
    old = planted.tools[0].name
    planted.tools[0].name = "calculate_triangle_area"  # a BFCL simple_python function
    for c in planted.expected.tool_calls or []:
        if c.name == old:
            c.name = "calculate_triangle_area"
    data = tmp_path / "mine.jsonl"
    write_examples(data, rows)
    with pytest.raises(ContaminationError, match=r"calculate_triangle_area.*--decontaminate drop"):
        prepare(PrepareConfig(source=str(data), train_size=30, val_size=5, test_size=5, seed=2,
                              output_dir=str(tmp_path / "out"), tokenizer="none"))
    kept, report = decontaminate(rows, "drop", where=str(data))
    assert planted.id not in {e.id for e in kept} and report["rows_dropped"] >= 1
    kept, report = decontaminate(rows, "report", where=str(data))
    assert len(kept) == len(rows) and "calculate_triangle_area" in report["function_name_overlap"]


def test_a_bfcl_question_in_the_data_is_found_by_its_8_grams():
    from fctune.formats.bfcl import load_category

    rows = load_offline(40, seed=5).examples
    question = load_category("simple_python", limit=1)[0].messages[0].content
    rows[3].messages[0].content = "Hi! " + question
    report = check_contamination(rows)
    assert report["rows_with_question_ngram_overlap"] == 1 and report["first_ngram_rows"] == [rows[3].id]
    kept, _ = decontaminate(rows, "fail", where="test")  # no BFCL name: not an error, but the row goes
    assert rows[3].id not in {e.id for e in kept} and len(kept) == len(rows) - 1


def test_masking_renames_consistently_and_keeps_rows_sound():
    rows = [e for e in generate_engine_examples(300, seed=8) if e.metadata["row_kind"] == "multi_turn"
            and e.metadata["multi_turn_variant"] == "chain"]
    e = rows[0]
    m = mask_example(e, random.Random(0))
    tools = {t.name: t for t in m.tools}
    for c in list(m.expected.tool_calls) + [c for x in m.messages for c in x.tool_calls or []]:
        jsonschema.validate(c.arguments, tools[c.name].parameters)  # masked calls fit the masked schemas
    old_names = set(e.tool_names)
    assert not old_names & set(m.tool_names) and all(n.startswith("fn_") for n in m.tool_names)
    called = {c.name for c in m.expected.tool_calls} | {c.name for x in m.messages for c in x.tool_calls or []}
    assert called <= set(m.tool_names)
    assert next(x.name for x in m.messages if x.role == "tool") in m.tool_names
    for t in m.tools:
        assert all(p.startswith("p_") for p in t.parameters["properties"])
        assert set(t.parameters["required"]) <= set(t.parameters["properties"])
    # the values and the words are untouched; the descriptions too
    assert [x.content for x in m.messages] == [x.content for x in e.messages]
    assert sorted(json.dumps(v) for c in m.expected.tool_calls for v in c.arguments.values()) == \
        sorted(json.dumps(v) for c in e.expected.tool_calls for v in c.arguments.values())
    assert [t.description for t in m.tools] == [t.description for t in e.tools]
    out, n = mask_share(rows * 10, 0.3, seed=1)
    assert 0.15 < n / len(out) < 0.45 and mask_share(rows * 10, 0.3, seed=1)[1] == n


def test_prepare_masks_train_rows_only(tmp_path):
    stats = prepare(PrepareConfig(source="offline", train_size=100, val_size=20, test_size=20, seed=3,
                                  output_dir=str(tmp_path), tokenizer="none", mask_names=0.5))
    from fctune.schema import read_examples

    masked = {s: sum(bool(e.metadata.get("names_masked")) for e in read_examples(tmp_path / f"hermes_{s}.jsonl"))
              for s in ("train", "val", "test")}
    assert masked["val"] == masked["test"] == 0 and 25 < masked["train"] < 75
    assert stats["masking"] == {"share": 0.5, "train_rows_masked": masked["train"]}


def test_engine_rows_read_back_in_xlam_shape():
    res = load_offline(300, seed=9, shape="xlam")
    assert not res.skipped and len(res.examples) > 250
    kinds = Counter(e.metadata["row_kind"] for e in res.examples)
    assert "multi_turn" not in kinds and "catalog" not in kinds and kinds["parallel_same"] > 20
    with pytest.raises(UserError, match="single-turn"):
        load_offline(50, seed=9, shape="xlam", mix=dict(ENGINE_MIX))


def test_qwen_is_a_named_offline_model_checked_by_sha256():
    import hashlib

    from fctune.models import SPLIT_MODELS, resolve_model

    short, full = resolve_model("qwen2.5-coder-0.5b"), resolve_model("qwen2.5-coder-0.5b-instruct")
    assert short.kind == full.kind == "gguf" and short.location == full.location
    h = hashlib.sha256()
    with open(full.location, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    assert h.hexdigest().startswith(SPLIT_MODELS["qwen2.5-coder-0.5b-instruct"][3])


@pytest.mark.slow
@pytest.mark.server
def test_requests_reworded_by_a_real_llm_are_kept_only_when_verified(tmp_path):
    """The query writer against a real llama.cpp server (Qwen2.5-Coder-0.5B-Instruct on 127.0.0.1)."""
    from fctune.schema import read_examples

    stats = prepare(PrepareConfig(source="offline", train_size=20, val_size=5, test_size=5, seed=4,
                                  output_dir=str(tmp_path), tokenizer="none", query_writer="llamacpp",
                                  query_writer_share=0.02))
    q = stats["query_writer"]
    assert q["backend"] == "llamacpp" and q["model"] == "qwen2.5-coder-0.5b-instruct" and q["asked"] >= 3
    rejected = sum(v for k, v in q.items() if k.startswith("rejected_"))
    assert q.get("rewritten", 0) + rejected + q.get("errors", 0) == q["asked"]
    assert q.get("errors", 0) < q["asked"], "the server answered nothing"
    rows = [e for s in ("train", "val", "test") for e in read_examples(tmp_path / f"hermes_{s}.jsonl")]
    for e in rows:
        if e.metadata.get("query_writer"):
            assert e.messages[0].content != e.metadata["template_text"] and verify_example(e) is None


@pytest.mark.slow
def test_a_local_query_writer_rewords_in_process_and_is_recorded(tmp_path):
    """--query-writer local: the packaged SmolLM2 answers the rewrite requests in this process, batched; every kept
    rewrite still carries every value, and the counts and the writer's identity are in dataset_stats.json."""
    from fctune.schema import read_examples

    stats = prepare(PrepareConfig(source="offline", train_size=20, val_size=5, test_size=5, seed=4,
                                  output_dir=str(tmp_path), tokenizer="none", query_writer="local",
                                  query_writer_model="smollm2", query_writer_share=0.1, query_writer_batch_size=8))
    q = stats["query_writer"]
    assert q["backend"] == "local" and q["model"] == "smollm2" and q["asked"] >= 2
    assert q["writer"]["device"] == "cpu" and q["writer"]["model"]
    rejected = sum(v for k, v in q.items() if k.startswith("rejected_"))
    assert q.get("rewritten", 0) + rejected + q.get("errors", 0) == q["asked"]
    assert q.get("errors", 0) == 0
    rows = [e for s in ("train", "val", "test") for e in read_examples(tmp_path / f"hermes_{s}.jsonl")]
    for e in rows:
        if e.metadata.get("query_writer"):
            assert e.messages[0].content != e.metadata["template_text"] and verify_example(e) is None


def test_implied_rows_give_an_enum_value_without_its_parameter_name():
    """--mix implied=SHARE: the value is a word before the entity ("business flights"), the parameter is not named,
    the call carries the value, and the row passes the same checks as every other kind."""
    report = EngineReport()
    rows = generate_engine_examples(80, seed=3, mix={"implied": 1.0}, catalog_size=400, report=report)
    assert len(rows) >= 40 and set(report.written) == {"implied"}
    for e in rows:
        name = e.metadata["implied"]
        value = e.expected.tool_calls[0].arguments[name]
        text = e.messages[0].content
        assert verify_example(e) is None
        assert str(value).lower() in text.lower(), (text, value)
        assert words(name).lower() not in text.lower(), (text, name)


def test_the_default_mix_is_unchanged_by_the_implied_kind():
    """implied has share 0 by default: the default rows are the rows of the mix without it."""
    without = {k: v for k, v in ENGINE_MIX.items() if k != "implied"}
    a = generate_engine_examples(60, seed=5, catalog_size=300)
    b = generate_engine_examples(60, seed=5, mix=without, catalog_size=300)
    assert [e.to_dict() for e in a] == [e.to_dict() for e in b]


def test_splits_keep_the_engine_mix(tmp_path):
    stats = prepare(PrepareConfig(source="offline", train_size=300, val_size=60, test_size=60, seed=6,
                                  output_dir=str(tmp_path), tokenizer="none"))
    pool = stats["source"]["engine"]["row_kinds"]
    n = sum(pool.values())
    for split in ("train", "val", "test"):
        kinds = stats["splits"][split]["row_kind"]
        size = stats["splits"][split]["count"]
        for kind, count in pool.items():
            # stratified by row kind: each split's share is the pool's, up to rounding across strata
            assert abs(kinds.get(kind, 0) / size - count / n) < 0.05, (split, kind, kinds.get(kind), size)
