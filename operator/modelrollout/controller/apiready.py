"""Waiting, at start-up, until the apiserver serves what the operator watches.

Right after its CRDs are installed (a fresh cluster, a first install) the apiserver answers a watched
resource with 429 "storage is (re)initializing" for a second or two. kopf would log each refused list
at ERROR and retry; a normal start must not look like a failure, so the operator waits here first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from modelrollout.kube.client import Kind, KubeClient, KubeError

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = (429, 500, 503, 504)


def wait_until_served(
    kube: KubeClient,
    kinds: Iterable[Kind],
    namespaces: Iterable[str | None],
    timeout: float = 60.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """List each kind in each namespace until all answer; False when `timeout` passed first.

    Only transient answers are waited out; any other error (403: RBAC) is raised at once, naming it.
    """
    deadline = clock() + timeout
    pending = [(kind, namespace) for kind in kinds for namespace in namespaces]
    told = False
    while pending:
        kind, namespace = pending[0]
        try:
            kube.request("GET", kind.path(namespace), query={"limit": "1"})
            pending.pop(0)
            continue
        except KubeError as error:
            if error.not_found:
                raise RuntimeError(
                    f"the apiserver does not serve {kind.plural} ({kind.api_version}): install the CRDs first "
                    "(kubectl apply -k crds, or the Helm chart), then start the operator again"
                ) from error
            if error.status not in TRANSIENT_STATUSES:
                raise
            reason = error.message
        except OSError as error:  # the apiserver restarting: connection refused or reset
            reason = str(error)
        if clock() >= deadline:
            log.warning(
                "the apiserver still does not serve %s after %.0fs (%s); starting anyway", kind.plural, timeout, reason
            )
            return False
        if not told:
            log.info("waiting for the apiserver to serve %s: %s", kind.plural, reason)
            told = True
        sleep(0.25)
    return True
