"""Structured-output (json-mode) tasks of the offline source: text in, one JSON object out, with a schema.

Every field of the target object is stated in the text, so an exact answer exists.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from fctune.offline.catalog import CITIES, FILES, FOLDERS, HANDLES, PEOPLE, PRODUCTS, TABLES


@dataclass
class StructuredTask:
    name: str
    domain: str
    schema: dict
    build: Callable[[random.Random], tuple[str, dict]]


def _obj(props: dict, required=None) -> dict:
    return {"type": "object", "properties": props, "required": list(required or props),
            "additionalProperties": False}


S, INT, N, B = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}


def _contact(rng):
    first = rng.choice(PEOPLE).capitalize()
    last = rng.choice(["Chen", "Okafor", "Silva", "Novak", "Haddad", "Kim", "Larsen"])
    company = rng.choice(["Initech", "Acme", "Contoso", "Globex", "Umbrella Labs"])
    role = rng.choice(["product manager", "data engineer", "designer", "sales lead"])
    email = f"{first.lower()}.{last.lower()}@{company.lower().replace(' ', '')}.com"
    phone = f"+1-555-{rng.randint(1000, 9999)}"
    text = (f"Extract the contact details from this note as JSON: \"Please reach {first} {last} at {email} or "
            f"{phone}; {first} works at {company} as a {role}.\"")
    return text, {"name": f"{first} {last}", "email": email, "phone": phone, "company": company, "role": role}


def _event(rng):
    title = rng.choice(["Quarterly review", "Design critique", "Board meeting", "Hackathon kickoff"])
    date = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    time = f"{rng.randint(8, 17):02d}:{rng.choice(['00', '30'])}"
    room = f"Room {rng.randint(1, 9)}{rng.choice('ABC')}"
    people = [f"{p}@example.com" for p in rng.sample(PEOPLE, 2)]
    text = (f"Turn this into a JSON event: \"{title} on {date} at {time} in {room} with {people[0]} and "
            f"{people[1]}.\"")
    return text, {"title": title, "date": date, "time": time, "location": room, "attendees": people}


def _product(rng):
    name = rng.choice(PRODUCTS).title()
    price = round(rng.uniform(5, 300), 2)
    stock = rng.randint(0, 500)
    tags = rng.sample(["electronics", "home", "office", "outdoor", "gift", "sale"], 2)
    text = (f"Create a JSON product listing: the {name} costs ${price}, {stock} are in stock, tags: "
            f"{tags[0]}, {tags[1]}.")
    return text, {"name": name, "price": price, "in_stock": stock, "tags": tags}


def _weather(rng):
    city = rng.choice(CITIES)
    temp = rng.randint(-10, 38)
    hum = rng.randint(20, 95)
    cond = rng.choice(["light rain", "clear sky", "overcast", "snow showers", "thunderstorms"])
    text = f"Convert this report to JSON: \"{city}: {temp} degrees celsius, humidity {hum}%, {cond}.\""
    return text, {"city": city, "temperature": temp, "unit": "celsius", "humidity": hum, "conditions": cond}


def _order(rng):
    oid = f"ORD-{rng.randint(100000, 999999)}"
    name = rng.choice(PEOPLE).capitalize()
    email = f"{name.lower()}@example.com"
    items = [{"sku": f"SKU-{rng.randint(100, 999)}", "qty": rng.randint(1, 5)} for _ in range(2)]
    total = round(rng.uniform(20, 500), 2)
    text = (f"Summarize this order as JSON: order {oid} for {name} ({email}): {items[0]['qty']} x "
            f"{items[0]['sku']} and {items[1]['qty']} x {items[1]['sku']}, total ${total}.")
    return text, {"order_id": oid, "customer": {"name": name, "email": email}, "items": items, "total": total}


def _transfer(rng):
    amount = rng.choice([120.5, 980, 45.25, 3000, 15.75])
    cur = rng.choice(["EUR", "USD", "GBP"])
    src, dst = f"ACC-{rng.randint(1000, 9999)}", f"ACC-{rng.randint(1000, 9999)}"
    date = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    text = f"Record this transfer as JSON: {amount} {cur} from {src} to {dst} on {date}."
    return text, {"amount": amount, "currency": cur, "from_account": src, "to_account": dst, "date": date}


def _file(rng):
    folder, name = rng.choice(FOLDERS), rng.choice(FILES)
    size = rng.randint(1, 9000)
    text = f"Describe this file as JSON: {name} in {folder}, {size} KB."
    return text, {"filename": name, "extension": name.rsplit(".", 1)[1], "folder": folder, "size_kb": size}


def _account(rng):
    handle = rng.choice(HANDLES)
    platform = rng.choice(["twitter", "instagram", "mastodon"])
    followers = rng.randint(100, 2_000_000)
    verified = rng.random() < 0.5
    text = (f"Give me JSON for this account: {handle} on {platform} has {followers} followers and is "
            f"{'verified' if verified else 'not verified'}.")
    return text, {"handle": handle, "platform": platform, "followers": followers, "verified": verified}


def _query_spec(rng):
    table = rng.choice(TABLES)
    col, val = rng.choice([("status", "open"), ("country", "FR"), ("tier", "gold")])
    limit = rng.choice([10, 25, 100])
    text = (f"Write this query request as JSON: from the {table} table, rows where {col} equals {val}, "
            f"at most {limit} rows.")
    return text, {"table": table, "filters": [{"column": col, "op": "=", "value": val}], "limit": limit}


def _trip(rng):
    a, b = rng.sample(CITIES, 2)
    stops = rng.sample([c for c in CITIES if c not in (a, b)], 2)
    mode = rng.choice(["driving", "train", "bicycling"])
    text = f"Plan as JSON: a {mode} trip from {a} to {b} stopping in {stops[0]} and {stops[1]}."
    return text, {"origin": a, "destination": b, "mode": mode, "stops": stops}


def _news_brief(rng):
    topic = rng.choice(["solar power", "chess", "jazz", "robotics"])
    count, lang = rng.randint(3, 12), rng.choice(["en", "fr", "de"])
    return f"As JSON: I want {count} news articles about {topic}, language code {lang}.", \
        {"topic": topic, "count": count, "language": lang}


STRUCTURED_TASKS = [
    StructuredTask("contact", "communication",
                   _obj({"name": S, "email": {"type": "string", "format": "email"}, "phone": S, "company": S,
                         "role": S}), _contact),
    StructuredTask("event", "calendar",
                   _obj({"title": S, "date": S, "time": S, "location": S,
                         "attendees": {"type": "array", "items": S}}), _event),
    StructuredTask("product", "e-commerce",
                   _obj({"name": S, "price": N, "in_stock": INT, "tags": {"type": "array", "items": S}}), _product),
    StructuredTask("weather_report", "weather",
                   _obj({"city": S, "temperature": N, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                         "humidity": INT, "conditions": S}), _weather),
    StructuredTask("order", "e-commerce",
                   _obj({"order_id": S, "customer": _obj({"name": S, "email": S}),
                         "items": {"type": "array", "items": _obj({"sku": S, "qty": INT})}, "total": N}), _order),
    StructuredTask("transfer", "finance",
                   _obj({"amount": N, "currency": S, "from_account": S, "to_account": S, "date": S}), _transfer),
    StructuredTask("file", "files",
                   _obj({"filename": S, "extension": S, "folder": S, "size_kb": INT}), _file),
    StructuredTask("account", "social",
                   _obj({"handle": S, "platform": S, "followers": INT, "verified": B}), _account),
    StructuredTask("query_spec", "database",
                   _obj({"table": S, "filters": {"type": "array", "items": _obj({"column": S, "op": S, "value": S})},
                         "limit": INT}), _query_spec),
    StructuredTask("trip", "maps",
                   _obj({"origin": S, "destination": S, "mode": S, "stops": {"type": "array", "items": S}}), _trip),
    StructuredTask("news_brief", "search", _obj({"topic": S, "count": INT, "language": S}), _news_brief),
]
