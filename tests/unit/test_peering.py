"""Active/standby decisions from the peering object, priorities, and the workers' gate."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from kopf._core.engines.peering import Peer as KopfPeer

from modelrollout.controller import metrics
from modelrollout.controller.peering import (
    DEFAULT_LIFETIME_SECONDS,
    Leadership,
    PeeringConfig,
    decide,
    decide_everywhere,
    derived_priority,
    parse_peers,
)
from modelrollout.controller.workqueue import WorkQueue

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
ME = "operator-a"
POLL = 3.0


def entry(priority: int, seconds_ago: float = 1.0, lifetime: int = 15) -> dict:
    """A keep-alive as kopf writes it (kopf's own serialisation, so the format cannot drift)."""
    peer = KopfPeer(identity="ignored", priority=priority, lifetime=lifetime)
    written = peer.as_dict()
    written["lastseen"] = (NOW - timedelta(seconds=seconds_ago)).isoformat()
    return written


def verdict(status: dict, priority: int = -10):
    return decide(parse_peers(status, NOW), ME, priority, NOW, POLL)


def test_older_process_ranks_higher_and_same_millisecond_is_still_distinct():
    started = 1_795_000_000.123
    older, newer = derived_priority(started, "pod-a"), derived_priority(started + 0.001, "pod-b")
    assert older > newer
    same_ms = {derived_priority(started, name) for name in ("pod-a", "pod-b", "pod-c")}
    assert len(same_ms) == 3
    assert all(priority < 0 for priority in [older, newer, *same_ms])  # any explicit priority >= 0 outranks
    assert abs(newer) < 2**53  # stays an exact integer for JSON readers that use doubles


def test_config_is_off_without_a_peering_name_and_validated_with_one():
    assert PeeringConfig.from_environment({}, started_at=0) is None
    config = PeeringConfig.from_environment({"MODELROLLOUT_PEERING": "modelrollout", "POD_ID": "pod-a"}, 1.0)
    assert config == PeeringConfig("modelrollout", "pod-a", derived_priority(1.0, "pod-a"), DEFAULT_LIFETIME_SECONDS)
    explicit = {
        "MODELROLLOUT_PEERING": "x",
        "MODELROLLOUT_PEERING_PRIORITY": "100",
        "MODELROLLOUT_PEERING_LIFETIME": "6",
    }
    assert PeeringConfig.from_environment(explicit, 1.0).priority == 100
    assert PeeringConfig.from_environment(explicit, 1.0).lifetime == 6
    for bad in ({"MODELROLLOUT_PEERING_LIFETIME": "2"}, {"MODELROLLOUT_PEERING_PRIORITY": "high"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PeeringConfig.from_environment({"MODELROLLOUT_PEERING": "x", **bad}, 1.0)


@pytest.mark.parametrize(
    ("others", "active", "reason"),
    [
        ({}, True, "active"),
        ({"operator-b": entry(-20)}, True, "active"),  # a lower priority stands by for us
        ({"operator-b": entry(-5)}, False, "standing by for operator-b"),
        ({"operator-b": entry(-5, seconds_ago=20)}, True, "active"),  # its keep-alive expired: it is dead
        ({"operator-b": entry(-10)}, False, "same priority"),  # kopf freezes both
        ({"kopf-freeze@laptop": entry(100)}, False, "standing by for kopf-freeze@laptop"),  # `kopf freeze`
    ],
)
def test_active_unless_a_live_peer_outranks_or_ties(others, active, reason):
    result = verdict({ME: entry(-10), **others})
    assert result.active is active
    assert reason in result.reason


def test_no_own_keep_alive_or_an_expired_one_means_standby():
    assert not verdict({}).active
    assert not verdict({}).registered
    expired = verdict({ME: entry(-10, seconds_ago=16)})
    assert not expired.active and "expired" in expired.reason
    assert expired.registered


def test_standby_rechecks_when_the_blocking_peer_expires_and_active_before_its_own_entry_does():
    standby = verdict({ME: entry(-10), "operator-b": entry(-5, seconds_ago=14)})
    assert standby.recheck_in == pytest.approx(1.05)  # at its deadline, not a poll later
    active = verdict({ME: entry(-10, seconds_ago=14.5)})
    assert active.active and active.recheck_in == pytest.approx(0.55)
    assert verdict({ME: entry(-10)}).recheck_in == POLL


def test_unreadable_entries_are_ignored_and_missing_fields_take_kopfs_defaults():
    peers = parse_peers({"x": "garbage", "y": {"priority": "high"}, "z": {}}, NOW)
    assert [(peer.identity, peer.priority, peer.lifetime, peer.lastseen) for peer in peers] == [("z", 0, 60.0, NOW)]


def test_every_peering_object_must_agree_and_a_missing_one_stands_by():
    config = PeeringConfig("modelrollout", ME, -10, 15)
    mine = {"status": {ME: entry(-10)}}
    contested = {"status": {ME: entry(-10), "operator-b": entry(-5)}}
    assert decide_everywhere([("KopfPeering a/modelrollout", mine)], config, NOW).active
    assert not decide_everywhere([("a", mine), ("b", contested)], config, NOW).active
    missing = decide_everywhere([("ClusterKopfPeering modelrollout", None)], config, NOW)
    assert not missing.active and "ClusterKopfPeering modelrollout not found" in missing.reason


def run_gate(scenario):
    return asyncio.run(scenario())


async def settle() -> None:
    """Let every ready task run until it blocks (no wall-clock time involved)."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_standby_parks_keys_until_it_becomes_active():
    async def scenario():
        queue = WorkQueue()
        leadership = Leadership(False, "standby")
        queue.add(("ns", "a"))
        taking = asyncio.create_task(leadership.next_key(queue))
        await settle()
        parked = (taking.done(), len(queue), metrics.REGISTRY.get_sample_value("modelrollout_leader"))
        assert leadership.update(True, "active")
        return parked, await asyncio.wait_for(taking, 5), metrics.REGISTRY.get_sample_value("modelrollout_leader")

    assert run_gate(scenario) == ((False, 1, 0), ("ns", "a"), 1)


def test_a_key_taken_just_as_the_replica_steps_down_is_put_back():
    async def scenario():
        queue = WorkQueue()
        leadership = Leadership(True, "active")
        taking = asyncio.create_task(leadership.next_key(queue))
        await settle()  # the worker waits on the empty queue, still active
        assert not leadership.update(False, "standing by for operator-b")
        queue.add(("ns", "a"))
        await settle()
        parked = (taking.done(), len(queue))
        leadership.update(True, "active")
        return parked, await asyncio.wait_for(taking, 5)

    assert run_gate(scenario) == ((False, 1), ("ns", "a"))
