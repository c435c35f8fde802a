"""A seeded generator of function schemas: thousands of distinct, realistic tools over forty-eight domains.

Each :class:`Function` is built from the lexicon (:mod:`fctune.offline.lexicon`) by one of six archetypes,
``get`` (an attribute of a thing, by its id), ``search``, ``create``, ``update``, ``cancel`` and ``calculate``,
and written in one of three naming styles (``get_flight_status``, ``flight.get_status``, ``getFlightStatus``).
Its parameters are typed JSON Schema (strings with formats, enums, integers and floats with ranges, booleans,
arrays, nested objects, optional parameters with defaults); each parameter also knows how to draw a value and
how a user says it (:class:`Param.draw`), so every generated call can be traced to the request's words.

The catalog is a pure function of ``(seed, size, excluded names)``: the same seed gives the same schemas.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from fctune.offline import lexicon as L
from fctune.schema import ToolSpec

UNITS = {"km": "km", "kg": "kg", "cm": "cm", "m": "m", "hz": "Hz", "kmh": "km/h", "sqm": "square meters",
         "px": "pixels", "knots": "knots", "minutes": "minutes", "hours": "hours", "years": "years", "days": "days",
         "grams": "grams", "liters": "liters", "degrees": "degrees", "percent": "percent", "kelvin": "kelvin",
         "atm": "atm", "volts": "volts", "amperes": "amperes", "celsius": "°C", "watts": "watts", "mw": "MW",
         "mwh": "MWh", "gb": "GB", "au": "AU", "bpm": "bpm", "tonnes": "tonnes", "hectares": "hectares",
         "seconds": "seconds"}
_RANGE = re.compile(r"^(-?[\d.]+)-(-?[\d.]+)$")


def words(name: str) -> str:
    return name.replace("_", " ")


def split_unit(name: str) -> tuple[str, str | None]:
    """``distance_km`` -> ("distance", "km"); ``mg_per_kg`` and names without a unit suffix -> (words, None)."""
    parts = name.split("_")
    if len(parts) > 1 and parts[-1] in UNITS and parts[-2] != "per":
        return " ".join(parts[:-1]), UNITS[parts[-1]]
    return words(name), None


def fmt_number(v) -> str:
    return str(v)


@dataclass
class Param:
    """One parameter: its name, kind (``date``, ``float`` ...), kind argument, and whether it is required."""

    name: str
    kind: str
    arg: str | None = None
    required: bool = True
    default: object = None

    # -- schema ----------------------------------------------------------------------------------------
    def schema(self) -> dict:
        w, unit = split_unit(self.name)
        k, a = self.kind, self.arg
        desc = w[0].upper() + w[1:] + (f" in {unit}" if unit else "")
        if k in ("int", "count", "year"):
            s = {"type": "integer"}
            lo, hi = self._range()
            if k == "count":
                desc = f"Number of {w}"
            if k == "year":
                desc += " (four digits)"
            s.update(minimum=int(lo), maximum=int(hi))
        elif k == "float":
            s = {"type": "number"}
        elif k == "bool":
            s, desc = {"type": "boolean"}, f"Whether to use {w}" if not w.startswith("include") else f"Whether to {w}"
        elif k == "enum":
            s = {"type": "string", "enum": a.split("|")}
        elif k == "date":
            s, desc = {"type": "string", "format": "date"}, f"{desc} in YYYY-MM-DD format"
        elif k == "time":
            s, desc = {"type": "string"}, f"{desc} in 24-hour HH:MM format"
        elif k == "email":
            s, desc = {"type": "string", "format": "email"}, f"{desc} (email address)"
        elif k == "code":
            s, desc = {"type": "string"}, f"{desc}, such as {a}-{'0' * 5}"
        elif k == "code3":
            s, desc = {"type": "string"}, f"{desc} (three-letter code)"
        elif k == "list":
            item = {"type": "number"} if a == "number" else {"type": "string"}
            if a == "email":
                item["format"] = "email"
            s, desc = {"type": "array", "items": item}, f"List of {w}"
        elif k == "object":
            fields = a.split(",")
            s = {"type": "object", "properties": {f: {"type": "number", "description": _cap(split_unit(f)[0])
                                                     + (f" in {split_unit(f)[1]}" if split_unit(f)[1] else "")}
                                                  for f in fields}, "required": fields}
            desc = f"{desc}: " + ", ".join(split_unit(f)[0] for f in fields)
        elif k == "ip":
            s, desc = {"type": "string", "format": "ipv4"}, f"{desc} (IPv4 address)"
        else:  # city, country, person, company, topic, title, word, language, currency, color
            s = {"type": "string"}
            if k == "language":
                desc += " (ISO 639-1 code, e.g. 'en')"
            if k == "currency":
                desc += " (ISO 4217 code, e.g. 'USD')"
        s["description"] = desc + ("" if self.required or self.default is None
                                   else f". Default {self.default!r}" if not isinstance(self.default, bool)
                                   else f". Default {str(self.default).lower()}")
        if not self.required and self.default is not None:
            s["default"] = self.default
        return s

    def _range(self):
        m = _RANGE.match(self.arg or "")
        if not m:
            return (1900, 2030) if self.kind == "year" else (0, 100)
        return float(m.group(1)), float(m.group(2))

    # -- values and how a user says them ---------------------------------------------------------------
    def value(self, rng: random.Random):
        k, a = self.kind, self.arg
        if k in ("int", "count", "year"):
            lo, hi = self._range()
            return rng.randint(int(lo), int(hi))
        if k == "float":
            lo, hi = self._range()
            v = round(rng.uniform(lo, hi), rng.choice([0, 1, 1, 2, 2]))
            return int(v) if v == int(v) else v
        if k == "bool":
            return rng.random() < 0.5
        if k == "enum":
            return rng.choice(a.split("|"))
        if k == "date":
            return f"{rng.randint(2024, 2027)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if k == "time":
            return f"{rng.randint(6, 22):02d}:{rng.choice(['00', '15', '30', '45'])}"
        if k == "code":
            return f"{a}-{rng.randint(10000, 99999)}"
        if k == "code3":
            return "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(3))
        if k == "list":
            n = rng.randint(2, 4)
            if a == "number":
                return [round(rng.uniform(0, 100), 1) for _ in range(n)]
            pool = {"tag": L.TAGS, "email": None, "city": L.CITIES}[a]
            if pool is None:
                return [_email(rng) for _ in range(n)]
            return rng.sample(pool, n)
        if k == "object":
            return {f: round(rng.uniform(5, 120), 1) for f in a.split(",")}
        if k == "ip":
            return ".".join(str(rng.randint(1, 254)) for _ in range(4))
        if k == "email":
            return _email(rng)
        if k == "person":
            return f"{rng.choice(L.FIRST)} {rng.choice(L.LAST)}"
        pool = {"city": L.CITIES, "country": L.COUNTRIES, "company": L.COMPANIES, "topic": L.TOPICS,
                "title": L.TITLES, "word": L.WORDS, "language": L.LANGUAGES, "currency": L.CURRENCIES,
                "color": L.COLORS}[k]
        return rng.choice(pool)

    def say(self, value, rng: random.Random, bare_ok: bool) -> str:
        """The words that ask for ``value``: always contain the value (booleans: the parameter's words).
        ``bare_ok``: no other parameter of the function has this kind, so a phrase without the name is clear."""
        w, unit = split_unit(self.name)
        k = self.kind
        if k == "bool":
            return rng.choice([f"with {w}", f"{w} enabled", f"{w} on"] if value
                              else [f"without {w}", f"{w} disabled", f"{w} off"])
        if k == "list":
            text = join(value)
            return rng.choice([f"{w} {text}", f"{w}: {text}", f"{w} set to {text}"])
        if k == "object":
            inner = ", ".join(f"{split_unit(f)[0]} {fmt_number(v)}{' ' + split_unit(f)[1] if split_unit(f)[1] else ''}"
                              for f, v in value.items())
            return f"{w} of {inner}"
        v = fmt_number(value) if isinstance(value, (int, float)) else value
        options = []
        if k in ("int", "float"):
            options = ([f"{w} of {v} {unit}", f"a {w} of {v} {unit}", f"{w} = {v} {unit}"] if unit
                       else [f"{w} {v}", f"{w} of {v}", f"{w} = {v}", f"{w} set to {v}"])
        elif k == "count":
            options = [f"{v} {w}"] if " " not in w and w.endswith("s") else [f"{w} {v}", f"{w} of {v}"]
        elif self.name == "origin":
            options = [f"from {v}"]
        elif self.name == "destination":
            options = [f"to {v}"]
        else:
            options = [f"{w} {v}", f"{w} {v}", f"{w}: {v}", f"{w} '{v}'"]
            if bare_ok and k in ("city", "country"):
                options += [f"in {v}"]
            if bare_ok and k == "date":
                options += [f"on {v}", f"for {v}"]
            if bare_ok and k == "time":
                options += [f"at {v}"]
        return rng.choice(options)


def plural(noun: str) -> str:
    if noun.endswith("y") and noun[-2:-1] not in tuple("aeiou"):
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _email(rng) -> str:
    return f"{rng.choice(L.FIRST).lower()}.{rng.choice(L.LAST).lower()}@{rng.choice(['example.com', 'mail.test'])}"


def join(values) -> str:
    vs = [fmt_number(v) if isinstance(v, (int, float)) else str(v) for v in values]
    return vs[0] if len(vs) == 1 else ", ".join(vs[:-1]) + " and " + vs[-1]


def parse_param(spec: str, required: bool = True) -> Param:
    name, kind, *rest = spec.split(":", 2)
    return Param(name, kind, rest[0] if rest else None, required)


@dataclass
class Function:
    """A generated tool: the schema a model sees and what the row builder needs to ask for it."""

    name: str
    description: str
    params: list[Param]
    domain: str
    action: str            # get / search / create / update / cancel / calculate
    subject: str           # the thing or quantity it acts on
    attr: str | None = None
    id_param: str | None = None
    verb: str = ""         # the verb its name uses (fetch, book, compute ...)
    extra: dict = field(default_factory=dict)

    @property
    def signature(self) -> tuple:
        """What it does; two functions with one signature could both serve a request (never offered together)."""
        return self.domain, self.subject, self.action

    def spec(self) -> ToolSpec:
        props = {p.name: p.schema() for p in self.params}
        return ToolSpec(self.name, self.description, {"type": "object", "properties": props,
                                                      "required": [p.name for p in self.params if p.required]})

    @property
    def required(self) -> list[Param]:
        return [p for p in self.params if p.required]


VERBS = {"get": ["get", "fetch", "retrieve"], "search": ["search", "find", "list"],
         "create": ["create", "add", "register"], "update": ["update", "modify", "change"],
         "cancel": ["cancel", "delete", "remove", "archive"], "calculate": ["calculate", "compute", "estimate"]}


BOOKABLE = {"aviation", "hospitality", "rail", "rideshare", "restaurants", "healthcare", "events", "automotive",
            "pets", "calendar", "movies", "real_estate"}


def _style_name(rng, verb: str, subject: str, attr: str | None, domain: str) -> str:
    subj = subject.replace(" ", "_")
    core = f"{verb}_{subj}" + (f"_{attr}" if attr else "")
    r = rng.random()
    if r < 0.6:
        return core
    if r < 0.85:  # module-style, as many real APIs are
        return f"{subj}.{verb}" + (f"_{attr}" if attr else "") if rng.random() < 0.5 else f"{domain}.{core}"
    return "".join(p if i == 0 else p[:1].upper() + p[1:] for i, p in enumerate(core.split("_")))


def _things(domain: str) -> list[tuple[str, Param]]:
    out = []
    for t in L.DOMAINS[domain][0]:
        ent, spec = t.split("=", 1)
        out.append((ent, parse_param(spec)))
    return out


def _optional(rng, pool: list[str], k: int, taken: set[str]) -> list[Param]:
    cand = [s for s in pool if s.split(":")[0] not in taken]
    out = []
    for s in rng.sample(cand, min(k, len(cand))):
        p = parse_param(s, required=False)
        if p.kind == "bool":
            p.default = False
        elif p.kind == "enum" and rng.random() < 0.6:
            p.default = p.arg.split("|")[0]
        out.append(p)
    return out


def build_function(rng: random.Random, domain: str) -> Function:
    """One function of ``domain``: an archetype, a subject, parameters and a name, all drawn from ``rng``."""
    _, pool, quantities = L.DOMAINS[domain]
    action = rng.choices(["get", "search", "create", "update", "cancel", "calculate"],
                         [4, 2, 2, 1, 1, 3 if quantities else 0])[0]
    verb = rng.choice(VERBS[action] + (["book", "schedule"] if action == "create" and domain in BOOKABLE else []))
    if action == "calculate":
        quantity, inputs = rng.choice(quantities)
        params = [parse_param(s) for s in inputs]
        taken = {p.name for p in params}
        if rng.random() < 0.35:
            params.append(Param("round_to", "int", "0-6", required=False, default=2))
        if rng.random() < 0.25:
            params += _optional(rng, [s for s in pool if ":enum:" in s or ":bool" in s], 1, taken)
        subject = quantity
        name = _style_name(rng, verb, quantity, None, domain)
        desc = f"{_cap(verb)} the {quantity} from " + join([split_unit(p.name)[0] for p in params if p.required]) + "."
        return Function(name, desc, params, domain, action, subject, verb=verb)
    ent, id_param = rng.choice(_things(domain))
    if action == "get":
        attr = rng.choice(L.GET_ATTRS)
        params = [id_param] + _optional(rng, pool, rng.choice([0, 0, 1, 2]), {id_param.name})
        name = _style_name(rng, verb, ent, attr, domain)
        desc = f"{_cap(verb)} the {attr} of {article(ent)} {words(ent)} by its {words(id_param.name)}."
        return Function(name, desc, params, domain, action, ent, attr=attr, id_param=id_param.name, verb=verb)
    if action in ("update", "cancel"):
        params = [id_param]
        if action == "update":
            params += [parse_param(s) for s in rng.sample(pool, 1)]
            params += _optional(rng, pool, rng.choice([0, 1]), {p.name for p in params})
        elif rng.random() < 0.5:
            params.append(Param("notify", "bool", required=False, default=False))
        name = _style_name(rng, verb, ent, None, domain)
        fields = ", ".join(words(p.name) for p in params[1:] if p.required)
        desc = (f"{_cap(verb)} {article(ent)} {words(ent)}" + (f": set its {fields}" if fields else "")
                + f" (the {words(ent)} is named by its {words(id_param.name)}).")
        return Function(name, desc, params, domain, action, ent, id_param=id_param.name, verb=verb)
    n_req = rng.choice([1, 1, 2]) if action == "search" else rng.choice([2, 2, 3, 4])
    req = [parse_param(s) for s in rng.sample(pool, min(n_req, len(pool)))]
    params = req + _optional(rng, pool, rng.choice([0, 1, 2, 3]), {p.name for p in req})
    subject = ent if action == "create" else plural(ent)
    name = _style_name(rng, verb, subject, None, domain)
    by = join([words(p.name) for p in req])
    desc = (f"{_cap(verb)} {plural(words(ent))} by {by}." if action == "search"
            else f"{_cap(verb)} {article(ent)} {words(ent)} with the given {by}.")
    return Function(name, desc, params, domain, action, ent, verb=verb)


def build_catalog(size: int = 3000, seed: int = 0, exclude: set[str] = frozenset()) -> list[Function]:
    """``size`` functions with distinct names, none of them in ``exclude``, spread round-robin over the domains."""
    rng = random.Random(f"fctune-schemas:{seed}")
    domains = sorted(L.DOMAINS)
    seen: set[str] = set()
    excluded = {n.lower() for n in exclude}
    out: list[Function] = []
    attempts = 0
    while len(out) < size:
        attempts += 1
        if attempts > size * 40:
            raise ValueError(f"only {len(out)} distinct function names could be generated (asked for {size})")
        fn = build_function(rng, domains[len(out) % len(domains)])
        if fn.name in seen or fn.name.lower() in excluded:
            continue
        seen.add(fn.name)
        out.append(fn)
    return out
