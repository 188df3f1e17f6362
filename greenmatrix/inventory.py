"""Cluster hardware as GreenMatrix sees it.

A node's labels and allocatable resources become a `NodeHardware` (what accelerator, how many,
which CPU, where); a set of nodes plus a workload's restrictions becomes the `Inventory` written
into a WorkloadProfile's status. Labels come from NVIDIA GPU Feature Discovery, Node Feature
Discovery and, where GFD is absent, Karpenter's AWS labels. Pure: plain data in, plain data out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from greenmatrix.api.optimizationpolicy import Constraints
from greenmatrix.api.workloadprofile import CPUInventory, GPUInventory, HardwareSpec, Inventory
from greenmatrix.catalog import hardware

GPU_PRODUCT = "nvidia.com/gpu.product"
GPU_COUNT = "nvidia.com/gpu.count"
GPU_MEMORY = "nvidia.com/gpu.memory"
GPU_RESOURCE = "nvidia.com/gpu"
KARPENTER_GPU_NAME = "karpenter.k8s.aws/instance-gpu-name"
KARPENTER_GPU_COUNT = "karpenter.k8s.aws/instance-gpu-count"
KARPENTER_GPU_MEMORY = "karpenter.k8s.aws/instance-gpu-memory"
NFD_PREFIX = "feature.node.kubernetes.io/"
CPU_VENDOR = NFD_PREFIX + "cpu-model.vendor_id"
CPU_AVX512 = NFD_PREFIX + "cpu-cpuid.AVX512F"
CPU_AMX = NFD_PREFIX + "cpu-cpuid.AMXBF16"
REGION = "topology.kubernetes.io/region"
ZONE = "topology.kubernetes.io/zone"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
# Clusters older than 1.17 and some cloud providers still set only the beta spellings.
_LEGACY = {
    REGION: "failure-domain.beta.kubernetes.io/region",
    ZONE: "failure-domain.beta.kubernetes.io/zone",
    INSTANCE_TYPE: "beta.kubernetes.io/instance-type",
}
_VENDORS = {"genuineintel": "Intel", "intel": "Intel", "authenticamd": "AMD", "amd": "AMD"}
# A100/H100-class GPUs split into 7 compute slices; a "3g.40gb" MIG device gets 3 of them.
_MIG_COMPUTE_SLICES = 7
_MIG_SLICES = re.compile(r"^(\d+)g\.")
UNKNOWN_PRODUCT = "Unknown"


@dataclass(frozen=True)
class GPUType:
    """One kind of GPU device as nodes expose it."""

    product: str
    """The label value it was read from, e.g. NVIDIA-H100-80GB-HBM3 or Karpenter's h100."""
    key: str | None
    """Catalog key, or None when the catalog does not know the product."""
    mig_profile: str | None = None
    """MIG profile (e.g. 1g.10gb) when the node exposes MIG devices (single strategy)."""

    @property
    def known(self) -> bool:
        return self.key is not None

    @property
    def name(self) -> str:
        """What the inventory calls it: the catalog key (with the MIG profile), else the raw product."""
        if self.key is None:
            return self.product
        return f"{self.key}-MIG-{self.mig_profile}" if self.mig_profile else self.key

    def matches(self, name: str) -> bool:
        """Whether a name from a spec (any catalog alias, or the exact product label) means this GPU.

        A MIG slice matches its parent GPU's names: excluding A100s excludes their slices too.
        """
        if name.strip().lower() in (self.product.lower(), self.name.lower()):
            return True
        return self.key is not None and self.key in hardware.gpu_keys_named(name)

    def capability(self) -> float:
        """Sort key for "most capable first": datasheet memory bandwidth, scaled down for MIG slices."""
        spec = hardware.try_gpu(self.key) if self.key else None
        if spec is None:
            return 0.0
        bandwidth = spec.memory_bandwidth_gbs
        if self.mig_profile:
            match = _MIG_SLICES.match(self.mig_profile)
            slices = int(match.group(1)) if match else 1
            bandwidth *= min(slices, _MIG_COMPUTE_SLICES) / _MIG_COMPUTE_SLICES
        return bandwidth


