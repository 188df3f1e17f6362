"""The lab itself: a real 1.34 control plane, kwok GPU nodes that take pods, a working Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from greenmatrix_lab import Lab, NodeFileError, Series, load_node_groups, node_manifest, toolchain
from greenmatrix_lab.layout import DEFAULT_NODES_FILE
from greenmatrix_lab.nodes import LAB_NODE_LABEL
from greenmatrix_lab.remote_write import push
from greenmatrix_lab.toolchain import GoModule, build_key
from operator_helpers import get_json, wait_until

GPU = "nvidia.com/gpu"
PRODUCT = "nvidia.com/gpu.product"


# -- helpers ------------------------------------------------------------------------------


def eventually(check: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    """Poll until `check` returns something truthy; the lab is asynchronous by nature."""
    return wait_until(check, timeout, what, interval=1.0)


def is_ready(node: dict) -> bool:
    conditions = node.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def promql(lab: Lab, query: str) -> list[dict]:
    url = f"{lab.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def pod(name: str, gpus: int, node_selector: dict[str, str] | None = None) -> dict:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "registry.k8s.io/pause:3.10",
                "resources": {"limits": {GPU: str(gpus)}, "requests": {"cpu": "100m", GPU: str(gpus)}},
            }
        ]
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def run_cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greenmatrix_lab", *args],
        capture_output=True,
        text=True,
        env=lab.env,
        timeout=120,
        check=False,
    )


@pytest.fixture
def namespace(lab: Lab) -> Iterator[str]:
    name = f"lab-test-{uuid.uuid4().hex[:8]}"
    lab.kubectl("create", "namespace", name)
    yield name
    lab.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def default_nodes(lab: Lab) -> dict[str, dict]:
    """The lab's nodes by name; tests on the bundled node set skip on a lab started with --nodes."""
    state = json.loads(lab.layout.state_file.read_text())
    if Path(state["nodes_file"]) != DEFAULT_NODES_FILE:
        pytest.skip(f"the running lab uses {state['nodes_file']}, not the default node file")
    nodes = get_json(lab, "nodes", "-l", f"{LAB_NODE_LABEL}=true")["items"]
    return {n["metadata"]["name"]: n for n in nodes}


# -- control plane ------------------------------------------------------------------------


