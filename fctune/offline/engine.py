"""The offline data engine: every row kind a user's function-calling data has, over thousands of generated tools.

Row kinds (``metadata.row_kind``) and their default shares (:data:`ENGINE_MIX`; ``prepare --mix`` changes them):

============== ===== =====================================================================================
single          0.12  one call; the only tool offered is the one it needs
choose          0.20  one call chosen among 2-5 offered tools (distractors from the same and other domains)
parallel_same   0.14  the same function called 2-4 times ("... for Oslo, Lima and Accra")
parallel_multi  0.12  several functions in one request (2-3, one of them sometimes called twice)
multi_turn      0.10  tool results in context: a chain (search, then act on the first result), a follow-up
                      ("now the same for ..."), or a clarification the user answers
clarify         0.05  a required value is missing: the assistant asks for it, no call
no_call         0.17  no offered tool fits the request (BFCL irrelevance style): the assistant says so, no call
catalog         0.10  rows of the ten-domain catalog (v1: structured JSON extraction, its multi-turn scenarios)
============== ===== =====================================================================================

Every call is checked before its row is written (:func:`verify_example`): the function is offered, the
arguments validate against its JSON Schema, and every value is in the conversation's words (the user's text
or an earlier tool result); a row that fails is dropped and counted by reason, never repaired.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field

from fctune.offline.schemagen import Function, Param, article, build_catalog, join, plural, words
from fctune.schema import Example, Expected, Message, ToolCall

SOURCE = "fctune-offline-v2"
ENGINE_MIX = {"single": 0.12, "choose": 0.20, "parallel_same": 0.14, "parallel_multi": 0.12, "multi_turn": 0.10,
              "clarify": 0.05, "no_call": 0.17, "catalog": 0.10, "implied": 0.0}
# "implied" (a value said without its parameter's name) is off by default until a GPU run measures it against the
# mix above (RESULTS.md: the fine-tunes lose single calls whose values BFCL's requests imply); --mix implied=0.1
# xLAM rows are single-turn: no tool results in context, no catalog multi-turn rows.
ENGINE_XLAM_MIX = {"single": 0.15, "choose": 0.25, "parallel_same": 0.17, "parallel_multi": 0.15, "clarify": 0.06,
                   "no_call": 0.22}
DEFAULT_CATALOG_SIZE = 3000
OPTIONAL_SHARE = 0.4  # how often an optional parameter is asked for (and so appears in the call)

OPEN = {"get": ["Get", "Show me", "Look up", "Fetch", "Can you pull up", "I need", "Please retrieve"],
        "search": ["Find", "Search for", "List", "Show me", "Look for", "I'm looking for"],
        "calculate": ["Calculate", "Compute", "What is", "Work out", "Estimate", "Determine"]}
GIVEN = ["given", "for", "with", "using", "where the"]


class RowRejected(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# -- asking for one call --------------------------------------------------------------------------------------
@dataclass
class Ask:
    """A request for one call: the text, the call, and the function it calls."""

    text: str
    call: ToolCall
    fn: Function


def _bare_ok(fn: Function, p: Param) -> bool:
    return sum(q.kind == p.kind for q in fn.params) == 1


def _values(fn: Function, rng: random.Random, fixed: dict | None = None, skip: str | None = None) -> dict:
    out = {}
    for p in fn.params:
        if p.name == skip:
            continue
        if fixed and p.name in fixed:
            out[p.name] = fixed[p.name]
        elif p.required or rng.random() < OPTIONAL_SHARE:
            out[p.name] = p.value(rng)  # an optional value the user asks for is in the call, default or not
    # Two parameters of one kind (a start and an end date) must not get one value: the text would not say which.
    seen = {}
    for p in fn.params:
        if p.name in out and not isinstance(out[p.name], (dict, list, bool)):
            key = (p.kind, json.dumps(out[p.name]))
            if key in seen:
                raise RowRejected("ambiguous_values")
            seen[key] = p.name
    return out


def request_text(fn: Function, args: dict, rng: random.Random, id_words: str | None = None) -> str:
    """A user request for ``fn`` saying every value in ``args`` (a clarify row leaves a required one out on
    purpose); ``id_words`` replaces the id phrase ("the first one")."""
    phrases = {p.name: p.say(args[p.name], rng, _bare_ok(fn, p)) for p in fn.params if p.name in args}
    ent = words(fn.subject)

    def said(glue: str, names=None) -> str:  # " with a, b and c", or nothing when no value is said
        vals = [v for k, v in phrases.items() if names is None or k in names]
        if not vals:
            return ""
        if glue == "with" and vals[0].startswith(("with ", "without ")):
            return f" {join(vals)}"  # the phrase brings its own preposition ("without notify")
        return f" {glue} {join(vals)}"

    if fn.action == "calculate":
        opener = rng.choice(OPEN["calculate"])
        return f"{opener} the {fn.subject}{said(rng.choice(GIVEN))}" + ("?" if opener == "What is" else ".")
    if fn.action in ("get", "update", "cancel"):
        id_phrase = id_words or f"{ent} {args[fn.id_param]}"
        rest = [k for k in phrases if k != fn.id_param]
        if fn.action == "get":
            text = f"{rng.choice(OPEN['get'])} the {fn.attr} of {id_phrase}"
        elif fn.action == "update":
            return f"{rng.choice(['Update', 'Change', 'Modify', 'Edit'])} {id_phrase}" + (
                f": set {join([phrases[k] for k in rest])}." if rest else ".")
        else:
            text = f"{fn.verb.capitalize()} {id_phrase}"
        if rest and rng.random() < 0.3:
            return f"{text} ({join([phrases[k] for k in rest])})."
        return f"{text}{said('with', rest)}."
    if fn.action == "search":
        return f"{rng.choice(OPEN['search'])} {plural(ent)}{said('with')}."
    return f"{fn.verb.capitalize()} {article(ent)} {ent}{said('with')}."


def ask(fn: Function, rng: random.Random, fixed: dict | None = None) -> Ask:
    args = _values(fn, rng, fixed)
    return Ask(request_text(fn, args, rng), ToolCall(fn.name, args), fn)


# -- checks ---------------------------------------------------------------------------------------------------
def _numbers_in(text: str) -> list[float]:
    import re

    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]


def _traceable(value, text: str, numbers: list[float]) -> bool:
    if isinstance(value, bool):
        return True  # checked by name below: a boolean is said with its parameter's words
    if isinstance(value, (int, float)):
        return any(abs(n - value) < 1e-9 for n in numbers)
    if isinstance(value, str):
        return value.lower() in text
    if isinstance(value, list):
        return all(_traceable(v, text, numbers) for v in value)
    if isinstance(value, dict):
        return all(_traceable(v, text, numbers) for v in value.values())
    return False


def verify_example(ex: Example, schema_defaults: bool = False) -> str | None:
    """Why ``ex`` must be dropped (``None``: it is sound). Every call, in context and expected, must name an
    offered tool, validate against its schema, and use only values that the conversation before it says.
    ``schema_defaults``: an argument equal to its parameter's schema default may also go unsaid — a request worded by
    a person (or the query writer) leaves a default implied ("the weather in Paris" for units=celsius), and the
    call still carries it; the engine's own rows say every value, so they are checked without it."""
    import jsonschema

    tools = {t.name: t for t in ex.tools}
    said = ""
    checks = []
    for m in ex.messages:
        if m.role == "assistant" and m.tool_calls:
            checks += [(c, said) for c in m.tool_calls]
        if m.role in ("user", "tool"):
            said += "\n" + (m.content or "")
    if ex.expected.kind == "tool_calls":
        checks += [(c, said) for c in ex.expected.tool_calls]
    for call, context in checks:
        spec = tools.get(call.name)
        if spec is None:
            return "call_to_unoffered_tool"
        try:
            jsonschema.validate(call.arguments, spec.parameters, format_checker=jsonschema.FormatChecker())
        except jsonschema.ValidationError:
            return "schema_invalid"
        low, numbers = context.lower(), _numbers_in(context)
        props = spec.parameters.get("properties", {})
        for name, value in call.arguments.items():
            if schema_defaults and "default" in props.get(name, {}) and props[name]["default"] == value:
                continue
            if not _traceable(value, low, numbers):
                return "value_not_in_text"
            if isinstance(value, bool) and words(name).lower() not in low:
                return "value_not_in_text"
    return None


