"""The slot table: balanced, stable under removal, the same on every node."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.cluster.ring import SLOTS, Ring, slot_of, slot_of_hex

peer_ids = st.lists(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12),
    min_size=1,
    max_size=8,
    unique=True,
)


@settings(max_examples=25, deadline=None)
@given(peer_ids)
def test_every_node_with_the_same_peers_agrees(peers: list[str]) -> None:
    shuffled = random.Random(1).sample(peers, len(peers))
    assert Ring.of(peers) == Ring.of(shuffled)
    assert Ring.of(peers).version == Ring.of(shuffled).version


@settings(max_examples=25, deadline=None)
@given(peer_ids.filter(lambda p: len(p) >= 2), st.data())
def test_removing_a_peer_moves_only_its_slots(peers: list[str], data: st.DataObject) -> None:
    ring = Ring.of(peers)
    gone = data.draw(st.sampled_from(peers))
    after = ring.without([gone])
    for slot in range(SLOTS):
        before_owner = ring.peers[ring.owners[slot]]
        after_owner = after.peers[after.owners[slot]]
        if before_owner != gone:
            assert after_owner == before_owner
    # ...and adding it back restores the table exactly.
    assert Ring.of([*after.peers, gone]) == ring


def test_slots_are_balanced() -> None:
    for count in (2, 3, 5, 8):
        ring = Ring.of(f"node-{i}" for i in range(count))
        fair = SLOTS / count
        for peer in ring.peers:
            assert 0.85 * fair <= len(ring.slots_of(peer)) <= 1.15 * fair, (count, peer)


def test_random_trace_ids_spread_like_the_slots() -> None:
    ring = Ring.of(["a", "b", "c"])
    rng = random.Random(7)
    owners = [ring.owner_of_hex(f"{rng.getrandbits(128):032x}") for _ in range(30_000)]
    for peer in ring.peers:
        assert 0.28 < owners.count(peer) / len(owners) < 0.39


def test_slot_of_uses_the_low_64_bits() -> None:
    trace_id = "0123456789abcdef" + "00000000000010ff"
    assert slot_of_hex(trace_id) == slot_of(0x10FF) == 0x10FF % SLOTS
    assert Ring.of(["x"]).owner(12345) == "x"
