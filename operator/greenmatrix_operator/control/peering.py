"""Which of several operator replicas works: the one Kopf's peering leaves running.

Kopf pauses its own watches in a replica that sees a live peer of higher priority (and every replica
on a tie), but the reconciler's workers are ours: they re-queue workloads for their next live
evaluation and would go on writing statuses and scaling targets from a paused replica. So the
workers wait on `Activity.active`, which follows the same peering object by the same rule: active
while our own keep-alive is there and no other live peer has a priority as high. A replica that
cannot read the peering object for a whole lifetime stops working: two replicas acting at once is
worse than a pause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Peer:
    """One operator's keep-alive in the peering object's status."""

    identity: str
    priority: int
    deadline: float
    """When its keep-alive expires (epoch seconds): lastseen plus lifetime."""


def peers_of(status: Mapping[str, Any]) -> list[Peer]:
    """The peers a Kopf peering object's status lists (entries that do not parse are skipped)."""
    out = []
    for identity, info in (status or {}).items():
        try:
            seen = datetime.fromisoformat(str(info["lastseen"]).replace("Z", "+00:00")).timestamp()
            out.append(
                Peer(str(identity), int(info.get("priority", 0)), seen + float(info.get("lifetime", 60)))
            )
        except (KeyError, TypeError, ValueError):
            continue
    return out


def is_active(peers: list[Peer], identity: str, priority: int, now: float) -> bool:
    """Kopf's rule: our keep-alive is live and no other live peer has a priority as high as ours."""
    if not any(p.identity == identity and p.deadline > now for p in peers):
        return False
    return not any(p.identity != identity and p.deadline > now and p.priority >= priority for p in peers)


class Activity:
    """Keeps `active` set while this replica is the one that works."""

    def __init__(
        self,
        read: Callable[[], Awaitable[Mapping[str, Any]]],
        identity: str,
        priority: int,
        lifetime: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.read = read
        """Returns the peering object's status (raises when it cannot)."""
        self.identity = identity
        self.priority = priority
        self.lifetime = lifetime
        self.clock = clock
        self.active = asyncio.Event()
        self._last_read = clock()

    @classmethod
    def standalone(cls) -> Activity:
        """Always active: no peers to defer to."""

        async def nobody() -> Mapping[str, Any]:
            return {}

        activity = cls(nobody, "standalone", 0, float("inf"))
        activity.active.set()
        return activity

    async def check(self) -> bool:
        """Read the peers once; set or clear `active`; the new state."""
        now = self.clock()
        try:
            status = await self.read()
        except Exception as err:
            if now - self._last_read > self.lifetime:
                self._set(False, f"the peering object unread for {now - self._last_read:.0f}s: {err}")
            return self.active.is_set()
        self._last_read = now
        active = is_active(peers_of(status), self.identity, self.priority, now)
        self._set(active, "the highest priority among live peers" if active else "a peer has priority")
        return active

    def _set(self, active: bool, why: str) -> None:
        if active and not self.active.is_set():
            logger.info("active (%s, priority %d): reconciling", why, self.priority)
            self.active.set()
        elif not active and self.active.is_set():
            logger.info("standing by (%s): not reconciling", why)
            self.active.clear()

    async def run(self) -> None:
        """Check every few seconds until cancelled; a takeover comes within a lifetime plus one check."""
        every = max(1.0, min(5.0, self.lifetime / 4))
        while True:
            await self.check()
            await asyncio.sleep(every)
