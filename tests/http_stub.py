"""A real HTTP server on 127.0.0.1 for tests that need an endpoint to misbehave in a scripted way: a handler base
that answers with any status, headers and body, and a context manager that serves it on a free port."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JSON = {"Content-Type": "application/json"}


class StubHandler(BaseHTTPRequestHandler):
    def reply(self, code: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(code)
        for k, v in (JSON if headers is None else headers).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]):
    """The server's port while the block runs."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()
