"""The ModelDeployment spec as frozen dataclasses.

Rules:
- Parsing never raises on values the CRD schema already rejects at apply time; it applies the
  same defaults as the CRD so the core behaves the same on objects stored before a default existed.
- Only what the core decides on is typed; the pod template stays a dict (the apiserver validates it
  when the Deployment is written).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelrollout.core.cohorts import SessionAffinity, parse_affinity
from modelrollout.core.durations import parse_duration
from modelrollout.core.enums import Automation, Router
from modelrollout.core.headerroutes import SetHeaderRoute, parse_set_header_route
from modelrollout.core.hooks import Hook, HookPoint, parse_hooks
from modelrollout.core.notifications import Receiver, parse_receivers
from modelrollout.core.revision import revision_of

DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
DEFAULT_REVISION_HISTORY_LIMIT = 5


@dataclass(frozen=True)
class Model:
    name: str
    version: str
    uri: str = ""
    framework: str = ""


@dataclass(frozen=True)
class ServicePort:
    port: int = 80
    target_port: int | str = 8080
    name: str = "http"


@dataclass(frozen=True)
class TemplateRef:
    name: str
    cluster_scope: bool = False


@dataclass(frozen=True)
class AnalysisRef:
    """Analysis templates to run, with argument values."""

    templates: tuple[TemplateRef, ...]
    args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SetWeight:
    """Send `weight` percent of live traffic to the canary, once its pods for that share are available."""

    weight: int

    def describe(self) -> str:
        return f"setWeight {self.weight}%"


@dataclass(frozen=True)
class Pause:
    """Wait `duration` seconds, or for a person when None."""

    duration: float | None = None

    def describe(self) -> str:
        return "pause until promoted" if self.duration is None else f"pause {self.duration:g}s"


@dataclass(frozen=True)
class AnalysisStep:
    """Run analysis templates; go on only when they succeed (no templates: nothing to wait for)."""

    analysis: AnalysisRef | None = None

    def describe(self) -> str:
        names = ", ".join(t.name for t in self.analysis.templates) if self.analysis else ""
        return f"analysis ({names})"


@dataclass(frozen=True)
class SetCanaryScale:
    """Run the canary at `replicas` pods, or at `weight` percent of `replicas`, whatever its traffic
    share (warming a GPU model before it gets traffic); `match_traffic_weight` goes back to the share.

    Never fewer pods than the share needs: a scale below it is raised to it. Needs a router that splits
    by weight (without one, pods are the traffic)."""

    replicas: int | None = None
    weight: int | None = None
    match_traffic_weight: bool = False

    def describe(self) -> str:
        if self.replicas is not None:
            return f"setCanaryScale {self.replicas} pods"
        if self.weight is not None:
            return f"setCanaryScale {self.weight}% of replicas"
        return "setCanaryScale matching the traffic weight"

    def pods(self, replicas: int) -> int:
        """The canary pods this scale asks for out of `replicas` (0: follow the weight)."""
        if self.replicas is not None:
            return min(self.replicas, replicas)
        if self.weight is not None:
            return min(replicas, -(-replicas * self.weight // 100))
        return 0


@dataclass(frozen=True)
class Experiment:
    """Run both revisions side by side at `weight` percent for `duration` seconds, judged by `analysis`
    (comparison metrics: ratios and distances between the two revisions); the weight stays after it."""

    weight: int
    duration: float
    analysis: AnalysisRef | None = None

    def describe(self) -> str:
        return f"experiment at {self.weight}% for {self.duration:g}s"


Step = SetWeight | Pause | AnalysisStep | SetCanaryScale | SetHeaderRoute | Experiment


def step_weight(step: Step) -> int | None:
    """The canary weight a step sets (setWeight, experiment), None for the others."""
    return step.weight if isinstance(step, SetWeight | Experiment) else None


@dataclass(frozen=True)
class CanaryStrategy:
    steps: tuple[Step, ...]
    scale_down_delay_seconds: int = 30
    abort_scale_down_delay_seconds: int = 30
    session_affinity: SessionAffinity | None = None  # sticky cohorts
    dynamic_stable_scale: bool = False  # the stable shrinks as its route share falls (see `rollout.plan`)


@dataclass(frozen=True)
class ShadowStrategy:
    """`strategy.shadow`: mirrored traffic before any live traffic; `duration` None waits for a person."""

    mirror_percent: int = 100
    duration: float | None = None
    analysis: AnalysisRef | None = None


@dataclass(frozen=True)
class BlueGreenStrategy:
    """`strategy.blueGreen`: a full-size preview, then one switch of the active Service."""

    preview_replicas: int | None = None  # None: spec.replicas
    auto_promotion_seconds: int | None = None  # None: a person promotes
    scale_down_delay_seconds: int = 30
    abort_scale_down_delay_seconds: int = 30
    pre_promotion: AnalysisRef | None = None
    post_promotion: AnalysisRef | None = None


@dataclass(frozen=True)
class BackgroundAnalysis:
    """`spec.analysis`: checks that run for the whole rollout from `starting_step` on."""

    analysis: AnalysisRef
    starting_step: int = 0


ALARM_ARGUMENTS = ("namespace", "name", "canary-revision", "stable-revision")
ARGUMENT = re.compile(r"\{\{\s*args\.([A-Za-z0-9][-A-Za-z0-9_]*)\s*\}\}")  # {{args.NAME}}, also in templates


@dataclass(frozen=True)
class AlertMatcher:
    """`spec.rollbackOn.alerts[]`: a firing alert with this name and these label values rolls back.

    A label value may name the rollout's arguments (`{{args.canary-revision}}`), so an alarm about
    another revision in the same namespace leaves this rollout alone.
    """

    alertname: str
    labels: tuple[tuple[str, str], ...] = ()

    def matches(self, alert_labels: dict[str, str]) -> bool:
        return alert_labels.get("alertname") == self.alertname and all(
            alert_labels.get(key) == value for key, value in self.labels
        )

    @property
    def scoped(self) -> bool:
        return any(ARGUMENT.search(value) for _, value in self.labels)

    def resolve(self, arguments: Mapping[str, str]) -> AlertMatcher | None:
        """This matcher with its arguments filled in; None when one is empty (no canary: nothing to match)."""
        if not self.scoped:
            return self
        missing = [name for _, value in self.labels for name in ARGUMENT.findall(value) if not arguments.get(name)]
        return None if missing else self.filled(arguments)

    def filled(self, arguments: Mapping[str, str]) -> AlertMatcher:
        """This matcher with the arguments given filled in and the others left as they are (`may_match`
        treats those as any value): a ModelDeployment's namespace and name are known before any status."""
        if not self.scoped:
            return self
        labels = tuple(
            (key, ARGUMENT.sub(lambda m: arguments.get(m.group(1)) or m.group(0), value)) for key, value in self.labels
        )
        return AlertMatcher(self.alertname, labels)

    def exact_label(self) -> tuple[str, str] | None:
        """A label this matcher names with a fixed value (no argument left in it), to index it by."""
        return next(((key, value) for key, value in self.labels if not ARGUMENT.search(value)), None)

    def may_match(self, alert_labels: dict[str, str]) -> bool:
        """Whether the alert could match once the arguments are filled in (to wake the right reconciles)."""
        return alert_labels.get("alertname") == self.alertname and all(
            ARGUMENT.search(value) or alert_labels.get(key) == value for key, value in self.labels
        )

    def describe(self) -> str:
        matchers = ",".join(f'{key}="{value}"' for key, value in self.labels)
        return f"{self.alertname}{{{matchers}}}" if matchers else self.alertname


