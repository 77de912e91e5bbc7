"""kopf handlers: the thin shell that feeds the work queue and runs reconciles.

Rules:
- Handlers only translate watch events into queue keys; every decision is in the core and every
  write in `controller.reconciler`, so a missed or duplicate event changes nothing (level-triggered).
- kopf's `on.event` handlers keep no state on the objects: no finalizers, no annotations on the
  user's ModelDeployment, so Git and the cluster never disagree because of the operator.
- Reconciles use the synchronous Kubernetes client, so they run in a thread pool off the event loop.
- Reconciles read from memory (`controller.cache`): ModelDeployments as kopf's watch delivers them, and
  what they own from informers that also wake the owner's reconcile when a child changes.
- Handlers are coroutines: they run on the event loop, where the work queue lives (kopf would run a
  plain function in a thread, and the queue is not thread-safe).
- With peering on (`MODELROLLOUT_PEERING`, see `controller.peering`), workers reconcile only while this
  replica is the active one; on becoming active it queues every ModelDeployment, since a standby
  replica's kopf watches were frozen and its queue holds only what was parked.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from modelrollout.controller import apiready, metrics
from modelrollout.controller.alertpoller import AlertPoller
from modelrollout.controller.alerts import AlarmChecker, AlarmIndex, WebhookAlerts
from modelrollout.controller.analysis import AnalysisRunner
from modelrollout.controller.cache import OwnedCache
from modelrollout.controller.events import EventSender
from modelrollout.controller.notify import Notifier, operator_receivers
from modelrollout.controller.peering import (
    CLUSTER_PEERING,
    NAMESPACED_PEERING,
    Leadership,
    PeeringConfig,
    PeeringLocation,
    PeeringMonitor,
)
from modelrollout.controller.reconciler import Reconciler, utcnow
from modelrollout.controller.server import OperatorServer
from modelrollout.controller.workqueue import WorkQueue
from modelrollout.core.spec import AlertMatcher, parse_spec
from modelrollout.kube.client import DEPLOYMENT, MODEL_DEPLOYMENT, SERVICE, KubeClient, load_configuration
from modelrollout.kube.tally import TALLY, count_kopf_requests

log = logging.getLogger(__name__)

# Before kopf's first request (its start-up lists come before any startup handler runs).
count_kopf_requests(TALLY)

GROUP, VERSION, PLURAL = "modelrollout.io", "v1alpha1", "modeldeployments"


def number_setting(name: str, default: str, whole: bool = False, environ: Mapping[str, str] = os.environ) -> float:
    """A positive number from the operator's environment; anything else names the setting and what it needs."""
    text = environ.get(name, default)
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = 0
    if not value > 0:
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"{name} must be {kind} above 0, not {text!r}")
    return value


RESYNC_SECONDS = number_setting("MODELROLLOUT_RESYNC_SECONDS", "300")
WORKERS = int(number_setting("MODELROLLOUT_WORKERS", "4", whole=True))
URGENT_WORKERS = int(number_setting("MODELROLLOUT_URGENT_WORKERS", "4", whole=True))


