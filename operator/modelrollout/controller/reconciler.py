"""One reconcile of one ModelDeployment: observe, decide (pure core), act.

Rules:
- Reads everything first, then asks `core.rollout.decide`, then writes; no decision here.
- Only children carrying our controller owner reference (by uid) are considered ours.
- Writes are ordered so no request ever reaches a pod that is not there: new Deployments and scale-ups
  first, then Services, then routing objects, then what adds no pod (a Deployment's track label, a
  scale-down), then deletions. An abort's route write so waits for nothing but the Services.
- In a hurry (`hurry()`: urgent reconciles of other ModelDeployments wait, as when one webhook fires a
  fleet's alarms), a reconcile writes only what moves traffic or adds pods, then its status, and asks
  to be reconciled again (as routine work) for the rest: track labels, scale-downs, deletions, and the
  Services the decision sends no traffic (`Decision.unrouted`). Those change no request's destination,
  so a thousand aborts at once each reach the apiserver with a route and a status write, not five.
- The current revision's Deployment is server-side applied in full; other revisions only get their
  replica count and track label patched, because their templates live only in their own Deployments.
- Reads come from `reads` (the watch caches in the operator), and a child whose live object already
  holds what we want is not written (`controller.applied`): a reconcile that changes nothing sends
  nothing. Traffic follows the revision label every pod carries from its template; no pod is written.
- The apiserver rejecting a child (400/422), or a routing API that is not installed (404), is the
  user's input error: reported as Stalled with the apiserver's message, serving pods untouched.
- Status is written with the object's resourceVersion as a precondition, only when it differs; a
  handled manual request is cleared in that same write, so it can be neither lost nor run twice. A
  cached ModelDeployment older than the apiserver's meets a 409 there: it is read again and reconciled
  once more at once, and the decision made from the older one is never recorded.
- Events, notifications and hook calls that gate nothing go out only once the status holding them
  is written, and are handed to senders with threads of their own (`EventSender`, `Notifier`): a
  reconcile never waits for them. A gating hook call is made within the reconcile that asks for it
  (within the hook's timeout), like an analysis measurement.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from modelrollout.controller import applied, dataplane, decisionlog, hooks, jobmetrics, metrics
from modelrollout.controller.alerts import AlarmChecker, alarm_arguments
from modelrollout.controller.events import EventRecorder, Events
from modelrollout.controller.notify import Notifier, notices_of
from modelrollout.controller.reads import ApiReads, Reads
from modelrollout.controller.routing import kube_kind
from modelrollout.core import labels
from modelrollout.core.analysis import AnalysisInput
from modelrollout.core.enums import Router, ServiceRole, Track
from modelrollout.core.hooks import HookAnswer
from modelrollout.core.observed import Observation, ObservedDeployment, Request
from modelrollout.core.rollout import Decision, decide, invalid_status, journal, rollout_running
from modelrollout.core.spec import ModelDeploymentSpec, ObjectMeta, parse_meta, parse_spec
from modelrollout.kube.client import DEPLOYMENT, MODEL_DEPLOYMENT, SERVICE, Kind, KubeClient, KubeError, kind_of
from modelrollout.render import workloads
from modelrollout.render.routers import RouteTarget, Routing, router_for

log = logging.getLogger(__name__)

INVALID_STATUSES = (400, 422)

AnalysisSource = Callable[[dict[str, Any], Decision, datetime], Mapping[str, AnalysisInput]]


def removing_absent(stored: Any, wanted: Any) -> Any:
    """`wanted` as a merge patch over `stored`: a key of a stored object that `wanted` leaves out is nulled,
    since a merge patch keeps what it does not mention (an ended `intent.canaryScale` would live on)."""
    if not isinstance(stored, dict) or not isinstance(wanted, dict):
        return wanted
    patch = {key: removing_absent(stored.get(key), value) for key, value in wanted.items()}
    return {**{key: None for key in stored if key not in wanted}, **patch}


class RejectedChild(Exception):
    """The apiserver refused an object derived from the spec: the user's input must change."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def owned_by(body: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid and ref.get("controller") for ref in body["metadata"].get("ownerReferences", []))


