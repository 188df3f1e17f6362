"""A debounced, de-duplicating work queue of object keys (the client-go workqueue, in asyncio).

Every trigger (an object or node change, a policy change, a retry) adds keys; a burst of adds for
one key within the debounce window becomes one reconcile. A key is never processed by two workers
at once: an add while it is being processed marks it dirty, and it is queued again when done.

Bulk work (the resync of every settled object after a restart, every profile after a node change)
is added as `bulk`: a due key that is not bulk goes first, so a profile created or edited during a
resync of 10,000 others waits for none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """Keys with a due time; `get()` hands out the earliest due key once its time has come."""

    def __init__(self, debounce: float = 0.2, clock: Callable[[], float] = time.monotonic) -> None:
        self.debounce = debounce
        self._clock = clock
        self._due: dict[K, tuple[float, bool]] = {}
        self._heaps: dict[bool, list[tuple[float, int, K]]] = {False: [], True: []}
        self._seq = itertools.count()
        self._processing: set[K] = set()
        self._dirty: dict[K, tuple[float, bool]] = {}
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._due)

    @property
    def ready(self) -> int:
        """Keys due now: the queue's depth as client-go counts it (a key scheduled for later, such as
        the next live evaluation, is waiting, not queued)."""
        now = self._clock()
        return sum(1 for due, _ in self._due.values() if due <= now)

    @property
    def processing(self) -> int:
        return len(self._processing)

    def waiting(self) -> bool:
        """Whether a key that is not bulk is due now: new work is waiting for a worker."""
        head = self._head(False)
        return head is not None and head[0] <= self._clock()

    def due_at(self, key: K) -> float | None:
        """When a queued key is due (on the queue's clock); None when it is not queued."""
        entry = self._due.get(key)
        return entry[0] if entry is not None else None

    def add(self, key: K, delay: float | None = None, *, bulk: bool = False) -> None:
        """Schedule a key after `delay` seconds (the debounce by default); an earlier schedule wins,
        and a key added both as bulk and not is not bulk."""
        due = self._clock() + (self.debounce if delay is None else delay)
        if key in self._processing:
            before, was_bulk = self._dirty.get(key, (due, bulk))
            self._dirty[key] = (min(due, before), was_bulk and bulk)
            return
        if key in self._due:
            before, was_bulk = self._due[key]
            if before <= due and (was_bulk <= bulk):
                return
            due, bulk = min(due, before), was_bulk and bulk
        self._due[key] = (due, bulk)
        heapq.heappush(self._heaps[bulk], (due, next(self._seq), key))
        self._changed.set()

    async def get(self) -> K:
        """Wait for the next due key (not bulk first) and mark it as being processed; call
        `done(key)` afterwards."""
        while True:
            self._changed.clear()
            now = self._clock()
            heads = [h for h in (self._head(False), self._head(True)) if h is not None]
            for due, bulk, key in heads:
                if due <= now:
                    heapq.heappop(self._heaps[bulk])
                    del self._due[key]
                    self._processing.add(key)
                    return key
            timeout = max(min(due for due, _, _ in heads) - now, 0.0) if heads else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    def _head(self, bulk: bool) -> tuple[float, bool, K] | None:
        """The earliest live entry of one heap (entries superseded or handed out are dropped)."""
        heap = self._heaps[bulk]
        while heap:
            due, _, key = heap[0]
            if self._due.get(key) == (due, bulk):
                return due, bulk, key
            heapq.heappop(heap)
        return None

    def done(self, key: K) -> None:
        """Finish a key; if it was added meanwhile, it is scheduled again."""
        self._processing.discard(key)
        if key in self._dirty:
            due, bulk = self._dirty.pop(key)
            self.add(key, max(due - self._clock(), 0.0), bulk=bulk)