# -- row kinds ------------------------------------------------------------------------------------------------
class Engine:
    """Builds rows over one generated catalog; ``pick`` and friends draw functions with the rules that keep a
    row's answer unique (never two tools of one signature in a row)."""

    def __init__(self, catalog: list[Function]):
        self.catalog = catalog
        self.by_domain: dict[str, list[Function]] = {}
        for fn in catalog:
            self.by_domain.setdefault(fn.domain, []).append(fn)
        self.domains = sorted(self.by_domain)

    def distractors(self, rng, keep: list[Function], k: int, same_domain_share: float = 0.5) -> list[Function]:
        sigs = {f.signature for f in keep}
        names = {f.name for f in keep}
        out: list[Function] = []
        for _ in range(k * 20):
            if len(out) >= k:
                break
            dom = keep[0].domain if rng.random() < same_domain_share else rng.choice(self.domains)
            f = rng.choice(self.by_domain[dom])
            if f.signature in sigs or f.name in names:
                continue
            out.append(f)
            sigs.add(f.signature)
            names.add(f.name)
        return out

    def offer(self, rng, fns: list[Function], extra: int) -> list:
        tools = list({f.name: f for f in fns}.values()) + self.distractors(rng, fns, extra)
        rng.shuffle(tools)
        return [f.spec() for f in tools]

    def function(self, rng, domain: str, where=None) -> Function:
        pool = [f for f in self.by_domain[domain] if where is None or where(f)]
        if not pool:
            raise RowRejected("no_function_fits")
        return rng.choice(pool)

    # each returns (messages, tools, expected, metadata)
    def single(self, rng, domain):
        a = ask(self.function(rng, domain), rng)
        return [Message("user", a.text)], self.offer(rng, [a.fn], 0), Expected("tool_calls", [a.call]), {}

    def choose(self, rng, domain):
        a = ask(self.function(rng, domain), rng)
        return [Message("user", a.text)], self.offer(rng, [a.fn], rng.randint(1, 4)), \
            Expected("tool_calls", [a.call]), {}

    @staticmethod
    def _impliable(fn: Function) -> list[Param]:
        """Enum parameters whose every member names only them in ``fn``: said alone, the value says which parameter
        it fills ("business flights" for cabin=business), so a request need not name the parameter."""
        enums = [p for p in fn.params if p.kind == "enum"]
        words_of = {p.name: {m.lower() for m in p.arg.split("|")} for p in enums}
        return [p for p in enums
                if not any(words_of[p.name] & words_of[q.name] for q in enums if q is not p)
                and not any(m in words(fn.subject).lower().split() for m in words_of[p.name])]

    def implied(self, rng, domain):
        """A search or create call among distractors whose request gives an enum value as a word before the
        entity, without its parameter's name ("Find vegan recipes with ...", "Book a business flight ..."), as
        people write; BFCL's requests imply values this way ("find all the roots") where the other kinds always
        name the parameter. The value is still in the words, so the trace rule holds unchanged."""
        fn = self.function(rng, domain, lambda f: f.action in ("search", "create") and self._impliable(f))
        p = rng.choice(self._impliable(fn))
        value = p.value(rng)
        args = _values(fn, rng, fixed={p.name: value})
        rest = {k: v for k, v in args.items() if k != p.name}
        text = request_text(fn, rest, rng)  # the request without the implied value ...
        ent = words(fn.subject)
        if fn.action == "search":  # ... which then goes before the entity, as an adjective
            plural_ent = plural(ent)
            if plural_ent not in text:
                raise RowRejected("implied_no_entity")
            text = text.replace(plural_ent, f"{value} {plural_ent}", 1)
        else:
            said = f"{article(ent)} {ent}"
            if said not in text:
                raise RowRejected("implied_no_entity")
            text = text.replace(said, f"{article(str(value))} {value} {ent}", 1)
        return [Message("user", text)], self.offer(rng, [fn], rng.randint(0, 3)), \
            Expected("tool_calls", [ToolCall(fn.name, args)]), {"implied": p.name}

    def _varying(self, fn: Function) -> list[Param]:
        return [p for p in fn.params if p.required and p.kind not in ("bool", "list", "object")]

    def parallel_same(self, rng, domain):
        fn = self.function(rng, domain, lambda f: self._varying(f))
        vary = rng.choice(self._varying(fn))
        k = rng.randint(2, 4)
        vals = []
        for _ in range(k * 10):
            v = vary.value(rng)
            if v not in vals:
                vals.append(v)
            if len(vals) == k:
                break
        if len(vals) < 2:
            raise RowRejected("too_few_values")
        base = _values(fn, rng)
        calls = [ToolCall(fn.name, {**base, vary.name: v}) for v in vals]
        if rng.random() < 0.6:  # one request naming every value where the one value would go
            marker = "\u0000"
            text = request_text(fn, {**base, vary.name: marker}, rng)
            text = text.replace(marker, join(vals))
            if rng.random() < 0.3:
                text = text.rstrip(".?") + rng.choice([", one for each.", ", each of them.", " (all of them)."])
        else:
            first = request_text(fn, {**base, vary.name: vals[0]}, rng)
            rest = join(vals[1:])
            text = f"{first} {rng.choice(['Then do the same for', 'Also do it for', 'Repeat that for'])} {rest}."
        return [Message("user", text)], self.offer(rng, [fn], rng.randint(0, 2)), Expected("tool_calls", calls), \
            {"varying": vary.name}

    def parallel_multi(self, rng, domain):
        n = rng.choice([2, 2, 3])
        fns = [self.function(rng, domain)]
        fns += self.distractors(rng, fns, n - 1, same_domain_share=0.6)
        if len(fns) < 2:
            raise RowRejected("too_few_functions")
        texts, calls = [], []
        for fn in fns:
            a = ask(fn, rng)
            texts.append(a.text)
            calls.append(a.call)
        glue = rng.choice([" Also, ", " Then ", " And ", " After that, "])
        text = texts[0]
        for t in texts[1:]:
            text += glue + t[0].lower() + t[1:]
        return [Message("user", text)], self.offer(rng, fns, rng.randint(0, 2)), Expected("tool_calls", calls), {}

    def clarify(self, rng, domain):
        fn = self.function(rng, domain, lambda f: any(p.kind not in ("bool",) for p in f.required))
        missing = rng.choice([p for p in fn.required if p.kind != "bool"])
        args = _values(fn, rng)
        args.pop(missing.name)
        if fn.action in ("get", "update", "cancel") and missing.name == fn.id_param:
            text = request_text(fn, {**args, fn.id_param: ""}, rng, id_words=f"my {words(fn.subject)}")
        else:
            text = request_text(fn, args, rng)
        question = rng.choice([f"Sure, what {words(missing.name)} should I use?",
                               f"I can do that, but I need the {words(missing.name)} first. What is it?",
                               f"Which {words(missing.name)} do you mean?"])
        return [Message("user", text)], self.offer(rng, [fn], rng.randint(0, 2)), Expected("no_call", text=question), \
            {"missing": missing.name, "args": args, "function": fn.name}

    def no_call(self, rng, domain):
        fn = self.function(rng, domain)
        a = ask(fn, rng)
        k = rng.randint(1, 4)
        # hard negatives: tools of the same domain that do something else (BFCL irrelevance offers near misses)
        others = self.distractors(rng, [fn], k, same_domain_share=0.4)
        tools = [f.spec() for f in others]
        what = fn.description[0].lower() + fn.description[1:].rstrip(".")
        answer = rng.choice([f"None of the available functions can {what}, so I can't do that here.",
                             f"I can't help with that: no tool I have can {what}.",
                             f"The functions I can use don't cover this (none can {what})."])
        return [Message("user", a.text)], tools, Expected("no_call", text=answer), {"asked_for": fn.name}

    def multi_turn(self, rng, domain):
        variant = rng.choice(["chain", "follow_up", "clarify_answered"])
        return getattr(self, "_" + variant)(rng, domain)

    def _chain(self, rng, domain):
        getter = self.function(rng, domain, lambda f: f.action in ("get", "cancel", "update"))
        searches = [f for f in self.by_domain[domain] if f.action == "search" and f.subject == getter.subject]
        if not searches:
            raise RowRejected("no_search_for_chain")
        search = rng.choice(searches)
        s = ask(search, rng)
        id_p = next(p for p in getter.params if p.name == getter.id_param)
        ids = [id_p.value(rng) for _ in range(rng.randint(2, 3))]
        pick = rng.choice([(0, "first"), (len(ids) - 1, "last")] + ([(1, "second")] if len(ids) > 2 else []))
        follow = _values(getter, rng, fixed={getter.id_param: ids[pick[0]]})
        g_text = request_text(getter, follow, rng, id_words=f"the {pick[1]} one")
        text = s.text.rstrip(".?") + ", then " + g_text[0].lower() + g_text[1:]
        s.call.id = "call_0"
        result = {"results": [{getter.id_param: i, "name": f"{words(getter.subject).title()} {n + 1}"}
                              for n, i in enumerate(ids)]}
        msgs = [Message("user", text), Message("assistant", None, tool_calls=[s.call]),
                Message("tool", json.dumps(result), tool_call_id="call_0", name=search.name)]
        return msgs, self.offer(rng, [search, getter], rng.randint(0, 2)), \
            Expected("tool_calls", [ToolCall(getter.name, follow)]), \
            {"multi_turn_kind": "sequential", "multi_turn_variant": "chain"}

    def _follow_up(self, rng, domain):
        fn = self.function(rng, domain, lambda f: self._varying(f))
        vary = rng.choice(self._varying(fn))
        a = ask(fn, rng)
        for _ in range(10):
            new = vary.value(rng)
            if new != a.call.arguments.get(vary.name):
                break
        else:
            raise RowRejected("too_few_values")
        a.call.id = "call_0"
        second = ToolCall(fn.name, {**a.call.arguments, vary.name: new})
        new_said = vary.say(new, rng, _bare_ok(fn, vary))
        msgs = [Message("user", a.text), Message("assistant", None, tool_calls=[a.call]),
                Message("tool", json.dumps({"status": "ok"}), tool_call_id="call_0", name=fn.name),
                Message("assistant", rng.choice(["Done.", "Here you go.", "That's done."])),
                Message("user", rng.choice([f"Now the same with {new_said}.", f"Great. Do it again with {new_said}.",
                                            f"And with {new_said} instead?"]))]
        return msgs, self.offer(rng, [fn], rng.randint(0, 2)), Expected("tool_calls", [second]), \
            {"multi_turn_kind": "context_dependent", "multi_turn_variant": "follow_up"}

    def _clarify_answered(self, rng, domain):
        msgs, tools, expected, md = self.clarify(rng, domain)
        fn = next(f for f in self.by_domain[domain] if f.name == md["function"])
        p = next(q for q in fn.params if q.name == md["missing"])
        value = p.value(rng)
        reply = p.say(value, rng, bare_ok=False)
        args = dict(md["args"])  # what the first turn said, plus the value the user gives when asked
        args[p.name] = value
        msgs = msgs + [Message("assistant", expected.text), Message("user", rng.choice([reply, f"Use {reply}.",
                                                                                          f"Oh, {reply}."]))]
        return msgs, tools, Expected("tool_calls", [ToolCall(fn.name, args)]), \
            {"multi_turn_kind": "clarification", "multi_turn_variant": "clarify_answered"}


