"""The shared set index: a key whose last value leaves is gone, so an index does not grow with what left it."""

from __future__ import annotations

from modelrollout.core.setindex import SetIndex


def test_a_key_whose_last_value_leaves_is_gone_and_absent_keys_read_empty():
    index: SetIndex[str, int] = SetIndex()
    index.add("a", 1)
    index.add("a", 2)
    index.add("b", 1)
    index.discard("a", 1)
    assert (index.get("a"), len(index)) == ({2}, 2)
    index.discard("a", 2)
    index.discard("missing", 1)
    assert (index.get("a"), len(index)) == (frozenset(), 1)
