"""The lab's one HTTP GET (kubevip.lab.controlplane.http_get) against a loopback server: body, bearer
token, and a LabError naming the URL for an error status or a refused connection."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from kubevip.errors import LabError
from kubevip.lab.controlplane import http_get


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/missing":
            self.send_error(404)
            return
        body = (self.headers.get("Authorization") or "none").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        t.join()
        srv.server_close()


def test_body_and_bearer_token(server: str) -> None:
    assert http_get(f"{server}/readyz", "t0ken") == "Bearer t0ken"
    assert http_get(f"{server}/readyz", None) == "none"


def test_error_status_names_url_and_code(server: str) -> None:
    with pytest.raises(LabError, match=rf"^GET {server}/missing: HTTP 404$"):
        http_get(f"{server}/missing", None)


def test_refused_connection_names_url() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with pytest.raises(LabError, match=rf"^GET http://127.0.0.1:{port}/x: "):
        http_get(f"http://127.0.0.1:{port}/x", None, timeout=2.0)
