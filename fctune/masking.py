"""Name masking (Hammer's idea): a row's function and parameter names replaced by random identifiers.

A model trained on masked rows cannot lean on a name it has seen before (``get_weather``); it has to read the
description. Masking is consistent within a row: the offered schemas, every call in context and the expected
calls use the same replacements. Descriptions, values and the user's words are unchanged.
"""

from __future__ import annotations

import copy
import random
import string

from fctune.schema import Example, ToolSpec


def _token(rng: random.Random, prefix: str, taken: set[str]) -> str:
    while True:
        t = prefix + "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(6))
        if t not in taken:
            taken.add(t)
            return t


def mask_example(ex: Example, rng: random.Random) -> Example:
    """A copy of ``ex`` with every offered tool's name and top-level parameter names replaced."""
    taken: set[str] = set()  # one pool for functions and parameters: no replacement may collide with another
    fn_map = {t.name: _token(rng, "fn_", taken) for t in ex.tools}
    param_map: dict[str, dict[str, str]] = {}
    tools = []
    for t in ex.tools:
        params = copy.deepcopy(t.parameters)
        props = params.get("properties") or {}
        # top-level names only: nested property names are part of a value's shape, which the description explains
        pm = {p: _token(rng, "p_", taken) for p in props}
        param_map[t.name] = pm
        params["properties"] = {pm[p]: s for p, s in props.items()}
        if isinstance(params.get("required"), list):
            params["required"] = [pm.get(p, p) for p in params["required"]]
        tools.append(ToolSpec(fn_map[t.name], t.description, params))

    def call(c):
        pm = param_map.get(c.name, {})
        return type(c)(fn_map.get(c.name, c.name), {pm.get(k, k): v for k, v in c.arguments.items()}, c.id)

    out = copy.deepcopy(ex)
    out.tools = tools
    for m in out.messages:
        if m.tool_calls:
            m.tool_calls = [call(c) for c in m.tool_calls]
        if m.role == "tool" and m.name:  # a tool result names the function it answers: renamed with it
            m.name = fn_map.get(m.name, m.name)
    if out.expected.kind == "tool_calls":
        out.expected.tool_calls = [call(c) for c in out.expected.tool_calls]
    out.metadata = {**out.metadata, "names_masked": True}
    return out


def mask_share(examples: list[Example], share: float, seed: int) -> tuple[list[Example], int]:
    """Mask a seeded ``share`` of the rows that offer tools; returns the rows and how many were masked."""
    if share <= 0:
        return examples, 0
    rng = random.Random(f"fctune-mask:{seed}")  # its own stream: masking never changes which rows are drawn
    out, n = [], 0
    for ex in examples:
        if ex.tools and rng.random() < share:
            out.append(mask_example(ex, rng))
            n += 1
        else:
            out.append(ex)
    return out, n
