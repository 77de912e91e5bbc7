"""Fixtures shared by the unit tests of the pure core."""

from __future__ import annotations

import pytest

from tests.unit.world import World, make_spec


@pytest.fixture
def stable_world() -> World:
    world = World(make_spec())
    world.run()
    assert world.status["phase"] == "Healthy"
    return world
