"""Membership: a peer failing its checks for an interval leaves the ring, and comes back."""

from __future__ import annotations

from meshscope.cluster.membership import Membership
from meshscope.cluster.ring import Ring

URLS = {"a": "http://a", "b": "http://b", "c": "http://c"}


def test_a_peer_leaves_after_two_failed_checks_and_returns_after_one_answer() -> None:
    down: set[str] = set()
    used: list[Ring] = []
    members = Membership("a", URLS, 1.0, used.append, check=lambda peer: peer not in down)
    full = members.ring
    members.check_once()
    assert not used
    down.add("c")
    members.check_once()
    assert not used  # one failed check is not an interval yet
    members.check_once()
    assert [ring.peers for ring in used] == [("a", "b")]
    assert members.moved_slots == len(full.slots_of("c"))
    # Only c's slots moved.
    for slot in range(4096):
        if full.peers[full.owners[slot]] != "c":
            assert used[-1].peers[used[-1].owners[slot]] == full.peers[full.owners[slot]]
    down.clear()
    members.check_once()
    assert used[-1] == full and members.changes == 2


def test_this_node_never_leaves_its_own_ring() -> None:
    used: list[Ring] = []
    members = Membership("a", URLS, 1.0, used.append, check=lambda peer: False)
    for _ in range(3):
        members.check_once()
    assert used[-1].peers == ("a",)


def test_unreachable_peers_fail_the_http_check() -> None:
    members = Membership("a", {"a": "", "b": "http://127.0.0.1:9"}, 0.5, lambda ring: None)
    assert not members._http_check("b")
