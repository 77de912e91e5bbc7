"""kwok Stages for pods with readiness gates: Running with an IP, but Ready only when someone says so.

Upstream's "fast" `pod-ready` Stage marks every pod Ready at once, readiness gates included. A pod that
waits for a real model server must instead come up Running, with its IP, ContainersReady True and Ready
False (its gate not yet True), so that only the harness, acting as the kubelet's readiness prober, turns
it Ready once the server answers. Pods without readiness gates keep upstream's behaviour exactly.

The rewrite works on the concatenated upstream Stage file (build.py `kwok_stages`) at cluster start, so
the cached kwok build stays valid. Neither pod Stage matches a Running pod, so once kwok has moved a pod
to Running nothing it does overwrites the conditions the harness patches.
"""

from __future__ import annotations

import copy

import yaml

POD_READY_STAGE = "pod-ready"
POD_COMPLETE_STAGE = "pod-complete"
GATED_STAGE = "pod-ready-gated"
NO_GATES = {"key": ".spec.readinessGates", "operator": "DoesNotExist"}
HAS_GATES = {"key": ".spec.readinessGates", "operator": "Exists"}

# Fragments of the status template as YAML parses it (the block scalar's indentation removed).
_READY_TRUE = """- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Ready
"""
_READY_FALSE = """- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ReadinessGatesNotReady
  message: the pod's readiness gates are not all True yet
  type: Ready
"""
_GATES_TRUE = """{{ range .spec.readinessGates }}
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: {{ .conditionType | Quote }}
{{ end }}
"""


class StageFormatError(ValueError):
    """kwok's upstream pod-ready Stage no longer looks as this rewrite expects."""


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the status templates) as literal blocks, readable like upstream's."""


def _literal(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _literal)


def _pod_ready(documents: list[dict]) -> dict:
    matches = [doc for doc in documents if doc.get("kind") == "Stage" and doc["metadata"]["name"] == POD_READY_STAGE]
    if len(matches) != 1:
        raise StageFormatError(f"expected one Stage named {POD_READY_STAGE!r} in kwok's stages, found {len(matches)}")
    return matches[0]


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise StageFormatError(
            f"kwok's {POD_READY_STAGE} status template changed upstream (expected exactly once:\n{old}); "
            "update modelrollout/modelserver/stages.py for the pinned kwok version"
        )
    return text.replace(old, new)


def with_readiness_gates(upstream: str) -> str:
    """The upstream Stage file with pod-ready limited to pods without gates, plus a gated variant."""
    documents = [doc for doc in yaml.safe_load_all(upstream) if doc]
    ready = _pod_ready(documents)
    gated = copy.deepcopy(ready)
    ready["spec"]["selector"]["matchExpressions"].append(dict(NO_GATES))
    gated["metadata"]["name"] = GATED_STAGE
    gated["spec"]["selector"]["matchExpressions"].append(dict(HAS_GATES))
    template = gated["spec"]["next"]["statusTemplate"]
    template = _replace_once(template, _READY_TRUE, _READY_FALSE)
    template = _replace_once(template, _GATES_TRUE, "")
    gated["spec"]["next"]["statusTemplate"] = template
    documents.insert(documents.index(ready) + 1, gated)
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False)


def without_job_completion(stages: str) -> str:
    """The Stage file without upstream's pod-complete, which marks a Job's pod Succeeded at once: a Job
    would pass with nothing run. The job runner (`devcluster.jobrunner`) finishes those pods instead."""
    documents = [doc for doc in yaml.safe_load_all(stages) if doc]
    kept = [
        doc for doc in documents if not (doc.get("kind") == "Stage" and doc["metadata"]["name"] == POD_COMPLETE_STAGE)
    ]
    if len(kept) != len(documents) - 1:
        raise StageFormatError(f"expected one Stage named {POD_COMPLETE_STAGE!r} in kwok's stages")
    return yaml.dump_all(kept, Dumper=_Dumper, sort_keys=False)
