"""Hardware options: the places a workload could run, before anything is predicted about them.

An option is one accelerator type with one replica layout (GPUs per replica), either in the
cluster (from the WorkloadProfile's `Inventory`: nodes, GPUs per node, regions, the node label
to select it) or in the catalog only (what the cluster could add). CPU-only node kinds are
options too, for small models.

Layouts are GPUs per replica in {1, 2, 4, 8}: the tensor-parallel degrees serving engines
support well (attention heads and KV heads divide by them), within the workload's
min/maxGpusPerReplica and never more than one node holds, so a replica never spans nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from greenmatrix import economics
from greenmatrix.api.optimizationpolicy import OptimizationPolicySpec
from greenmatrix.api.workloadprofile import CPUInventory, HardwareSpec, Inventory
from greenmatrix.catalog import hardware
from greenmatrix.errors import NoFeasibleHardwareError, UnknownHardwareError

LAYOUTS = (1, 2, 4, 8)
# Catalog options are sized as if the cluster could add this many nodes of a type (training only).
CATALOG_MAX_NODES = 16
# Node memory of a CPU-only node when nothing says otherwise (NFD does not label it): a common
# general-purpose instance has 4 GiB per vCPU; we assume at least 64 GiB.
CPU_NODE_MEMORY_GIB_PER_CORE = 4.0


@dataclass(frozen=True)
class HardwareOption:
    """One kind of hardware with one replica layout; exactly one of `gpu` and `cpu` is set."""

    name: str  # catalog GPU key, the raw product for an unknown GPU, or "cpu/<vendor>"
    gpus_per_replica: int  # 0 on CPU
    in_cluster: bool
    gpu: hardware.GPUSpec | None = None
    cpu: hardware.CPUSpec | None = None
    product: str | None = None  # node label value (nvidia.com/gpu.product) when in the cluster
    nodes: int | None = None  # in-cluster nodes of this kind (None: catalog, unbounded)
    gpus_per_node: int = 1
    regions: tuple[str, ...] = ()
    note: str = ""  # why the option cannot be predicted (unknown GPU), else empty
    pods: int = 1  # training worker pods (whole nodes when > 1); serving replicas are sized later

    @property
    def is_cpu(self) -> bool:
        return self.cpu is not None

    @property
    def device(self) -> hardware.GPUSpec | hardware.CPUSpec:
        """The GPU (or CPU) a replica runs on, for options the predictors can judge."""
        device = self.gpu or self.cpu
        assert device is not None, f"{self.name} has no specs"
        return device

    @property
    def label(self) -> str:
        """How tables and explanations name it: "L4 x1", "H100-SXM-80GB x4", "cpu/intel"."""
        if self.is_cpu:
            return self.name
        if self.pods > 1:
            return f"{self.name} x{self.gpus_per_replica * self.pods} ({self.pods} nodes)"
        return f"{self.name} x{self.gpus_per_replica}"

    @property
    def max_replicas(self) -> int | None:
        """Replicas the cluster can hold at this layout (None: a catalog option, not bounded)."""
        if self.nodes is None:
            return None
        if self.is_cpu:
            return self.nodes
        return self.nodes * (self.gpus_per_node // max(self.gpus_per_replica, 1))


def layouts(restrictions: HardwareSpec | None, gpus_per_node: int) -> list[int]:
    """GPUs per replica worth trying: {1,2,4,8} within the workload's bounds and one node."""
    r = restrictions or HardwareSpec()
    return [
        n for n in LAYOUTS if r.min_gpus_per_replica <= n <= r.max_gpus_per_replica and n <= gpus_per_node
    ]


def _matches(spec_key: str | None, product: str | None, names: Sequence[str]) -> bool:
    for name in names:
        text = name.strip().lower()
        if product is not None and text == product.strip().lower():
            return True
        if spec_key is not None and (text == spec_key.lower() or spec_key in hardware.gpu_keys_named(name)):
            return True
    return False


@dataclass(frozen=True)
class Restrictions:
    """The workload's and the policy's hardware restrictions, combined."""

    allowed: tuple[tuple[str, ...], ...]  # every list must admit a GPU (workload's and policy's)
    excluded: tuple[str, ...]
    regions: tuple[tuple[str, ...], ...]  # every list must admit the region
    allow_cpu: bool

    @classmethod
    def of(cls, restrictions: HardwareSpec | None, policy: OptimizationPolicySpec | None) -> Restrictions:
        r = restrictions or HardwareSpec()
        constraints = policy.constraints if policy is not None else None
        allowed = [
            tuple(lst)
            for lst in (r.allowed_gpus, constraints and constraints.allowed_gpus)
            if lst is not None
        ]
        regions = [tuple(lst) for lst in (r.regions, constraints and constraints.regions) if lst is not None]
        return cls(tuple(allowed), tuple(r.excluded_gpus or ()), tuple(regions), r.allow_cpu)

    def gpu_allowed(self, key: str | None, product: str | None = None) -> bool:
        if any(not _matches(key, product, lst) for lst in self.allowed):
            return False
        return not _matches(key, product, self.excluded)

    def usable_regions(self, regions: Sequence[str]) -> tuple[str, ...]:
        """The regions among `regions` every region list admits (all of them when unrestricted)."""
        return tuple(g for g in regions if all(g in lst for lst in self.regions))

    @property
    def region_restricted(self) -> bool:
        return bool(self.regions)