@kopf.on.login()
def operator_login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's watches authenticate exactly like the reconciler's client (in-cluster, or $KUBECONFIG now)."""
    configuration = load_configuration()
    header = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken") or ""
    scheme, _, token = header.partition(" ") if " " in header else ("Bearer", "", header)
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        username=configuration.username or None,
        password=configuration.password or None,
    )


@kopf.on.startup()
async def operator_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    try:
        peering = PeeringConfig.from_environment(os.environ, started_at=time.time())
    except ValueError as error:
        raise kopf.PermanentError(str(error)) from None
    _configure_peering(settings, peering)
    # kopf's own Events are for its handler failures; ours are written by the reconciler.
    settings.posting.level = logging.WARNING
    # Reconnect watches regularly so a silently dropped connection heals without a restart.
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 150
    served = tuple(memo.get("served_namespaces") or ())
    if served and all(_exact(namespace) for namespace in served):
        # Exact namespaces need no Namespace list or watch to match patterns; the namespaced RBAC grants
        # none, and kopf would retry the refused list for a minute, at ERROR, before serving anything.
        settings.scanning.disabled = True
    memo.kube = KubeClient.from_environment(tally=TALLY)
    # Before kopf's first list: a fresh CRD answers 429 for a moment, which kopf would log at ERROR.
    namespaces = list(memo.get("served_namespaces") or ()) or [None]
    await asyncio.to_thread(apiready.wait_until_served, memo.kube, (MODEL_DEPLOYMENT, DEPLOYMENT, SERVICE), namespaces)
    memo.webhook = WebhookAlerts()
    memo.alarm_index = AlarmIndex()
    memo.queue = WorkQueue()
    loop = asyncio.get_running_loop()
    memo.poller = AlertPoller(
        os.environ.get("MODELROLLOUT_PROMETHEUS_URL", ""),
        wake=lambda key: loop.call_soon_threadsafe(functools.partial(memo.queue.add, key, urgent=True)),
    ).start()
    alarms = AlarmChecker(memo.webhook, memo.poller)
    memo.cache = OwnedCache(
        memo.kube,
        _informer_namespaces(memo.get("served_namespaces")),
        lambda namespace, name: loop.call_soon_threadsafe(memo.queue.add, (namespace, name)),
    )
    metrics.CACHE_SIZES.sizes = memo.cache.sizes
    # Safety work waits: reconciles write what moves traffic first, Events after it (see controller.reconciler).
    safety_waits = functools.partial(_urgent_work_waits, memo.queue)
    memo.events = EventSender(memo.kube, hold=safety_waits).start()
    memo.notifier = Notifier(memo.kube, operator_receivers(os.environ), events=memo.events).start()
    memo.reconciler = Reconciler(
        memo.kube,
        utcnow,
        AnalysisRunner(memo.kube),
        alarms,
        memo.cache,
        memo.events,
        memo.notifier,
        hurry=safety_waits,
    )
    memo.executor = ThreadPoolExecutor(max_workers=WORKERS + URGENT_WORKERS, thread_name_prefix="reconcile")
    memo.peering_monitor = None
    if peering is None:
        memo.leadership = Leadership(True, "active: peering is off (standalone)")
    else:
        memo.leadership = Leadership(False, "standby until the peering object is read")
        locations = _peering_locations(peering.name, settings.peering.clusterwide, memo.get("served_namespaces"))
        monitor = PeeringMonitor(
            peering, lambda: _read_peerings(memo.kube, locations), memo.leadership, lambda: _resync_all(memo)
        )
        memo.peering_monitor = asyncio.create_task(monitor.run(), name="modelrollout-peering")
    memo.workers = [asyncio.create_task(_worker(memo), name=f"modelrollout-worker-{i}") for i in range(WORKERS)]
    # Workers of the urgent lane only: an alarm or a person's action never waits for a free worker, and
    # many alarms at once (one webhook for a whole fleet) are served by all workers together.
    memo.workers += [
        asyncio.create_task(_worker(memo, urgent_only=True), name=f"modelrollout-worker-urgent-{i}")
        for i in range(URGENT_WORKERS)
    ]
    memo.server = None
    address = os.environ.get("MODELROLLOUT_HTTP_ADDRESS") or default_http_address(os.environ)
    if address != "off":
        host, _, port = address.rpartition(":")
        memo.server = OperatorServer(
            memo.webhook,
            lambda firing: _queue_matching(memo, firing),
            _webhook_token(),
            host or "0.0.0.0",
            int(port),
            is_active=lambda: memo.leadership.active,
        )
        await memo.server.start()


def _urgent_work_waits(queue: WorkQueue) -> bool:
    return queue.urgent_waiting() > 0


def default_http_address(environ: Mapping[str, str]) -> str:
    """All interfaces in a pod (probes and the Service reach it there), loopback anywhere else: a developer's
    `modelrollout run` does not offer the webhook and /metrics to the network."""
    return "0.0.0.0:8080" if environ.get("KUBERNETES_SERVICE_HOST") else "127.0.0.1:8080"


def _configure_peering(settings: kopf.OperatorSettings, peering: PeeringConfig | None) -> None:
    """Standalone without a peering name; otherwise mandatory peering, so a replica that cannot see the
    peering object stays frozen instead of running beside the active one."""
    if peering is None:
        settings.peering.standalone = True
        return
    settings.peering.standalone = False
    settings.peering.mandatory = True
    settings.peering.name = peering.name
    settings.peering.priority = peering.priority
    # Bounds the takeover: a killed replica's entry expires this long after its last keep-alive.
    settings.peering.lifetime = peering.lifetime
    # kopf logs every keep-alive at debug level otherwise; pauses and resumes are still logged.
    settings.peering.stealth = True
    log.info("peering %r as %r with priority %d", peering.name, peering.identity, peering.priority)


def _peering_locations(name: str, clusterwide: bool, served_namespaces: Any) -> list[PeeringLocation]:
    """Where kopf keeps its keep-alives: one ClusterKopfPeering, or a KopfPeering per served namespace."""
    if clusterwide:
        return [PeeringLocation(CLUSTER_PEERING, None, name)]
    namespaces = list(served_namespaces or ())
    if not namespaces or not all(_exact(namespace) for namespace in namespaces):
        raise kopf.PermanentError("namespaced peering needs exact namespaces: run `modelrollout run --namespace NS`")
    return [PeeringLocation(NAMESPACED_PEERING, namespace, name) for namespace in namespaces]


def _informer_namespaces(served_namespaces: Any) -> list[str | None]:
    """One informer per served namespace when they are exact names, else one for all namespaces."""
    namespaces = list(served_namespaces or ())
    return namespaces if namespaces and all(_exact(namespace) for namespace in namespaces) else [None]


def _exact(namespace: str) -> bool:
    """A namespace name, not one of kopf's patterns (globs, lists, negations)."""
    return not set(namespace) & set("*?[!,")