def test_apiserver_and_kubectl_are_kubernetes_1_34(lab: Lab) -> None:
    version = json.loads(lab.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.34.")
    assert version["clientVersion"]["gitVersion"].startswith("v1.34.")
    # The lab's kubectl must win over any other kubectl on PATH.
    assert shutil.which("kubectl", path=lab.env["PATH"]) == str(lab.bin_dir / "kubectl")


def test_admin_identity_is_the_lab_admin_certificate(lab: Lab) -> None:
    review = json.loads(lab.kubectl("auth", "whoami", "-o", "json").stdout)
    assert review["status"]["userInfo"]["username"] == "greenmatrix-admin"
    assert "system:masters" in review["status"]["userInfo"]["groups"]


def test_service_account_token_authenticates(lab: Lab, namespace: str) -> None:
    lab.kubectl("create", "serviceaccount", "robot", "-n", namespace)
    token = lab.kubectl("create", "token", "robot", "-n", namespace, "--duration=10m").stdout.strip()
    assert token.count(".") == 2  # a JWT
    # Present only the token (no client certificate): the apiserver must say who we are.
    request = urllib.request.Request(
        f"{lab.apiserver_url}/apis/authentication.k8s.io/v1/selfsubjectreviews",
        data=json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    context = ssl.create_default_context(cafile=str(lab.ca_file))
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        user = json.load(response)["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{namespace}:robot"
    assert "system:serviceaccounts" in user["groups"]


# -- fake nodes ---------------------------------------------------------------------------


def test_default_nodes_carry_the_hardware_the_spec_asks_for(default_nodes: dict[str, dict]) -> None:
    by_product = Counter(n["metadata"]["labels"].get(PRODUCT) for n in default_nodes.values())
    # From the lab's brief: 2x 8-GPU H100, 2x 4-GPU A100 80GB, 4x 1-GPU L4, 3 CPU-only nodes.
    assert by_product["NVIDIA-H100-80GB-HBM3"] == 2
    assert by_product["NVIDIA-A100-SXM4-80GB"] == 2
    assert by_product["NVIDIA-L4"] == 4
    assert by_product[None] == 3
    gpus_per_product = {"NVIDIA-H100-80GB-HBM3": "8", "NVIDIA-A100-SXM4-80GB": "4", "NVIDIA-L4": "1"}
    for node in default_nodes.values():
        labels, allocatable = node["metadata"]["labels"], node["status"]["allocatable"]
        product = labels.get(PRODUCT)
        if product is None:
            assert GPU not in allocatable
            assert labels["feature.node.kubernetes.io/cpu-model.vendor_id"] in {"Intel", "AMD"}
            continue
        assert allocatable[GPU] == gpus_per_product[product]
        assert labels["nvidia.com/gpu.count"] == allocatable[GPU]
        assert int(labels["nvidia.com/gpu.memory"]) > 20_000  # MiB, as GFD writes it
        assert labels["feature.node.kubernetes.io/pci-0302_10de.present"] == "true"
    assert (
        len({n["metadata"]["labels"]["topology.kubernetes.io/region"] for n in default_nodes.values()}) >= 2
    )


def test_default_nodes_match_the_node_file_and_are_ready(lab: Lab, default_nodes: dict[str, dict]) -> None:
    for group in load_node_groups(DEFAULT_NODES_FILE):
        for index in range(group.count):
            expected = node_manifest(group, index)
            node = default_nodes[expected["metadata"]["name"]]
            assert expected["metadata"]["labels"].items() <= node["metadata"]["labels"].items()
            assert node["status"]["allocatable"] == expected["status"]["allocatable"]
            assert is_ready(node), f"{node['metadata']['name']} is not Ready"


def test_scheduler_places_a_two_gpu_pod_on_a_node_with_enough_gpus(lab: Lab, namespace: str) -> None:
    lab.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(pod("trainer", gpus=2)))
    lab.kubectl(
        "wait", "-n", namespace, "pod/trainer", "--for=jsonpath={.status.phase}=Running", "--timeout=120s"
    )
    placed = get_json(lab, "pod", "trainer", "-n", namespace)
    node = get_json(lab, "node", placed["spec"]["nodeName"])
    # Only the H100 and A100 nodes have two GPUs; L4 and CPU nodes must have been filtered out.
    assert int(node["status"]["allocatable"].get(GPU, "0")) >= 2
    assert node["metadata"]["labels"][PRODUCT] in {"NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB"}
    assert placed["status"]["podIP"]  # kwok assigned one, as a kubelet would


def test_pod_asking_for_more_gpus_than_any_node_has_stays_unschedulable(lab: Lab, namespace: str) -> None:
    lab.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(pod("greedy", gpus=16)))

    def unschedulable() -> dict | None:
        conditions = get_json(lab, "pod", "greedy", "-n", namespace)["status"].get("conditions", [])
        return next((c for c in conditions if c["type"] == "PodScheduled" and c["status"] == "False"), None)

    condition = eventually(unschedulable, "the scheduler to report the pod unschedulable")
    assert condition["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in condition["message"]


def test_added_node_with_a_new_gpu_type_runs_pods_that_select_it(lab: Lab, namespace: str) -> None:
    name = f"gpu-b200-{uuid.uuid4().hex[:6]}"
    labels = {
        PRODUCT: "NVIDIA-B200",
        "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.memory": "183359",
        "nvidia.com/gpu.family": "blackwell",
    }
    lab.add_node(name, labels, {"cpu": "224", "memory": "2Ti", "pods": "110", GPU: "8"})
    try:
        assert is_ready(get_json(lab, "node", name))
        lab.kubectl(
            "create", "-n", namespace, "-f", "-", input=json.dumps(pod("b200", 4, {PRODUCT: "NVIDIA-B200"}))
        )
        lab.kubectl(
            "wait", "-n", namespace, "pod/b200", "--for=jsonpath={.status.phase}=Running", "--timeout=120s"
        )
        assert get_json(lab, "pod", "b200", "-n", namespace)["spec"]["nodeName"] == name
    finally:
        lab.delete_node(name)
    assert lab.kubectl("get", "node", name, check=False).returncode != 0


# -- Prometheus ---------------------------------------------------------------------------


def test_prometheus_scrapes_itself_and_the_apiserver(lab: Lab) -> None:
    def targets_up() -> bool:
        jobs = {r["metric"]["job"]: r["value"][1] for r in promql(lab, "up")}
        return jobs.get("prometheus") == "1" and jobs.get("kube-apiserver") == "1"

    eventually(targets_up, "up == 1 for jobs prometheus and kube-apiserver")
    # The apiserver's own metrics arrived, so the system:monitoring client certificate works.
    assert promql(lab, 'apiserver_request_total{job="kube-apiserver"}')


def test_prometheus_accepts_remote_write(lab: Lab) -> None:
    probe = uuid.uuid4().hex
    now_ms = int(time.time() * 1000)
    labels = {"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "0", "Hostname": "gpu-h100-0", "probe": probe}
    push(lab.prometheus_url, [Series(labels, [(now_ms - 10_000, 55.0), (now_ms, 87.5)])])
    result = eventually(lambda: promql(lab, f'DCGM_FI_DEV_GPU_UTIL{{probe="{probe}"}}'), "the pushed series")
    assert [r["metric"]["Hostname"] for r in result] == ["gpu-h100-0"]
    assert float(result[0]["value"][1]) == 87.5  # the latest sample wins an instant query


def test_prometheus_accepts_a_remote_write_larger_than_one_snappy_literal(lab: Lab) -> None:
    # ~100 bytes per series: 800 series take more than one 64 KiB snappy literal.
    probe = uuid.uuid4().hex
    now_ms = int(time.time() * 1000)
    series = [
        Series(
            {
                "__name__": "vllm:num_requests_running",
                "pod": f"llama-{i:04d}",
                "probe": probe,
                "model": "x" * 40,
            },
            [(now_ms, float(i))],
        )
        for i in range(800)
    ]
    push(lab.prometheus_url, series)
    query = f'sum(vllm:num_requests_running{{probe="{probe}"}})'
    total = eventually(lambda: promql(lab, query), "the pushed series")
    assert float(total[0]["value"][1]) == sum(range(800))


def test_prometheus_scrapes_a_file_sd_target_added_at_runtime(lab: Lab) -> None:
    probe = uuid.uuid4().hex[:12]
    address = lab.prometheus_url.removeprefix("http://")
    lab.add_scrape_target(f"test-{probe}", [address], {"probe": probe})
    try:
        result = eventually(
            lambda: promql(lab, f'up{{job="lab",probe="{probe}"}} == 1'), "the file_sd target"
        )
        assert result[0]["metric"]["instance"] == address
    finally:
        lab.remove_scrape_target(f"test-{probe}")


# -- CLI ----------------------------------------------------------------------------------


def test_lab_env_prints_what_lab_up_prints(lab: Lab) -> None:
    up, env = run_cli(lab, "up"), run_cli(lab, "env")
    assert up.returncode == 0, up.stderr
    assert env.returncode == 0, env.stderr
    assert up.stdout == env.stdout
    assert env.stdout.splitlines() == lab.export_lines()
    assert env.stdout.splitlines()[1].endswith(":$PATH")
    # Eval'ed by a shell, the lines put the lab's kubectl first and reach the lab's apiserver.
    script = (
        'eval "$('
        + f"{sys.executable} -m greenmatrix_lab env"
        + ')"; command -v kubectl; kubectl get nodes -o name'
    )
    shell = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, timeout=60)
    first, *names = shell.stdout.splitlines()
    assert first == str(lab.bin_dir / "kubectl")
    assert len(names) >= 11


def test_lab_status_reports_every_component_healthy(lab: Lab) -> None:
    result = run_cli(lab, "status")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for component in (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "prometheus",
    ):
        line = next(line for line in lines if line.startswith(component + " "))
        assert line.endswith("healthy") and "unhealthy" not in line
    nodes_line = next(line for line in lines if line.startswith("nodes:"))
    ready, total = nodes_line.split()[1].split("/")
    assert ready == total and int(total) >= 11


# -- node files (no cluster needed) -------------------------------------------------------


def write_groups(tmp_path: Path, group: dict) -> Path:
    base = {"name": "x", "prefix": "x-", "count": 1, "allocatable": {"cpu": "1", "pods": "10"}}
    path = tmp_path / "nodes.yaml"
    path.write_text(yaml.safe_dump({"nodeGroups": [{**base, **group}]}))
    return path


@pytest.mark.parametrize(
    ("group", "field"),
    [
        ({"count": 0}, "count"),
        ({"allocatable": {"nvidia.com/gpu": "eight"}}, "allocatable['nvidia.com/gpu']"),
        ({"labels": {"nvidia.com/gpu.product": "NVIDIA H100"}}, "labels['nvidia.com/gpu.product']"),
        ({"gpus": 8}, "unknown field"),
        ({"name": "Big_GPU"}, "name"),
    ],
)
def test_bad_node_file_names_the_field(tmp_path: Path, group: dict, field: str) -> None:
    with pytest.raises(NodeFileError, match=re.escape(field)):
        load_node_groups(write_groups(tmp_path, group))


def test_unquoted_yaml_scalars_become_label_strings(tmp_path: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text(
        "nodeGroups:\n- name: l4\n  count: 1\n"
        "  labels: {nvidia.com/gpu.count: 1, nvidia.com/mig.capable: false}\n"
        "  allocatable: {cpu: 4, nvidia.com/gpu: 1}\n"
    )
    (group,) = load_node_groups(path)
    manifest = node_manifest(group, 0)
    assert manifest["metadata"]["name"] == "l4-0"
    assert manifest["metadata"]["labels"]["nvidia.com/gpu.count"] == "1"
    assert manifest["metadata"]["labels"]["nvidia.com/mig.capable"] == "false"
    assert manifest["status"]["allocatable"] == {"cpu": "4", GPU: "1"}
    with pytest.raises(ValueError, match="index"):
        node_manifest(group, 1)


def test_a_changed_pin_changes_the_build_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = GoModule("etcd", packages=("go.etcd.io/etcd/server/v3",), binaries=("etcd",))
    (tmp_path / "etcd").mkdir()
    for name, text in (
        ("go.mod", "module x\nrequire a v1.0.0\n"),
        ("go.sum", "a v1.0.0 h1:x\n"),
        ("tools.go", ""),
    ):
        (tmp_path / "etcd" / name).write_text(text)
    monkeypatch.setattr(toolchain, "GOMOD_DIR", tmp_path)
    key = build_key(module, "go1.26.8")
    assert build_key(module, "go1.26.8") == key
    assert build_key(module, "go1.27.0") != key
    (tmp_path / "etcd" / "go.sum").write_text("a v1.0.1 h1:y\n")
    assert build_key(module, "go1.26.8") != key
    pinned = build_key(module, "go1.26.8")
    (tmp_path / "etcd" / "main.go").write_text("package main\n")  # a program of the lab's own
    assert build_key(module, "go1.26.8") != pinned
