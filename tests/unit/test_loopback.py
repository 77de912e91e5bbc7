"""The tests' loopback HTTP server: a client that hangs up before its answer is counted, not printed."""

from __future__ import annotations

import socket
import struct
import threading

from modelrollout.devcluster.cluster import wait_until
from tests.loopback import LoopbackServer


def test_a_client_that_hangs_up_before_its_answer_is_counted_and_prints_no_traceback(capsys):
    asked, released = threading.Event(), threading.Event()

    def answer(request):
        asked.set()
        released.wait(10)
        return 200, {"late": True}

    server = LoopbackServer(answer)
    try:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as client:
            # Closing with a zero linger resets the connection: the answer's write then fails at once.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.sendall(b"GET /slow HTTP/1.1\r\nHost: loopback\r\nContent-Length: 0\r\n\r\n")
            assert asked.wait(10), "the request never reached the answer"
        released.set()
        wait_until(lambda: server.hung_up == 1, 10, "the server to count the client that hung up", interval=0.01)
    finally:
        server.stop()
    assert [request.path for request in server.requests] == ["/slow"]
    assert "Traceback" not in capsys.readouterr().err
