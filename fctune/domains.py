"""Domain detection for the domain-diversity suite.

Rule, in order:
1. the example's own category fields (``metadata.domain`` set by the offline source, then Hermes
   ``category``/``subcategory``) when one of them names a domain by its keywords;
2. otherwise keyword votes over the offered tools' names and descriptions (names count double);
3. no vote: ``"other"`` (reported by the suite, never silently dropped).

Keywords match whole words or word prefixes in snake_case/camelCase-split text.
"""

from __future__ import annotations

import re
from collections import Counter

DOMAINS = ("weather", "search", "e-commerce", "calendar", "maps", "communication", "finance", "database",
           "files", "social")
OTHER = "other"

KEYWORDS: dict[str, tuple[str, ...]] = {
    "weather": ("weather", "forecast", "temperature", "climate", "humidity", "rain", "precipitation", "uv",
                "air quality", "wind"),
    "search": ("search", "web search", "lookup", "query engine", "find information", "news", "wikipedia",
               "encyclopedia", "knowledge"),
    "e-commerce": ("product", "cart", "order", "shopping", "checkout", "ecommerce", "e-commerce", "purchase",
                   "inventory", "store", "coupon", "shipping", "retail"),
    "calendar": ("calendar", "event", "meeting", "schedule", "appointment", "reminder", "availability",
                 "agenda"),
    "maps": ("map", "maps", "route", "directions", "navigation", "distance", "geocode", "location", "nearby",
             "places", "travel time", "commute"),
    "communication": ("email", "mail", "message", "sms", "chat", "notify", "notification", "call", "slack",
                      "inbox", "send"),
    "finance": ("stock", "finance", "financial", "payment", "invoice", "currency", "exchange rate", "loan",
                "mortgage", "bank", "transaction", "budget", "crypto", "portfolio", "tax", "interest"),
    "database": ("database", "sql", "query", "table", "record", "row", "insert", "schema", "collection",
                 "db"),
    "files": ("file", "files", "folder", "directory", "upload", "download", "document", "storage", "path",
              "pdf", "zip"),
    "social": ("social", "post", "tweet", "follower", "followers", "like", "comment", "profile", "feed",
               "hashtag", "instagram", "twitter", "friend"),
}

_SPLIT = re.compile(r"[^a-z0-9]+")


def _words(text: str) -> str:
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text or "")
    return " " + " ".join(w for w in _SPLIT.split(text.lower()) if w) + " "


_KW = {d: [_words(k).strip() for k in kws] for d, kws in KEYWORDS.items()}


def _votes(text: str) -> Counter:
    words = _words(text)
    votes: Counter = Counter()
    for domain, kws in _KW.items():
        for kw in kws:
            if f" {kw} " in words or f" {kw}" in words and len(kw) >= 5:
                votes[domain] += 1
    return votes


def normalize_domain(name: str | None) -> str | None:
    """Map a free-form label (e.g. 'E-commerce Platforms', 'ecommerce') to one of DOMAINS, if it names one."""
    if not name:
        return None
    key = name.strip().lower().replace("_", "-")
    if key in DOMAINS:
        return key
    compact = re.sub(r"[^a-z]", "", key)
    for d in DOMAINS:
        if compact.startswith(re.sub(r"[^a-z]", "", d)):
            return d
    votes = _votes(name)
    if votes:
        top = votes.most_common()
        if len(top) == 1 or top[0][1] > top[1][1]:
            return top[0][0]
    return None


def detect_domain(tools, metadata: dict | None = None) -> str:
    """The domain of an example from its category fields, else its tools' names and descriptions."""
    metadata = metadata or {}
    for key in ("domain", "category", "subcategory"):
        d = normalize_domain(metadata.get(key))
        if d:
            return d
    votes: Counter = Counter()
    for t in tools:
        name = getattr(t, "name", None) or (t.get("name") if isinstance(t, dict) else "")
        desc = getattr(t, "description", None) or (t.get("description", "") if isinstance(t, dict) else "")
        for dom, n in _votes(name).items():
            votes[dom] += 2 * n
        votes.update(_votes(desc))
    if not votes:
        return OTHER
    top = votes.most_common()
    return top[0][0]
