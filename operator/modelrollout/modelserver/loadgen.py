"""A load generator: real V2 inference requests at a steady rate, answers counted by version and status.

It sends rows of the data set (one row per request, taken in a fixed shuffled order so every window sees
the same mix), optionally drifted (chosen features scaled by 1 + drift), to `<base>/v2/models/<name>/infer`
of one base URL: a pod's address, a Service's, or later the data plane's entrypoint. Every answer is
recorded with its time, the `model_version` that answered (from the body; "" when the body says nothing,
e.g. a 5xx), and its HTTP status (0 for a connection error or timeout), so tests can compute the live share
of each version over a window and when a version first and last answered.

Use it in-process (`LoadGenerator(...).start()`, `snapshot()`, `stop()`) or as a CLI:
`python -m modelrollout.modelserver.loadgen http://10.244.0.1:8080 fraud-scorer --rps 30 --seconds 20`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

CONNECTION_ERROR = 0  # the status recorded when no HTTP answer came back


@dataclass(frozen=True)
class Answer:
    """One request's outcome."""

    at: float  # time.monotonic() when the answer (or the error) came back
    version: str
    status: int
    seconds: float


@dataclass(frozen=True)
class Snapshot:
    """The answers recorded so far, oldest first, with helpers for windows."""

    answers: tuple[Answer, ...]

    def counts(self, since: float | None = None, until: float | None = None) -> Counter[tuple[str, int]]:
        """Answers by (model_version, status) in [since, until] (monotonic times; None: unbounded)."""
        return Counter((a.version, a.status) for a in self._window(since, until))

    def shares(self, since: float | None = None, until: float | None = None) -> dict[str, float]:
        """Each version's share of the successful (2xx) answers in the window."""
        ok = Counter(a.version for a in self._window(since, until) if 200 <= a.status < 300)
        total = sum(ok.values())
        return {version: count / total for version, count in ok.items()} if total else {}

    def error_ratio(self, since: float | None = None, until: float | None = None) -> float | None:
        """Share of 5xx answers among all HTTP answers in the window; None without answers."""
        answered = [a for a in self._window(since, until) if a.status != CONNECTION_ERROR]
        if not answered:
            return None
        return sum(a.status >= 500 for a in answered) / len(answered)

    def first_answer(self, version: str) -> float | None:
        return next((a.at for a in self.answers if a.version == version), None)

    def last_answer(self, version: str) -> float | None:
        return next((a.at for a in reversed(self.answers) if a.version == version), None)

    def _window(self, since: float | None, until: float | None) -> list[Answer]:
        return [a for a in self.answers if (since is None or a.at >= since) and (until is None or a.at <= until)]


