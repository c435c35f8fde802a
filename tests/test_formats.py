"""Converters, tested on rows written in the exact upstream shapes."""

import json

import pytest

from fctune.formats import HermesConverter, OpenAIChatConverter, RowError, XlamConverter
from fctune.formats.xlam import spec_to_xlam_tool, xlam_type_to_schema
from fctune.schema import Example

HERMES_SYSTEM = (
    "You are a function calling AI model. You are provided with function signatures within <tools> </tools> XML "
    "tags. You may call one or more functions to assist with the user query. Don't make assumptions about what "
    "values to plug into functions.\n<tools>\n"
    "[{'type': 'function', 'function': {'name': 'get_camera_live_feed', 'description': 'Retrieves the live feed "
    "from a specified security camera.', 'parameters': {'type': 'object', 'properties': {'camera_id': {'type': "
    "'string', 'description': 'The unique identifier for the camera.'}, 'stream_quality': {'type': 'string', "
    "'description': 'The desired quality of the live stream.', 'enum': ['720p', '1080p', '4k']}}, 'required': "
    "['camera_id']}}}, {'type': 'function', 'function': {'name': 'list_all_cameras', 'description': 'Lists all "
    "cameras.', 'parameters': {'type': 'object', 'properties': {'include_offline': {'type': 'boolean', "
    "'description': 'Whether to include offline cameras.'}}, 'required': []}}}]\n</tools>\n"
    "For each function call return a json object with function name and arguments within <tool_call> </tool_call> "
    "tags with the following schema:\n<tool_call>\n{'arguments': <args-dict>, 'name': <function-name>}\n"
    "</tool_call>\n")


def hermes_singleturn_row():
    return {
        "id": "85f6c398-69c7-4df2-aed1-29d614a93a26",
        "conversations": [
            {"from": "system", "value": HERMES_SYSTEM},
            {"from": "human", "value": "Show me the front door camera in 1080p and list all cameras, offline too."},
            {"from": "gpt", "value": "<tool_call>\n{'arguments': {'camera_id': 'front_door', 'stream_quality': "
                                     "'1080p'}, 'name': 'get_camera_live_feed'}\n</tool_call>\n<tool_call>\n"
                                     "{'arguments': {'include_offline': True}, 'name': 'list_all_cameras'}\n"
                                     "</tool_call>\n"},
        ],
        "category": "IoT and Home Automation",
        "subcategory": "Security Camera Integration",
        "task": "View and Manage Security Camera Feeds",
    }


def test_hermes_singleturn_single_quoted_several_calls():
    ex = HermesConverter("func_calling_singleturn").convert(hermes_singleturn_row())
    assert ex.expected.kind == "tool_calls"
    assert [(c.name, c.arguments) for c in ex.expected.tool_calls] == [
        ("get_camera_live_feed", {"camera_id": "front_door", "stream_quality": "1080p"}),
        ("list_all_cameras", {"include_offline": True}),
    ]
    assert ex.tool_names == ["get_camera_live_feed", "list_all_cameras"]
    assert ex.tools[0].required == ["camera_id"]
    assert [m.role for m in ex.messages] == ["user"]
    md = ex.metadata
    assert md["category"] == "IoT and Home Automation" and md["subcategory"] == "Security Camera Integration"
    assert md["source"] == "hermes:func_calling_singleturn" and md["turn_type"] == "single"
    assert md["complexity"] == "complex"  # several calls


def test_hermes_multiturn_with_tool_responses_scores_last_call():
    row = {
        "id": "mt-1",
        "conversations": [
            {"from": "system", "value": HERMES_SYSTEM},
            {"from": "human", "value": "List the cameras."},
            {"from": "gpt", "value": "<tool_call>\n{\"name\": \"list_all_cameras\", \"arguments\": {}}\n</tool_call>"},
            {"from": "tool", "value": "<tool_response>\n{\"name\": \"list_all_cameras\", \"content\": "
                                      "{\"cameras\": [\"garage\", \"porch\"]}}\n</tool_response>"},
            {"from": "gpt", "value": "You have two cameras: garage and porch."},
            {"from": "human", "value": "Open the porch one in 4k."},
            {"from": "gpt", "value": "<tool_call>\n{\"name\": \"get_camera_live_feed\", \"arguments\": "
                                     "{\"camera_id\": \"porch\", \"stream_quality\": \"4k\"}}\n</tool_call>"},
            {"from": "tool", "value": "<tool_response>\n{\"name\": \"get_camera_live_feed\", \"content\": "
                                      "{\"url\": \"rtsp://x\"}}\n</tool_response>"},
            {"from": "gpt", "value": "Here is the porch feed."},
        ],
        "category": "IoT and Home Automation",
    }
    ex = HermesConverter("func_calling").convert(row)
    assert [m.role for m in ex.messages] == ["user", "assistant", "tool", "assistant", "user"]
    tool_msg = ex.messages[2]
    assert tool_msg.name == "list_all_cameras" and json.loads(tool_msg.content) == {"cameras": ["garage", "porch"]}
    assert tool_msg.tool_call_id == ex.messages[1].tool_calls[0].id
    assert ex.expected.tool_calls[0].arguments == {"camera_id": "porch", "stream_quality": "4k"}
    assert ex.metadata["turn_type"] == "multi"


