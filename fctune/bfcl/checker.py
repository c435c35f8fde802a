"""BFCL scoring as the leaderboard's AST checker decides, written as small pure functions.

Each function returns ``None`` when the value passes, else ``(error_type, message)``; error types follow
the leaderboard's names so failures can be counted the same way. Rules:

* the function name matches; every required parameter is present; no parameter outside the function's
  schema (or outside the possible answers) appears;
* each value is one of the possible answers for its parameter; ``""`` among them means it may be omitted;
* types follow BFCL's names (``string``, ``integer``, ``float``, ``boolean``, ``array``, ``tuple``, ``dict``,
  ``any``): an int is accepted where a float is expected, a tuple as a list; array/tuple items are type-checked
  one level deep; a value of the possible answers' own type is accepted (BFCL's "variable" case);
* strings compare after BFCL's normalization (drop spaces and ``,./-_*^``, lowercase, ``'`` -> ``"``);
  lists element-wise with the same normalization; dicts key by key; lists of dicts element-wise in order;
* simple categories need exactly one call; ``multiple`` categories exactly one call of the right function
  among several offered; ``parallel`` categories match calls to answers one to one regardless of order
  (a maximum bipartite matching; the leaderboard's own loop is greedy, which can only reject more);
* ``irrelevance`` categories are correct when the model makes no call.
"""

from __future__ import annotations

import re
from typing import Any

PY_TYPES = {"string": str, "integer": int, "float": float, "boolean": bool, "array": list, "tuple": list,
            "dict": dict, "any": str}
NESTED = ("array", "tuple")
Err = tuple[str, str] | None


def standardize_string(s: str) -> str:
    return re.sub(r"[ ,./\-_*^]", "", s).lower().replace("'", '"')


def _std(v):
    return standardize_string(v) if isinstance(v, str) else v


def _answer_type(options: list):
    return next((type(o) for o in options if o != ""), None)


def check_type(param: str, value, options: list, bfcl_type: str, item_type: str | None,
               strict: bool = True) -> tuple[Err, bool]:
    """``(error, is_variable)``: is the value of the declared type (or of the possible answers' type)? ``strict``
    (the leaderboard's rule) rejects integers in an array declared of floats (``[1, 3]`` for ``[[1.0, 3.0]]``);
    the lenient reading accepts them."""
    expected = PY_TYPES.get(bfcl_type, str)
    ans_type = _answer_type(options)
    is_variable = ans_type is not None and ans_type is not expected
    if type(value) is expected:
        if item_type is None or not isinstance(value, list):
            return None, is_variable
        inner = PY_TYPES.get(item_type, str)
        for opt in options:
            if not isinstance(opt, list):
                continue
            opt_type = _answer_type(opt)  # items of the answers' own type pass, as the leaderboard's nested check
            if all(type(v) is inner or (not strict and inner is float and type(v) is int) or type(v) is opt_type
                   for v in value):
                return None, is_variable
        return ("type_error:nested", f"{param}: items of {value!r} are not {item_type}"), is_variable
    if ans_type is not None and type(value) is ans_type:
        return None, True
    return ("type_error:simple", f"{param}: expected {bfcl_type}, got {type(value).__name__} {value!r}"), is_variable


def check_string(param: str, value: str, options: list) -> Err:
    if standardize_string(value) in {standardize_string(o) for o in options if isinstance(o, str)}:
        return None
    return "value_error:string", f"{param}: {value!r} is not one of {options}"


def check_list(param: str, value: list, options: list) -> Err:
    got = [_std(v) for v in value]
    if any(isinstance(o, list) and got == [_std(x) for x in o] for o in options):
        return None
    return "value_error:list/tuple", f"{param}: {value!r} is not one of {options}"


def check_dict(param: str, value: dict, options: list) -> Err:
    err: Err = ("dict_checker:unclear", f"{param}: no possible answer")
    for opt in options:
        if opt == "" or not isinstance(opt, dict):
            continue
        err = None
        for k, v in value.items():
            if k not in opt:
                err = ("value_error:dict_key", f"{param}: unexpected key {k!r}")
                break
            if _std(v) not in [_std(x) for x in opt[k]]:
                err = ("value_error:dict_value", f"{param}.{k}: {v!r} is not one of {opt[k]}")
                break
        if err is None:
            for k, allowed in opt.items():
                if k not in value and "" not in allowed:
                    err = ("value_error:dict_key", f"{param}: missing key {k!r}")
                    break
        if err is None:
            return None
    return err


def check_list_of_dicts(param: str, value: list, options: list) -> Err:
    err: Err = ("list_dict_checker:unclear", f"{param}: no possible answer")
    for opt in options:
        if not isinstance(opt, list):
            continue
        if len(opt) != len(value):
            err = ("value_error:list_dict_count", f"{param}: {len(value)} dicts, expected {len(opt)}")
            continue
        errs = [check_dict(param, v, [o]) for v, o in zip(value, opt, strict=True)]
        first = next((e for e in errs if e), None)
        if first is None:
            return None
        err = first
    return err


