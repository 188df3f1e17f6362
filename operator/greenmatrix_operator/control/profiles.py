"""The WorkloadProfiles this process knows, by key and by namespace, kept from the watch's events.

Not a Kopf index. With one, Kopf holds back every object's worker until every object is indexed,
and wakes all the waiting workers for each object the initial listing brings: a restart over N
profiles costs N^2 wake-ups (168 s of a core at 5,000 profiles before anything new was reconciled).
Here the watch's events fill the store as they come, and one listing at start says when it holds
every profile: the only thing that needs the whole set is a policy's count of the profiles it
selects, so policies wait for that listing, and profiles wait for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from greenmatrix_operator.records import ObjectRecord


class ProfileStore:
    """WorkloadProfile snapshots (statuses packed), in the shape of the reconciler's indexes."""

    def __init__(self, *, listed: bool = True) -> None:
        self.records: dict[tuple[str, str], tuple[ObjectRecord]] = {}
        """(namespace, name) -> the last snapshot seen (a one-item store, as Kopf's indexes have)."""
        self.names: dict[str, set[str]] = {}
        """namespace -> the names of its profiles."""
        self.listed = asyncio.Event()
        """Set once the store holds every profile that existed at start (the listing is in)."""
        self._spoken: set[tuple[str, str]] = set()
        """Keys an event has spoken for while the listing was running: the event is the newer word."""
        if listed:
            self.listed.set()

    def __len__(self) -> int:
        return len(self.records)

    def put(self, record: ObjectRecord) -> None:
        self._keep(record)
        if not self.listed.is_set():
            self._spoken.add((record.namespace, record.name))

    def remove(self, namespace: str, name: str) -> None:
        self.records.pop((namespace, name), None)
        names = self.names.get(namespace)
        if names is not None:
            names.discard(name)
            if not names:
                del self.names[namespace]
        if not self.listed.is_set():
            self._spoken.add((namespace, name))

    def prime(self, listing: Iterable[ObjectRecord]) -> int:
        """Take in the start's listing, except what an event has already said (a profile the
        listing still shows may have been deleted since); returns how many it added."""
        added = 0
        for record in listing:
            key = (record.namespace, record.name)
            if key not in self._spoken and key not in self.records:
                self._keep(record)
                added += 1
        self._spoken.clear()
        self.listed.set()
        return added

    def _keep(self, record: ObjectRecord) -> None:
        self.records[(record.namespace, record.name)] = (record,)
        self.names.setdefault(record.namespace, set()).add(record.name)
