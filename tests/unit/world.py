"""A deterministic stand-in for the Deployment controller and kubelet, for driving the pure core.

After each decision `World` settles every Deployment at the decided replica count (or leaves
chosen ones unready), so sequences of decisions read like a script, with explicit time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from modelrollout.core.analysis import AnalysisInput
from modelrollout.core.observed import Observation, ObservedDeployment, Request
from modelrollout.core.rollout import Decision, DesiredDeployment, decide
from modelrollout.core.spec import ObjectMeta, parse_spec

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
META = ObjectMeta(name="fraud", namespace="models", uid="uid-1", generation=1)
STEPS = [{"setWeight": 5}, {"pause": {"duration": "10m"}}, {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]


def make_spec(version="1", replicas=4, steps=None, router=True, history=5, strategy=None, **extra):
    body = {
        "replicas": replicas,
        "model": {"name": "fraud", "version": version},
        "template": {"spec": {"containers": [{"name": "s", "image": "scorer"}]}},
        "strategy": strategy if strategy is not None else {"canary": {"steps": steps if steps is not None else STEPS}},
        "revisionHistoryLimit": history,
        **extra,
    }
    if router:
        body["trafficRouting"] = {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
    return parse_spec(body)


class World:
    """A deterministic stand-in for the Deployment controller: it settles what the core decided."""

    def __init__(self, spec, now=T0):
        self.spec = spec
        self.now = now
        self.status: dict = {}
        self.deployments: dict[str, ObservedDeployment] = {}
        self.unready: set[str] = set()
        self.created = 0
        self.request: Request | None = None
        self.analysis: dict[str, AnalysisInput] = {}
        self.alerts: tuple[str, ...] = ()
        self.decision: Decision | None = None
        self.events: list[str] = []
        self.asked = 0

    def observe(self) -> Observation:
        return Observation(
            META,
            self.spec,
            self.status,
            tuple(self.deployments.values()),
            self.now,
            self.request,
            self.analysis,
            self.alerts,
        )

    def step(self, settle=True) -> Decision:
        decision = decide(self.observe())
        self.decision = decision
        self.events += [event.reason for event in decision.events]
        if self.request is not None:
            self.request = None
        self.status = decision.status
        for desired in decision.deployments:
            self._apply(desired, settle)
        for revision in decision.delete_revisions:
            self.deployments.pop(revision)
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
            )
        ready = desired.replicas if settle and desired.revision not in self.unready else 0
        self.deployments[desired.revision] = replace(
            existing,
            spec_replicas=desired.replicas,
            generation=existing.generation + 1,
            observed_generation=existing.generation + 1,
            replicas=desired.replicas,
            ready_replicas=ready,
            available_replicas=ready,
            updated_replicas=desired.replicas,
        )

    def run(self, times=3) -> Decision:
        """Decide and settle repeatedly, as watch events would, until nothing more changes at this time."""
        for _ in range(times):
            decision = self.step()
        return decision

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
