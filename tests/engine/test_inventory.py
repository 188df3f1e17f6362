"""Node labels to hardware, and hardware plus restrictions to an inventory.

Label sets are the ones real discovery agents write (see shared/reference.md): GPU Feature
Discovery on a p5.48xlarge and an a2-ultragpu-4g, Karpenter's AWS labels, Node Feature Discovery.
"""

from __future__ import annotations

import random

import pytest

from greenmatrix.api.optimizationpolicy import Constraints
from greenmatrix.api.workloadprofile import HardwareSpec
from greenmatrix.catalog import hardware
from greenmatrix.inventory import NodeHardware, describe, summarize

# GFD + NFD + Karpenter on an AWS p5.48xlarge (8x H100 SXM, AMD EPYC).
P5_LABELS = {
    "node.kubernetes.io/instance-type": "p5.48xlarge",
    "topology.kubernetes.io/region": "us-east-1",
    "topology.kubernetes.io/zone": "us-east-1a",
    "karpenter.k8s.aws/instance-gpu-name": "h100",
    "karpenter.k8s.aws/instance-gpu-count": "8",
    "karpenter.k8s.aws/instance-gpu-memory": "81920",
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    "nvidia.com/gpu.memory": "81559",
    "nvidia.com/gpu.count": "8",
    "nvidia.com/gpu.family": "hopper",
    "nvidia.com/mig.capable": "true",
    "feature.node.kubernetes.io/cpu-model.vendor_id": "AMD",
    "feature.node.kubernetes.io/cpu-cpuid.AVX2": "true",
    "feature.node.kubernetes.io/pci-0302_10de.present": "true",
}
P5_ALLOCATABLE = {"cpu": "191450m", "memory": "2045000Mi", "nvidia.com/gpu": "8", "pods": "100"}

# GFD on GKE a2-ultragpu-4g (4x A100 SXM4 80GB, Intel Cascade Lake with AVX-512).
A2_LABELS = {
    "node.kubernetes.io/instance-type": "a2-ultragpu-4g",
    "topology.kubernetes.io/region": "europe-west4",
    "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
    "nvidia.com/gpu.memory": "81920",
    "nvidia.com/gpu.count": "4",
    "feature.node.kubernetes.io/cpu-model.vendor_id": "Intel",
    "feature.node.kubernetes.io/cpu-cpuid.AVX512F": "true",
}
A2_ALLOCATABLE = {"cpu": "47060m", "nvidia.com/gpu": "4"}

L4_LABELS = {
    "topology.kubernetes.io/region": "us-east-1",
    "nvidia.com/gpu.product": "NVIDIA-L4",
    "nvidia.com/gpu.memory": "23034",
    "nvidia.com/gpu.count": "1",
    "feature.node.kubernetes.io/cpu-model.vendor_id": "AMD",
}

# NFD on an m7i (Sapphire Rapids): CPU only, with AMX.
M7I_LABELS = {
    "topology.kubernetes.io/region": "us-east-1",
    "feature.node.kubernetes.io/cpu-model.vendor_id": "Intel",
    "feature.node.kubernetes.io/cpu-cpuid.AVX512F": "true",
    "feature.node.kubernetes.io/cpu-cpuid.AMXBF16": "true",
}


def h100(name: str = "gpu-h100-0", **kw: object) -> NodeHardware:
    return NodeHardware.from_node(name, P5_LABELS, P5_ALLOCATABLE, **kw)  # type: ignore[arg-type]


def a100(name: str = "gpu-a100-0", **kw: object) -> NodeHardware:
    return NodeHardware.from_node(name, A2_LABELS, A2_ALLOCATABLE, **kw)  # type: ignore[arg-type]


def l4(name: str = "gpu-l4-0") -> NodeHardware:
    return NodeHardware.from_node(name, L4_LABELS, {"cpu": "3920m", "nvidia.com/gpu": "1"})


def cpu(name: str = "cpu-m7i-0") -> NodeHardware:
    return NodeHardware.from_node(name, M7I_LABELS, {"cpu": "31850m"})


def cluster() -> list[NodeHardware]:
    return [h100("h0"), h100("h1"), a100("a0"), l4("l0"), l4("l1"), cpu("c0")]


