"""Keep secrets from .env out of logs, metadata and reports.

Values of secret-named environment variables (``*KEY*``, ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``),
token-looking strings (``sk-...``, ``hf_...``, bearer headers) and, inside any URL, the user and password and the
values of secret-looking query parameters (``api_token=``, ``key=``, ``sig=`` ...) are replaced by ``***``.
Endpoints are recorded by host only (:func:`endpoint_host`).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any
from urllib.parse import urlsplit

SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)
_PATTERNS = [
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{8,}"),
    re.compile(r"\b(pk|sk)-lf-[A-Za-z0-9\-]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
    re.compile(r"(?i)(api[-_]?key[\"'=:\s]+)[A-Za-z0-9._\-]{8,}"),
]
MASK = "***"
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")
_SECRET_PARAM = re.compile(r"(key|token|secret|password|passwd|pwd|sig|signature|auth|credential|session|code)", re.I)


def redact_url(url: str) -> str:
    """A URL without its credentials (``user:pw@``) and with the values of secret-looking query parameters masked."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, MASK if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:  # not parseable as a URL: keep nothing after the scheme
        return url.split("://", 1)[0] + "://" + MASK


_REGISTERED: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` from now on wherever text is written, whatever variable or flag it came from (an API key read
    from ``--api-key-env MY_VAR``, whose name says nothing of a secret)."""
    if value and len(value) >= 6:
        _REGISTERED.add(value)


def secret_values() -> list[str]:
    """Values of secret-named environment variables and registered secrets (long enough to be worth masking)."""
    return sorted({v for k, v in os.environ.items() if SECRET_NAME.search(k) and v and len(v) >= 6} | _REGISTERED,
                  key=len, reverse=True)


def mask_secret_values(text):
    """``text`` with every known secret value replaced: for what a model or an endpoint wrote (answers, errors),
    where the pattern rules of :func:`redact_text` could change a real answer but a real key must never stay."""
    if not isinstance(text, str) or not text:
        return text
    for v in secret_values():
        text = text.replace(v, MASK)
    return text


def redact_text(text: str) -> str:
    if not isinstance(text, str) or not text:
        return text
    if "://" in text:
        text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    for v in secret_values():
        text = text.replace(v, MASK)
    for pat in _PATTERNS:
        text = pat.sub(lambda m: (m.group(1) if m.lastindex else "") + MASK, text)
    return text


def redact_config(obj: Any, key: str = "") -> Any:
    """Mask secret-named fields and secret values anywhere in a config / metadata structure."""
    if isinstance(obj, dict):
        return {k: redact_config(v, str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_config(v, key) for v in obj]
    if isinstance(obj, str):
        if key and SECRET_NAME.search(key) and obj and not key.lower().endswith(("_env", "_var")):
            return MASK
        return redact_text(obj)
    return obj


def endpoint_host(url: str | None) -> str | None:
    """Scheme, host and port of an endpoint URL; credentials, path and query are dropped."""
    if not url:
        return None
    parts = urlsplit(url if "://" in url else "http://" + url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}"


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(str(record.msg))
        if record.args:
            record.args = tuple(redact_text(str(a)) if isinstance(a, str) else a for a in record.args)
        return True


def install_log_redaction() -> None:
    """Attach the redacting filter to every handler of the root logger (idempotent)."""
    root = logging.getLogger()
    for h in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in h.filters):
            h.addFilter(RedactingFilter())


def load_dotenv(path=".env", override: bool = False) -> list[str]:
    """Read KEY=VALUE lines from .env into the environment; returns the names set (never the values).

    Parsed by python-dotenv (quotes, ``export``, inline comments, a byte-order mark, as docker compose reads the same
    file); ``${VAR}`` is left as written, so a secret with a ``$`` in it arrives whole. A line without ``=`` is
    named and skipped."""
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        return []
    import dotenv

    from fctune.errors import UserError

    try:
        values = dotenv.dotenv_values(p, interpolate=False, encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text (byte {e.start}); .env is read as UTF-8") from None
    except OSError as e:
        raise UserError(f"{p}: cannot be read ({e.strerror})") from None
    names = []
    for k, v in values.items():
        if v is None:
            logging.getLogger(__name__).warning("%s: %r ignored (no '=')", p, k)
            continue
        if override or k not in os.environ:
            os.environ[k] = v
            names.append(k)
    return names
