"""Membership: which peers are in the ring. Every `interval` each peer's `/health` is asked
(timeout: the interval); a peer that failed its checks for at least one whole interval (two
checks in a row) leaves the ring, and its slots go to the peers that score next for them
(rendezvous: no other slot moves); one answered check brings it back, with exactly its old
slots. This node never leaves its own ring.

Each node decides alone from its own checks, so for up to about an interval after a change
nodes may route some traces differently; the traces in flight in the moved slots may then be
split (their spans paired or sampled on two nodes): the moved slots and ring changes are
counted, and the split traces show as unpaired spans in the pairing outcomes on `/metrics`.
Runs in a thread of its own (blocking HTTP), swapping the ring the sink routes by.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Mapping

import httpx

from meshscope.cluster.ring import SLOTS, Ring

log = logging.getLogger(__name__)


class Membership:
    def __init__(
        self,
        node_id: str,
        urls: Mapping[str, str],
        interval_s: float,
        use: Callable[[Ring], None],
        check: Callable[[str], bool] | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.node_id = node_id
        self._verify = verify
        self.urls = dict(urls)
        self.interval_s = interval_s
        self._use = use
        self._check = check or self._http_check
        self.failures: dict[str, int] = dict.fromkeys(self.urls, 0)
        self.live: set[str] = set(self.urls)
        self.ring = Ring.of(self.live)
        self.changes = 0
        self.moved_slots = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None

    def _http_check(self, peer: str) -> bool:
        if self._client is None:
            self._client = httpx.Client(timeout=self.interval_s, verify=self._verify)
        try:
            return self._client.get(f"{self.urls[peer]}/health").status_code == 200
        except httpx.HTTPError:
            return False

    def check_once(self) -> None:
        """One round of checks; changes the ring when a peer left or came back."""
        live = set(self.live)
        for peer in self.urls:
            if peer == self.node_id:
                continue
            if self._check(peer):
                self.failures[peer] = 0
                live.add(peer)
            else:
                self.failures[peer] += 1
                if self.failures[peer] >= 2:
                    live.discard(peer)
        if live != self.live:
            ring = Ring.of(live)
            moved = sum(
                a != b for a, b in zip(self._owners(self.ring), self._owners(ring), strict=True)
            )
            log.warning(
                "cluster ring changed",
                extra={"live": sorted(live), "moved_slots": moved, "version": ring.version},
            )
            self.live, self.ring = live, ring
            self.changes += 1
            self.moved_slots += moved
            self._use(ring)

    @staticmethod
    def _owners(ring: Ring) -> list[str]:
        return [ring.peers[ring.owners[slot]] for slot in range(SLOTS)]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="meshscope-membership", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.interval_s + 5)
        if self._client is not None:
            self._client.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check_once()
            except Exception:  # a bug must not stop the checks
                log.exception("cluster health check failed")
