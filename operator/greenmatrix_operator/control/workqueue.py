"""A debounced, de-duplicating work queue of object keys (the client-go workqueue, in asyncio).

Every trigger (an object or node change, a policy change, a retry) adds keys; a burst of adds for
one key within the debounce window becomes one reconcile. A key is never processed by two workers
at once: an add while it is being processed marks it dirty, and it is queued again when done.
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
        self._due: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._processing: set[K] = set()
        self._dirty: dict[K, float] = {}
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._due)

    @property
    def ready(self) -> int:
        """Keys due now: the queue's depth as client-go counts it (a key scheduled for later, such as
        the next live evaluation, is waiting, not queued)."""
        now = self._clock()
        return sum(1 for due in self._due.values() if due <= now)

    @property
    def processing(self) -> int:
        return len(self._processing)

    def add(self, key: K, delay: float | None = None) -> None:
        """Schedule a key after `delay` seconds (the debounce by default); an earlier schedule wins."""
        due = self._clock() + (self.debounce if delay is None else delay)
        if key in self._processing:
            self._dirty[key] = min(due, self._dirty.get(key, due))
            return
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        self._changed.set()

    async def get(self) -> K:
        """Wait for the next due key and mark it as being processed; call `done(key)` afterwards."""
        while True:
            self._changed.clear()
            while self._heap:
                due, _, key = self._heap[0]
                if self._due.get(key) != due:
                    heapq.heappop(self._heap)  # superseded by an earlier schedule, or already handed out
                    continue
                wait = due - self._clock()
                if wait > 0:
                    break
                heapq.heappop(self._heap)
                del self._due[key]
                self._processing.add(key)
                return key
            timeout = max(self._heap[0][0] - self._clock(), 0.0) if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    def done(self, key: K) -> None:
        """Finish a key; if it was added meanwhile, it is scheduled again."""
        self._processing.discard(key)
        if key in self._dirty:
            due = self._dirty.pop(key)
            self.add(key, max(due - self._clock(), 0.0))
