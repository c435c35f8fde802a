"""Output parsing: one row per output shape models emit."""

import pytest

from fctune.parse import loads_lenient, parse_json_output, parse_tool_calls

W = ("get_weather", {"city": "Paris"})
W2 = ("get_weather", {"city": "Oslo"})

CASES = [
    # (case id, raw output, expected [(name, args)], valid_json, shape)
    ("hermes_json", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', [W], True,
     "hermes_tags"),
    ("hermes_python_literal", "<tool_call>\n{'arguments': {'city': 'Paris'}, 'name': 'get_weather'}\n</tool_call>",
     [W], True, "hermes_tags"),
    ("hermes_two_tags", '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
                        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>', [W, W2],
     True, "hermes_tags"),
    ("hermes_unclosed_at_end", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}', [W], True,
     "hermes_tags"),
    ("hermes_list_in_one_tag", '<tool_call>[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
                               '{"name": "get_weather", "arguments": {"city": "Oslo"}}]</tool_call>', [W, W2], True,
     "hermes_tags"),
    ("hermes_two_objects_one_tag", '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
                                   '{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>', [W, W2],
     True, "hermes_tags"),
    ("hermes_python_bools", "<tool_call>{'name': 'f', 'arguments': {'a': True, 'b': None, 'c': (1, 2)}}</tool_call>",
     [("f", {"a": True, "b": None, "c": [1, 2]})], True, "hermes_tags"),
    ("hermes_json_true_in_literal", "<tool_call>{'name': 'f', 'arguments': {'a': true}}</tool_call>",
     [("f", {"a": True})], True, "hermes_tags"),
    ("hermes_truncated", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par', [], False,
     "hermes_tags"),
    ("hermes_prose_around", 'Sure! Let me check.\n<tool_call>{"name": "get_weather", "arguments": '
                            '{"city": "Paris"}}</tool_call>\nOne moment.', [W], True, "hermes_tags"),
    ("arguments_as_json_string", '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}'
                                 '</tool_call>', [W], True, "hermes_tags"),
    ("parameters_variant", '{"name": "get_weather", "parameters": {"city": "Paris"}}', [W], True, "bare_json"),
    ("function_variant", '{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}', [W], True,
     "bare_json"),
    ("openai_style_dict", '{"type": "function", "function": {"name": "get_weather", "arguments": '
                          '"{\\"city\\": \\"Paris\\"}"}}', [W], True, "bare_json"),
    ("tool_calls_wrapper", '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}', [W], True,
     "bare_json"),
    ("bare_list", '[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
                  '{"name": "get_weather", "arguments": {"city": "Oslo"}}]', [W, W2], True, "bare_json"),
    ("fenced_json", 'Here you go:\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```', [W],
     True, "fenced_json"),
    ("prose_then_json", 'I will call the tool {"name": "get_weather", "arguments": {"city": "Paris"}} now.', [W],
     True, "bare_json"),
    ("brace_in_string", '{"name": "f", "arguments": {"text": "a } b { c"}}', [("f", {"text": "a } b { c"})], True,
     "bare_json"),
    ("python_call", 'get_weather(city="Paris")', [W], True, "python_call"),
    ("python_call_list", '[get_weather(city="Paris"), get_weather(city="Oslo")]', [W, W2], True, "python_call"),
    ("python_dotted", 'math.factorial(number=5)', [("math.factorial", {"number": 5})], True, "python_call"),
    ("python_call_nested_literals", "f(xs=[1, 2.5], d={'k': 'v'}, flag=False, neg=-3)",
     [("f", {"xs": [1, 2.5], "d": {"k": "v"}, "flag": False, "neg": -3})], True, "python_call"),
    ("phi_tags", '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]<|/tool_call|>', [W], True,
     "phi_tags"),
    ("functioncall_glaive", '<functioncall> {"name": "get_weather", "arguments": \'{"city": "Paris"}\'}', [W], True,
     "functioncall_tag"),
    ("llama_python_tag", '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}<|eom_id|>', [W],
     True, "python_tag"),
    ("plain_text", "The weather in Paris is sunny.", [], False, "none"),
    ("empty", "", [], False, "none"),
    ("json_not_a_call", '{"answer": 42}', [], True, "bare_json"),
    ("malformed_json_in_prose", 'call {"name": "get_weather", "arguments": {"city": "Paris"', [], False, "none"),
    ("python_call_with_positional_is_not_call", 'get_weather("Paris")', [], False, "none"),
    ("python_expression_is_not_executed", '__import__("os").system("echo hi")', [], False, "none"),
]


@pytest.mark.parametrize("case,output,calls,valid,shape", CASES, ids=[c[0] for c in CASES])
def test_parse_shapes(case, output, calls, valid, shape):
    res = parse_tool_calls(output)
    assert [(c.name, c.arguments) for c in res.calls] == calls
    assert res.valid_json is valid
    assert res.shape == shape


def test_openai_tool_calls_field():
    res = parse_tool_calls(None, tool_calls=[
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"'}}])
    assert [(c.name, c.arguments) for c in res.calls] == [W]
    assert res.shape == "openai_tool_calls" and res.valid_json is False and "tool_calls[1]" in res.errors[0]


def test_tool_name_keyed_dict_needs_known_tools():
    out = '{"get_weather": {"city": "Paris"}}'
    assert parse_tool_calls(out).calls == []
    assert [(c.name, c.arguments) for c in parse_tool_calls(out, tool_names=["get_weather"]).calls] == [W]


def test_loads_lenient_never_evaluates():
    with pytest.raises(ValueError):
        loads_lenient("__import__('os').getcwd()")
    assert loads_lenient("{'a': (1, -2.5), 'b': null}") == {"a": (1, -2.5), "b": None}


@pytest.mark.parametrize("output,value,strict", [
    ('{"a": 1}', {"a": 1}, True),
    ('Here is the JSON:\n```json\n{"a": 1}\n```\nDone.', {"a": 1}, True),
    ("Result: {'a': 1}", {"a": 1}, False),
    ('[1, 2] and then {"a": 1} and {"b": 2}', {"a": 1}, True),
    ('{"a": ', None, False),
])
def test_structured_output_first_object(output, value, strict):
    res = parse_json_output(output)
    assert res.value == value and res.found is (value is not None) and res.strict_json is strict
