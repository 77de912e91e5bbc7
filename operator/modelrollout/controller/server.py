"""The operator's HTTP endpoint: /metrics, /healthz, and the Alertmanager webhook.

Rules:
- The webhook (`POST /alertmanager`) is off unless a shared token is configured; requests must carry
  `Authorization: Bearer <token>` (compared in constant time). Anything else gets 401, malformed
  bodies 400, and nothing is acted on.
- Accepted alerts are stored, then every ModelDeployment whose rollbackOn matches is queued at once,
  so a rollback does not wait for the next poll.
- A standby replica (see `controller.peering`) answers the webhook 503, so Alertmanager retries and
  reaches the active one; /healthz stays 200 on it, since it is ready to take over.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelrollout.controller import metrics
from modelrollout.controller.alerts import WebhookAlerts

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024


class OperatorServer:
    def __init__(
        self,
        webhook: WebhookAlerts,
        on_alerts: Callable[[list[dict[str, str]]], None],
        token: str = "",
        host: str = "0.0.0.0",
        port: int = 8080,
        is_active: Callable[[], bool] = lambda: True,
    ) -> None:
        self._webhook = webhook
        self._on_alerts = on_alerts
        self._token = token
        self._host = host
        self._port = port
        self._is_active = is_active
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_post("/alertmanager", self._alertmanager)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        log.info("serving /metrics and /alertmanager on %s:%d", self._host, self._port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok" if self._is_active() else "ok (standby)")

    async def _alertmanager(self, request: web.Request) -> web.Response:
        if not self._token:
            return web.Response(status=404, text="the Alertmanager webhook is off: no token is configured\n")
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode()):
            return web.Response(status=401, text="unauthorized\n")
        if not self._is_active():
            return web.Response(status=503, text="standby replica: send the alert to the active one\n")
        try:
            payload = await request.json()
            firing = self._webhook.receive(payload)
        except (ValueError, TypeError, AttributeError) as error:
            return web.Response(status=400, text=f"bad Alertmanager payload: {error}\n")
        for alert in payload.get("alerts", []):
            metrics.WEBHOOK_ALERTS.labels(str(alert.get("status", "unknown"))).inc()
        if firing:
            self._on_alerts(firing)
        return web.Response(text=f"{len(firing)} firing\n")