def check_gpu_names(names: Sequence[str] | None, field: str) -> list[hardware.GPUSpec]:
    """Resolve user-given GPU names, a family name ("a100") to each of its variants; an unknown one
    raises UnknownHardwareError naming the field."""
    specs = []
    for i, name in enumerate(names or ()):
        try:
            hardware.gpu(name)
            specs += [hardware.gpu(key) for key in hardware.gpu_keys_named(name)]
        except hardware.UnknownHardwareError as err:
            allowed = list(err.suggestions) or [g.key for g in hardware.all_gpus()]
            raise UnknownHardwareError(
                f"{field}[{i}]",
                f"{name!r} is not a GPU in the catalog (`greenmatrix models` lists them)",
                allowed,
            ) from None
    return specs


def cluster_options(
    inventory: Inventory, restrictions: Restrictions, hw: HardwareSpec | None
) -> list[HardwareOption]:
    """Options on the cluster's hardware: each GPU type at each layout, and CPU node kinds."""
    out: list[HardwareOption] = []
    for entry in inventory.gpus or []:
        spec = hardware.try_gpu(entry.gpu) if entry.known else None
        if spec is None:
            spec = hardware.try_gpu(entry.product)
        key = spec.key if spec is not None else entry.gpu
        if not restrictions.gpu_allowed(key if spec else None, entry.product):
            continue
        regions = tuple(entry.regions or ())
        common = {"in_cluster": True, "product": entry.product, "nodes": entry.nodes, "regions": regions}
        if spec is None or "-MIG-" in entry.gpu:
            note = (
                f"GPU {entry.product!r} has no specs in the catalog"
                if spec is None
                else f"MIG slices ({entry.gpu}) are not predicted; use whole GPUs"
            )
            out.append(
                HardwareOption(
                    name=entry.gpu, gpus_per_replica=1, gpus_per_node=entry.gpus_per_node, note=note, **common
                )
            )
            continue
        sizes = layouts(hw, entry.gpus_per_node)
        if not sizes:
            out.append(
                HardwareOption(
                    name=key,
                    gpus_per_replica=min((hw or HardwareSpec()).min_gpus_per_replica, 64),
                    gpu=spec,
                    gpus_per_node=entry.gpus_per_node,
                    note=f"nodes have {entry.gpus_per_node} GPUs, fewer than minGpusPerReplica",
                    **common,
                )
            )
        for n in sizes:
            out.append(
                HardwareOption(
                    name=key, gpus_per_replica=n, gpu=spec, gpus_per_node=entry.gpus_per_node, **common
                )
            )
    if restrictions.allow_cpu:
        out += [_cpu_from_inventory(c) for c in inventory.cpus or []]
    return out


def _cpu_from_inventory(c: CPUInventory) -> HardwareOption:
    vendor = c.vendor if c.vendor.lower() in ("intel", "amd") else "Intel"
    spec = hardware.cpu_option(
        vendor, c.avx512, c.amx and vendor.lower() == "intel", c.cores_per_node or None
    )
    return HardwareOption(
        name=f"cpu/{spec.vendor}", gpus_per_replica=0, in_cluster=True, cpu=spec, nodes=c.nodes
    )


def _priced(key: str) -> bool:
    return economics.price_per_gpu_hour(key) is not None


def _unpriced_named(name: str) -> tuple[str, ...]:
    """The GPUs `name` stands for when none of them has a list price, else none: "B200" or
    "H100-PCIe-80GB" bring theirs in, "H100" stays the priced H100-SXM-80GB it means to a buyer."""
    keys = hardware.gpu_keys_named(name)
    return () if any(_priced(k) for k in keys) else tuple(keys)


def default_catalog_gpus(restrictions: Restrictions) -> list[hardware.GPUSpec]:
    """The catalog GPUs compared when `--gpus` does not say which.

    The GPUs with both specs and an on-demand price, what a cluster could actually rent, so that
    every outside option has a cost to compare; and any GPU an allowedGpus list names that has
    no price, at unknown cost, because a user who names a GPU wants it compared.
    """
    named = {key for lst in restrictions.allowed for name in lst for key in _unpriced_named(name)}
    return [g for g in hardware.all_gpus() if _priced(g.key) or g.key in named]