def test_hermes_json_mode_row_becomes_structured_example():
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    row = {"id": "jm-1", "conversations": [
        {"from": "system", "value": "You are a helpful assistant that answers in JSON. Here's the json schema you "
                                    f"must adhere to:\n<schema>\n{json.dumps(schema)}\n</schema>\n"},
        {"from": "human", "value": "Make a record for Ada, 36."},
        {"from": "gpt", "value": "{\"name\": \"Ada\", \"age\": 36}"}],
        "category": "JSON Schema", "subcategory": "Person"}
    ex = HermesConverter("json_mode_singleturn").convert(row)
    assert ex.expected.kind == "json" and ex.expected.json == {"name": "Ada", "age": 36}
    assert ex.expected.json_schema == schema and ex.tools == []
    assert ex.metadata["subcategory"] == "Person"


def test_hermes_glaive_row_without_call_is_no_call():
    row = {"id": "g-1", "conversations": [
        {"from": "system", "value": HERMES_SYSTEM},
        {"from": "human", "value": "Tell me a joke."},
        {"from": "gpt", "value": "Why did the camera blush? It saw the flash."}]}
    ex = HermesConverter("glaive_func_calling").convert(row)
    assert ex.expected.kind == "no_call" and "camera" in ex.expected.text
    assert ex.metadata["complexity"] == "moderate"  # two tools offered


@pytest.mark.parametrize("mutate,reason", [
    (lambda r: r["conversations"].__setitem__(2, {"from": "gpt", "value": "<tool_call>\n{'name': 'x', 'arguments': {"
                                                                           "\n</tool_call>"}), "unparseable_json"),
    (lambda r: r["conversations"].__setitem__(0, {"from": "system", "value": "You are helpful."}), "no_tools"),
    (lambda r: r["conversations"].__setitem__(2, {"from": "gpt", "value": "<tool_call>\n{\"name\": \"delete_all\", "
                                                                           "\"arguments\": {}}\n</tool_call>"}),
     "unknown_tool"),
    (lambda r: r["conversations"].__setitem__(1, {"from": "human", "value": "   "}), "empty_turn"),
    (lambda r: r.__setitem__("conversations", "nope"), "bad_shape"),
    (lambda r: r["conversations"].__setitem__(0, {"from": "system", "value": "<tools>[{'name': 'a',</tools>"}),
     "unparseable_json"),
])
def test_hermes_malformed_rows_raise_counted_reasons(mutate, reason):
    row = hermes_singleturn_row()
    mutate(row)
    with pytest.raises(RowError) as err:
        HermesConverter("func_calling_singleturn").convert(row)
    assert err.value.reason == reason


XLAM_ROW = {
    "id": 4,
    "query": "Where can I find live giveaways for beta access and games?",
    "answers": "[{\"name\": \"live_giveaways_by_type\", \"arguments\": {\"type\": \"beta\"}}, "
               "{\"name\": \"live_giveaways_by_type\", \"arguments\": {\"type\": \"game\"}}]",
    "tools": "[{\"name\": \"live_giveaways_by_type\", \"description\": \"Retrieve live giveaways from the GamerPower "
             "API based on the specified type.\", \"parameters\": {\"type\": {\"description\": \"The type of giveaways"
             " to retrieve (e.g., game, loot, beta).\", \"type\": \"str\", \"default\": \"game\"}}}, "
             "{\"name\": \"sort_numbers\", \"description\": \"Sorts a list of numbers.\", \"parameters\": "
             "{\"numbers\": {\"description\": \"The numbers.\", \"type\": \"List[float]\"}, \"descending\": "
             "{\"description\": \"Sort descending.\", \"type\": \"bool, optional\"}}}]",
}


