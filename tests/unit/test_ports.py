"""Ports for the local stack: never from the range outgoing connections draw from, never handed out twice."""

from __future__ import annotations

import socket

from modelrollout.devcluster import cluster


def test_free_ports_lie_below_the_ephemeral_range_are_distinct_and_bindable():
    low = cluster._ephemeral_low()
    ports = [cluster.free_port() for _ in range(200)]
    assert len(set(ports)) == 200
    assert all(cluster.LOWEST_PORT <= port < low for port in ports)
    for port in ports[:20]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_something_listens_on_is_never_handed_out(monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        picks = iter([busy, busy, busy + 1 if busy + 1 < 65536 else busy - 1])
        monkeypatch.setattr(cluster.random, "randrange", lambda low, high: next(picks))
        monkeypatch.setattr(cluster, "_ephemeral_low", lambda: 65536)
        assert cluster.free_port() != busy
