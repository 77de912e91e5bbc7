"""The rollout's vocabulary: every stage, phase, gate, action, track and reason as an enum.

Rules:
- Each value is what the API shows (status fields, Events, history, labels); the enum is the only
  place the spelling lives. The core, the reconciler, the plugin, the demo and the metrics compare
  enum members, never retyped strings.
- A `StrEnum` member is its own JSON: status is written with the members and read back with
  `Enum(value)`, so an unknown value from an older operator fails loudly at that edge.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Where a ModelDeployment stands (`status.phase`)."""

    PENDING = "Pending"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"


class Stage(StrEnum):
    """The stage of a running rollout (`status.stage`); IDLE when none runs."""

    IDLE = ""
    SHADOW = "Shadow"
    CANARY = "Canary"
    PREVIEW = "Preview"
    PROMOTING = "Promoting"
    POST_PROMOTION = "PostPromotion"


class PauseReason(StrEnum):
    """Why a rollout waits (`status.pauseReasons[].reason`)."""

    STEP = "CanaryPauseStep"
    MANUAL = "Manual"
    INCONCLUSIVE = "InconclusiveAnalysis"
    APPROVAL = "AwaitingApproval"
    HOOK_FAILED = "HookFailed"  # a gating hook failed with onFailure: pause


class ProgressReason(StrEnum):
    """The condition reason of a phase that is not a pause or an abort."""

    IN_PROGRESS = "RolloutInProgress"
    CREATING = "CreatingRevision"
    WAITING_FOR_PODS = "WaitingForPods"
    AVAILABLE = "Available"
    INVALID_SPEC = "InvalidSpec"
    PROGRESS_DEADLINE = "ProgressDeadlineExceeded"
    MIRROR_UNSUPPORTED = "MirrorUnsupported"  # the data plane does not declare mirroring: the shadow waits
    WAITING_FOR_HOOK = "WaitingForHook"  # a gating hook has not answered 2xx yet
    DRAINING = "Draining"  # dynamicStableScale: traffic leaves a revision as fast as the stable's pods come up


class GateKind(StrEnum):
    """Where a person may have to approve before the rollout goes on."""

    SHADOW = "shadow"  # the end of the shadow: live traffic reaches the new model next
    STEP = "step"  # a canary step
    PROMOTION = "promotion"  # the final promotion, or the blue/green switch
    POST_PROMOTION = "post-promotion"  # skipping post-promotion checks
    FULL = "full"  # promote-full: every remaining step skipped


class Automation(StrEnum):
    """`spec.automation`: who decides at each gate."""

    MANUAL = "manual"
    SUPERVISED = "supervised"
    FULL = "full"


class RequestAction(StrEnum):
    """A manual action a person asks for through the status subresource."""

    PROMOTE = "promote"
    PROMOTE_FULL = "promote-full"
    ABORT = "abort"
    RETRY = "retry"
    RETRY_ANALYSIS = "retry-analysis"
    PAUSE = "pause"
    RESUME = "resume"
    UNDO = "undo"

    @classmethod
    def parse(cls, text: str) -> RequestAction | None:
        """The action named `text`, or None when no such action exists (it is answered, not raised)."""
        return next((action for action in cls if action.value == text), None)