KINDS = ("single", "choose", "parallel_same", "parallel_multi", "multi_turn", "clarify", "no_call", "implied")


@dataclass
class EngineReport:
    """What the engine made: the catalog, rows asked for and written, drops by reason, row kinds."""

    catalog_size: int = 0
    domains: int = 0
    asked: int = 0
    written: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    excluded_names: int = 0

    def to_dict(self) -> dict:
        return {"generator": SOURCE, "catalog_functions": self.catalog_size, "catalog_domains": self.domains,
                "names_excluded": self.excluded_names, "rows_asked": self.asked,
                "rows_written": sum(self.written.values()), "row_kinds": dict(sorted(self.written.items())),
                "dropped": dict(sorted(self.dropped.items()))}


def generate_engine_examples(n: int, seed: int = 0, mix: dict | None = None, catalog_size: int = DEFAULT_CATALOG_SIZE,
                             exclude_names: set[str] = frozenset(),
                             report: EngineReport | None = None) -> list[Example]:
    """``n`` rows drawn by kind from ``mix`` (default :data:`ENGINE_MIX`), reproducible from ``seed``. Rows that
    fail :func:`verify_example`, and catalog rows offering a tool named in ``exclude_names``, are dropped and counted
    in ``report`` (so fewer than ``n`` may come back); generated tools never take an excluded name."""
    from fctune.formats.common import finalize
    from fctune.offline.generator import generate_examples

    mix = dict(ENGINE_MIX if mix is None else mix)
    unknown = set(mix) - set(KINDS) - {"catalog"}
    if unknown:
        raise ValueError(f"unknown row kinds {sorted(unknown)}; known: {', '.join(KINDS)}, catalog")
    report = report if report is not None else EngineReport()
    catalog = build_catalog(catalog_size, seed, exclude_names)
    excluded = {n.lower() for n in exclude_names}
    engine = Engine(catalog)
    report.catalog_size, report.domains = len(catalog), len(engine.domains)
    report.excluded_names = len(exclude_names)
    rng = random.Random(f"fctune-engine:{seed}")
    kinds, weights = zip(*[(k, v) for k, v in mix.items() if v > 0], strict=True)
    plan = [rng.choices(kinds, weights)[0] for _ in range(n)]
    report.asked += n
    n_catalog = plan.count("catalog")
    catalog_rows = iter(generate_examples(n_catalog, seed=seed)) if n_catalog else iter(())
    out = []
    for i, kind in enumerate(plan):
        if kind == "catalog":
            ex = next(catalog_rows)
            ex.metadata["row_kind"] = "catalog"
            ex.metadata["source"] = SOURCE
            why = verify_example(ex)  # the catalog's scripted rows are held to the same checks
            if not why and {t.lower() for t in ex.tool_names} & excluded:
                why = "excluded_name"  # the 31 hand-written tools include names BFCL uses (get_current_weather)
            if why:
                report.dropped[f"catalog_{why}"] += 1
                continue
        else:
            domain = engine.domains[i % len(engine.domains)]
            try:
                msgs, tools, expected, extra = getattr(engine, kind)(rng, domain)
            except RowRejected as e:
                report.dropped[e.reason] += 1
                continue
            extra.pop("args", None)
            md = {"source": SOURCE, "source_id": f"e{seed}-{i}", "domain": domain, "row_kind": kind,
                  "turn_type": "multi" if kind == "multi_turn" else "single", **extra}
            md["category"] = domain
            ex = Example(id=f"engine-{seed}-{i:06d}", messages=msgs, tools=tools, expected=expected, metadata=md)
            why = verify_example(ex)
            if why:
                report.dropped[why] += 1
                continue
        report.written[ex.metadata["row_kind"]] += 1
        out.append(finalize(ex))
    return out
