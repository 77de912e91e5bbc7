"""A deterministic stand-in for the Deployment controller and kubelet, for driving the pure core.

After each decision `World` scales every Deployment to the decided replica count; pods become
available `ready_per_step` at a time (all at once by default), never for revisions in `unready`, and
can be lost. It keeps what each Service selects. While `hurried` it writes as the reconciler does
when urgent work for others waits: scale-ups, and the Services traffic reaches; scale-downs,
deletions and the Services no traffic reaches (`Decision.unrouted`) wait for a decision made unhurried.
`run()` decides until nothing changes (a fixpoint) and fails on oscillation. Time moves
only with `advance()`. An optional `check(observation, decision, previous)` sees every decision:
the property tests pass their invariants there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from modelrollout.core.analysis import AnalysisInput
from modelrollout.core.enums import ServiceRole
from modelrollout.core.hooks import HookAnswer, HookCall
from modelrollout.core.observed import Observation, ObservedDeployment, Request
from modelrollout.core.rollout import Decision, DesiredDeployment, decide
from modelrollout.core.spec import ObjectMeta, parse_spec

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
META = ObjectMeta(name="fraud", namespace="models", uid="uid-1", generation=1)
STEPS = [{"setWeight": 5}, {"pause": {"duration": "10m"}}, {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]
RUN_LIMIT = 60

Check = Callable[[Observation, Decision, Decision | None], None]  # e.g. an invariants.Checker()
CheckWritten = Callable[[Observation, Decision, dict], None]  # sees the Services as written after each decision
HookServer = Callable[[HookCall], HookAnswer]  # the hooks' side: how it answers each gating call


def make_spec(version="1", replicas=4, steps=None, router=True, history=5, strategy=None, **extra):
    """A parsed spec; `router` is True (gatewayAPI), False or "none", or a router's name."""
    body = {
        "replicas": replicas,
        "model": {"name": "fraud", "version": version},
        "template": {"spec": {"containers": [{"name": "s", "image": "scorer"}]}},
        "strategy": strategy if strategy is not None else {"canary": {"steps": steps if steps is not None else STEPS}},
        "revisionHistoryLimit": history,
        **extra,
    }
    name = "gatewayAPI" if router is True else ("none" if router is False else router)
    routing = {
        "gatewayAPI": {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}},
        "istio": {"istio": {"hosts": ["fraud.example"]}},
        "nginx": {"nginx": {"host": "fraud.example"}},
        "traefik": {"traefik": {}},
    }
    if name in routing:
        body.setdefault("trafficRouting", routing[name])
    return parse_spec(body)


