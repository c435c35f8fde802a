"""A deterministic, seeded generator of function-calling conversations (the documented offline source).

Scenarios (``metadata.scenario``) and their shares by default:
single calls with 0-3 distractor tools (35%), parallel calls (10%), requests no tool fits (7%), requests
missing a required argument where the assistant must ask (5%), multi-turn clarification / correction
(9%), sequential calls with a tool result in between (9%), context-dependent calls whose value comes
from an earlier turn (9%), and structured JSON extraction against a JSON Schema (16%). Domains are drawn
round-robin over the ten domains, so every domain is equally present.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from fctune.offline.catalog import (
    ACKS,
    CLARIFY,
    CONTEXT_SENTENCES,
    INTENTS,
    IRRELEVANT,
    IRRELEVANT_ANSWER,
    TOOL_BY_NAME,
    TOOLS,
    _slot,
)
from fctune.offline.structured import STRUCTURED_TASKS
from fctune.schema import Example, Expected, Message, ToolCall

SOURCE = "fctune-offline-v1"
DOMAIN_LIST = list(TOOLS)
DEFAULT_MIX = {
    "single": 0.35, "parallel": 0.10, "irrelevant": 0.07, "needs_clarification": 0.05,
    "clarification": 0.09, "sequential": 0.09, "context_dependent": 0.09, "structured": 0.16,
}


def _distractors(rng: random.Random, domain: str, keep: set[str], k: int):
    pool = [t for d, ts in TOOLS.items() for t in ts if t.name not in keep]
    same = [t for t in TOOLS[domain] if t.name not in keep]
    picks = []
    if same and k:
        picks.append(rng.choice(same))
    rest = [t for t in pool if t not in picks]
    picks += rng.sample(rest, max(0, k - len(picks)))
    return picks


def _offer(rng, domain, names: list[str], max_extra: int = 3):
    tools = [TOOL_BY_NAME[n] for n in dict.fromkeys(names)]
    k = 0 if rng.random() < 0.4 else rng.randint(1, max_extra)
    tools += _distractors(rng, domain, set(names), k)
    rng.shuffle(tools)
    return tools


def _call_id(i: int) -> str:
    return f"call_{i}"


# -- scenarios: each returns (messages, tools, expected, extra metadata) ---------------------------------
def _single(rng, domain):
    intent = rng.choice(INTENTS[domain])
    text, args, _ = intent.draw(rng)
    return [Message("user", text)], _offer(rng, domain, [intent.tool]), \
        Expected("tool_calls", [ToolCall(intent.tool, args)]), {}


def _parallel(rng, domain):
    a = rng.choice(INTENTS[domain])
    b = a if rng.random() < 0.5 else rng.choice(INTENTS[domain])
    t1, args1, _ = a.draw(rng)
    for _ in range(10):
        t2, args2, _ = b.draw(rng)
        if args2 != args1 or a.tool != b.tool:
            break
    text = f"{t1} Also, {t2[0].lower()}{t2[1:]}"
    calls = [ToolCall(a.tool, args1), ToolCall(b.tool, args2)]
    return [Message("user", text)], _offer(rng, domain, [a.tool, b.tool], 2), Expected("tool_calls", calls), {}


def _irrelevant(rng, domain):
    text = rng.choice(IRRELEVANT)
    tools = list(rng.sample(TOOLS[domain], min(len(TOOLS[domain]), rng.randint(1, 3))))
    return [Message("user", text)], tools, Expected("no_call", text=IRRELEVANT_ANSWER), {}


def _clarify_row(rng, domain):
    options = [c for c in CLARIFY if TOOL_BY_NAME[c[0]] in TOOLS[domain]] or list(CLARIFY)
    return rng.choice(options)


def _required_intent(tool: str):
    spec = TOOL_BY_NAME[tool]
    for intents in INTENTS.values():
        for it in intents:
            if it.tool == tool and set(it.args) == set(spec.required):
                return it
    raise KeyError(tool)


def _needs_clarification(rng, domain):
    tool, ask, question, _arg, _slot_name, _reply = _clarify_row(rng, domain)
    values = {s: _slot(s, rng) for s in _required_intent(tool).args.values()}
    text = ask.format(**{k: v[0] for k, v in values.items()})
    return [Message("user", text)], _offer(rng, domain, [tool], 2), Expected("no_call", text=question), {}


def _clarification(rng, domain):
    if rng.random() < 0.5:
        tool, ask, question, arg, slot_name, reply = _clarify_row(rng, domain)
        intent = _required_intent(tool)
        values = {s: _slot(s, rng) for s in intent.args.values()}
        if tool == "convert_currency" and values["cur2"][1] == "USD":
            values["cur2"] = ("EUR", "EUR")
        values.setdefault(slot_name, _slot(slot_name, rng))
        fmt = {k: v[0] for k, v in values.items()}
        args = {a: values[s][1] for a, s in intent.args.items()}
        args[arg] = values[slot_name][1]
        if tool == "convert_currency":
            args["from_currency"] = "USD"
        msgs = [Message("user", ask.format(**fmt)), Message("assistant", question),
                Message("user", reply.format(**fmt))]
        return msgs, _offer(rng, domain, [tool], 2), Expected("tool_calls", [ToolCall(tool, args)]), \
            {"multi_turn_variant": "completion"}
    # correction: a call was made, then the user changes one value
    intent = rng.choice([it for it in INTENTS[domain] if it.args])
    text, args, values = intent.draw(rng)
    arg, slot_name = next(iter(intent.args.items()))
    for _ in range(10):
        new_phrase, new_value = _slot(slot_name, rng)
        if new_value != args[arg]:
            break
    fixed = dict(args, **{arg: new_value})
    msgs = [Message("user", text),
            Message("assistant", None, tool_calls=[ToolCall(intent.tool, args, _call_id(0))]),
            Message("tool", json.dumps({"status": "ok"}), tool_call_id=_call_id(0), name=intent.tool),
            Message("assistant", "Done."),
            Message("user", f"Sorry, I meant {new_phrase}, not {values[slot_name][0]}. Please redo it.")]
    return msgs, _offer(rng, domain, [intent.tool], 2), Expected("tool_calls", [ToolCall(intent.tool, fixed)]), \
        {"multi_turn_variant": "correction"}


def _context_dependent(rng, domain):
    candidates = [it for it in INTENTS[domain] if it.refer and any(s in CONTEXT_SENTENCES for s in it.args.values())]
    intent = rng.choice(candidates)
    anchor = next(s for s in intent.args.values() if s in CONTEXT_SENTENCES)
    _, args, values = intent.draw(rng)
    fmt = {k: v[0] for k, v in values.items() if not k.startswith("=")}
    msgs = [Message("user", rng.choice(CONTEXT_SENTENCES[anchor]).format(**fmt)),
            Message("assistant", rng.choice(ACKS)),
            Message("user", rng.choice(intent.refer).format(**fmt))]
    return msgs, _offer(rng, domain, [intent.tool], 2), Expected("tool_calls", [ToolCall(intent.tool, args)]), {}


def _seq(rng) -> dict[str, Callable]:
    """Sequential chains: user text, first call, tool result, and the scored call using the result."""
    def search_then_cart():
        prod, q = rng.choice(["desk lamp", "yoga mat", "phone charger", "backpack"]), rng.randint(2, 4)
        pid = f"P-{rng.randint(1000, 9999)}"
        return (f"Find a {prod} and add {q} of the top result to my cart.",
                ToolCall("search_products", {"query": prod}),
                {"results": [{"product_id": pid, "name": prod.title(), "price": rng.randint(10, 90)}]},
                ToolCall("add_to_cart", {"product_id": pid, "quantity": q}), "e-commerce")

    def geocode_then_nearby():
        street = f"{rng.choice(['5 Main Street', '88 King Road', '42 Elm Avenue'])}, {rng.choice(['Oslo', 'Lima'])}"
        lat, lng = round(rng.uniform(-60, 60), 4), round(rng.uniform(-120, 120), 4)
        kind = rng.choice(["cafe", "pharmacy", "hotel"])
        return (f"Get the coordinates of {street}, then find a {kind} near those coordinates.",
                ToolCall("geocode_address", {"address": street}), {"lat": lat, "lng": lng},
                ToolCall("find_nearby_places", {"location": f"{lat},{lng}", "place_type": kind}), "maps")

    def track_then_sms():
        oid, phone = f"ORD-{rng.randint(100000, 999999)}", f"+1-555-{rng.randint(1000, 9999)}"
        eta = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        return (f"Check order {oid} and text the delivery date to {phone}.",
                ToolCall("track_order", {"order_id": oid}), {"status": "in transit", "estimated_delivery": eta},
                ToolCall("send_sms", {"phone_number": phone, "message": f"Your order arrives on {eta}."}),
                "e-commerce")

    def availability_then_event():
        people = [f"{p}@example.com" for p in rng.sample(["alice", "bob", "carol", "dan"], 2)]
        date, dur = f"2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}", rng.choice([30, 45, 60])
        slot = f"{date}T{rng.choice(['10:00', '14:30', '16:00'])}"
        return (f"Find when {people[0]} and {people[1]} are both free for {dur} minutes on {date} and book "
                f"'Sync' at the first free slot.",
                ToolCall("check_availability", {"participants": people, "date": date, "duration_minutes": dur}),
                {"free_slots": [slot]},
                ToolCall("create_event", {"title": "Sync", "start": slot, "duration_minutes": dur,
                                          "attendees": people}), "calendar")

    def price_then_convert():
        sym, cur = rng.choice(["AAPL", "MSFT", "NVDA"]), rng.choice(["EUR", "GBP", "JPY"])
        price = round(rng.uniform(100, 900), 2)
        return (f"Get the price of {sym} and convert it from USD to {cur}.",
                ToolCall("get_stock_price", {"symbol": sym}), {"symbol": sym, "price": price, "currency": "USD"},
                ToolCall("convert_currency", {"amount": price, "from_currency": "USD", "to_currency": cur}),
                "finance")

    def list_then_read():
        folder = rng.choice(["/srv/logs", "/data/exports", "/home/user/reports"])
        name = rng.choice(["error.log", "sales.csv", "notes.txt"])
        return (f"List {folder} and open the first file in it.",
                ToolCall("list_directory", {"path": folder}), {"files": [name, "other.txt"]},
                ToolCall("read_file", {"path": f"{folder}/{name}"}), "files")

    def query_then_post():
        table, n = rng.choice(["orders", "tickets", "customers"]), rng.randint(10, 999)
        channel = rng.choice(["general", "support", "engineering"])
        q = f"SELECT COUNT(*) FROM {table}"
        return (f"Count the rows in {table} with `{q}` and post the number to #{channel}.",
                ToolCall("run_sql_query", {"query": q}), {"rows": [{"count": n}]},
                ToolCall("post_chat_message", {"channel": channel, "text": f"{table}: {n} rows"}), "database")

    def trending_then_post():
        platform, topic = rng.choice(["twitter", "mastodon"]), rng.choice(["solareclipse", "worldcup", "pycon"])
        return (f"What's the top trending topic on {platform}? Post 'Thoughts on this?' about it there, "
                f"tagged with it.",
                ToolCall("get_trending_topics", {"platform": platform}), {"topics": [topic, "other"]},
                ToolCall("create_post", {"platform": platform, "content": "Thoughts on this?", "hashtags": [topic]}),
                "social")

    def weather_then_email():
        city, to = rng.choice(["Oslo", "Seoul", "Lima"]), f"{rng.choice(['kate', 'omar'])}@example.com"
        temp = rng.randint(-5, 30)
        return (f"Check the weather in {city} and email {to} the temperature, subject 'Weather'.",
                ToolCall("get_current_weather", {"location": city}), {"temperature": temp, "unit": "celsius"},
                ToolCall("send_email", {"to": [to], "subject": "Weather", "body": f"It is {temp} degrees in {city}."}),
                "weather")

    def news_then_post():
        topic, channel = rng.choice(["inflation", "AI regulation", "coral reefs"]), rng.choice(["general", "random"])
        title = rng.choice(["Markets react", "New rules announced", "Scientists report progress"])
        return (f"Find the latest news on {topic} and post the first headline to #{channel}.",
                ToolCall("search_news", {"query": topic}), {"articles": [{"title": title, "source": "Wire"}]},
                ToolCall("post_chat_message", {"channel": channel, "text": title}), "search")

    return {f.__name__: f for f in (search_then_cart, geocode_then_nearby, track_then_sms, availability_then_event,
                                    price_then_convert, list_then_read, query_then_post, trending_then_post,
                                    weather_then_email, news_then_post)}


CHAIN_DOMAIN = {"search_then_cart": "e-commerce", "geocode_then_nearby": "maps", "track_then_sms": "e-commerce",
                "availability_then_event": "calendar", "price_then_convert": "finance", "list_then_read": "files",
                "query_then_post": "database", "trending_then_post": "social", "weather_then_email": "weather",
                "news_then_post": "search"}


def _sequential(rng, domain):
    chains = _seq(rng)
    name = rng.choice([c for c, d in CHAIN_DOMAIN.items() if d == domain] or list(chains))
    text, first, result, second, dom = chains[name]()
    first.id = _call_id(0)
    msgs = [Message("user", text), Message("assistant", None, tool_calls=[first]),
            Message("tool", json.dumps(result), tool_call_id=first.id, name=first.name)]
    return msgs, _offer(rng, dom, [first.name, second.name], 2), Expected("tool_calls", [second]), \
        {"chain": name, "domain": dom}


def _structured(rng, domain):
    tasks = [t for t in STRUCTURED_TASKS if t.domain == domain] or STRUCTURED_TASKS
    task = rng.choice(tasks)
    text, obj = task.build(rng)
    return [Message("user", text)], [], Expected("json", json=obj, json_schema=task.schema), {"task": task.name}


SCENARIOS = {
    "single": (_single, "single", None),
    "parallel": (_parallel, "single", None),
    "irrelevant": (_irrelevant, "single", None),
    "needs_clarification": (_needs_clarification, "single", None),
    "clarification": (_clarification, "multi", "clarification"),
    "sequential": (_sequential, "multi", "sequential"),
    "context_dependent": (_context_dependent, "multi", "context_dependent"),
    "structured": (_structured, "single", None),
}


def generate_examples(n: int, seed: int = 0, mix: dict[str, float] | None = None) -> list[Example]:
    """``n`` examples, reproducible from ``seed``; scenario shares from ``mix`` (see DEFAULT_MIX)."""
    mix = mix or DEFAULT_MIX
    unknown = set(mix) - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown scenarios {sorted(unknown)}; known: {sorted(SCENARIOS)}")
    rng = random.Random(f"fctune-offline:{seed}")
    names, weights = zip(*[(k, v) for k, v in mix.items() if v > 0], strict=True)
    out = []
    for i in range(n):
        scenario = rng.choices(names, weights)[0]
        domain = DOMAIN_LIST[i % len(DOMAIN_LIST)]
        fn, turn_type, kind = SCENARIOS[scenario]
        msgs, tools, expected, extra = fn(rng, domain)
        md = {"source": SOURCE, "source_id": f"{seed}-{i}", "domain": extra.pop("domain", domain),
              "scenario": scenario, "turn_type": turn_type, **extra}
        md["category"] = md["domain"]
        if kind:
            md["multi_turn_kind"] = kind
        ex = Example(id=f"offline-{seed}-{i:06d}", messages=msgs, tools=list(tools), expected=expected, metadata=md)
        out.append(ex)
    from fctune.formats.common import finalize

    return [finalize(e) for e in out]