def test_gfd_labels_give_catalog_gpu_count_memory_cpu_and_place() -> None:
    node = h100()
    assert node.gpu is not None
    assert node.gpu.key == "H100-SXM-80GB"
    assert node.gpu.product == "NVIDIA-H100-80GB-HBM3"
    assert node.gpu.known
    assert node.gpu_count == 8
    assert node.gpu_memory_mib == 81559
    assert node.cpu_vendor == "AMD" and not node.avx512 and not node.amx
    assert node.cpu_cores == 191  # 191450m: whole cores only
    assert (node.region, node.zone, node.instance_type) == ("us-east-1", "us-east-1a", "p5.48xlarge")


def test_gpu_count_falls_back_to_gfd_count_label_without_allocatable() -> None:
    node = NodeHardware.from_node("n", A2_LABELS, {"cpu": "48"})
    assert node.gpu is not None and node.gpu.key == "A100-SXM4-80GB"
    assert node.gpu_count == 4


def test_allocatable_wins_over_the_count_label() -> None:
    # The device plugin marks unhealthy GPUs unallocatable; the label still says 4.
    node = NodeHardware.from_node("n", A2_LABELS, {"nvidia.com/gpu": "3"})
    assert node.gpu_count == 3


def test_karpenter_labels_alone_identify_the_gpu() -> None:
    labels = {k: v for k, v in P5_LABELS.items() if not k.startswith("nvidia.com/")}
    node = NodeHardware.from_node("n", labels, {"cpu": "192"})
    assert node.gpu is not None
    assert node.gpu.key == "H100-SXM-80GB"
    assert node.gpu.product == "h100"
    assert node.gpu_count == 8
    assert node.gpu_memory_mib == 81920


def test_karpenter_memory_picks_the_a100_variant() -> None:
    small = NodeHardware.from_node(
        "n",
        {"karpenter.k8s.aws/instance-gpu-name": "a100", "karpenter.k8s.aws/instance-gpu-memory": "40960"},
        {"nvidia.com/gpu": "8"},
    )
    assert small.gpu is not None and small.gpu.key == "A100-SXM4-40GB"


def test_mig_product_keeps_profile_and_matches_parent_names() -> None:
    labels = {
        **A2_LABELS,
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb",
        "nvidia.com/gpu.count": "28",
    }
    node = NodeHardware.from_node("mig", labels, {"nvidia.com/gpu": "28"})
    assert node.gpu is not None
    assert node.gpu.key == "A100-SXM4-80GB"
    assert node.gpu.mig_profile == "1g.10gb"
    assert node.gpu.name == "A100-SXM4-80GB-MIG-1g.10gb"
    assert node.gpu_count == 28
    assert node.gpu.matches("A100-SXM4-80GB")
    # A slice has at most a seventh of the parent's bandwidth, so it sorts below the full GPU.
    full = a100()
    assert full.gpu is not None
    assert node.gpu.capability() == pytest.approx(full.gpu.capability() / 7)


def test_unknown_product_is_kept_as_unknown() -> None:
    node = NodeHardware.from_node("n", {"nvidia.com/gpu.product": "NVIDIA-Foo-9000"}, {"nvidia.com/gpu": "2"})
    assert node.gpu is not None
    assert node.gpu.key is None and not node.gpu.known
    assert node.gpu.name == "NVIDIA-Foo-9000"
    assert node.gpu_count == 2


def test_gpus_without_a_product_label_are_an_unknown_gpu_node() -> None:
    node = NodeHardware.from_node("n", {}, {"nvidia.com/gpu": "1"})
    assert node.gpu is not None and not node.gpu.known


def test_cpu_node_reads_nfd_vendor_avx512_amx() -> None:
    node = cpu()
    assert node.gpu is None and node.gpu_count == 0
    assert (node.cpu_vendor, node.avx512, node.amx, node.cpu_cores) == ("Intel", True, True, 31)
    raw = NodeHardware.from_node("n", {"feature.node.kubernetes.io/cpu-model.vendor_id": "GenuineIntel"}, {})
    assert raw.cpu_vendor == "Intel"
    assert NodeHardware.from_node("n", {}, {}).cpu_vendor == "Unknown"


def test_legacy_region_label_is_read() -> None:
    node = NodeHardware.from_node("n", {"failure-domain.beta.kubernetes.io/region": "eu-west-1"}, {})
    assert node.region == "eu-west-1"


