"""Active/standby between operator replicas, on top of kopf's peering.

Rules:
- Peering is off (kopf runs standalone) unless `MODELROLLOUT_PEERING` names a peering object. When it
  is set, peering is mandatory: a replica that cannot see the object stands by rather than running unpeered.
- kopf freezes every replica when two share a priority, so each replica gets a distinct one. By default it
  is derived from the process start time, older first: the incumbent stays active and a newcomer (a
  restarted pod, a rolling update's new pod) stands by, so a rollout of the operator hands over at most
  once. Replicas started in the same millisecond are ordered by a hash of their identity. Derived
  priorities are negative, so any explicit priority >= 0 (`MODELROLLOUT_PEERING_PRIORITY`, the default
  100 of `kopf freeze`, 666 of `kopf run --dev`) outranks every replica of the Deployment.
- A replica is active when its own keep-alive is in the peering object and unexpired, and no other live
  peer has a higher or the same priority: kopf's own rule (`kopf._core.engines.peering`), applied to the
  same object. A peer is live until its `lastseen` + `lifetime`.
- Why the object is read here rather than asking kopf: kopf (1.45) keeps its frozen state in a toggle
  private to its orchestrator; no handler argument or setting exposes it. kopf's freeze stops only its
  own watches, while our queue timers, workers and the Alertmanager webhook run on, so the workers ask
  `Leadership` before every reconcile. The peering object's status is kopf's documented protocol, so
  both decide from the same data, and a `kopf freeze` by a person is honoured too.
- Takeover: a killed replica's entry expires at its last keep-alive + lifetime; the standby re-reads at
  that deadline, so it takes over at most `lifetime` seconds after the kill (plus one read and a resync
  of every ModelDeployment). A replica whose own entry expired in its last read steps down, since its
  peers may have taken over already.
- There is no fencing: a reconcile in flight when a replica steps down finishes. Children are written
  with server-side apply and status with a resourceVersion precondition, so a brief overlap repeats
  work instead of corrupting it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import zlib
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from modelrollout.controller import metrics
from modelrollout.controller.workqueue import WorkQueue
from modelrollout.kube.client import Kind

log = logging.getLogger(__name__)

CLUSTER_PEERING = Kind("kopf.dev", "v1", "clusterkopfpeerings", "ClusterKopfPeering", namespaced=False)
NAMESPACED_PEERING = Kind("kopf.dev", "v1", "kopfpeerings", "KopfPeering")

DEFAULT_LIFETIME_SECONDS = 15
# kopf refreshes its entry every `lifetime - randint(5, 10)` seconds, at least every second: below 3s an
# entry could expire between two keep-alives and the active replica would flap.
MIN_LIFETIME_SECONDS = 3
# kopf's own assumption for entries that do not say their lifetime.
UNSTATED_LIFETIME_SECONDS = 60
# Re-read just after a deadline, so the entry is expired by then on our clock.
DEADLINE_SLACK_SECONDS = 0.05
# Derived priorities stay below 2**53 in magnitude: JSON readers that use doubles keep them distinct.
TIEBREAK_RANGE = 1000


@dataclass(frozen=True)
class PeeringLocation:
    """One peering object kopf keeps its keep-alives in."""

    kind: Kind
    namespace: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.kind.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


def own_identity(environ: Mapping[str, str] = os.environ) -> str:
    """This replica's name in the peering object: the pod's name (kopf's `POD_ID`), else host and pid.

    Stable for the process's life, so the command line (which hands it to kopf) and the startup handler
    (which looks for it in the peering object) compute the same value.
    """
    return environ.get("POD_ID") or f"{socket.gethostname()}-{os.getpid()}"


def derived_priority(started_at: float, identity: str) -> int:
    """Older processes rank higher; the identity's hash orders those started in the same millisecond."""
    started_ms = round(started_at * 1000)
    return -(started_ms * TIEBREAK_RANGE + zlib.crc32(identity.encode()) % TIEBREAK_RANGE)


@dataclass(frozen=True)
class PeeringConfig:
    name: str
    identity: str
    priority: int
    lifetime: int

    @property
    def poll_seconds(self) -> float:
        """How often the peering object is re-read when no deadline comes sooner (a newcomer that
        outranks the active replica is noticed within this time)."""
        return max(1.0, self.lifetime / 5)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], started_at: float) -> PeeringConfig | None:
        """None when peering is off. Raises ValueError on a malformed setting, naming it."""
        name = environ.get("MODELROLLOUT_PEERING", "").strip()
        if not name:
            return None
        identity = own_identity(environ)
        explicit = environ.get("MODELROLLOUT_PEERING_PRIORITY", "").strip()
        lifetime_text = environ.get("MODELROLLOUT_PEERING_LIFETIME", "").strip() or str(DEFAULT_LIFETIME_SECONDS)
        try:
            priority = int(explicit) if explicit else derived_priority(started_at, identity)
        except ValueError:
            raise ValueError(f"MODELROLLOUT_PEERING_PRIORITY must be an integer, not {explicit!r}") from None
        try:
            lifetime = int(lifetime_text)
        except ValueError:
            raise ValueError(f"MODELROLLOUT_PEERING_LIFETIME must be whole seconds, not {lifetime_text!r}") from None
        if lifetime < MIN_LIFETIME_SECONDS:
            raise ValueError(f"MODELROLLOUT_PEERING_LIFETIME must be at least {MIN_LIFETIME_SECONDS}s, not {lifetime}")
        return cls(name, identity, priority, lifetime)


