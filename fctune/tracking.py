"""Optional Langfuse tracing of pipeline stages.

Active when LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST are set and the ``langfuse``
package (extra ``tracking``) is installed. Otherwise every call is a no-op; a missing package with the
keys set is said once. A tracing failure never stops a run: it is logged once and tracing turns off.
"""

from __future__ import annotations

import contextlib
import logging
import os

from fctune.secrets import redact_config

log = logging.getLogger(__name__)
_KEYS = ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST")
_state = {"warned": False, "client": None, "disabled": False}


def enabled() -> bool:
    return all(os.environ.get(k) for k in _KEYS) and not _state["disabled"]


def _client():
    if _state["client"] is not None:
        return _state["client"]
    try:
        from langfuse import get_client

        _state["client"] = get_client()
    except ImportError:
        _disable("LANGFUSE_* keys are set but the langfuse package is missing: pip install -e '.[tracking]'")
    except Exception as e:  # noqa: BLE001 - never let tracing break a run
        _disable(f"Langfuse could not start ({type(e).__name__}); tracing is off for this run")
    return _state["client"]


def _disable(msg: str) -> None:
    if not _state["warned"]:
        log.warning(msg)
        _state["warned"] = True
    _state["disabled"] = True


@contextlib.contextmanager
def stage(name: str, input: dict | None = None, metadata: dict | None = None):
    """Trace one pipeline stage; yields a callable ``record(output=..., **metadata)``."""
    outputs: dict = {}

    def record(**kw):
        outputs.update(kw)

    if not enabled() or _client() is None:
        yield record
        return
    client = _client()
    try:
        span_cm = client.start_as_current_span(name=name, input=redact_config(input or {}),
                                               metadata=redact_config(metadata or {}))
        span = span_cm.__enter__()
    except Exception as e:  # noqa: BLE001
        _disable(f"Langfuse tracing failed ({type(e).__name__}); tracing is off for this run")
        yield record
        return
    try:
        yield record
    finally:
        try:
            span.update(output=redact_config(outputs))
            span_cm.__exit__(None, None, None)
            client.flush()
        except Exception as e:  # noqa: BLE001
            _disable(f"Langfuse tracing failed ({type(e).__name__}); tracing is off for this run")
