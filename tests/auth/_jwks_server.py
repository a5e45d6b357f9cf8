"""A JWKS endpoint on 127.0.0.1 for tests: serves a document (or an error status), can hold
its answers behind a gate the test opens, and counts the requests."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator

from slimwire.auth import JwtSigner, jwks_document

GATE_LIMIT = 10.0  # a held request is released after this long whatever the test does


class JwksServer:
    """A JWKS endpoint: serves ``document`` (or ``status``), holding each answer until the gate
    is open; counts the requests it received and those it holds right now."""

    def __init__(self) -> None:
        self.document = b'{"keys": []}'
        self.status = 200
        self.gate = threading.Event()
        self.gate.set()
        self.hits = 0
        self.held = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._lock:
                    outer.hits += 1
                    outer.held += 1
                try:
                    outer.gate.wait(GATE_LIMIT)
                    body = outer.document if outer.status == 200 else b"nope"
                    self.send_response(outer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with outer._lock:
                        outer.held -= 1

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"

    def publish(self, *signers: JwtSigner) -> None:
        self.document = json.dumps(jwks_document([s.public for s in signers])).encode()


@contextlib.contextmanager
def running() -> Iterator[JwksServer]:
    """A :class:`JwksServer` serving on its own thread until the block ends."""
    srv = JwksServer()
    thread = threading.Thread(target=srv.httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield srv
    finally:
        srv.gate.set()
        srv.httpd.shutdown()
        srv.httpd.server_close()
        thread.join(timeout=5)
