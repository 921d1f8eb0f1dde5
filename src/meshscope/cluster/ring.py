"""Which peer owns a trace: a slot table over the live peers, built by rendezvous hashing.

A trace id's low 64 bits pick one of `SLOTS` slots (trace ids are random, so their low bits
are uniform); each slot belongs to the peer with the highest `score(peer, slot)`. So every
node with the same peer list builds the same table (no coordination), removing a peer moves
only the slots it owned (every other slot's highest scorer is unchanged), and adding it back
restores the previous table exactly. With 4096 slots each of N peers owns 4096/N +- ~3
standard deviations (sqrt(4096 (1/N)(1 - 1/N)), e.g. +-2.5% at N=3).

Pure and immutable: membership changes build a new `Ring`; its `version` (a hash of the
sorted live ids) tells nodes whether they route alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SLOTS = 4096
_MASK64 = (1 << 64) - 1


def slot_of(trace_lo: int) -> int:
    """The slot of a trace id, from its low 64 bits."""
    return (trace_lo & _MASK64) % SLOTS


def slot_of_hex(trace_id: str) -> int:
    """The slot of a hex trace id (the last 16 hex digits are the low 64 bits)."""
    return slot_of(int(trace_id[-16:] or "0", 16))


def score(peer: str, slot: int) -> int:
    """Rendezvous score of `peer` for `slot`: a stable hash (not Python's salted `hash`)."""
    digest = hashlib.blake2b(f"{peer}\x00{slot}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _best(ids: Sequence[str], slot: int) -> int:
    return max(range(len(ids)), key=lambda i: score(ids[i], slot))


@dataclass(frozen=True, slots=True)
class Ring:
    """The owners of all slots for one set of live peers."""

    peers: tuple[str, ...]
    owners: bytes = field(repr=False)  # slot -> index into `peers` (compact: pickled often)
    version: str = ""

    @classmethod
    def of(cls, peers: Iterable[str]) -> Ring:
        ids = tuple(sorted(set(peers)))
        if not ids:
            raise ValueError("a ring needs at least one peer")
        if len(ids) > 256:
            raise ValueError("a ring holds at most 256 peers")
        owners = bytes(_best(ids, slot) for slot in range(SLOTS))
        version = hashlib.blake2b("\n".join(ids).encode(), digest_size=6).hexdigest()
        return cls(ids, owners, version)

    def owner(self, trace_lo: int) -> str:
        return self.peers[self.owners[slot_of(trace_lo)]]

    def owner_of_hex(self, trace_id: str) -> str:
        return self.peers[self.owners[slot_of_hex(trace_id)]]

    def slots_of(self, peer: str) -> list[int]:
        index = self.peers.index(peer)
        return [slot for slot, owner in enumerate(self.owners) if owner == index]

    def without(self, peers: Sequence[str]) -> Ring:
        """The ring after `peers` left (at least one peer must stay)."""
        return Ring.of(p for p in self.peers if p not in peers)