def test_summary_groups_types_and_counts_gpus() -> None:
    inv = summarize(cluster())
    by_gpu = {g.gpu: g for g in inv.gpus or []}
    assert set(by_gpu) == {"H100-SXM-80GB", "A100-SXM4-80GB", "L4"}
    assert (by_gpu["H100-SXM-80GB"].nodes, by_gpu["H100-SXM-80GB"].total_gpus) == (2, 16)
    assert by_gpu["H100-SXM-80GB"].gpus_per_node == 8
    assert by_gpu["A100-SXM4-80GB"].regions == ["europe-west4"]
    assert (by_gpu["L4"].nodes, by_gpu["L4"].total_gpus) == (2, 2)
    assert [(c.vendor, c.amx, c.nodes) for c in inv.cpus or []] == [("Intel", True, 1)]
    assert (inv.matched_nodes, inv.total_nodes) == (6, 6)


def test_most_capable_gpu_first_by_catalog_bandwidth() -> None:
    unknown = NodeHardware.from_node(
        "u", {"nvidia.com/gpu.product": "NVIDIA-Foo-9000"}, {"nvidia.com/gpu": "1"}
    )
    inv = summarize([l4(), unknown, a100(), h100()])
    names = [g.gpu for g in inv.gpus or []]
    assert names[-1] == "NVIDIA-Foo-9000"  # unknown last
    bandwidths = [hardware.gpu(n).memory_bandwidth_gbs for n in names[:-1]]
    assert bandwidths == sorted(bandwidths, reverse=True)
    assert names[0] == "H100-SXM-80GB"


def test_summary_does_not_depend_on_node_order() -> None:
    nodes = cluster()
    expected = summarize(nodes)
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(nodes)
        assert summarize(nodes) == expected


def test_only_ready_schedulable_nodes_match_but_all_are_counted() -> None:
    nodes = [h100("h0"), h100("h1", ready=False), a100("a0", unschedulable=True)]
    inv = summarize(nodes)
    assert (inv.matched_nodes, inv.total_nodes) == (1, 3)
    assert [(g.gpu, g.nodes) for g in inv.gpus or []] == [("H100-SXM-80GB", 1)]


@pytest.mark.parametrize("alias", ["NVIDIA-L4", "L4", "l4"])
def test_allowed_gpus_accept_any_alias(alias: str) -> None:
    inv = summarize(cluster(), HardwareSpec(allowed_gpus=[alias], allow_cpu=False))
    assert [g.gpu for g in inv.gpus or []] == ["L4"]
    assert inv.cpus == []
    assert inv.matched_nodes == 2


def test_excluded_gpus_and_allow_cpu() -> None:
    inv = summarize(cluster(), HardwareSpec(excluded_gpus=["H100-SXM-80GB"]))
    assert "H100-SXM-80GB" not in [g.gpu for g in inv.gpus or []]
    assert inv.cpus and inv.cpus[0].nodes == 1
    no_cpu = summarize(cluster(), HardwareSpec(allow_cpu=False))
    assert no_cpu.cpus == [] and no_cpu.matched_nodes == 5


def test_regions_and_policy_constraints_intersect() -> None:
    us = summarize(cluster(), HardwareSpec(regions=["us-east-1"]))
    assert "A100-SXM4-80GB" not in [g.gpu for g in us.gpus or []]
    both = summarize(
        cluster(),
        HardwareSpec(allowed_gpus=["H100-SXM-80GB", "A100-SXM4-80GB"]),
        Constraints(allowed_gpus=["a100"]),
    )
    assert [g.gpu for g in both.gpus or []] == ["A100-SXM4-80GB"]
    nothing = summarize(cluster(), HardwareSpec(regions=["us-east-1"]), Constraints(regions=["europe-west4"]))
    assert nothing.matched_nodes == 0 and nothing.total_nodes == 6


def test_unknown_product_can_be_allowed_by_its_label() -> None:
    foo = NodeHardware.from_node("u", {"nvidia.com/gpu.product": "NVIDIA-Foo-9000"}, {"nvidia.com/gpu": "1"})
    inv = summarize([foo, h100()], HardwareSpec(allowed_gpus=["NVIDIA-Foo-9000"]))
    assert [(g.gpu, g.known) for g in inv.gpus or []] == [("NVIDIA-Foo-9000", False)]


def test_describe_names_counts() -> None:
    text = describe(summarize(cluster()))
    assert text.startswith("6 of 6 nodes match")
    assert "H100-SXM-80GB x16 on 2 nodes" in text
    assert "Intel CPU AMX on 1 node" in text
