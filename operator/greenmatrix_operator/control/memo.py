"""The reconciler's caches, each keyed on exactly what its value depends on.

Inventories (`summarize` and the cluster region) are memoised per node-set version and restriction:
most profiles share their restrictions. Plans are memoised on the spec, the GPU and CPU kinds of
the inventory, the policy's spec and the region: a node change that leaves a profile's options as
they were costs a dictionary look-up, and the same inputs give the same (byte-identical) status.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

from greenmatrix import (
    Constraints,
    HardwareSpec,
    Inventory,
    NodeHardware,
    OptimizationPolicySpec,
    Plan,
    WorkloadProfileSpec,
    cluster_region,
    summarize,
)
from greenmatrix_operator.control.recommend import Planner, RegionOf, Summarizer
from greenmatrix_operator.metrics import OperatorMetrics

logger = logging.getLogger(__name__)


class InventoryMemo:
    """`summarize` and `cluster_region` of a node set, per version of the node set."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._cache: dict[tuple[int, str, str], tuple[Inventory, str | None]] = {}

    def clear(self) -> None:
        self._cache.clear()

    def at(self, version: int) -> tuple[Summarizer, RegionOf]:
        """`summarize` and `cluster_region` as the recommendation step calls them, for the node set
        read at `version`."""

        def summarizer(
            nodes: Sequence[NodeHardware], hardware: HardwareSpec | None, constraints: Constraints | None
        ) -> Inventory:
            return self.hardware(version, nodes, hardware, constraints)[0]

        def region_of(
            nodes: Sequence[NodeHardware], hardware: HardwareSpec | None, constraints: Constraints | None
        ) -> str | None:
            return self.hardware(version, nodes, hardware, constraints)[1]

        return summarizer, region_of

    def hardware(
        self,
        version: int,
        nodes: Sequence[NodeHardware],
        hardware: HardwareSpec | None,
        constraints: Constraints | None,
    ) -> tuple[Inventory, str | None]:
        """The inventory and region for these restrictions.

        `version` is the one `nodes` were read at (in the event loop), so a worker thread can never
        file an old node set under a newer version.
        """
        key = (
            version,
            hardware.model_dump_json() if hardware else "",
            constraints.model_dump_json() if constraints else "",
        )
        cached = self._cache.get(key)
        if cached is None:
            if len(self._cache) > self.size:
                self._cache.clear()
            cached = self._cache[key] = (
                summarize(nodes, hardware, constraints),
                cluster_region(nodes, hardware, constraints),
            )
        return cached


UNADVISED_KEPT = 128
"""Plans made without their advice, kept whole (about 200 kB each) for the pass that adds it; one
evicted before that pass is planned again."""


class PlanMemo:
    """The planner, memoised on everything a plan reads (the inventory's node totals are not).

    Called from worker threads; hits, plans made and their durations go to the metrics. A plan asked
    for without its advice is kept whole until a call with advice completes it.
    """

    def __init__(
        self, planner: Planner, size: int, metrics: OperatorMetrics, *, keep_options: bool = False
    ) -> None:
        self._planner = planner
        self.size = size
        self.keep_options = keep_options
        """Keep every option: the live loop reads the deployment's own option, wherever it ranks."""
        self._metrics = metrics
        self._plans: OrderedDict[tuple[str, str, str, str], Plan] = OrderedDict()
        self._unadvised: OrderedDict[tuple[str, str, str, str], Plan] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(
        self,
        spec: WorkloadProfileSpec,
        inventory: Inventory,
        policy: OptimizationPolicySpec | None,
        region: str | None,
        *,
        advise: bool = True,
    ) -> Plan:
        key = (
            spec.model_dump_json(),
            inventory.model_dump_json(include={"gpus", "cpus"}),
            policy.model_dump_json() if policy else "",
            region or "",
        )
        with self._lock:
            cached = self._plans.get(key)
            if cached is not None:
                self._plans.move_to_end(key)
            first = self._unadvised.get(key)
            if cached is None and first is not None and not advise:
                cached = first
            if cached is not None:
                self._metrics.plan_cache_hits.inc()
                return cached
        started = time.perf_counter()
        if not advise:
            # Advice is optional here: a plan held with it (above) is returned, else one without.
            result = self._planner(spec, inventory, policy, region, advise=False)
            with self._lock:
                self._unadvised[key] = result
                if len(self._unadvised) > UNADVISED_KEPT:
                    self._unadvised.popitem(last=False)
                self._metrics.plan_duration.observe(time.perf_counter() - started)
            return result
        if first is not None:
            result = self._planner.advise(spec, first, inventory, policy, region)
        else:
            result = self._planner(spec, inventory, policy, region)
        # The status needs the recommendation, alternatives, advice and error, not every option.
        result = replace(result, options=result.options if self.keep_options else (), evaluated=())
        elapsed = time.perf_counter() - started
        with self._lock:
            self._plans[key] = result
            self._unadvised.pop(key, None)
            if len(self._plans) > self.size:
                self._plans.popitem(last=False)
            self._metrics.plan_duration.observe(elapsed)
        logger.debug("planned in %.1f ms", elapsed * 1000)
        return result

    def lacks_advice(self, result: Plan) -> bool:
        """Whether `result` is a plan this memo made without its advice, not yet completed."""
        with self._lock:
            return any(held is result for held in self._unadvised.values())