class Recorder:
    """Thread-safe store of answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: list[Answer] = []

    def record(self, answer: Answer) -> None:
        with self._lock:
            self._answers.append(answer)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(tuple(sorted(self._answers, key=lambda a: a.at)))


def request_body(row: Sequence[float]) -> bytes:
    """A V2 inference request holding one row of the data set."""
    return json.dumps(
        {"inputs": [{"name": "rows", "shape": [1, len(row)], "datatype": "FP64", "data": list(row)}]}
    ).encode()


def infer(base_url: str, model: str, row: Sequence[float], timeout: float = 10.0) -> tuple[int, dict]:
    """One inference request: (HTTP status, JSON body); for checks and tests."""
    url = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=timeout)
    try:
        path = f"{url.path.rstrip('/')}/v2/models/{urllib.parse.quote(model)}/infer"
        connection.request("POST", path, body=request_body(row), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    try:
        body = json.loads(payload) if payload else {}
    except ValueError:
        body = {"raw": payload.decode(errors="replace")}
    return response.status, body


def drifted(row: Sequence[float], indices: Sequence[int], drift: float) -> tuple[float, ...]:
    """The row with the features at `indices` scaled by 1 + drift (a shifted input distribution)."""
    return tuple(value * (1.0 + drift) if index in indices else value for index, value in enumerate(row))


def exchange(
    connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[str, int, list[str], bool]:
    """One inference request on `connection`: the model version that answered ("" without one), the HTTP
    status (CONNECTION_ERROR without an answer), the Set-Cookie headers, and whether it failed (a
    connection that failed is not to be used again)."""
    version, status, set_cookies = "", CONNECTION_ERROR, []
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        status, set_cookies = response.status, response.headers.get_all("Set-Cookie") or []
        if 200 <= status < 300:
            version = str(json.loads(payload).get("model_version") or "")
    except (OSError, http.client.HTTPException, ValueError):
        return version, status, set_cookies, True
    return version, status, set_cookies, False


class LoadGenerator:
    """Sends `rps` requests per second from a small thread pool until stopped (or `seconds` pass)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        rows: Sequence[Sequence[float]],
        rps: float = 30.0,
        drift: float = 0.0,
        drift_features: Sequence[int] = (0,),
        threads: int = 16,
        timeout: float = 5.0,
        seed: int = 0,
        headers: dict[str, str] | None = None,
    ) -> None:
        if rps <= 0:
            raise ValueError(f"rps must be > 0, got {rps}")
        if not rows:
            raise ValueError("no rows to send")
        url = urllib.parse.urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"base URL must be http://HOST[:PORT][/PATH], got {base_url!r}")
        self._host, self._port = url.hostname, url.port or 80
        self._path = f"{url.path.rstrip('/')}/v2/models/{urllib.parse.quote(model)}/infer"
        order = list(rows)
        random.Random(seed).shuffle(order)
        self._bodies = [request_body(drifted(row, drift_features, drift) if drift else row) for row in order]
        self._interval = 1.0 / rps
        self._timeout = timeout
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="loadgen")
        self._recorder = Recorder()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._deadline: float | None = None
        self._local = threading.local()

    def start(self, seconds: float | None = None) -> LoadGenerator:
        self._deadline = None if seconds is None else time.monotonic() + seconds
        self._thread = threading.Thread(target=self._pace, name="loadgen-pacer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Snapshot:
        """Stop sending, wait for answers in flight, return every answer."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=True)
        return self.snapshot()

    def wait(self) -> Snapshot:
        """For a run started with `seconds`: block until it ends."""
        if self._thread is not None:
            self._thread.join()
        return self.stop()

    def snapshot(self) -> Snapshot:
        return self._recorder.snapshot()

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _pace(self) -> None:
        """Schedule requests on a fixed grid (no drift from slow answers; late ones are sent at once)."""
        next_at = time.monotonic()
        index = 0
        while not self._stopping.is_set():
            now = time.monotonic()
            if self._deadline is not None and now >= self._deadline:
                return
            if now < next_at:
                self._stopping.wait(next_at - now)
                continue
            self._pool.submit(self._send, self._bodies[index % len(self._bodies)])
            index += 1
            next_at += self._interval

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
        return connection

    def _send(self, body: bytes) -> None:
        started = time.monotonic()
        version, status, _, failed = exchange(self._connection(), self._path, body, self._headers)
        if failed:
            # A broken keep-alive connection is dropped; the next request on this thread opens a new one.
            connection = getattr(self._local, "connection", None)
            if connection is not None:
                connection.close()
            self._local.connection = None
        now = time.monotonic()
        self._recorder.record(Answer(now, version, status, now - started))


def main(argv: list[str] | None = None) -> int:
    from modelrollout.modelserver import models

    parser = argparse.ArgumentParser(
        prog="python -m modelrollout.modelserver.loadgen", description=__doc__.split("\n")[0]
    )
    parser.add_argument("base_url", help="e.g. http://10.244.0.1:8080")
    parser.add_argument("model", help="the model name in /v2/models/<model>/infer")
    parser.add_argument("--rps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--drift", type=float, default=0.0, help="scale the drifted features by 1 + DRIFT")
    parser.add_argument("--drift-feature", action="append", default=None, help="feature name (default: mean radius)")
    args = parser.parse_args(argv)
    dataset = models.load_dataset(models.ensure_models())
    names = args.drift_feature or ["mean radius"]
    indices = [dataset.feature_names.index(name) for name in names]
    generator = LoadGenerator(args.base_url, args.model, dataset.rows, args.rps, args.drift, indices)
    snapshot = generator.start(args.seconds).wait()
    counts = snapshot.counts()
    for (version, status), count in sorted(counts.items()):
        print(f"{version or '-':>20} {status:>3} {count}")
    latencies = sorted(answer.seconds for answer in snapshot.answers)
    if latencies:
        median, p99 = latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"latency median {median * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    ratio = snapshot.error_ratio()
    print(f"{sum(counts.values())} answers; 5xx ratio {ratio if ratio is None else round(ratio, 3)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


class Users:
    """`count` users who each keep the cookies the data plane sets, as a browser would, and send one
    request per `round()`; records which model version answered each of them (sticky cohorts).

    Each user's request is its own connection: a data plane decides per request, never per connection.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        rows: Sequence[Sequence[float]],
        count: int,
        headers: dict[str, str] | None = None,
        threads: int = 16,
        timeout: float = 5.0,
    ) -> None:
        if count <= 0 or not rows:
            raise ValueError(f"need users and rows, got {count} users and {len(rows)} rows")
        url = urllib.parse.urlsplit(base_url)
        self._host, self._port = url.hostname or "", url.port or 80
        self._path = f"{url.path.rstrip('/')}/v2/models/{urllib.parse.quote(model)}/infer"
        self._bodies = [request_body(rows[user % len(rows)]) for user in range(count)]
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._threads, self._timeout = threads, timeout
        self.cookies: list[dict[str, str]] = [{} for _ in range(count)]
        self.answers: list[list[Answer]] = [[] for _ in range(count)]

    def round(self) -> None:
        """Every user sends one request, a few at a time; returns once all are answered."""
        with ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="users") as pool:
            list(pool.map(self._send, range(len(self.cookies))))

    def versions(self, user: int) -> set[str]:
        """The model versions that answered `user` successfully."""
        return {a.version for a in self.answers[user] if 200 <= a.status < 300}

    def _send(self, user: int) -> None:
        started = time.monotonic()
        headers = dict(self._headers)
        if self.cookies[user]:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies[user].items())
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        version, status, set_cookies, _ = exchange(connection, self._path, self._bodies[user], headers)
        connection.close()
        for header in set_cookies:
            name, _, rest = header.partition("=")
            self.cookies[user][name.strip()] = rest.split(";", 1)[0].strip()
        now = time.monotonic()
        self.answers[user].append(Answer(now, version, status, now - started))
