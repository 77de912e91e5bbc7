from datetime import UTC, datetime, timedelta

from modelrollout.core.conditions import Condition, merge_conditions, whole_second_after

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def test_new_conditions_get_now_as_transition_time_and_generation():
    rendered = merge_conditions([], [Condition("Ready", False, "WaitingForPods", "0/3")], 4, T0)
    assert rendered == [
        {
            "type": "Ready",
            "status": "False",
            "observedGeneration": 4,
            "lastTransitionTime": "2026-11-22T12:00:00Z",
            "reason": "WaitingForPods",
            "message": "0/3",
        }
    ]


def test_transition_time_kept_while_status_unchanged_and_moved_on_change():
    first = merge_conditions([], [Condition("Ready", False, "WaitingForPods", "0/3")], 1, T0)
    later = T0 + timedelta(minutes=5)
    same = merge_conditions(first, [Condition("Ready", False, "WaitingForPods", "2/3")], 1, later)
    assert same[0]["lastTransitionTime"] == "2026-11-22T12:00:00Z"
    assert same[0]["message"] == "2/3"
    flipped = merge_conditions(same, [Condition("Ready", True, "Available", "3/3")], 1, later)
    assert flipped[0]["lastTransitionTime"] == "2026-11-22T12:05:00Z"


def test_conditions_come_in_a_fixed_order():
    rendered = merge_conditions(
        [], [Condition("Degraded", False, "x"), Condition("Ready", True, "y"), Condition("Stalled", False, "z")], 1, T0
    )
    assert [c["type"] for c in rendered] == ["Ready", "Stalled", "Degraded"]


def test_a_moment_is_rounded_up_to_the_whole_second_the_status_keeps():
    whole = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    assert whole_second_after(whole) == whole
    assert whole_second_after(whole.replace(microsecond=300_000)) == whole.replace(second=1)