@dataclass(frozen=True)
class Peer:
    """One operator's keep-alive, as kopf writes it into the peering object's status."""

    identity: str
    priority: int
    lifetime: float
    lastseen: datetime

    @property
    def deadline(self) -> datetime:
        return self.lastseen + timedelta(seconds=self.lifetime)

    def alive(self, now: datetime) -> bool:
        return self.deadline > now


def parse_peers(status: Mapping[str, Any] | None, now: datetime) -> list[Peer]:
    """The peers in a peering object's status (`{identity: {priority, lifetime, lastseen}}`).

    Missing fields take kopf's defaults (priority 0, lifetime 60s, lastseen now); an unreadable entry is
    skipped, as if that operator were absent.
    """
    peers = []
    for identity, entry in (status or {}).items():
        if not isinstance(entry, Mapping):
            continue
        try:
            lastseen = _parse_time(entry["lastseen"]) if entry.get("lastseen") else now
            peers.append(
                Peer(
                    str(identity),
                    int(entry.get("priority", 0)),
                    float(entry.get("lifetime", UNSTATED_LIFETIME_SECONDS)),
                    lastseen,
                )
            )
        except (TypeError, ValueError):
            log.warning("ignoring an unreadable peering entry %r: %r", identity, entry)
    return peers


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Verdict:
    active: bool
    reason: str
    recheck_in: float  # seconds until the answer may change without anything new being written
    registered: bool = True  # False while this replica's own keep-alive is missing from the object


def decide(peers: list[Peer], identity: str, priority: int, now: datetime, poll_seconds: float) -> Verdict:
    """kopf's peering rule for one peering object, plus: no own keep-alive (yet, or any more) = standby."""
    own = next((peer for peer in peers if peer.identity == identity), None)
    if own is None:
        return Verdict(False, "this replica's keep-alive is not in the peering object yet", poll_seconds, False)
    if not own.alive(now):
        return Verdict(False, "this replica's own keep-alive has expired; peers may have taken over", poll_seconds)
    blockers = [peer for peer in peers if peer.identity != identity and peer.alive(now) and peer.priority >= priority]
    if blockers:
        top = max(blockers, key=lambda peer: peer.priority)
        if top.priority == priority:
            reason = f"{top.identity} has the same priority {priority}: kopf freezes both; give each a distinct one"
        else:
            reason = f"standing by for {top.identity} (priority {top.priority} > {priority})"
        expiry = min((peer.deadline - now).total_seconds() for peer in blockers) + DEADLINE_SLACK_SECONDS
        return Verdict(False, reason, min(poll_seconds, expiry))
    expiry = (own.deadline - now).total_seconds() + DEADLINE_SLACK_SECONDS
    return Verdict(True, f"active (priority {priority})", min(poll_seconds, expiry))