class HistoryAction(StrEnum):
    """What the automation did, as recorded in `status.history` (manual actions use `RequestAction`)."""

    STARTED = "RolloutStarted"
    SUPERSEDED = "Superseded"
    REVERTED = "Reverted"
    SHADOW_STARTED = "ShadowStarted"
    SHADOW_COMPLETED = "ShadowCompleted"
    PREVIEW_READY = "PreviewReady"
    PROMOTING = "Promoting"
    SWITCHED = "Switched"
    STEP_COMPLETED = "StepCompleted"
    EXPERIMENT_STARTED = "ExperimentStarted"
    PROMOTED = "Promoted"
    ABORTED = "Aborted"
    ROLLED_BACK = "RolledBack"


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class EventReason(StrEnum):
    """The reason of every Event the operator emits."""

    STARTED = "RolloutStarted"
    SUPERSEDED = "Superseded"
    REVERTED = "Reverted"
    SHADOW_STARTED = "ShadowStarted"
    SHADOW_COMPLETED = "ShadowCompleted"
    SHADOW_UNSUPPORTED = "ShadowUnsupported"
    MIRROR_UNSUPPORTED = "MirrorUnsupported"
    MIRROR_DECLARED = "MirrorDeclared"
    PREVIEW_READY = "PreviewReady"
    SWITCHED = "Switched"
    STEP_COMPLETED = "StepCompleted"
    PROMOTED = "Promoted"
    ABORTED = "RolloutAborted"
    ROLLED_BACK = "RolledBack"
    STABLE_MISSING = "StableMissing"
    REQUEST_REJECTED = "ManualActionRejected"
    MANUAL_PROMOTE = "ManualPromote"
    MANUAL_PROMOTE_FULL = "ManualPromoteFull"
    MANUAL_ABORT = "ManualAbort"
    MANUAL_RETRY = "ManualRetry"
    MANUAL_RETRY_ANALYSIS = "ManualRetryAnalysis"
    MANUAL_PAUSE = "ManualPause"
    MANUAL_RESUME = "ManualResume"
    MANUAL_UNDO = "ManualUndo"
    HEALTHY = "Healthy"
    PAUSED = "Paused"
    DEGRADED = "Degraded"
    INVALID_SPEC = "InvalidSpec"
    NOTIFICATION_FAILED = "NotificationFailed"  # the shell's: a receiver never took a notice
    HOOK_SUCCEEDED = "HookSucceeded"
    HOOK_FAILED = "HookFailed"

    @classmethod
    def manual(cls, action: RequestAction) -> EventReason:
        return cls["MANUAL_" + action.name]

    @classmethod
    def of_phase(cls, phase: Phase) -> EventReason:
        return cls[phase.name]


class AbortReason(StrEnum):
    """Why the spec's revision is not rolled out (`status.abort.reason`)."""

    PROGRESS_DEADLINE = "ProgressDeadlineExceeded"
    ALERT_FIRING = "AlertFiring"
    ANALYSIS_FAILED = "AnalysisFailed"
    ANALYSIS_INVALID = "AnalysisInvalid"
    HOOK_FAILED = "HookFailed"
    ABORTED = "Aborted"
    ROLLED_BACK = "RolledBack"


class Track(StrEnum):
    """The `modelrollout.io/track` label: what a revision's pods are doing in the rollout."""

    STABLE = "stable"
    CANARY = "canary"
    SHADOW = "shadow"
    PREVIEW = "preview"
    OLD = "old"


class Router(StrEnum):
    """`spec.trafficRouting`: the data plane that splits traffic (NONE: the replica ratio does)."""

    GATEWAY_API = "gatewayAPI"
    ISTIO = "istio"
    NGINX = "nginx"
    TRAEFIK = "traefik"
    NONE = "none"


class ServiceRole(StrEnum):
    """The Services a ModelDeployment owns, by what they are for."""

    ACTIVE = "active"  # <name>: what clients (and, without a router, the replica split) use
    STABLE = "stable"  # <name>-stable: the stable backend of a router
    CANARY = "canary"  # <name>-canary: the canary backend of a router (and the mirror target)
    PREVIEW = "preview"  # <name>-preview: the blue/green preview


class AnalysisPhase(StrEnum):
    """The phase of one measurement, one metric, or one analysis run."""

    RUNNING = "Running"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class RunKind(StrEnum):
    """Which part of a rollout an analysis run belongs to; it fixes the run's key and count default."""

    STEP = "step"
    BACKGROUND = "background"
    SHADOW = "shadow"
    PRE_PROMOTION = "pre-promotion"
    POST_PROMOTION = "post-promotion"

    @property
    def default_count(self) -> int:
        """Measurements per metric when a template gives no `count`: background checks run until the end."""
        return 0 if self is RunKind.BACKGROUND else 1


class Change(StrEnum):
    """What one decision changed, as the decision log reports it (one log line each)."""

    STARTED = "RolloutStarted"
    STAGE = "StageChanged"
    STEP_COMPLETED = "StepCompleted"
    STEP_STARTED = "StepStarted"
    WEIGHT = "WeightChanged"
    PHASE = "PhaseChanged"  # includes pauses and gates: the reason says why, the message for whom
    MEASURED = "Measured"
    ABORTED = "Aborted"
    PROMOTED = "Promoted"
    SCALED = "Scaled"
