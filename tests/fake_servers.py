"""Tiny HTTP servers on 127.0.0.1 for the security tests: one that stands for a service inside our own
network (it records everything it is sent), one that redirects, one that answers with a page that is not
a provider error. They only ever listen on the loopback interface."""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeServer:
    base_url: str
    received: list[Received] = field(default_factory=list)


@contextmanager
def serving(answer: Callable[[Received], Answer]) -> Iterator[FakeServer]:
    """A server on a free loopback port that records each request and answers with `answer(request)`."""
    server_state = FakeServer(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            request = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                               body)
            server_state.received.append(request)
            reply = answer(request)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server_state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()


INTERNAL_PAGE = b"<html><body>internal admin console: db password hunter2</body></html>"


def internal_service_answer(request: Received) -> Answer:
    """What a service inside the network says: a 200 with data no provider would send."""
    return Answer(200, json.dumps({"internal": "data", "token": "internal-token-42"}).encode(),
                  {"content-type": "application/json"})


def redirect_to(target: str, status: int = 307) -> Callable[[Received], Answer]:
    """Redirect every request to the same path on `target` (307 keeps the method and the body)."""
    return lambda request: Answer(status, b"", {"location": target + request.path})


def html_error(status: int) -> Callable[[Received], Answer]:
    return lambda request: Answer(status, INTERNAL_PAGE, {"content-type": "text/html"})


class RebindingResolver:
    """A DNS answer that changes: public for the first `public_answers` lookups, then a loopback
    address (where one of the servers above listens). Stands in for a name whose owner repoints it
    after the base_url was checked (DNS rebinding)."""

    PUBLIC = "93.184.215.14"

    def __init__(self, *, public_answers: int, private: str = "127.0.0.1") -> None:
        self.public_answers = public_answers
        self.private = private
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return [self.PUBLIC] if len(self.lookups) <= self.public_answers else [self.private]