@dataclass(frozen=True)
class ModelDeploymentSpec:
    replicas: int
    model: Model
    template: dict[str, Any]
    service: ServicePort
    strategy: dict[str, Any]
    traffic_routing: dict[str, Any]
    automation: Automation
    progress_deadline_seconds: int
    revision_history_limit: int
    canary: CanaryStrategy | None = None
    shadow: ShadowStrategy | None = None
    blue_green: BlueGreenStrategy | None = None
    background: BackgroundAnalysis | None = None
    rollback_alerts: tuple[AlertMatcher, ...] = ()
    alerts_prometheus: str = ""
    alerts_poll_seconds: float = 15.0
    receivers: tuple[Receiver, ...] = ()  # spec.notifications
    hooks: tuple[Hook, ...] = ()

    def hooks_at(self, point: HookPoint) -> tuple[Hook, ...]:
        return tuple(hook for hook in self.hooks if point in hook.at)

    @property
    def router(self) -> Router:
        """The configured traffic router, or `none` (weights approximated by replica counts)."""
        return next((router for router in Router if router in self.traffic_routing), Router.NONE)

    @property
    def assumes_mirroring(self) -> bool:
        """The user says the data plane mirrors although it does not declare it (`assumeMirroring`)."""
        config = self.traffic_routing.get(self.router) or {}
        return bool(config.get("assumeMirroring"))

    @property
    def revision(self) -> str:
        model = {
            "name": self.model.name,
            "version": self.model.version,
            "uri": self.model.uri,
            "framework": self.model.framework,
        }
        return revision_of(self.template, model)