def observe_deployment(body: dict[str, Any]) -> ObservedDeployment:
    metadata, spec, status = body["metadata"], body.get("spec", {}), body.get("status", {})
    deadline_exceeded = any(
        c.get("type") == "Progressing" and c.get("status") == "False" and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions", [])
    )
    return ObservedDeployment(
        name=metadata["name"],
        revision=metadata.get("labels", {}).get(labels.REVISION_LABEL, ""),
        created=metadata.get("creationTimestamp", ""),
        spec_replicas=int(spec.get("replicas", 1)),
        generation=int(metadata.get("generation", 1)),
        observed_generation=int(status.get("observedGeneration", 0)),
        replicas=int(status.get("replicas", 0)),
        ready_replicas=int(status.get("readyReplicas", 0)),
        available_replicas=int(status.get("availableReplicas", 0)),
        updated_replicas=int(status.get("updatedReplicas", 0)),
        progress_deadline_exceeded=deadline_exceeded,
    )


def no_analysis(body: dict[str, Any], decision: Decision, now: datetime) -> Mapping[str, AnalysisInput]:
    return {}


class Reconciler:
    def __init__(
        self,
        kube: KubeClient,
        clock: Callable[[], datetime] = utcnow,
        analysis: AnalysisSource = no_analysis,
        alarms: AlarmChecker | None = None,
        reads: Reads | None = None,
        events: Events | None = None,
        notifier: Notifier | None = None,
        hook_post: hooks.Post = hooks.post,
        hurry: Callable[[], bool] = lambda: False,
    ) -> None:
        self._kube = kube
        self._reads: Reads = reads if reads is not None else ApiReads(kube)
        self._clock = clock
        self._analysis = analysis
        self._alarms = alarms
        self._events: Events = events if events is not None else EventRecorder(kube)
        self._notifier = notifier
        self._hook_post = hook_post
        self._hurry = hurry

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Converge one ModelDeployment; returns seconds until it must be looked at again, if time matters."""
        body = self._reads.model(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None  # gone or going: owner references let the garbage collector remove the children
        meta = parse_meta(body)
        previous = body.get("status") or {}
        try:
            spec = parse_spec(body.get("spec") or {})
        except ValueError as error:
            return self._refuse_spec(body, meta, f"the spec cannot be used: {error}")
        children = self._reads.revisions(namespace, name)
        observations = {}
        for child in children:
            if owned_by(child, meta.uid):
                observation = observe_deployment(child)
                observations[observation.revision] = (child, observation)
        owned = {revision: child for revision, (child, _) in observations.items()}
        observed = tuple(observation for _, observation in observations.values())
        request = Request.from_status(previous.get("request"))
        now = self._clock()
        running = rollout_running(spec, previous)
        alerts = (
            self._alarms.firing((namespace, name), spec, now, running, alarm_arguments(namespace, name, spec, previous))
            if self._alarms
            else ()
        )
        undeclared = (
            dataplane.mirroring_undeclared(self._kube, spec, namespace)
            if running and dataplane.needs_mirroring_check(spec)
            else ()
        )

        def observation(inputs: Mapping[str, AnalysisInput], answers: Mapping[str, HookAnswer]) -> Observation:
            return Observation(meta, spec, previous, observed, now, request, inputs, alerts, undeclared, answers)

        # The first decision names the analysis runs and gating hook calls it waits on; measured and
        # called, they go into the second.
        first = decide(observation({}, {}))
        inputs = self._analysis(body, first, now) if first.analysis_runs else {}
        answers = (
            hooks.call_gating(
                first.hook_calls,
                meta,
                spec,
                now,
                self._hook_post,
                job=functools.partial(jobmetrics.hook_job, self._kube, meta, now=now),
            )
            if first.hook_calls
            else {}
        )
        observed_now = observation(inputs, answers)
        decision = decide(observed_now) if inputs or answers else first
        self._record_metrics(meta, decision)
        left = False
        try:
            left = self._act(meta, spec, decision, owned, hurried=self._hurry())
            status, events, entries = decision.status, decision.events, journal(observed_now, decision)
            notices = notices_of(meta, decision, now) if self._notifier is not None else []
        except RejectedChild as error:
            status, events = invalid_status(meta.generation, previous, str(error), now)
            entries, notices = (), []
            decision = replace(decision, hook_notices=())  # nothing of it happened
            log.warning("%s/%s: %s; the stable model keeps serving", namespace, name, error)
        if request is not None:
            status = {**status, "request": None}
        if not self._write_status(body, status):
            return 0.0
        for event in events:
            self._events.emit(body, event, now)
        if notices and self._notifier is not None:
            self._notifier.notify(notices, spec.receivers)
        if decision.hook_notices:
            if self._notifier is not None:
                self._notifier.send(hooks.outgoing(decision.hook_notices, meta, spec, now))
            start = functools.partial(jobmetrics.start_hook_job, self._kube, meta)
            hooks.start_jobs(decision.hook_notices, meta, spec, now, start, self._events)
        decisionlog.write(meta, status.get("currentRevision") or "", entries)
        if left:
            metrics.HURRIED_RECONCILES.inc()
            return 0.0  # the writes left out follow once the urgent work is taken
        return decision.requeue_after

    def _write_status(self, body: dict[str, Any], status: dict[str, Any]) -> bool:
        """Patch what changed in the status; False when the object changed since it was read (reconcile again)."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        previous = body.get("status") or {}
        if all(previous.get(key) == value for key, value in status.items()):
            return True
        patch = {key: removing_absent(previous.get(key), value) for key, value in status.items()}
        try:
            answer = self._kube.request(
                "PATCH",
                MODEL_DEPLOYMENT.path(namespace, name, "status"),
                body={"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]}, "status": patch},
                content_type="application/merge-patch+json",
            )
        except KubeError as error:
            if not error.conflict:
                raise
            log.debug("%s/%s changed since it was read; reconciling it again", namespace, name)
            self._reads.refresh(namespace, name)
            return False
        self._reads.wrote(MODEL_DEPLOYMENT, answer)
        return True

    def _refuse_spec(self, body: dict[str, Any], meta: ObjectMeta, message: str) -> float | None:
        """A spec the schema let through but the operator cannot use: reported, nothing else touched (the
        stable model keeps serving) until the spec changes."""
        now = self._clock()
        status, events = invalid_status(meta.generation, body.get("status") or {}, message, now)
        if not self._write_status(body, status):
            return 0.0
        for event in events:
            self._events.emit(body, event, now)
        log.warning("%s/%s: %s; the stable model keeps serving", meta.namespace, meta.name, message)
        return None

    @staticmethod
    def _record_metrics(meta: ObjectMeta, decision: Decision) -> None:
        metrics.record_status(meta.namespace, meta.name, decision.status)
        for measured in decision.measurements:
            metrics.record_measurement(meta.namespace, meta.name, measured.metric, measured.phase, measured.value)
        if decision.aborted is not None:
            metrics.ABORTS.labels(meta.namespace, meta.name, decision.aborted.value).inc()

    # --- writes ----------------------------------------------------------------------------------

    def _act(
        self,
        meta: ObjectMeta,
        spec: ModelDeploymentSpec,
        decision: Decision,
        owned: dict[str, dict[str, Any]],
        hurried: bool = False,
    ) -> bool:
        """Write the decision; `hurried`, only what moves traffic or adds pods. Returns whether writes were left."""
        tracks = decision.tracks
        later = []  # adds no pod (a track label, a scale-down): after traffic has moved
        for desired in decision.deployments:
            track = tracks.get(desired.revision, Track.OLD)
            existing = owned.get(desired.revision)
            current_replicas = (existing or {}).get("spec", {}).get("replicas", 0)
            if existing is not None and desired.replicas <= current_replicas:
                later.append((desired, track, desired.replicas < current_replicas))
            else:
                self._write_deployment(meta, spec, desired.revision, desired.replicas, track, existing)
        unrouted = {role for role in decision.services if hurried and decision.unrouted(role)}
        self._apply_services(meta, spec, decision, leaving_out=unrouted)
        self._apply_routes(meta, spec, decision)
        if hurried:
            return bool(
                unrouted or later or decision.stale_router or decision.delete_revisions or decision.stale_services
            )
        for desired, track, scale_down in sorted(later, key=lambda entry: entry[2]):  # labels, then scale-downs
            existing = owned[desired.revision]
            if scale_down:
                self._patch_deployment(meta, existing, desired.replicas, track)
            else:
                self._write_deployment(meta, spec, desired.revision, desired.replicas, track, existing)
        if decision.stale_router is not None:
            self._delete_router_objects(meta, decision.stale_router)
        for revision in decision.delete_revisions:
            self._delete(DEPLOYMENT, meta.namespace, owned[revision]["metadata"]["name"])
        # Stale Services last: a stale route that still names them is deleted first (above).
        for role in decision.stale_services:
            self._delete(SERVICE, meta.namespace, workloads.service_name(meta.name, role))
        return False

    def _write_deployment(
        self,
        meta: ObjectMeta,
        spec: ModelDeploymentSpec,
        revision: str,
        replicas: int,
        track: Track,
        existing: dict[str, Any] | None,
    ) -> None:
        if revision == spec.revision:
            self._apply(workloads.deployment(meta, spec, revision, replicas, track))
        else:
            self._patch_deployment(meta, existing, replicas, track)

    def _apply(self, body: dict[str, Any], routing: bool = False) -> None:
        """Server-side apply `body`, unless the live object already holds it."""
        kind, desired = kind_of(body), applied.stamped(body)
        metadata = desired["metadata"]
        if applied.unchanged(desired, self._reads.live(kind, metadata["namespace"], metadata["name"])):
            return
        self._reads.wrote(kind, self._guard(lambda: self._kube.apply(desired), routing))

    def _delete(self, kind: Kind, namespace: str, name: str) -> None:
        self._kube.delete(kind, namespace, name)
        self._reads.deleted(kind, namespace, name)

    def _patch_deployment(self, meta: ObjectMeta, existing: dict[str, Any] | None, replicas: int, track: str) -> None:
        if existing is None:
            return  # a revision with no Deployment left has no template to recreate it from
        same_replicas = existing.get("spec", {}).get("replicas") == replicas
        same_track = existing["metadata"].get("labels", {}).get(labels.TRACK_LABEL) == track
        if same_replicas and same_track:
            return
        answer = self._kube.request(
            "PATCH",
            DEPLOYMENT.path(meta.namespace, existing["metadata"]["name"]),
            body={"metadata": {"labels": {labels.TRACK_LABEL: track}}, "spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )
        self._reads.wrote(DEPLOYMENT, answer)

    def _apply_services(
        self, meta: ObjectMeta, spec: ModelDeploymentSpec, decision: Decision, leaving_out: set[ServiceRole]
    ) -> None:
        """The Services the decision wants, each selecting its revision (or every revision).

        Blue/green, and a promotion or abort without a router, move traffic by one selector write here.
        """
        for role, revision in decision.services.items():
            if role not in leaving_out:
                self._apply(workloads.service(meta, spec, revision, role))

    def _apply_routes(self, meta: ObjectMeta, spec: ModelDeploymentSpec, decision: Decision) -> None:
        target = RouteTarget(
            name=meta.name,
            namespace=meta.namespace,
            port=spec.service.port,
            stable_service=workloads.service_name(meta.name, ServiceRole.STABLE),
            canary_service=workloads.service_name(meta.name, ServiceRole.CANARY),
            config=dict(spec.traffic_routing.get(decision.router) or {}),
            labels=workloads.common_labels(meta),
            owner=workloads.owner_reference(meta),
        )
        routing = Routing(decision.route_weights, decision.header_routes, decision.affinity)
        for body in router_for(decision.router).render(target, routing):
            self._apply(body, routing=True)

    def _delete_router_objects(self, meta: ObjectMeta, router: Router) -> None:
        for kind, name in router_for(router).object_names(meta.name):
            try:
                self._delete(kube_kind(kind), meta.namespace, name)
            except KubeError as error:
                if error.status != 404:  # the API itself may be gone with the router
                    raise

    @staticmethod
    def _guard(write: Callable[[], Any], routing: bool = False) -> Any:
        try:
            return write()
        except KubeError as error:
            if error.status in INVALID_STATUSES:
                raise RejectedChild(f"the apiserver rejected a child: {error.message}") from error
            if routing and error.status == 404:
                raise RejectedChild(
                    f"the cluster does not serve the routing API ({error.message}); is the data plane's CRD installed?"
                ) from error
            raise
