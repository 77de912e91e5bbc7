"""`controller.applied`: which server-side applies can be skipped, and which must happen again."""

from __future__ import annotations

import copy

from modelrollout.controller.applied import contains, stamped, unchanged
from modelrollout.core.labels import APPLIED_ANNOTATION

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "models", "labels": {"app": "web"}},
    "spec": {"selector": {"revision": "a1"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
}


def live_from(desired: dict) -> dict:
    """What the apiserver answers after applying `desired`: our fields, plus its defaults and its own."""
    live = copy.deepcopy(desired)
    live["metadata"].update(uid="u-1", resourceVersion="7", managedFields=[{"manager": "modelrollout"}])
    live["spec"]["ports"][0]["protocol"] = "TCP"
    live["spec"].update(type="ClusterIP", clusterIP="10.0.0.9", sessionAffinity="None")
    live["status"] = {"loadBalancer": {}}
    return live


def test_the_stamp_is_a_hash_of_the_object_and_changes_with_it():
    once, again = stamped(SERVICE), stamped(copy.deepcopy(SERVICE))
    other = stamped({**SERVICE, "spec": {**SERVICE["spec"], "selector": {"revision": "b2"}}})
    assert once["metadata"]["annotations"][APPLIED_ANNOTATION] == again["metadata"]["annotations"][APPLIED_ANNOTATION]
    assert once["metadata"]["annotations"][APPLIED_ANNOTATION] != other["metadata"]["annotations"][APPLIED_ANNOTATION]
    assert "annotations" not in SERVICE["metadata"]  # the rendered object is left as it was


def test_an_object_as_applied_with_the_apiservers_defaults_is_unchanged():
    desired = stamped(SERVICE)
    assert unchanged(desired, live_from(desired))


def test_an_absent_or_unknown_object_is_applied():
    assert not unchanged(stamped(SERVICE), None)


def test_a_field_edited_by_hand_is_applied_again():
    desired = stamped(SERVICE)
    live = live_from(desired)
    live["spec"]["selector"]["revision"] = "zz"
    assert not unchanged(desired, live)


def test_a_field_we_stopped_setting_is_applied_away_even_though_the_rest_matches():
    before = stamped({**SERVICE, "spec": {**SERVICE["spec"], "sessionAffinity": "ClientIP"}})
    live = live_from(before)
    live["spec"]["sessionAffinity"] = "ClientIP"
    now = stamped(SERVICE)
    assert contains(live, {**now, "metadata": SERVICE["metadata"]})  # every field we want is there...
    assert not unchanged(now, live)  # ...but the hash says what we want is not what was applied


def test_a_removed_stamp_or_list_element_is_applied_again():
    desired = stamped(SERVICE)
    unstamped = live_from(desired)
    del unstamped["metadata"]["annotations"][APPLIED_ANNOTATION]
    extra_port = live_from(desired)
    extra_port["spec"]["ports"].append({"name": "debug", "port": 9000})
    assert not unchanged(desired, unstamped)
    assert not unchanged(desired, extra_port)


def test_a_value_the_apiserver_normalises_is_applied_every_time():
    desired = stamped({**SERVICE, "spec": {**SERVICE["spec"], "cpu": "0.5"}})
    live = live_from(desired)
    live["spec"]["cpu"] = "500m"
    assert not unchanged(desired, live)