@dataclass(frozen=True)
class ObjectMeta:
    """The parts of a ModelDeployment's metadata the core needs."""

    name: str
    namespace: str
    uid: str
    generation: int


def parse_analysis(body: dict[str, Any] | None) -> AnalysisRef | None:
    if not body:
        return None
    templates = tuple(
        TemplateRef(str(t["name"]), bool(t.get("clusterScope", False))) for t in body.get("templates") or []
    )
    args = tuple((str(a["name"]), str(a.get("value", ""))) for a in body.get("args") or [])
    return AnalysisRef(templates, args)


def parse_step(body: dict[str, Any]) -> Step:
    if "setWeight" in body:
        return SetWeight(int(body["setWeight"]))
    if "pause" in body:
        duration = (body.get("pause") or {}).get("duration")
        return Pause(parse_duration(duration) if duration else None)
    if "analysis" in body:
        return AnalysisStep(parse_analysis(body["analysis"]))
    if "setCanaryScale" in body:
        return parse_canary_scale(body["setCanaryScale"] or {})
    if "experiment" in body:
        experiment = body["experiment"] or {}
        return Experiment(
            int(experiment.get("weight", 0)),
            parse_duration(experiment.get("duration") or "0s"),
            parse_analysis(experiment.get("analysis")),
        )
    if "setHeaderRoute" in body:
        return parse_set_header_route(body["setHeaderRoute"] or {})
    raise ValueError(
        f"a step needs one of setWeight, pause, analysis, setCanaryScale, setHeaderRoute or experiment: {body}"
    )


def parse_canary_scale(scale: Mapping[str, Any]) -> SetCanaryScale:
    """A setCanaryScale step's body; `status.intent.canaryScale` holds the same shape."""
    return SetCanaryScale(
        replicas=int(scale["replicas"]) if scale.get("replicas") is not None else None,
        weight=int(scale["weight"]) if scale.get("weight") is not None else None,
        match_traffic_weight=bool(scale.get("matchTrafficWeight", False)),
    )


def parse_canary(body: dict[str, Any] | None) -> CanaryStrategy | None:
    if body is None:
        return None
    return CanaryStrategy(
        steps=tuple(parse_step(step) for step in body.get("steps") or []),
        scale_down_delay_seconds=int(body.get("scaleDownDelaySeconds", 30)),
        abort_scale_down_delay_seconds=int(body.get("abortScaleDownDelaySeconds", 30)),
        session_affinity=parse_affinity(body.get("sessionAffinity")),
        dynamic_stable_scale=bool(body.get("dynamicStableScale", False)),
    )


