"""Notifications on the local control plane: a receiver on loopback is told that a person must approve,
with the exact promote command, and then that the model was promoted; a receiver that hangs and one that
is down delay neither the rollout nor the other receiver, and the one that is down ends as a Warning
Event naming it."""

from __future__ import annotations

import socket

from tests.integration.helpers import WebhookReceiver, plugin, sample, start_canary, wait_events, wait_status


def closed_url() -> str:
    """A loopback URL where nobody listens (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def test_a_person_is_asked_to_approve_with_the_command_and_receivers_that_fail_delay_nothing(
    control_plane, operator, namespace
):
    hanging, team = WebhookReceiver(hold=True), WebhookReceiver()
    try:
        receivers = [
            {"name": "hangs", "url": hanging.url},
            {"name": "down", "url": closed_url()},
            {"name": "team", "url": team.url},
        ]
        steps = [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]
        body = sample(replicas=2, strategy={"canary": {"steps": steps}}, notifications={"receivers": receivers})
        _stable, canary = start_canary(control_plane, namespace, body)

        approval = team.wait_for(lambda b: b["kind"] == "ApprovalNeeded", "approval notice")
        assert approval["command"] == f"kubectl modelrollout promote fraud-scorer -n {namespace}"
        assert approval["modelDeployment"] == {"namespace": namespace, "name": "fraud-scorer"}
        assert approval["revision"] == canary and "waiting for a person" in approval["message"]
        held = hanging.wait_for(lambda b: b["kind"] == "ApprovalNeeded", "approval notice (never answered)")
        assert held["command"] == approval["command"]

        # The hanging receiver still holds its request, the other is down: the rollout goes on.
        promoted = plugin(control_plane, "promote", "fraud-scorer", "-n", namespace)
        assert promoted.returncode == 0, promoted.stderr
        wait_status(
            control_plane,
            namespace,
            lambda s: s["stableRevision"] == canary and s["phase"] == "Healthy",
            "promoted while a receiver hangs",
        )
        done = team.wait_for(lambda b: b["kind"] == "Promoted", "promoted notice")
        assert done["title"] == f"ModelDeployment {namespace}/fraud-scorer promoted"
        assert [b["kind"] for b in team.bodies] == ["ApprovalNeeded", "Promoted"]
        # The closed port gave up after its retries (1 + 2 + 4 + 8 + 16 s): a Warning Event says so.
        recorded = wait_events(control_plane, namespace, "NotificationFailed", timeout=120)
        failed = [e for e in recorded if e["reason"] == "NotificationFailed" and "receiver down " in e["note"]]
        assert failed and failed[0]["type"] == "Warning" and "(6 attempts)" in failed[0]["note"]
    finally:
        hanging.stop()
        team.stop()