@dataclass(frozen=True)
class NodeHardware:
    """The hardware facts of one node that GreenMatrix uses, parsed from its labels."""

    name: str
    ready: bool = True
    unschedulable: bool = False
    gpu: GPUType | None = None
    gpu_count: int = 0
    gpu_memory_mib: int | None = None
    cpu_vendor: str = "Unknown"
    avx512: bool = False
    amx: bool = False
    cpu_cores: int = 0
    region: str | None = None
    zone: str | None = None
    instance_type: str | None = None

    @property
    def usable(self) -> bool:
        """Only Ready, schedulable nodes can run a recommendation."""
        return self.ready and not self.unschedulable

    @classmethod
    def from_node(
        cls,
        name: str,
        labels: Mapping[str, str],
        allocatable: Mapping[str, str | int | float] | None = None,
        *,
        ready: bool = True,
        unschedulable: bool = False,
    ) -> NodeHardware:
        """Parse a node's plain data (metadata.labels, status.allocatable, readiness, spec.unschedulable)."""
        allocatable = allocatable or {}
        gpu, count, memory = _gpu_of(labels, allocatable)
        return cls(
            name=name,
            ready=ready,
            unschedulable=unschedulable,
            gpu=gpu,
            gpu_count=count,
            gpu_memory_mib=memory,
            cpu_vendor=_VENDORS.get(labels.get(CPU_VENDOR, "").strip().lower(), "Unknown"),
            avx512=_flag(labels.get(CPU_AVX512)),
            amx=_flag(labels.get(CPU_AMX)),
            cpu_cores=int(_quantity(allocatable.get("cpu")) or 0),
            region=_label(labels, REGION),
            zone=_label(labels, ZONE),
            instance_type=_label(labels, INSTANCE_TYPE),
        )


def _gpu_of(
    labels: Mapping[str, str], allocatable: Mapping[str, str | int | float]
) -> tuple[GPUType | None, int, int | None]:
    """(GPU type, device count, MiB per device) from GFD labels, else Karpenter's, else none."""
    allocatable_gpus = _quantity(allocatable.get(GPU_RESOURCE))
    product = labels.get(GPU_PRODUCT, "").strip()
    if product:
        memory = _integer(labels.get(GPU_MEMORY))
        key, mig = hardware.parse_gfd_product(product)
        if key is None and mig is None:
            # Products like "NVIDIA-H100-PCIe" only say which variant with the memory label.
            key = hardware.normalize_gpu_name(product, memory)
        count = allocatable_gpus if allocatable_gpus is not None else _integer(labels.get(GPU_COUNT))
        return GPUType(product, key, mig), int(count or 0), memory
    karpenter = labels.get(KARPENTER_GPU_NAME, "").strip()
    if karpenter:
        memory = _integer(labels.get(KARPENTER_GPU_MEMORY))
        key = hardware.normalize_gpu_name(karpenter, memory)
        count = (
            allocatable_gpus if allocatable_gpus is not None else _integer(labels.get(KARPENTER_GPU_COUNT))
        )
        return GPUType(karpenter, key), int(count or 0), memory
    if allocatable_gpus:
        # The device plugin runs but nothing labels the product: still a GPU node, of an unknown kind.
        return GPUType(UNKNOWN_PRODUCT, None), int(allocatable_gpus), None
    return None, 0, None


def _label(labels: Mapping[str, str], key: str) -> str | None:
    value = labels.get(key) or labels.get(_LEGACY.get(key, ""))
    return value or None


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _integer(value: str | int | float | None) -> int | None:
    try:
        return int(float(value)) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


_SUFFIXES = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")