def check_call(func: dict, call: tuple[str, dict], answer: dict, strict: bool = True) -> Err:
    """One call ``(name, args)`` against one function description and its possible answer ``{name: {...}}``."""
    (exp_name, options), = answer.items()
    name, args = call
    if name != func["name"] or name != exp_name:
        return "simple_function_checker:wrong_func_name", f"called {name!r}, expected {exp_name!r}"
    params = (func.get("parameters") or {}).get("properties") or {}
    for p in (func.get("parameters") or {}).get("required") or []:
        if p not in args:
            return "simple_function_checker:missing_required", f"missing required parameter {p!r}"
    for p, value in args.items():
        if p not in params or p not in options:
            return "simple_function_checker:unexpected_param", f"unexpected parameter {p!r}"
        desc = params[p]
        bfcl_type = desc.get("type", "any")
        item_type = (desc.get("items") or {}).get("type") if bfcl_type in NESTED else None
        if bfcl_type == "tuple" and isinstance(value, tuple):
            value = list(value)
        if bfcl_type == "float" and type(value) is int:
            value = float(value)
        err, is_variable = check_type(p, value, options[p], bfcl_type, item_type, strict)
        if err:
            return err
        if not is_variable:
            expected = PY_TYPES.get(bfcl_type, str)
            if expected is dict:
                err = check_dict(p, value, options[p])
            elif expected is list and item_type == "dict":
                err = check_list_of_dicts(p, value, options[p])
            elif expected is str:
                err = check_string(p, value, options[p])
            elif expected is list:
                err = check_list(p, value, options[p])
            elif value not in options[p]:
                err = ("value_error:others", f"{p}: {value!r} is not one of {options[p]}")
            if err:
                return err
        elif value not in options[p]:
            return "value_error:others", f"{p}: {value!r} is not one of {options[p]}"
    for p, allowed in options.items():
        if p not in args and "" not in allowed:
            return "simple_function_checker:missing_optional", f"parameter {p!r} not given and not optional"
    return None


def _find(functions: list[dict], name: str) -> dict | None:
    return next((f for f in functions if f["name"] == name), None)


def _max_matching(ok: list[list[bool]]) -> int:
    """Size of a maximum matching of answers (rows) to calls (columns)."""
    match_of_call: dict[int, int] = {}

    def augment(a: int, seen: set) -> bool:
        for c, good in enumerate(ok[a]):
            if good and c not in seen:
                seen.add(c)
                if c not in match_of_call or augment(match_of_call[c], seen):
                    match_of_call[c] = a
                    return True
        return False

    return sum(augment(a, set()) for a in range(len(ok)))


def check_bfcl(category: str, functions: list[dict], answers: list | None, calls: list[tuple[str, dict]],
               strict: bool = True) -> Err:
    """The verdict for one BFCL row: None = correct, else (error_type, message). ``strict``: see :func:`check_type`."""
    if "irrelevance" in category:
        return None if not calls else ("irrelevance:called_a_function", f"made {len(calls)} call(s)")
    if not calls:
        return "ast_decoder:no_call", "no function call in the output"
    answers = answers or []
    if "parallel" in category:
        if len(calls) != len(answers):
            return "parallel_function_checker_no_order:wrong_count", f"{len(calls)} calls, expected {len(answers)}"
        ok, errors = [], []
        for ans in answers:
            func = _find(functions, next(iter(ans)))
            row = []
            for c in calls:
                e = check_call(func, c, ans, strict) if func else ("simple_function_checker:wrong_func_name", "unknown")
                row.append(e is None)
                if e:
                    errors.append(e)
            ok.append(row)
        if _max_matching(ok) == len(answers):
            return None
        return "parallel_function_checker_no_order:cannot_find_match", (errors[0][1] if errors else "no match")
    if len(calls) != 1 or len(answers) != 1:
        kind = "multiple_function_checker" if "multiple" in category else "simple_function_checker"
        return f"{kind}:wrong_count", f"{len(calls)} calls, expected 1"
    func = _find(functions, next(iter(answers[0])))
    if func is None:
        return "simple_function_checker:wrong_func_name", "expected function not offered"
    return check_call(func, calls[0], answers[0], strict)


def calls_from_output(output: str | None, tool_calls: list | None, function_names: list[str],
                      call_format: list[str] | None = None, renamed_tools: dict | None = None
                      ) -> list[tuple[str, Any]]:
    """Decode a model answer into BFCL's ``[(name, args)]`` with the shared parser. With ``call_format`` (the strict
    reading) only calls written in one of those shapes count, as a leaderboard decoder reads them."""
    from fctune.parse import in_declared_format, parse_tool_calls, rename_calls

    parsed = rename_calls(parse_tool_calls(output, tool_calls, tool_names=function_names), renamed_tools)
    if not in_declared_format(parsed.shape, call_format):
        return []
    return [(c.name, c.arguments) for c in parsed.calls]
