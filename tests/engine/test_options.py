"""Hardware options: layouts within the workload's bounds and a node, restrictions, odd inventory."""

from __future__ import annotations

from greenmatrix.api import OptimizationPolicySpec
from greenmatrix.api.workloadprofile import CPUInventory, GPUInventory, HardwareSpec, Inventory
from greenmatrix.planning.options import Restrictions, catalog_options, cluster_options, layouts


def test_layouts_stay_within_bounds_and_one_node() -> None:
    assert layouts(None, 8) == [1, 2, 4, 8]
    assert layouts(HardwareSpec(minGpusPerReplica=2, maxGpusPerReplica=4), 8) == [2, 4]
    assert layouts(None, 4) == [1, 2, 4]  # a 4-GPU node never holds an 8-GPU replica
    assert layouts(HardwareSpec(minGpusPerReplica=8), 4) == []


def _nodes(gpu: str, product: str, nodes: int, per_node: int, *, known: bool = True) -> GPUInventory:
    total = nodes * per_node
    return GPUInventory(
        gpu=gpu, product=product, known=known, nodes=nodes, gpus_per_node=per_node, total_gpus=total
    )


def inventory() -> Inventory:
    return Inventory(
        gpus=[
            _nodes("H100-SXM-80GB", "NVIDIA-H100-80GB-HBM3", 2, 8),
            _nodes("A100-SXM4-80GB-MIG-1g.10gb", "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb", 1, 7),
            _nodes("Foo-X1", "Foo-X1", 1, 4, known=False),
        ],
        cpus=[CPUInventory(vendor="Intel", avx512=True, amx=True, nodes=3, cores_per_node=48)],
        matched_nodes=7,
        total_nodes=7,
    )


def test_cluster_options_carry_what_scheduling_needs() -> None:
    options = cluster_options(inventory(), Restrictions.of(None, None), None)
    h100 = [o for o in options if o.name == "H100-SXM-80GB"]
    assert [o.gpus_per_replica for o in h100] == [1, 2, 4, 8]
    assert all(o.in_cluster and o.product == "NVIDIA-H100-80GB-HBM3" for o in h100)
    # Two 8-GPU nodes hold 4 replicas of 4 GPUs.
    assert next(o for o in h100 if o.gpus_per_replica == 4).max_replicas == 4
    mig = next(o for o in options if "MIG" in o.name)
    assert "MIG" in mig.note
    unknown = next(o for o in options if o.name == "Foo-X1")
    assert unknown.gpu is None and "no specs" in unknown.note
    cpu = next(o for o in options if o.is_cpu)
    assert cpu.name == "cpu/intel" and cpu.cpu is not None and cpu.cpu.amx and cpu.max_replicas == 3


def test_workload_and_policy_restrictions_both_apply() -> None:
    hw = HardwareSpec(allowedGpus=["NVIDIA-H100-80GB-HBM3", "L4"], allowCpu=False)
    policy = OptimizationPolicySpec.model_validate({"constraints": {"allowedGpus": ["h100"]}})
    options = cluster_options(inventory(), Restrictions.of(hw, policy), hw)
    assert {o.name for o in options} == {"H100-SXM-80GB"}
    outside = catalog_options(Restrictions.of(hw, policy), hw)
    assert {o.name for o in outside} == {"H100-SXM-80GB"}
    excluded = catalog_options(Restrictions.of(HardwareSpec(excludedGpus=["L4"]), None), None)
    assert "L4" not in {o.name for o in excluded} and excluded


def test_regions_must_pass_every_list() -> None:
    r = Restrictions.of(
        HardwareSpec(regions=["us-east-1", "eu-west-1"]),
        OptimizationPolicySpec.model_validate({"constraints": {"regions": ["eu-west-1"]}}),
    )
    assert r.usable_regions(["us-east-1", "eu-west-1"]) == ("eu-west-1",)