def _quantity(value: str | int | float | None) -> float | None:
    """A Kubernetes resource quantity ("8", "7910m", "2k") as a number, None when absent or unreadable."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(value.strip())
    if not match or match.group(2) not in ("", *_SUFFIXES):
        return None
    try:
        return float(match.group(1)) * _SUFFIXES.get(match.group(2), 1.0)
    except ValueError:
        return None


def _allowed(gpu: GPUType, allowed: list[str] | None, excluded: list[str] | None) -> bool:
    if allowed is not None and not any(gpu.matches(n) for n in allowed):
        return False
    return not (excluded and any(gpu.matches(n) for n in excluded))


def node_matches(
    node: NodeHardware,
    hardware_restrictions: HardwareSpec | None,
    policy_constraints: Constraints | None = None,
) -> bool:
    """Whether a usable node passes the workload's restrictions and its policy's constraints."""
    if not node.usable:
        return False
    restrictions = hardware_restrictions or HardwareSpec()
    constraints = policy_constraints or Constraints()
    for regions in (restrictions.regions, constraints.regions):
        if regions is not None and node.region not in regions:
            return False
    if node.gpu is None:
        return restrictions.allow_cpu
    return _allowed(node.gpu, restrictions.allowed_gpus, restrictions.excluded_gpus) and _allowed(
        node.gpu, constraints.allowed_gpus, None
    )


def summarize(
    nodes: Iterable[NodeHardware],
    hardware_restrictions: HardwareSpec | None = None,
    policy_constraints: Constraints | None = None,
) -> Inventory:
    """The hardware a workload may use: matching Ready, schedulable nodes grouped by GPU or CPU kind.

    GPU types come most capable first (catalog memory bandwidth, MIG slices scaled down, unknown
    products last), CPU kinds with AMX and AVX-512 first; ties break by name so the result never
    depends on the order nodes were listed in.
    """
    total = 0
    matched: list[NodeHardware] = []
    for node in nodes:
        total += 1
        if node_matches(node, hardware_restrictions, policy_constraints):
            matched.append(node)

    gpu_groups: dict[str, list[NodeHardware]] = {}
    cpu_groups: dict[tuple[str, bool, bool], list[NodeHardware]] = {}
    for node in matched:
        if node.gpu is not None:
            gpu_groups.setdefault(node.gpu.name, []).append(node)
        else:
            cpu_groups.setdefault((node.cpu_vendor, node.avx512, node.amx), []).append(node)

    gpus = []
    for name, group in gpu_groups.items():
        kind = min((n.gpu for n in group if n.gpu), key=lambda g: g.product)
        regions = sorted({n.region for n in group if n.region})
        gpus.append(
            (
                -kind.capability(),
                name,
                GPUInventory(
                    gpu=name,
                    product=kind.product,
                    known=kind.known,
                    nodes=len(group),
                    gpus_per_node=max(n.gpu_count for n in group),
                    total_gpus=sum(n.gpu_count for n in group),
                    regions=regions or None,
                ),
            )
        )
    cpus = [
        CPUInventory(
            vendor=vendor,
            avx512=avx512,
            amx=amx,
            nodes=len(group),
            cores_per_node=max(n.cpu_cores for n in group),
        )
        for (vendor, avx512, amx), group in cpu_groups.items()
    ]
    cpus.sort(key=lambda c: (not c.amx, not c.avx512, c.vendor, -c.cores_per_node))
    return Inventory(
        gpus=[entry for _, _, entry in sorted(gpus, key=lambda t: (t[0], t[1]))],
        cpus=cpus,
        matched_nodes=len(matched),
        total_nodes=total,
    )


def describe(inventory: Inventory) -> str:
    """One line for a condition message, e.g. "3 of 5 nodes match: H100-SXM-80GB x16 on 2 nodes, ..."."""
    parts = [f"{g.gpu} x{g.total_gpus} on {g.nodes} node{'s' * (g.nodes != 1)}" for g in inventory.gpus or []]
    parts += [
        f"{c.vendor} CPU{' AMX' * c.amx}{' AVX-512' * (c.avx512 and not c.amx)} on {c.nodes} node"
        f"{'s' * (c.nodes != 1)}"
        for c in inventory.cpus or []
    ]
    head = f"{inventory.matched_nodes} of {inventory.total_nodes} nodes match"
    return f"{head}: {', '.join(parts)}" if parts else head


def cluster_region(
    nodes: Iterable[NodeHardware],
    hardware_restrictions: HardwareSpec | None = None,
    policy_constraints: Constraints | None = None,
) -> str | None:
    """The region most of the workload's usable nodes are in (ties: first name); None when unknown.

    The planner weighs carbon (and prices catalog options) in this region, so a cluster in
    europe-west4 is not judged on us-east-1's grid. Nodes outside the allowed regions never count.
    """
    counts: dict[str, int] = {}
    for node in nodes:
        if node.region and node_matches(node, hardware_restrictions, policy_constraints):
            counts[node.region] = counts.get(node.region, 0) + 1
    return min(counts, key=lambda r: (-counts[r], r), default=None)


def unknown_products(nodes: Iterable[NodeHardware]) -> set[str]:
    """GPU product labels the catalog does not know: specs may still name them while a node carries them."""
    return {n.gpu.product for n in nodes if n.gpu is not None and not n.gpu.known}