def test_xlam_row_converts_with_required_and_optional_derived():
    ex = XlamConverter().convert(XLAM_ROW)
    giveaways, sort = ex.tools
    assert giveaways.required == []  # has a default -> optional
    assert giveaways.properties["type"]["type"] == "string" and giveaways.properties["type"]["default"] == "game"
    assert sort.required == ["numbers"]
    assert sort.properties["numbers"]["type"] == "array" and sort.properties["numbers"]["items"] == {"type": "number"}
    assert sort.properties["descending"]["type"] == "boolean"
    assert [c.arguments for c in ex.expected.tool_calls] == [{"type": "beta"}, {"type": "game"}]
    assert ex.metadata["source"] == "xlam" and ex.metadata["complexity"] == "complex"


@pytest.mark.parametrize("type_str,schema,optional", [
    ("str", {"type": "string"}, False),
    ("int, optional", {"type": "integer"}, True),
    ("List[int]", {"type": "array", "items": {"type": "integer"}}, False),
    ("List[Dict[str, Any]]", {"type": "array", "items": {"type": "object"}}, False),
    ("Dict[str, int]", {"type": "object", "additionalProperties": {"type": "integer"}}, False),
    ("Optional[float]", {"type": "number"}, True),
    ("Tuple[int, int]", {"type": "array"}, False),
    ("Set[str]", {"type": "array", "items": {"type": "string"}, "uniqueItems": True}, False),
    ("Union[int, str]", {"anyOf": [{"type": "integer"}, {"type": "string"}]}, False),
    ("Any", {}, False),
])
def test_xlam_type_mapping(type_str, schema, optional):
    assert xlam_type_to_schema(type_str) == (schema, optional)


def test_xlam_round_trip_keeps_types():
    ex = XlamConverter().convert(XLAM_ROW)
    back = XlamConverter.to_row(ex)
    assert json.loads(back["tools"]) == [spec_to_xlam_tool(t) for t in ex.tools]
    assert json.loads(back["tools"])[1]["parameters"]["descending"]["type"] == "bool, optional"
    again = XlamConverter().convert(back)
    assert again.to_dict()["tools"] == ex.to_dict()["tools"]
    assert again.expected.to_dict() == ex.expected.to_dict()


@pytest.mark.parametrize("field,value,reason", [
    ("tools", "[{\"name\": ", "unparseable_json"),
    ("tools", "[]", "no_tools"),
    ("query", "", "empty_turn"),
    ("answers", "[{\"name\": \"nope\", \"arguments\": {}}]", "unknown_tool"),
])
def test_xlam_malformed(field, value, reason):
    row = dict(XLAM_ROW, **{field: value})
    with pytest.raises(RowError) as err:
        XlamConverter().convert(row)
    assert err.value.reason == reason


def test_openai_chat_row_and_export_round_trip():
    row = {"id": "oa-1", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo and Lima?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
            {"id": "c2", "type": "function", "function": {"name": "get_weather",
                                                          "arguments": "{\"city\": \"Lima\"}"}}]}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "w", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]}
    ex = OpenAIChatConverter().convert(row)
    assert [c.arguments["city"] for c in ex.expected.tool_calls] == ["Oslo", "Lima"]
    assert ex.messages[0].role == "system"
    out = OpenAIChatConverter.to_row(ex)
    assert json.loads(out["messages"][-1]["tool_calls"][1]["function"]["arguments"]) == {"city": "Lima"}
    again = OpenAIChatConverter().convert(out)
    assert again.expected.to_dict() == ex.expected.to_dict() and again.to_dict()["tools"] == ex.to_dict()["tools"]


def test_openai_row_with_bad_arguments_json():
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{oops"}}]}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}
    with pytest.raises(RowError) as err:
        OpenAIChatConverter().convert(row)
    assert err.value.reason == "unparseable_json"


def test_canonical_round_trip_is_lossless(tmp_path):
    from fctune.offline import generate_examples
    from fctune.schema import read_examples, write_examples

    exs = generate_examples(60, seed=3)
    path = tmp_path / "x.jsonl"
    write_examples(path, exs)
    back = read_examples(path)
    assert [e.to_dict() for e in back] == [e.to_dict() for e in exs]
    assert isinstance(back[0], Example)


def test_read_examples_names_file_line_and_field(tmp_path):
    from fctune.schema import SchemaError, read_examples

    p = tmp_path / "bad.jsonl"
    good = {"id": "a", "messages": [{"role": "user", "content": "x"}], "tools": [], "expected": {"kind": "no_call"}}
    bad = dict(good, id="b", expected={"kind": "tool_calls", "tool_calls": [{"arguments": {}}]})
    p.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(SchemaError, match=r"bad.jsonl:2: example.expected.tool_calls\[0\].name"):
        read_examples(p)