def _read_peerings(kube: KubeClient, locations: list[PeeringLocation]) -> list[tuple[str, dict | None]]:
    return [(str(where), kube.get(where.kind, where.namespace, where.name)) for where in locations]


async def _resync_all(memo: kopf.Memo) -> None:
    """Queue every ModelDeployment this replica serves, now that it is the active one."""
    loop = asyncio.get_running_loop()
    namespaces = memo.get("served_namespaces") or [None]
    try:
        bodies = [
            body
            for namespace in namespaces
            for body in await loop.run_in_executor(memo.executor, memo.kube.list, MODEL_DEPLOYMENT, namespace)
        ]
    except Exception as error:  # noqa: BLE001 - kopf re-lists on resume and queues them anyway
        log.warning("resync after becoming active failed; relying on kopf's re-list: %s", error)
        return
    memo.cache.replace_models(bodies)
    for body in bodies:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        memo.alarm_index.set(key, _alert_matchers(body))
        memo.queue.add(key)
    log.info("active: queued %d ModelDeployments", len(bodies))


def _webhook_token() -> str:
    """The Alertmanager webhook's shared token, from a file (a mounted Secret) or the environment."""
    path = os.environ.get("MODELROLLOUT_WEBHOOK_TOKEN_FILE")
    if path:
        with open(path) as token_file:
            return token_file.read().strip()
    return os.environ.get("MODELROLLOUT_WEBHOOK_TOKEN", "")


def _queue_matching(memo: kopf.Memo, firing: list[dict[str, str]]) -> None:
    """Queue every ModelDeployment whose rollbackOn could match one of the alerts just pushed."""
    for key in memo.alarm_index.woken_by(firing):
        memo.queue.add(key, urgent=True)


@kopf.on.cleanup()
async def operator_cleanup(memo: kopf.Memo, **_: Any) -> None:
    if memo.server is not None:
        await memo.server.stop()
    tasks = [*memo.workers, *([memo.peering_monitor] if memo.peering_monitor is not None else [])]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    memo.queue.close()
    memo.poller.stop()
    memo.cache.stop()
    memo.executor.shutdown(wait=True, cancel_futures=True)
    await asyncio.to_thread(memo.events.stop)
    await asyncio.to_thread(memo.notifier.stop)
    memo.kube.close()


async def _worker(memo: kopf.Memo, urgent_only: bool = False) -> None:
    loop = asyncio.get_running_loop()
    queue: WorkQueue = memo.queue
    leadership: Leadership = memo.leadership
    while True:
        key = await leadership.next_key(queue, urgent_only)
        namespace, name = key
        try:
            with metrics.RECONCILE_SECONDS.time():
                requeue = await loop.run_in_executor(memo.executor, memo.reconciler.reconcile, namespace, name)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - any failure is retried with backoff; the stable model keeps serving
            metrics.RECONCILE_ERRORS.inc()
            delay = queue.retry_delay(key)
            log.warning("reconcile of %s/%s failed, retrying in %.1fs: %s", namespace, name, delay, error)
            queue.add_after(key, delay)
        else:
            queue.forget(key)
            # Time-based steps (pauses, delayed scale-downs) ask to be woken; otherwise resync rarely. A
            # deleted ModelDeployment is not: kopf's watch queues it again if it comes back.
            if memo.cache.model(namespace, name) is not None:
                queue.add_after(key, min(requeue, RESYNC_SECONDS) if requeue is not None else RESYNC_SECONDS)
        finally:
            queue.done(key)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def modeldeployment_event(
    type: str, event: kopf.RawEvent, body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, **_: Any
) -> None:
    key = (namespace, name)
    if type == "DELETED":
        memo.cache.forget(namespace, name, body.metadata.get("resourceVersion"))
        memo.alarm_index.forget(key)
        memo.poller.forget(key)
        metrics.forget(namespace, name)
        return
    memo.cache.remember(event["object"])  # kept as its JSON: kopf's dict is neither held nor changed
    memo.alarm_index.set(key, _alert_matchers(body))
    # A person's action (status.request) is safety work: it goes before routine reconciles.
    memo.queue.add(key, urgent=bool((body.get("status") or {}).get("request")))


def _alert_matchers(body: kopf.Body) -> tuple[AlertMatcher, ...]:
    try:
        return parse_spec(dict(body.get("spec") or {})).rollback_alerts
    except (KeyError, TypeError, ValueError):
        return ()  # the reconcile reports a bad spec; the index just skips it