def parse_shadow(body: dict[str, Any] | None) -> ShadowStrategy | None:
    if body is None:
        return None
    duration = body.get("duration")
    return ShadowStrategy(
        mirror_percent=int(body.get("mirrorPercent", 100)),
        duration=parse_duration(duration) if duration else None,
        analysis=parse_analysis(body.get("analysis")),
    )


def parse_blue_green(body: dict[str, Any] | None) -> BlueGreenStrategy | None:
    if body is None:
        return None
    preview = body.get("previewReplicas")
    auto = body.get("autoPromotionSeconds")
    return BlueGreenStrategy(
        preview_replicas=int(preview) if preview is not None else None,
        auto_promotion_seconds=int(auto) if auto is not None else None,
        scale_down_delay_seconds=int(body.get("scaleDownDelaySeconds", 30)),
        abort_scale_down_delay_seconds=int(body.get("abortScaleDownDelaySeconds", 30)),
        pre_promotion=parse_analysis(body.get("prePromotionAnalysis")),
        post_promotion=parse_analysis(body.get("postPromotionAnalysis")),
    )


def parse_spec(spec: dict[str, Any]) -> ModelDeploymentSpec:
    model = spec.get("model") or {}
    service = spec.get("service") or {}
    strategy = spec.get("strategy") or {}
    return ModelDeploymentSpec(
        replicas=int(spec.get("replicas", 1)),
        model=Model(
            name=str(model.get("name", "")),
            version=str(model.get("version", "")),
            uri=str(model.get("uri", "")),
            framework=str(model.get("framework", "")),
        ),
        template=spec.get("template") or {},
        service=ServicePort(
            port=int(service.get("port", 80)),
            target_port=service.get("targetPort", 8080),
            name=str(service.get("portName", "http")),
        ),
        strategy=spec.get("strategy") or {},
        traffic_routing=spec.get("trafficRouting") or {},
        automation=Automation(spec.get("automation", Automation.FULL)),
        progress_deadline_seconds=int(spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_SECONDS)),
        revision_history_limit=int(spec.get("revisionHistoryLimit", DEFAULT_REVISION_HISTORY_LIMIT)),
        canary=parse_canary(strategy.get("canary")),
        shadow=parse_shadow(strategy.get("shadow")),
        blue_green=parse_blue_green(strategy.get("blueGreen")),
        background=_parse_background(spec.get("analysis")),
        rollback_alerts=tuple(_parse_alert(alert) for alert in (spec.get("rollbackOn") or {}).get("alerts") or []),
        alerts_prometheus=str(((spec.get("rollbackOn") or {}).get("prometheus") or {}).get("address", "")),
        alerts_poll_seconds=parse_duration((spec.get("rollbackOn") or {}).get("pollInterval") or "15s"),
        receivers=parse_receivers(spec.get("notifications")),
        hooks=parse_hooks(spec.get("hooks")),
    )


def _parse_background(body: dict[str, Any] | None) -> BackgroundAnalysis | None:
    analysis = parse_analysis(body)
    if analysis is None or body is None:
        return None
    return BackgroundAnalysis(analysis, int(body.get("startingStep", 0)))


def parse_meta(body: dict[str, Any]) -> ObjectMeta:
    metadata = body.get("metadata") or {}
    return ObjectMeta(
        name=metadata["name"],
        namespace=metadata.get("namespace", "default"),
        uid=metadata.get("uid", ""),
        generation=int(metadata.get("generation", 0)),
    )


def _parse_alert(alert: Mapping[str, Any]) -> AlertMatcher:
    labels = tuple(sorted((str(key), str(value)) for key, value in (alert.get("labels") or {}).items()))
    for key, value in labels:
        unknown = [name for name in ARGUMENT.findall(value) if name not in ALARM_ARGUMENTS]
        if unknown:
            raise ValueError(
                f"rollbackOn alert {alert.get('alertname')}: label {key} names unknown argument {unknown[0]}; "
                f"a rollbackOn label can use {', '.join('{{args.' + name + '}}' for name in ALARM_ARGUMENTS)}"
            )
    return AlertMatcher(str(alert["alertname"]), labels)