def decide_everywhere(
    observed: list[tuple[str, Mapping[str, Any] | None]], config: PeeringConfig, now: datetime
) -> Verdict:
    """Active only if active in every peering object (one per served namespace for a namespaced
    operator), as kopf pauses all watches when any of its peerings has a conflict."""
    if not observed:
        return Verdict(False, "no peering object to read", config.poll_seconds)
    verdicts = []
    for where, body in observed:
        if body is None:
            verdicts.append(Verdict(False, f"{where} not found: create it (see manifests/base)", config.poll_seconds))
            continue
        peers = parse_peers(body.get("status"), now)
        verdicts.append(decide(peers, config.identity, config.priority, now, config.poll_seconds))
    recheck = max(DEADLINE_SLACK_SECONDS, min(verdict.recheck_in for verdict in verdicts))
    registered = all(verdict.registered for verdict in verdicts)
    standby = [verdict for verdict in verdicts if not verdict.active]
    if standby:
        return Verdict(False, standby[0].reason, recheck, registered)
    return Verdict(True, verdicts[0].reason, recheck)


class Leadership:
    """Whether this replica may reconcile now. The peering monitor sets it; workers wait on it."""

    def __init__(self, active: bool, reason: str) -> None:
        self._active = asyncio.Event()
        self.reason = reason
        if active:
            self._active.set()
        metrics.LEADER.set(1 if active else 0)

    @property
    def active(self) -> bool:
        return self._active.is_set()

    def update(self, active: bool, reason: str) -> bool:
        """Record the verdict; True when this replica has just become active."""
        became_active = active and not self.active
        if active != self.active or reason != self.reason:
            log.info("peering: %s", reason)
        self.reason = reason
        if active:
            self._active.set()
        else:
            self._active.clear()
        metrics.LEADER.set(1 if active else 0)
        return became_active

    async def next_key(self, queue: WorkQueue, urgent_only: bool = False) -> Hashable:
        """The next key to reconcile, once this replica is active. A key taken just as the replica
        stepped down is put back (parked) for when it is active again."""
        while True:
            await self._active.wait()
            key = await queue.get(urgent_only)
            if self.active:
                return key
            queue.done(key)
            queue.add(key, urgent=urgent_only)


class PeeringMonitor:
    """Re-reads the peering object(s) at the next deadline (or every `poll_seconds`) and updates `leadership`."""

    def __init__(
        self,
        config: PeeringConfig,
        read: Callable[[], list[tuple[str, Mapping[str, Any] | None]]],
        leadership: Leadership,
        on_activated: Callable[[], Awaitable[None]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._config = config
        self._read = read
        self._leadership = leadership
        self._on_activated = on_activated
        self._clock = clock
        self._started = time.monotonic()
        self._warned_unregistered = False

    async def run(self) -> None:
        observed: list[tuple[str, Mapping[str, Any] | None]] = []
        while True:
            try:
                observed = await asyncio.to_thread(self._read)
            except Exception as error:  # noqa: BLE001 - decide on the last read; an own entry expires in time
                log.warning("peering: cannot read the peering object: %s", error)
            verdict = decide_everywhere(observed, self._config, self._clock())
            self._warn_if_never_registered(verdict)
            if self._leadership.update(verdict.active, verdict.reason):
                await self._on_activated()
            await asyncio.sleep(verdict.recheck_in)

    def _warn_if_never_registered(self, verdict: Verdict) -> None:
        """kopf writes the keep-alive under its own identity; if ours never shows, they differ."""
        waited = time.monotonic() - self._started
        if self._warned_unregistered or verdict.registered:
            return
        if waited > 2 * self._config.lifetime:
            self._warned_unregistered = True
            log.error(
                "peering: no keep-alive under this replica's identity %r after %.0fs; kopf uses another "
                "identity: start the operator with `modelrollout run`, or set POD_ID",
                self._config.identity,
                waited,
            )