def catalog_options(
    restrictions: Restrictions,
    hw: HardwareSpec | None,
    *,
    only: Sequence[hardware.GPUSpec] | None = None,
    region: str | None = None,
) -> list[HardwareOption]:
    """Options on catalog hardware (not necessarily in any cluster), plus a generic CPU node.

    Without `only`, the GPUs `default_catalog_gpus` gives. `only` may name any catalogued GPU.
    The generic CPU is an Intel socket with AMX (Sapphire Rapids class), the best case a cluster
    would add for CPU inference.
    """
    specs = list(only) if only is not None else default_catalog_gpus(restrictions)
    regions = (region,) if region else ()
    out: list[HardwareOption] = []
    for spec in specs:
        if not restrictions.gpu_allowed(spec.key):
            continue
        for n in layouts(hw, spec.gpus_per_node):
            out.append(
                HardwareOption(
                    name=spec.key,
                    gpus_per_replica=n,
                    in_cluster=False,
                    gpu=spec,
                    gpus_per_node=spec.gpus_per_node,
                    regions=regions,
                )
            )
    if restrictions.allow_cpu:
        cpu = hardware.cpu_option("Intel", avx512=True, amx=True)
        out.append(
            HardwareOption(
                name=f"cpu/{cpu.vendor}", gpus_per_replica=0, in_cluster=False, cpu=cpu, regions=regions
            )
        )
    return out


def cpu_node_memory_gib(cpu: hardware.CPUSpec) -> float:
    return max(64.0, cpu.cores * CPU_NODE_MEMORY_GIB_PER_CORE)


# A GPU a restriction can admit: its catalog key (None for a product the catalog lacks) and, for
# the cluster's GPUs, the node label value the restrictions may also name.
_Candidate = tuple[str | None, str | None]


def _cluster_candidates(inventory: Inventory | None) -> list[_Candidate]:
    out: list[_Candidate] = []
    for entry in (inventory.gpus or []) if inventory is not None else []:
        spec = (hardware.try_gpu(entry.gpu) if entry.known else None) or hardware.try_gpu(entry.product)
        out.append((spec.key if spec else None, entry.product))
    return out


def _names(candidates: Sequence[_Candidate], limit: int | None = None) -> list[str]:
    names = list(dict.fromkeys(key or product or "" for key, product in candidates))
    return names if limit is None or len(names) <= limit else [*names[:limit], "..."]


def _allow(fields: Sequence[str]) -> str:
    return f"{' and '.join(fields)} allow{'s' if len(fields) == 1 else ''}"


def no_gpu_error(
    hw: HardwareSpec | None,
    policy: OptimizationPolicySpec | None,
    only: Sequence[hardware.GPUSpec] | None = None,
    inventory: Inventory | None = None,
) -> NoFeasibleHardwareError | None:
    """Why no GPU is left to compare, naming the restriction that emptied the set.

    The workload's allowedGpus, the policy's allowedGpus and the workload's excludedGpus apply in
    that order to every GPU the catalog or the cluster knows; the first that leaves none is named,
    with what the ones before it allow. When the manifests leave some, `--gpus` (`only`) is named
    if it names none of them; without it, the GPUs left have no list price, and the message says so.
    None when GPUs remain: no option exists for another reason (the replica layouts).
    """
    r = hw or HardwareSpec()
    constraints = policy.constraints if policy is not None else None
    filters = (
        ("spec.hardware.allowedGpus", r.allowed_gpus, True),
        ("policy.constraints.allowedGpus", constraints.allowed_gpus if constraints else None, True),
        ("spec.hardware.excludedGpus", r.excluded_gpus or None, False),
    )
    cluster = _cluster_candidates(inventory)
    left = cluster + [(g.key, None) for g in hardware.all_gpus()]
    used: list[str] = []
    for field, names, admit in filters:
        if names is None:
            continue
        kept = [c for c in left if _matches(c[0], c[1], names) == admit]
        if not kept:
            return NoFeasibleHardwareError(field, _emptied(names, admit, used), _names(left))
        left, used = kept, [*used, field]
    specs = list(only) if only is not None else default_catalog_gpus(Restrictions.of(hw, policy))
    pool = cluster + [(g.key, None) for g in specs]
    if any(c in left for c in pool):
        return None
    if only is not None:
        named = ", ".join(_names([(g.key, None) for g in specs], 6))
        return NoFeasibleHardwareError(
            "--gpus",
            f"{_allow(used)} none of the GPUs it names ({named})",
            _names(left),
        )
    # Only unpriced GPUs pass, and none was named on its own (a family name means its priced part).
    return NoFeasibleHardwareError(
        used[-1],
        f"the GPUs {_allow(used)} have no list price ({', '.join(_names(left, 6))}); name them with"
        " --gpus, or by their own names in allowedGpus, to compare them at unknown cost",
        _names(left),
    )


def _emptied(names: Sequence[str], admit: bool, before: Sequence[str]) -> str:
    if not admit:
        where = _allow(before) if before else "the catalog and the cluster have"
        return f"excludes every GPU {where}"
    if before:
        return f"admits none of the GPUs {_allow(before)}"
    if not names:
        return "is empty, so no GPU is allowed, and this workload has no CPU option"
    return "names no GPU the catalog or the cluster has"
