"""The rollout core: from an observation, the desired replicas, Services, routes and status.

Modules, one concept each: `state` (what is persisted, intent vs observation), `transitions` (the
stage table), `gates` (who decides where), `draft` (one decision in progress), `lifecycle` (moves
every stage shares), `shadow`, `canary`, `bluegreen` (the stages), `requests` (manual actions),
`plan` (replicas, weights, Services, tracks), `status` (phase and conditions), `engine` (`decide`),
`journal` (what a decision changed, for the log).
"""

from modelrollout.core.rollout.decision import (
    AnalysisRun,
    Decision,
    DesiredDeployment,
    Event,
    MeasuredMetric,
    Weights,
)
from modelrollout.core.rollout.draft import canary_replicas_for
from modelrollout.core.rollout.engine import decide, rollout_running
from modelrollout.core.rollout.journal import Entry, journal
from modelrollout.core.rollout.status import conditions_for, invalid_status

__all__ = [
    "AnalysisRun",
    "Decision",
    "DesiredDeployment",
    "Entry",
    "Event",
    "MeasuredMetric",
    "Weights",
    "canary_replicas_for",
    "conditions_for",
    "decide",
    "invalid_status",
    "journal",
    "rollout_running",
]
