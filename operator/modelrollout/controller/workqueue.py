"""A level-triggered work queue of object keys, in the manner of client-go's.

Rules:
- A key is processed by at most one worker at a time; adding it while it is processed marks it
  dirty so it runs once more afterwards (events are coalesced, never lost).
- `add_after` schedules a key (time-based steps, resyncs); the earliest due time wins.
- Failures back off per key exponentially, capped, and reset after a success.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable

BASE_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 300.0


class WorkQueue:
    def __init__(self) -> None:
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._timers: dict[Hashable, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[Hashable, int] = {}
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: Hashable) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._ready.set()

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        scheduled = self._timers.get(key)
        if scheduled is not None:
            if scheduled[0] <= due:
                return
            scheduled[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._fire, key))

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> Hashable:
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: Hashable) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._ready.set()

    def retry_delay(self, key: Hashable) -> float:
        """Record a failure of `key` and return how long to wait before the next try."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        return min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * (2**failures))

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def close(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
