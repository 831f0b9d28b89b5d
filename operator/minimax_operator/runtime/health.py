"""`/healthz` on every replica, leader or follower (kopf's own endpoint exists only while it runs).

A follower is healthy while it campaigns: restarting it would not make it lead sooner.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    role: Callable[[], str] = staticmethod(lambda: "")

    def do_GET(self) -> None:
        if self.path.split("?")[0] not in ("/healthz", "/readyz"):
            self.send_error(404)
            return
        body = f"ok {self.role()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # probes every few seconds would flood the log


def serve_health(port: int, role: Callable[[], str]) -> ThreadingHTTPServer:
    """Serve /healthz; `role` says what this replica does (leader, follower), for people reading it."""
    handler = type("Handler", (_Handler,), {"role": staticmethod(role)})
    server = ThreadingHTTPServer(("0.0.0.0", port), handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