class World:
    """A deterministic stand-in for the Deployment controller: it scales and readies what the core decided."""

    def __init__(self, spec, now=T0, check: Check | None = None):
        self.spec = spec
        self.now = now
        self.status: dict = {}
        self.deployments: dict[str, ObservedDeployment] = {}
        self.unready: set[str] = set()
        self.ready_per_step: int | None = None  # None: every pod at once
        self.created = 0
        self.request: Request | None = None
        self.analysis: dict[str, AnalysisInput] = {}
        self.alerts: tuple[str, ...] = ()
        self.mirroring_undeclared: tuple[str, ...] = ()  # what the data plane does not declare
        self.decision: Decision | None = None
        self.events: list[str] = []
        self.asked = 0
        self.check = check
        self.hook_server: HookServer = lambda call: HookAnswer(True, 0.01, 200, "ok")
        self.hook_calls: list[tuple[HookCall, HookAnswer]] = []  # gating calls made, in order, with the answer
        self.told: list[HookCall] = []  # calls that gate nothing, in order
        self.hurried = False
        self.check_written: CheckWritten | None = None
        self.services: dict[ServiceRole, str | None] = {}  # what each Service selects (None: every revision)

    def observe(self, hook_answers: dict[str, HookAnswer] | None = None) -> Observation:
        return Observation(
            META,
            self.spec,
            self.status,
            tuple(self.deployments.values()),
            self.now,
            self.request,
            self.analysis,
            self.alerts,
            self.mirroring_undeclared,
            hook_answers or {},
        )

    def step(self, settle=True) -> Decision:
        """One reconcile, as the reconciler makes it: a decision, and when it asks for gating hook calls,
        the calls, then the decision that takes their answers in (the first one is dropped)."""
        observation = self.observe()
        decision = decide(observation)
        if decision.hook_calls:
            answers = {call.key: self.hook_server(call) for call in decision.hook_calls}
            self.hook_calls += [(call, answers[call.key]) for call in decision.hook_calls]
            observation = self.observe(answers)
            decision = decide(observation)
        if self.check is not None:
            self.check(observation, decision, self.decision)
        self.decision = decision
        self.events += [event.reason for event in decision.events]
        self.told += decision.hook_notices
        self.request = None
        self.status = decision.status
        for desired in decision.deployments:
            existing = self.deployments.get(desired.revision)
            if self.hurried and existing is not None and desired.replicas < existing.spec_replicas:
                desired = replace(desired, replicas=existing.spec_replicas)  # the scale-down waits
            self._apply(desired, settle)
        for role, revision in decision.services.items():
            if not (self.hurried and decision.unrouted(role)):
                self.services[role] = revision
        if not self.hurried:
            for revision in decision.delete_revisions:
                self.deployments.pop(revision)
            for role in decision.stale_services:
                self.services.pop(role, None)
        if self.check_written is not None:
            self.check_written(observation, decision, self.services)
        return decision

    def _apply(self, desired: DesiredDeployment, settle: bool) -> None:
        existing = self.deployments.get(desired.revision)
        if existing is None:
            self.created += 1
            existing = ObservedDeployment(
                name=f"fraud-{desired.revision}",
                revision=desired.revision,
                created=(T0 + timedelta(seconds=self.created)).isoformat(),
                spec_replicas=desired.replicas,
                generation=0,
            )
        available = min(existing.available_replicas, desired.replicas)
        if settle and desired.revision not in self.unready:
            missing = desired.replicas - available
            available += missing if self.ready_per_step is None else min(missing, self.ready_per_step)
        changed = existing.spec_replicas != desired.replicas or existing.generation == 0
        generation = existing.generation + 1 if changed else existing.generation
        self.deployments[desired.revision] = replace(
            existing,
            spec_replicas=desired.replicas,
            generation=generation,
            observed_generation=generation,
            replicas=desired.replicas,
            ready_replicas=available,
            available_replicas=available,
            updated_replicas=desired.replicas,
        )

    def lose_pods(self, revision: str, count: int) -> None:
        """Pods of `revision` die; the Deployment controller recreates them, not yet available."""
        existing = self.deployments.get(revision)
        if existing is not None:
            available = max(0, existing.available_replicas - count)
            self.deployments[revision] = replace(existing, available_replicas=available, ready_replicas=available)

    def _fingerprint(self) -> str:
        return json.dumps([self.status, sorted(str(d) for d in self.deployments.values())], sort_keys=True)

    def run(self) -> Decision:
        """Decide and settle, as watch events would, until a decision changes nothing at this time."""
        trail = []
        for _ in range(RUN_LIMIT):
            before = self._fingerprint()
            decision = self.step()
            status = decision.status
            trail.append(
                f"{status.get('phase')} {status.get('stage')!r} step {status.get('currentStepIndex')} "
                f"weights {status.get('weights')} replicas {self.replicas()}"
            )
            if not decision.events and self._fingerprint() == before:
                return decision
        last = "; ".join(trail[-4:])
        raise AssertionError(f"no fixpoint after {RUN_LIMIT} decisions: oscillation; last decisions: {last}")

    def restart(self) -> None:
        """A new operator process: it has only what the apiserver stores, as JSON."""
        self.status = json.loads(json.dumps(self.status))
        self.decision = None

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def ask(self, action: str, actor="alice", revision="") -> Decision:
        self.asked += 1
        self.request = Request(action=action, id=f"{action}-{self.asked}", actor=actor, revision=revision)
        return self.run()

    def replicas(self) -> dict[str, int]:
        return {d.revision: d.spec_replicas for d in self.deployments.values()}


def conditions(status):
    return {c["type"]: c["status"] for c in status["conditions"]}


def reasons(decision):
    return [event.reason for event in decision.events]


def start_new_version(world: World, version="2", **spec) -> str:
    world.spec = make_spec(version=version, **spec)
    return world.spec.revision
