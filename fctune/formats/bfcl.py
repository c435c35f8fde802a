"""BFCL (Berkeley Function Calling Leaderboard) data, read from the JSON files that the PyPI package
``bfcl-eval`` ships under ``bfcl_eval/data/`` (install it with ``--no-deps``; nothing of it is imported).

Each question row becomes an example; its original function docs and the possible answers stay in
``metadata["bfcl"]`` for the leaderboard-style checker (:mod:`fctune.bfcl`). BFCL's parameter types map
to JSON Schema for prompting: ``dict``->object, ``float``->number, ``tuple``->array, ``any``->no type.
"""

from __future__ import annotations

import copy
import importlib.util
import random
from functools import lru_cache
from pathlib import Path

from fctune.errors import UserError
from fctune.formats.common import finalize
from fctune.io import DataFileError, iter_jsonl
from fctune.schema import Example, Expected, Message, ToolCall, ToolSpec

NON_LIVE = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
LIVE = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple", "live_irrelevance")
CATEGORIES = NON_LIVE + LIVE
IRRELEVANCE = ("irrelevance", "live_irrelevance")
_TYPE_MAP = {"dict": "object", "float": "number", "tuple": "array", "int": "integer", "str": "string",
             "bool": "boolean", "list": "array"}


class BfclDataMissing(UserError, RuntimeError):
    pass


def data_dir() -> Path:
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise BfclDataMissing(
            "the BFCL data package is not installed: pip install --no-deps bfcl-eval==2026.3.23 "
            "(scripts/bootstrap.sh does this)")
    d = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not d.is_dir():
        raise BfclDataMissing(f"{d}: bfcl-eval is installed but ships no data folder")
    return d


@lru_cache(maxsize=1)  # asked for every row (3,476 in all categories): reading the package's metadata took ~2 ms
def package_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("bfcl-eval")
    except metadata.PackageNotFoundError:
        return None


def bfcl_type_to_schema(p: dict) -> dict:
    """A BFCL parameter description -> JSON Schema (recursively through properties and items)."""
    out = {k: v for k, v in p.items() if k not in ("type", "properties", "items")}
    t = p.get("type")
    if t == "any":  # BFCL's "any" has no JSON Schema type: leave it unconstrained rather than guess one
        pass
    elif t:
        out["type"] = _TYPE_MAP.get(t, t)
    if isinstance(p.get("properties"), dict):
        out["properties"] = {k: bfcl_type_to_schema(v) for k, v in p["properties"].items()}
    if isinstance(p.get("items"), dict):
        out["items"] = bfcl_type_to_schema(p["items"])
    return out


def function_to_spec(fn: dict) -> ToolSpec:
    params = bfcl_type_to_schema(fn.get("parameters") or {"type": "dict", "properties": {}})
    params["type"] = "object"  # BFCL writes "dict" at the top; every chat template and the OpenAI API want "object"
    params.setdefault("properties", {})
    return ToolSpec(fn["name"], fn.get("description", ""), params)


_OMIT = object()


def _pick(options, required: bool):
    """One value from a list of possible answers: omit when "" allows it (unless required), else the first."""
    if not isinstance(options, list):
        return options
    if "" in options and not required:
        return _OMIT
    return next((o for o in options if o != ""), "" if "" in options else _OMIT)


def _concrete(value, required=()):
    """A possible answer made concrete; nested dict options hold lists of choices too."""
    if isinstance(value, dict):
        out = {}
        for k, options in value.items():
            v = _pick(options, k in required)
            if v is not _OMIT:
                out[k] = _concrete(v)
        return out
    if isinstance(value, list):
        return [_concrete(v) for v in value]
    return value


def expected_from_answer(ground_truth: list, functions: list[dict] | None = None) -> Expected:
    """One concrete expected call list that satisfies the possible answers (optional "" -> omitted)."""
    req = {f["name"]: set((f.get("parameters") or {}).get("required") or []) for f in functions or []}
    calls = [ToolCall(name, _concrete(params, req.get(name, ())))
             for entry in ground_truth for name, params in entry.items()]
    return Expected("tool_calls", tool_calls=calls)


def load_category(category: str, limit: int | None = None, sample: int | None = None, seed: int = 0,
                  root: Path | None = None) -> list[Example]:
    """Examples of one BFCL category; ``sample`` draws a seeded subset, ``limit`` keeps the first N."""
    if category not in CATEGORIES:
        raise UserError(f"unknown BFCL category {category!r}; known: {', '.join(CATEGORIES)}")
    root = root or data_dir()
    qfile = root / f"BFCL_v4_{category}.json"
    afile = root / "possible_answer" / f"BFCL_v4_{category}.json"
    if not qfile.exists():
        raise BfclDataMissing(f"{qfile}: not found in the installed bfcl-eval")
    answers = {}
    if category not in IRRELEVANCE:
        if not afile.exists():
            raise BfclDataMissing(f"{afile}: possible answers missing")
        answers = {row["id"]: row["ground_truth"] for _, row in iter_jsonl(afile)}
    rows = [row for _, row in iter_jsonl(qfile)]
    if sample is not None and sample < len(rows):
        # sorted: a sample keeps the file's order, so two models given the same seed answer the same rows in turn
        keep = sorted(random.Random(seed).sample(range(len(rows)), sample))
        rows = [rows[i] for i in keep]
    if limit is not None:
        rows = rows[:limit]
    out = []
    for row in rows:
        turns = row.get("question") or []
        if not turns or not isinstance(turns[0], list):
            raise DataFileError(f"{qfile}: row {row.get('id')}: field 'question' is not a list of turns")
        messages = [Message(m["role"], m["content"]) for turn in turns for m in turn]
        functions = row.get("function") or []
        tools = [function_to_spec(f) for f in functions]
        if category in IRRELEVANCE:
            expected = Expected("no_call")
        else:
            if row["id"] not in answers:
                raise DataFileError(f"{afile}: no possible answer for {row['id']}")
            expected = expected_from_answer(answers[row["id"]], functions)
        # the raw functions and possible answers travel with the row: the checker scores against BFCL's own answer
        # sets, not against the one concrete call chosen above for training-style use
        md = {"source": "bfcl", "source_id": row["id"], "category": category, "bfcl_version": package_version(),
              "bfcl": {"category": category, "functions": copy.deepcopy(functions),
                       "possible_answer": answers.get(row["id"])}}
        out.append(finalize(Example(id=row["id"], messages=messages, tools=tools, expected=expected,
                                    metadata=md)))
    return out
