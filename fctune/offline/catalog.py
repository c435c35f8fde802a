"""The offline source's tools, slot values and request templates for ten domains.

Each domain has several tools with real JSON Schemas (required and optional parameters, enums, numbers,
nested objects, arrays). An :class:`Intent` is one way of asking for one call: templates with
``{slot}`` holes and the mapping from argument names to slots. A slot draws ``(phrase, value)`` so
the text says what the argument must be (``"2 units of SKU-1042"`` -> ``[{"sku": ..., "quantity": 2}]``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from fctune.schema import ToolSpec


# -- JSON Schema shorthands -----------------------------------------------------------------------------
def _s(desc, **kw):
    return {"type": "string", "description": desc, **kw}


def _i(desc, **kw):
    return {"type": "integer", "description": desc, **kw}


def _n(desc, **kw):
    return {"type": "number", "description": desc, **kw}


def _b(desc, **kw):
    return {"type": "boolean", "description": desc, **kw}


def _a(items, desc, **kw):
    return {"type": "array", "items": items, "description": desc, **kw}


def _tool(name, desc, required: dict, optional: dict | None = None) -> ToolSpec:
    props = {**required, **(optional or {})}
    return ToolSpec(name, desc, {"type": "object", "properties": props, "required": list(required)})


_ADDRESS = {"type": "object", "description": "Postal address", "properties": {
    "street": _s("Street and number"), "city": _s("City"), "postal_code": _s("Postal code"),
    "country": _s("Country")}, "required": ["street", "city", "postal_code", "country"]}

TOOLS: dict[str, list[ToolSpec]] = {
    "weather": [
        _tool("get_current_weather", "Get the current weather conditions for a city.",
              {"location": _s("City name, e.g. 'Paris'")},
              {"unit": _s("Temperature unit", enum=["celsius", "fahrenheit"], default="celsius")}),
        _tool("get_weather_forecast", "Get a daily weather forecast for the next days.",
              {"location": _s("City name"), "days": _i("Number of days to forecast", minimum=1, maximum=14)},
              {"unit": _s("Temperature unit", enum=["celsius", "fahrenheit"], default="celsius"),
               "include_hourly": _b("Include hourly detail", default=False)}),
        _tool("get_air_quality", "Get the air quality index and pollutant levels for a city.",
              {"location": _s("City name")},
              {"pollutants": _a({"type": "string", "enum": ["pm25", "pm10", "o3", "no2", "so2", "co"]},
                                "Pollutants to report")}),
    ],
    "search": [
        _tool("web_search", "Search the web and return the top results.",
              {"query": _s("Search query")},
              {"num_results": _i("How many results to return", minimum=1, maximum=50, default=10),
               "safe_search": _b("Filter explicit results", default=True)}),
        _tool("search_news", "Search recent news articles.",
              {"query": _s("Topic to search for")},
              {"from_date": _s("Earliest publication date, YYYY-MM-DD", format="date"),
               "language": _s("Article language", enum=["en", "fr", "de", "es", "it"], default="en")}),
        _tool("lookup_encyclopedia", "Look up a topic in the encyclopedia.",
              {"topic": _s("Topic or article title")},
              {"section": _s("Section of the article, e.g. 'History'")}),
    ],
    "e-commerce": [
        _tool("search_products", "Search the store catalog for products.",
              {"query": _s("What to look for")},
              {"max_price": _n("Maximum price in USD", minimum=0),
               "category": _s("Product category", enum=["electronics", "books", "home", "clothing", "sports",
                                                         "toys"])}),
        _tool("add_to_cart", "Add a product to the shopping cart.",
              {"product_id": _s("Product identifier, e.g. 'P-1042'")},
              {"quantity": _i("Number of units", minimum=1, default=1)}),
        _tool("track_order", "Get the shipping status of an order.", {"order_id": _s("Order number")}),
        _tool("place_order", "Place an order for several products.",
              {"items": _a({"type": "object", "properties": {"product_id": _s("Product identifier"),
                                                             "quantity": _i("Units", minimum=1)},
                            "required": ["product_id", "quantity"]}, "Products and quantities"),
               "shipping_address": _ADDRESS},
              {"express": _b("Express shipping", default=False)}),
    ],
    "calendar": [
        _tool("create_event", "Create a calendar event.",
              {"title": _s("Event title"), "start": _s("Start, ISO 8601 'YYYY-MM-DDTHH:MM'", format="date-time")},
              {"duration_minutes": _i("Length in minutes", minimum=5, default=60),
               "attendees": _a({"type": "string", "format": "email"}, "Attendee email addresses"),
               "location": _s("Where the event takes place")}),
        _tool("list_events", "List the events on a given day.",
              {"date": _s("Day, YYYY-MM-DD", format="date")},
              {"calendar": _s("Calendar name", enum=["work", "personal", "family"], default="work")}),
        _tool("check_availability", "Find whether people are free at the same time on a day.",
              {"participants": _a({"type": "string", "format": "email"}, "Email addresses to check"),
               "date": _s("Day, YYYY-MM-DD", format="date"),
               "duration_minutes": _i("Meeting length in minutes", minimum=5)}),
    ],
    "maps": [
        _tool("get_directions", "Get directions between two places.",
              {"origin": _s("Start address or place"), "destination": _s("Destination address or place")},
              {"mode": _s("Travel mode", enum=["driving", "walking", "bicycling", "transit"], default="driving"),
               "avoid": _a({"type": "string", "enum": ["tolls", "highways", "ferries"]}, "Features to avoid")}),
        _tool("find_nearby_places", "Find places of a given type near a location.",
              {"location": _s("Address or place to search around"),
               "place_type": _s("Kind of place", enum=["restaurant", "cafe", "pharmacy", "gas_station", "hotel",
                                                       "atm", "supermarket"])},
              {"radius_meters": _i("Search radius in meters", minimum=50, maximum=50000, default=1000)}),
        _tool("geocode_address", "Convert an address into latitude and longitude.",
              {"address": _s("Full address")}),
    ],
    "communication": [
        _tool("send_email", "Send an email.",
              {"to": _a({"type": "string", "format": "email"}, "Recipients"), "subject": _s("Subject line"),
               "body": _s("Message text")},
              {"cc": _a({"type": "string", "format": "email"}, "Carbon-copy recipients")}),
        _tool("send_sms", "Send a text message to a phone number.",
              {"phone_number": _s("Phone number in international format"), "message": _s("Text to send")}),
        _tool("post_chat_message", "Post a message to a team chat channel.",
              {"channel": _s("Channel name without '#'"), "text": _s("Message text")},
              {"urgent": _b("Mark as urgent", default=False)}),
    ],
    "finance": [
        _tool("get_stock_price", "Get the latest price of a stock.",
              {"symbol": _s("Ticker symbol, e.g. 'AAPL'")},
              {"exchange": _s("Exchange", enum=["NASDAQ", "NYSE", "LSE", "TSE"])}),
        _tool("convert_currency", "Convert an amount between currencies at today's rate.",
              {"amount": _n("Amount to convert"), "from_currency": _s("ISO 4217 code of the source currency"),
               "to_currency": _s("ISO 4217 code of the target currency")}),
        _tool("calculate_loan_payment", "Compute the monthly payment of a fixed-rate loan.",
              {"principal": _n("Loan amount"), "annual_rate": _n("Annual interest rate in percent"),
               "term_months": _i("Loan term in months", minimum=1)}),
    ],
    "database": [
        _tool("run_sql_query", "Run a read-only SQL query against the analytics database.",
              {"query": _s("SQL SELECT statement")},
              {"database": _s("Database name", enum=["analytics", "sales", "users"], default="analytics"),
               "max_rows": _i("Maximum rows to return", minimum=1, default=100)}),
        _tool("insert_record", "Insert one record into a table.",
              {"table": _s("Table name"), "record": {"type": "object", "description": "Column values"}}),
        _tool("find_records", "Find documents in a collection that match a filter.",
              {"collection": _s("Collection name"),
               "filter": {"type": "object", "description": "Field equality filter, e.g. {'status': 'active'}"}},
              {"limit": _i("Maximum number of documents", minimum=1, default=20)}),
    ],
    "files": [
        _tool("list_directory", "List the files in a directory.",
              {"path": _s("Directory path")}, {"recursive": _b("Include subdirectories", default=False)}),
        _tool("read_file", "Read a text file.",
              {"path": _s("File path")},
              {"encoding": _s("Text encoding", enum=["utf-8", "latin-1", "ascii"], default="utf-8")}),
        _tool("move_file", "Move or rename a file.",
              {"source": _s("Current path"), "destination": _s("New path")},
              {"overwrite": _b("Replace an existing file", default=False)}),
    ],
    "social": [
        _tool("create_post", "Publish a post on a social network.",
              {"platform": _s("Network", enum=["twitter", "linkedin", "instagram", "mastodon"]),
               "content": _s("Post text")},
              {"hashtags": _a({"type": "string"}, "Hashtags without '#'")}),
        _tool("get_follower_count", "Get how many followers an account has.",
              {"platform": _s("Network", enum=["twitter", "linkedin", "instagram", "mastodon"]),
               "username": _s("Account handle without '@'")}),
        _tool("get_trending_topics", "Get the trending topics on a network.",
              {"platform": _s("Network", enum=["twitter", "linkedin", "instagram", "mastodon"])},
              {"country": _s("ISO country code, e.g. 'US'"), "limit": _i("How many topics", minimum=1,
                                                                             default=10)}),
    ],
}
TOOL_BY_NAME = {t.name: t for ts in TOOLS.values() for t in ts}

# -- slot values ----------------------------------------------------------------------------------------
CITIES = ["Paris", "Tokyo", "Berlin", "Madrid", "Toronto", "Sydney", "Nairobi", "Lima", "Oslo", "Seoul",
          "Chicago", "Mumbai", "Cairo", "Lisbon", "Dublin", "Austin", "Denver", "Prague", "Vienna", "Boston",
          "Kyoto", "Cape Town", "Reykjavik", "Hanoi", "Montreal", "Zurich", "Athens", "Bogota", "Osaka", "Milan"]
PEOPLE = ["alice", "bob", "carol", "dan", "erin", "farid", "grace", "hiro", "ines", "jamal", "kate", "liam",
          "maya", "nora", "omar", "priya", "quinn", "rosa", "sven", "tara"]
DOMAINS_MAIL = ["example.com", "acme.io", "contoso.org", "initech.net"]
TOPICS = ["electric cars", "quantum computing", "the Mars rover", "renewable energy", "the World Cup",
          "inflation", "remote work", "coral reefs", "AI regulation", "the housing market", "vaccines",
          "space tourism", "the Olympics", "battery recycling", "urban gardening"]
PRODUCTS = ["wireless mouse", "noise-cancelling headphones", "yoga mat", "coffee grinder", "running shoes",
            "mechanical keyboard", "desk lamp", "water bottle", "board game", "phone charger", "backpack",
            "air fryer", "hiking boots", "bluetooth speaker", "cookbook"]
PLACES = ["the Louvre", "Central Station", "the airport", "City Hall", "the university campus",
          "the Grand Hotel", "Union Square", "the harbour", "the central library", "the stadium"]
STREETS = ["12 Rue Cler", "221B Baker Street", "1600 Amphitheatre Parkway", "5 Main Street", "88 King Road",
           "42 Elm Avenue", "7 Harbour Lane", "310 Pine Street"]
TICKERS = [("Apple", "AAPL"), ("Microsoft", "MSFT"), ("Tesla", "TSLA"), ("Amazon", "AMZN"), ("Nvidia", "NVDA"),
           ("Toyota", "TM"), ("Shell", "SHEL"), ("Netflix", "NFLX"), ("Intel", "INTC"), ("Sony", "SONY")]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "INR", "BRL", "SEK"]
TABLES = ["customers", "orders", "invoices", "employees", "products", "tickets", "shipments"]
FOLDERS = ["/home/user/reports", "/data/exports", "/srv/logs", "/home/user/photos", "/projects/alpha/docs",
           "/tmp/uploads", "/var/backups"]
FILES = ["q3_summary.pdf", "budget_2026.xlsx", "notes.txt", "config.yaml", "readme.md", "sales.csv",
         "draft_v2.docx", "error.log"]
CHANNELS = ["general", "engineering", "marketing", "support", "random", "release-team", "design"]
HANDLES = ["natgeo", "nasa", "techcrunch", "elena_codes", "chef_marco", "runwithsam", "the_daily_byte",
           "green_planet", "pixelartist", "historybuff"]
EVENTS = ["Team standup", "Quarterly review", "Dentist appointment", "Lunch with Sara", "Product demo",
          "Yoga class", "Budget planning", "Interview with a candidate", "Book club", "Sprint retrospective"]
HASHTAGS = ["launch", "opensource", "travel", "fitness", "startup", "python", "design", "climate", "food",
            "weekend"]


def _date(rng: random.Random) -> str:
    return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _email(rng: random.Random) -> str:
    return f"{rng.choice(PEOPLE)}@{rng.choice(DOMAINS_MAIL)}"


def _emails(rng: random.Random, k: int) -> list[str]:
    out: list[str] = []
    while len(out) < k:
        e = _email(rng)
        if e not in out:
            out.append(e)
    return out


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _pid(rng) -> str:
    return f"P-{rng.randint(1000, 9999)}"


def _slot(name: str, rng: random.Random):
    """Draw one slot value: ``(phrase used in the text, argument value)``."""
    if name == "city":
        c = rng.choice(CITIES)
        return c, c
    if name == "city2":
        c = rng.choice(CITIES)
        return c, c
    if name == "unit":
        u = rng.choice(["celsius", "fahrenheit"])
        return u.capitalize(), u
    if name == "days":
        d = rng.randint(2, 10)
        return str(d), d
    if name == "pollutants":
        ps = rng.sample(["pm25", "pm10", "o3", "no2"], 2)
        names = {"pm25": "PM2.5", "pm10": "PM10", "o3": "ozone", "no2": "NO2"}
        return _join([names[p] for p in ps]), ps
    if name == "topic":
        t = rng.choice(TOPICS)
        return t, t
    if name == "num_results":
        k = rng.choice([3, 5, 20, 25])
        return str(k), k
    if name == "date":
        d = _date(rng)
        return d, d
    if name == "language":
        code, word = rng.choice([("fr", "French"), ("de", "German"), ("es", "Spanish"), ("it", "Italian")])
        return word, code
    if name == "product":
        p = rng.choice(PRODUCTS)
        return p, p
    if name == "price":
        p = rng.choice([20, 25, 30, 50, 75, 100, 150, 200])
        return f"${p}", p
    if name == "category":
        c = rng.choice(["electronics", "books", "home", "sports"])
        return c, c
    if name == "product_id":
        p = _pid(rng)
        return p, p
    if name == "quantity":
        q = rng.randint(2, 6)
        return str(q), q
    if name == "order_id":
        o = f"ORD-{rng.randint(100000, 999999)}"
        return o, o
    if name == "order_items":
        items = [{"product_id": _pid(rng), "quantity": rng.randint(1, 4)} for _ in range(rng.randint(2, 3))]
        return _join([f"{it['quantity']} x {it['product_id']}" for it in items]), items
    if name == "address":
        street, city = rng.choice(STREETS), rng.choice(CITIES)
        pc = str(rng.randint(10000, 99999))
        country = rng.choice(["France", "Germany", "Canada", "Japan", "Spain", "USA"])
        return f"{street}, {city} {pc}, {country}", {"street": street, "city": city, "postal_code": pc,
                                                      "country": country}
    if name == "event":
        e = rng.choice(EVENTS)
        return e, e
    if name == "datetime":
        d, h, m = _date(rng), rng.randint(8, 18), rng.choice([0, 15, 30, 45])
        return f"{d} at {h:02d}:{m:02d}", f"{d}T{h:02d}:{m:02d}"
    if name == "duration":
        m = rng.choice([15, 30, 45, 90, 120])
        return f"{m} minutes", m
    if name == "attendees":
        es = _emails(rng, rng.randint(2, 3))
        return _join(es), es
    if name == "place":
        p = rng.choice(PLACES)
        return p, p
    if name == "street":
        s = f"{rng.choice(STREETS)}, {rng.choice(CITIES)}"
        return s, s
    if name == "mode":
        m = rng.choice(["walking", "bicycling", "transit"])
        return {"walking": "on foot", "bicycling": "by bike", "transit": "by public transport"}[m], m
    if name == "place_type":
        p = rng.choice(["restaurant", "cafe", "pharmacy", "hotel", "supermarket"])
        return p, p
    if name == "radius":
        r = rng.choice([500, 2000, 5000])
        return f"{r} meters", r
    if name == "email":
        e = _email(rng)
        return e, e
    if name == "emails":
        es = _emails(rng, 2)
        return _join(es), es
    if name == "subject":
        s = rng.choice(["Meeting notes", "Invoice reminder", "Trip itinerary", "Weekly update", "Welcome aboard"])
        return s, s
    if name == "body":
        b = rng.choice(["See you at 10.", "The report is attached.", "Thanks for your help!",
                        "Please review by Friday.", "Running 5 minutes late."])
        return b, b
    if name == "phone":
        p = f"+1-555-{rng.randint(1000, 9999)}"
        return p, p
    if name == "channel":
        c = rng.choice(CHANNELS)
        return f"#{c}", c
    if name == "company":
        n, t = rng.choice(TICKERS)
        return n, t
    if name == "ticker":
        _, t = rng.choice(TICKERS)
        return t, t
    if name == "amount":
        a = rng.choice([50, 120, 250, 1000, 1500, 3200])
        return str(a), a
    if name == "cur1":
        c = rng.choice(CURRENCIES)
        return c, c
    if name == "cur2":
        c = rng.choice(CURRENCIES)
        return c, c
    if name == "principal":
        p = rng.choice([150000, 200000, 320000, 25000, 18000])
        return f"{p:,}", p
    if name == "rate":
        r = rng.choice([3.5, 4.25, 5.0, 6.1, 7.2])
        return f"{r}%", r
    if name == "term":
        t = rng.choice([36, 60, 120, 240, 360])
        return f"{t} months", t
    if name == "table":
        t = rng.choice(TABLES)
        return t, t
    if name == "sql":
        t = rng.choice(TABLES)
        q = f"SELECT COUNT(*) FROM {t}"
        return q, q
    if name == "record":
        name_ = rng.choice(PEOPLE).capitalize()
        rec = {"name": name_, "email": _email(rng), "active": True}
        return f"name {name_}, email {rec['email']}, active true", rec
    if name == "filter":
        status = rng.choice(["active", "pending", "closed"])
        return f"status is {status}", {"status": status}
    if name == "limit":
        k = rng.choice([5, 10, 50])
        return str(k), k
    if name == "folder":
        f = rng.choice(FOLDERS)
        return f, f
    if name == "path":
        p = f"{rng.choice(FOLDERS)}/{rng.choice(FILES)}"
        return p, p
    if name == "path2":
        p = f"{rng.choice(FOLDERS)}/{rng.choice(FILES)}"
        return p, p
    if name == "platform":
        p = rng.choice(["twitter", "linkedin", "instagram", "mastodon"])
        return p.capitalize() if p != "linkedin" else "LinkedIn", p
    if name == "post_text":
        t = rng.choice(["Our new release is out today!", "Great run this morning.", "Reading a fantastic book.",
                        "Hiring two engineers this quarter.", "Sunset over the bay tonight."])
        return f'"{t}"', t
    if name == "hashtags":
        hs = rng.sample(HASHTAGS, 2)
        return _join(["#" + h for h in hs]), hs
    if name == "handle":
        h = rng.choice(HANDLES)
        return f"@{h}", h
    if name == "country":
        c = rng.choice(["US", "GB", "FR", "JP", "BR", "IN"])
        return c, c
    raise KeyError(name)


@dataclass
class Intent:
    """One way of asking for one call: templates and argument -> slot mapping."""

    tool: str
    args: dict[str, str]  # argument name -> slot name
    templates: list[str]
    # how a later turn refers to the first argument's slot when it came earlier (context-dependent rows)
    refer: list[str] = field(default_factory=list)

    def draw(self, rng: random.Random, fixed: dict | None = None):
        values = dict(fixed or {})
        for slot in self.args.values():
            if slot.startswith("="):  # a constant the template implies, e.g. "=true"
                values[slot] = ("", json.loads(slot[1:]))
            elif slot not in values:
                values[slot] = _slot(slot, rng)
        if "cur1" in values and "cur2" in values and values["cur1"][1] == values["cur2"][1]:
            other = [c for c in CURRENCIES if c != values["cur1"][1]]
            c = rng.choice(other)
            values["cur2"] = (c, c)
        text = rng.choice(self.templates).format(**{k: v[0] for k, v in values.items() if not k.startswith("=")})
        args = {a: values[s][1] for a, s in self.args.items()}
        return text, args, values


def I(tool, args, templates, refer=()):  # noqa: E743 - a short constructor keeps the table readable
    return Intent(tool, args, list(templates), list(refer))


INTENTS: dict[str, list[Intent]] = {
    "weather": [
        I("get_current_weather", {"location": "city"},
          ["What's the weather like in {city} right now?", "Is it cold in {city} today?",
           "Current weather for {city}, please.", "How's the weather in {city} at the moment?"],
          ["What's the weather like there right now?", "And how's the weather there today?"]),
        I("get_current_weather", {"location": "city", "unit": "unit"},
          ["What's the temperature in {city} in {unit}?", "Give me the current weather in {city}, in {unit}."]),
        I("get_weather_forecast", {"location": "city", "days": "days"},
          ["What's the forecast for {city} for the next {days} days?", "Show me a {days}-day forecast for {city}."],
          ["Can you get me a {days}-day forecast for that city?"]),
        I("get_weather_forecast", {"location": "city", "days": "days", "unit": "unit"},
          ["I need a {days}-day forecast for {city} in {unit}."]),
        I("get_air_quality", {"location": "city"},
          ["How's the air quality in {city}?", "Is the air clean in {city} today?"],
          ["How's the air quality there?"]),
        I("get_air_quality", {"location": "city", "pollutants": "pollutants"},
          ["What are the {pollutants} levels in {city}?"]),
    ],
    "search": [
        I("web_search", {"query": "topic"},
          ["Search the web for {topic}.", "Can you look up {topic} online?", "Find me web pages about {topic}."],
          ["Search the web for more about that topic."]),
        I("web_search", {"query": "topic", "num_results": "num_results"},
          ["Give me the top {num_results} web results for {topic}."]),
        I("search_news", {"query": "topic"},
          ["Any news about {topic}?", "Find recent news articles on {topic}."],
          ["Any recent news on that?"]),
        I("search_news", {"query": "topic", "from_date": "date"},
          ["Find news about {topic} published since {date}."]),
        I("search_news", {"query": "topic", "language": "language"},
          ["Find news about {topic} in {language}."]),
        I("lookup_encyclopedia", {"topic": "topic"},
          ["Look up {topic} in the encyclopedia.", "What does the encyclopedia say about {topic}?"]),
    ],
    "e-commerce": [
        I("search_products", {"query": "product"},
          ["Find me a {product}.", "Do you sell any {product}?", "Search the store for a {product}."],
          ["Can you search the store for that?"]),
        I("search_products", {"query": "product", "max_price": "price"},
          ["I'm looking for a {product} under {price}.", "Find a {product} that costs at most {price}."]),
        I("search_products", {"query": "product", "category": "category", "max_price": "price"},
          ["Search {category} for a {product} below {price}."]),
        I("add_to_cart", {"product_id": "product_id"},
          ["Add {product_id} to my cart.", "Put product {product_id} in the cart."],
          ["Add that product to my cart."]),
        I("add_to_cart", {"product_id": "product_id", "quantity": "quantity"},
          ["Add {quantity} units of {product_id} to my cart.", "I want {quantity} of {product_id} in my cart."]),
        I("track_order", {"order_id": "order_id"},
          ["Where is my order {order_id}?", "Track order {order_id} for me.", "What's the status of {order_id}?"],
          ["Where is that order now?"]),
        I("place_order", {"items": "order_items", "shipping_address": "address"},
          ["Order {order_items} and ship it to {address}."]),
    ],
    "calendar": [
        I("create_event", {"title": "event", "start": "datetime"},
          ["Schedule '{event}' on {datetime}.", "Put '{event}' in my calendar for {datetime}."]),
        I("create_event", {"title": "event", "start": "datetime", "duration_minutes": "duration"},
          ["Book '{event}' on {datetime} for {duration}."]),
        I("create_event", {"title": "event", "start": "datetime", "attendees": "attendees"},
          ["Set up '{event}' on {datetime} and invite {attendees}."]),
        I("list_events", {"date": "date"},
          ["What's on my calendar on {date}?", "List my events for {date}."],
          ["What's on my calendar that day?"]),
        I("check_availability", {"participants": "attendees", "date": "date", "duration_minutes": "duration"},
          ["Are {attendees} free for {duration} on {date}?"]),
    ],
    "maps": [
        I("get_directions", {"origin": "place", "destination": "street"},
          ["How do I get from {place} to {street}?", "Directions from {place} to {street}, please."]),
        I("get_directions", {"origin": "place", "destination": "street", "mode": "mode"},
          ["How do I get from {place} to {street} {mode}?"]),
        I("find_nearby_places", {"location": "street", "place_type": "place_type"},
          ["Find a {place_type} near {street}.", "Is there a {place_type} close to {street}?"],
          ["Is there a {place_type} near that address?"]),
        I("find_nearby_places", {"location": "street", "place_type": "place_type", "radius_meters": "radius"},
          ["Find a {place_type} within {radius} of {street}."]),
        I("geocode_address", {"address": "street"},
          ["What are the coordinates of {street}?", "Geocode {street} for me."],
          ["What are the coordinates of that address?"]),
    ],
    "communication": [
        I("send_email", {"to": "emails", "subject": "subject", "body": "body"},
          ["Email {emails} with the subject '{subject}' saying '{body}'."]),
        I("send_email", {"to": "emails", "subject": "subject", "body": "body", "cc": "email"},
          ["Send an email to {emails}, cc {email}, subject '{subject}', text '{body}'."]),
        I("send_sms", {"phone_number": "phone", "message": "body"},
          ["Text {phone}: '{body}'", "Send an SMS to {phone} saying '{body}'."],
          ["Send a text to that number saying '{body}'."]),
        I("post_chat_message", {"channel": "channel", "text": "body"},
          ["Post '{body}' in {channel}.", "Write '{body}' to the {channel} channel."]),
    ],
    "finance": [
        I("get_stock_price", {"symbol": "company"},
          ["What's {company}'s stock price?", "How is {company} stock trading right now?"],
          ["What's its stock price right now?"]),
        I("get_stock_price", {"symbol": "ticker"},
          ["Get me the latest price of {ticker}.", "Quote for {ticker}?"]),
        I("convert_currency", {"amount": "amount", "from_currency": "cur1", "to_currency": "cur2"},
          ["Convert {amount} {cur1} to {cur2}.", "How much is {amount} {cur1} in {cur2}?"]),
        I("calculate_loan_payment", {"principal": "principal", "annual_rate": "rate", "term_months": "term"},
          ["What's the monthly payment on a {principal} loan at {rate} over {term}?"]),
    ],
    "database": [
        I("run_sql_query", {"query": "sql"},
          ["Run this query: {sql}", "Execute `{sql}` on the analytics database."]),
        I("insert_record", {"table": "table", "record": "record"},
          ["Insert into {table}: {record}.", "Add a row to {table} with {record}."]),
        I("find_records", {"collection": "table", "filter": "filter"},
          ["Find {table} where {filter}.", "Show me the {table} whose {filter}."],
          ["Find the records in that collection whose {filter}."]),
        I("find_records", {"collection": "table", "filter": "filter", "limit": "limit"},
          ["Find at most {limit} {table} where {filter}."]),
    ],
    "files": [
        I("list_directory", {"path": "folder"},
          ["What files are in {folder}?", "List the contents of {folder}."],
          ["What's in that folder?"]),
        I("list_directory", {"path": "folder", "recursive": "=true"},
          ["List everything under {folder}, including subfolders."]),
        I("read_file", {"path": "path"},
          ["Open {path} and show me what's inside.", "Read {path}."],
          ["Read that file for me."]),
        I("move_file", {"source": "path", "destination": "path2"},
          ["Move {path} to {path2}.", "Rename {path} to {path2}."]),
    ],
    "social": [
        I("create_post", {"platform": "platform", "content": "post_text"},
          ["Post {post_text} on {platform}.", "Share {post_text} to {platform}."]),
        I("create_post", {"platform": "platform", "content": "post_text", "hashtags": "hashtags"},
          ["Post {post_text} on {platform} with {hashtags}."]),
        I("get_follower_count", {"platform": "platform", "username": "handle"},
          ["How many followers does {handle} have on {platform}?"],
          ["How many followers does that account have on {platform}?"]),
        I("get_trending_topics", {"platform": "platform"},
          ["What's trending on {platform}?"]),
        I("get_trending_topics", {"platform": "platform", "country": "country", "limit": "limit"},
          ["Show the top {limit} trending topics on {platform} in {country}."]),
    ],
}

# The slot an earlier turn mentions and a sentence that mentions it (context-dependent rows).
CONTEXT_SENTENCES = {
    "city": ["I'm flying to {city} next week.", "My sister just moved to {city}.",
             "We're thinking about a weekend in {city}."],
    "topic": ["I've been reading a lot about {topic} lately.", "My class project is about {topic}."],
    "product": ["I need a new {product} for the office."],
    "product_id": ["The one I liked was product {product_id}."],
    "order_id": ["My order number is {order_id}."],
    "date": ["My birthday is on {date}."],
    "street": ["Our new office is at {street}."],
    "phone": ["My landlord's number is {phone}."],
    "company": ["I'm thinking of investing in {company}."],
    "table": ["I'm cleaning up the {table} collection."],
    "folder": ["The exports are kept in {folder}."],
    "path": ["The meeting notes are in {path}."],
    "handle": ["Have you seen the account {handle}?"],
}
# Chit-chat turns for context-dependent rows: (assistant reply after the context sentence)
ACKS = ["Got it, thanks for letting me know.", "Noted! How can I help?", "Sounds good. What would you like to do?",
        "Thanks. Anything I can help with?"]

# Requests no offered tool fits (irrelevance rows) and the assistant's reference answer.
IRRELEVANT = [
    "Tell me a joke about penguins.", "What is 17 times 23?", "Translate 'good morning' into Spanish.",
    "Write a haiku about autumn.", "Who wrote Pride and Prejudice?", "What's the capital of Australia?",
    "Give me a synonym for 'happy'.", "How many legs does a spider have?", "Summarize the plot of Hamlet.",
    "What's a good name for a golden retriever?", "Explain what a prime number is.",
    "Recommend a classic science-fiction novel.",
]
IRRELEVANT_ANSWER = "I can't do that with the tools I have here, but I'm happy to help in another way."

# Clarification: a request that lacks a required argument, the question the assistant asks, and the
# follow-up phrasing that supplies it (or a correction of an earlier value).
CLARIFY = [
    ("get_current_weather", "What's the weather like right now?", "Which city should I check?",
     "location", "city", "{city}, please."),
    ("get_weather_forecast", "Can you get me the forecast for the next {days} days?", "For which city?",
     "location", "city", "For {city}."),
    ("track_order", "Where's my package?", "Could you give me the order number?", "order_id", "order_id",
     "It's {order_id}."),
    ("send_sms", "Text my landlord: '{body}'", "What's your landlord's phone number?",
     "phone_number", "phone", "It's {phone}."),
    ("get_stock_price", "What's the share price now?", "Which company or ticker?", "symbol", "ticker",
     "{ticker}."),
    ("list_directory", "Show me what's in the folder.", "Which folder path?", "path", "folder", "{folder}"),
    ("convert_currency", "Convert {amount} dollars for me.", "Which currency should I convert USD to?",
     "to_currency", "cur2", "To {cur2}."),
    ("find_nearby_places", "Find a {place_type} nearby.", "Near which address?", "location", "street",
     "Near {street}."),
    ("get_follower_count", "How many followers does {handle} have?", "On which platform?", "platform",
     "platform", "On {platform}."),
    ("list_events", "What do I have on my calendar?", "For which date?", "date", "date", "On {date}."),
]
