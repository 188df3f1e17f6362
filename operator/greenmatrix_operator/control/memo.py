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
from typing import Any

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
from greenmatrix_operator.control.recommend import EnginePlanner, RegionOf, Summarizer
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
"""Plans made without their advice kept whole (about 200 kB each) for the pass that adds it; one
evicted before that pass is planned again."""


class PlanMemo:
    """The planner, memoised on everything a plan reads (the inventory's node totals are not).

    Called from worker threads; hits, plans made and their durations go to the metrics. A call with
    `advise=False` gets the plan with its advice when that is held or can be completed from a plan
    held whole (the advice alone), else a plan without advice, held for the spec's other profiles;
    a call with advice completes a held plan rather than planning it again.
    """

    def __init__(
        self, planner: EnginePlanner, size: int, metrics: OperatorMetrics, *, keep_options: bool = False
    ) -> None:
        self._planner = planner
        self.size = size
        self.keep_options = keep_options
        """Keep every option: the live loop reads the deployment's own option, wherever it ranks."""
        self._metrics = metrics
        Key = tuple[str, str, str, str]
        self._plans: OrderedDict[Key, Plan] = OrderedDict()
        self._unadvised: OrderedDict[Key, Plan] = OrderedDict()
        """Plans without their advice, as the status reads them."""
        self._whole: OrderedDict[Key, Plan] = OrderedDict()
        """The latest of those, with every evaluated option: what the advice pass completes."""
        self._lock = threading.Lock()
        self._local = threading.local()

    def lacked_advice(self) -> bool:
        """Whether this thread's last call gave a plan without its advice."""
        return bool(getattr(self._local, "lacked_advice", False))

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
        self._local.lacked_advice = False
        with self._lock:
            cached = self._plans.get(key)
            # A plan held whole is completed now, even when the advice may wait: the advice costs
            # the same now or later, and later would cost this profile a second status write.
            whole = self._whole.pop(key, None) if cached is None else None
            if cached is not None:
                self._plans.move_to_end(key)
            elif whole is None and not advise and (cached := self._unadvised.get(key)) is not None:
                self._unadvised.move_to_end(key)
                self._local.lacked_advice = True
            if cached is not None:
                self._metrics.plan_cache_hits.inc()
                return cached
        started = time.perf_counter()
        if not advise and whole is None:
            made = self._planner(spec, inventory, policy, region, advise=False)
            result = self._stripped(made)
            with self._lock:
                _put(self._unadvised, key, result, self.size)
                _put(self._whole, key, made, UNADVISED_KEPT)
                self._metrics.plan_duration.observe(time.perf_counter() - started)
            self._local.lacked_advice = True
            return result
        if whole is not None:
            result = self._planner.advise(spec, whole, inventory, policy, region)
        else:
            result = self._planner(spec, inventory, policy, region)
        result = self._stripped(result)
        elapsed = time.perf_counter() - started
        with self._lock:
            _put(self._plans, key, result, self.size)
            self._unadvised.pop(key, None)
            self._metrics.plan_duration.observe(elapsed)
        logger.debug("planned in %.1f ms", elapsed * 1000)
        return result

    def _stripped(self, result: Plan) -> Plan:
        # The status needs the recommendation, alternatives, advice and error, not every option.
        return replace(result, options=result.options if self.keep_options else (), evaluated=())


def _put(cache: OrderedDict[Any, Plan], key: Any, value: Plan, size: int) -> None:
    cache[key] = value
    if len(cache) > size:
        cache.popitem(last=False)
