"""A level-triggered work queue of object keys, in the manner of client-go's, with a lane for safety.

Rules:
- A key is processed by at most one worker at a time; adding it while it is processed marks it
  dirty so it runs once more afterwards (events are coalesced, never lost).
- Urgent keys (a firing alarm, a person's action) go before every routine one (watch events,
  timed steps, resyncs), and a key already waiting as routine is promoted when it becomes urgent.
  A worker may take urgent keys only (`get(urgent_only=True)`), so a safety reconcile never waits
  for a worker to finish routine work when many ModelDeployments roll out at once.
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
        self._urgent: deque[Hashable] = deque()
        self._routine: deque[Hashable] = deque()
        self._waiting: dict[Hashable, bool] = {}  # queued key -> urgent; the deques may hold stale entries
        self._urgent_waiting = 0  # keys waiting as urgent; an int, so other threads may read it
        self._dirty: dict[Hashable, bool] = {}  # added while processing -> urgent
        self._processing: set[Hashable] = set()
        self._timers: dict[Hashable, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[Hashable, int] = {}
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._waiting)

    def urgent_waiting(self) -> int:
        """Urgent keys waiting for a worker; safe to call from any thread (reconciles ask it to hurry)."""
        return self._urgent_waiting

    def add(self, key: Hashable, urgent: bool = False) -> None:
        if key in self._processing:
            self._dirty[key] = self._dirty.get(key, False) or urgent
            return
        self._enqueue(key, urgent)

    def _enqueue(self, key: Hashable, urgent: bool) -> None:
        queued = self._waiting.get(key)
        if queued is None:
            (self._urgent if urgent else self._routine).append(key)
        elif urgent and not queued:
            self._urgent.append(key)  # its routine entry goes stale
        else:
            return
        self._waiting[key] = urgent or bool(queued)
        self._urgent_waiting += urgent
        self._changed.set()

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

    def scheduled(self, key: Hashable) -> bool:
        """Whether `key` is due later (`add_after`)."""
        return key in self._timers

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self, urgent_only: bool = False) -> Hashable:
        """The next key, urgent ones first; with `urgent_only`, wait for an urgent one."""
        while True:
            key = self._pop(self._urgent, urgent=True)
            if key is None and not urgent_only:
                key = self._pop(self._routine, urgent=False)
            if key is not None:
                self._processing.add(key)
                return key
            self._changed.clear()
            await self._changed.wait()

    def _pop(self, lane: deque[Hashable], urgent: bool) -> Hashable | None:
        while lane:
            key = lane.popleft()
            if self._waiting.get(key) is urgent:  # else stale: taken from the other lane already
                del self._waiting[key]
                self._urgent_waiting -= urgent
                return key
        return None

    def done(self, key: Hashable) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._enqueue(key, self._dirty.pop(key))

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
