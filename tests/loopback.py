"""A real HTTP server on loopback for tests (a webhook receiver, an evaluation service, an API stand-in):
each request goes to `answer(request)`, which returns the status and a JSON body. Shared by the unit and
integration tests."""

from __future__ import annotations

import http.server
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Answer = Callable[[Request], tuple[int, Any]]  # (status, a JSON body; bytes or str are sent as they are)


class _Server(http.server.ThreadingHTTPServer):
    """Counts a client that hung up before its answer (a caller's timeout, which tests provoke on purpose)
    instead of printing its BrokenPipe traceback into the test output; any other error is printed."""

    daemon_threads = True
    hung_up = 0

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            self.hung_up += 1
            return
        super().handle_error(request, client_address)


class LoopbackServer:
    """Serves `answer` on 127.0.0.1 (a free port) until `stop()`; keeps every request it got."""

    def __init__(self, answer: Answer) -> None:
        self.requests: list[Request] = []
        self.arrived = threading.Condition()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = Request(self.command, self.path, dict(self.headers), self.rfile.read(length))
                with owner.arrived:
                    owner.requests.append(request)
                    owner.arrived.notify_all()
                status, body = answer(request)
                data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body))
                payload = data.encode() if isinstance(data, str) else data
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, *args) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="loopback-http", daemon=True).start()

    @property
    def hung_up(self) -> int:
        """How many clients hung up before their answer was written."""
        return self._server.hung_up

    def wait_for(self, predicate: Callable[[Request], bool], what: str, timeout: float = 90.0) -> Request:
        """The first request `predicate` accepts, once it has arrived."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: any(predicate(r) for r in self.requests), timeout):
                got = [(r.method, r.path, r.body[:200]) for r in self.requests]
                raise TimeoutError(f"no {what} arrived in {timeout:.0f}s; the server got: {got}")
            return next(r for r in self.requests if predicate(r))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
