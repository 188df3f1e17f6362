"""Installing GreenMatrix as a cluster admin would, on the lab: kustomize, Helm, and the operator
running under exactly the ServiceAccount the manifests create.

The tests in this module run in file order and share the default install; they remove what
they installed (except the CRDs, which other lab tests use) when the module ends.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from greenmatrix_lab import Lab
from operator_helpers import wait_until

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "greenmatrix-system"
SERVICE_ACCOUNT = "greenmatrix"
IDENTITY = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
HELM_NAMESPACE = "greenmatrix-helm-test"
HELM_RELEASE = "gm-test"  # the chart names its objects "<release>-greenmatrix"
HELM_IDENTITY = f"system:serviceaccount:{HELM_NAMESPACE}:{HELM_RELEASE}-greenmatrix"
E2E_NAMESPACE = "greenmatrix-install-e2e"

# (verb, resource, subresource) the operator needs for recommending.
NEEDED = [
    ("list", "nodes", None),
    ("watch", "nodes", None),
    ("list", "workloadprofiles.greenmatrix.io", None),
    ("watch", "workloadprofiles.greenmatrix.io", None),
    ("watch", "optimizationpolicies.greenmatrix.io", None),
    ("patch", "workloadprofiles.greenmatrix.io", "status"),
    ("patch", "optimizationpolicies.greenmatrix.io", "status"),
    ("create", "events", None),
    ("create", "events.events.k8s.io", None),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("list", "namespaces", None),
    # The live loop reads each WorkloadProfile's target (never its pods).
    ("get", "deployments.apps", None),
    ("get", "statefulsets.apps", None),
]
# What it must never be able to do, and, without auto-apply, scaling.
FORBIDDEN = [
    ("get", "secrets", None),
    ("list", "secrets", None),
    ("create", "pods", "exec"),
    ("get", "pods", None),
    ("create", "deployments.apps", None),
    ("delete", "workloadprofiles.greenmatrix.io", None),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", None),
    ("get", "configmaps", None),
]
SCALING = [
    ("patch", "deployments.apps", "scale"),
    ("update", "deployments.apps", "scale"),
    ("patch", "statefulsets.apps", "scale"),
    # Whether another autoscaler already scales the target (KEDA's ScaledObjects too, where it is
    # installed: the lab has no KEDA, and `can-i` says no for a resource the server does not serve).
    ("list", "horizontalpodautoscalers.autoscaling", None),
]


# -- helpers ------------------------------------------------------------------------------


def can_i(lab: Lab, identity: str, verb: str, resource: str, subresource: str | None = None) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={identity}", "--namespace=default"]
    if subresource:
        args.append(f"--subresource={subresource}")
    result = lab.kubectl(*args, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl auth can-i said {answer!r}: {result.stderr}"
    return answer == "yes"


def can_scale(lab: Lab, identity: str) -> bool:
    return can_i(lab, identity, "patch", "deployments.apps", "scale")


def eventually(check: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    return wait_until(check, timeout, what, interval=1.0)


def helm(lab: Lab, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = lab.env
    # Keep Helm's repository cache and config out of the user's home.
    for kind in ("CACHE", "CONFIG", "DATA"):
        env[f"HELM_{kind}_HOME"] = str(home / kind.lower())
    return subprocess.run(
        [str(lab.bin_dir / "helm"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize(lab: Lab, path: str) -> list[dict]:
    return documents(lab.kubectl("kustomize", str(REPO / path)).stdout)


def rules_of(docs: list[dict], kind: str = "ClusterRole") -> dict[str, list[dict]]:
    return {d["metadata"]["name"]: d["rules"] for d in docs if d["kind"] == kind}


def wait_until_gone(lab: Lab, namespace: str) -> None:
    """A namespace left terminating by an earlier run refuses new objects; wait for it to go."""
    lab.kubectl("wait", "--for=delete", f"namespace/{namespace}", "--timeout=180s", timeout=200)


def crd_established(lab: Lab, name: str) -> bool:
    crd = json.loads(lab.kubectl("get", "crd", name, "-o", "json").stdout)
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
        return getattr(err, "code", 0) or 0, str(err)


# -- the default install (kustomize) -----------------------------------------------------


@pytest.fixture(scope="module")
def installed(lab: Lab) -> Iterator[subprocess.CompletedProcess[str]]:
    wait_until_gone(lab, NAMESPACE)
    result = lab.kubectl("apply", "--server-side", "-k", str(REPO / "manifests"), check=False)
    yield result
    for kind, name in (
        ("clusterrolebinding", "greenmatrix-operator-auto-apply"),
        ("clusterrole", "greenmatrix-operator-auto-apply"),
        ("clusterrolebinding", "greenmatrix-operator"),
        ("clusterrole", "greenmatrix-operator"),
    ):
        lab.kubectl("delete", kind, name, "--ignore-not-found", check=False)
    lab.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)


def test_default_install_applies_cleanly(lab: Lab, installed: subprocess.CompletedProcess[str]) -> None:
    assert installed.returncode == 0, installed.stderr
    # The namespace enforces the restricted Pod Security profile; the pod template must pass it.
    assert "PodSecurity" not in installed.stderr, installed.stderr
    for name in ("workloadprofiles.greenmatrix.io", "optimizationpolicies.greenmatrix.io"):
        # Not `kubectl wait`: it errors out when asked before the CRD has any status at all.
        eventually(lambda name=name: crd_established(lab, name), f"CRD {name} to be Established", timeout=60)
    deployment = json.loads(
        lab.kubectl("get", "deployment", "greenmatrix-operator", "-n", NAMESPACE, "-o", "json").stdout
    )
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == SERVICE_ACCOUNT
    lab.kubectl("get", "serviceaccount", SERVICE_ACCOUNT, "-n", NAMESPACE)
    lab.kubectl("get", "service", "greenmatrix-metrics", "-n", NAMESPACE)

    # Pod Security admission enforces `restricted` on pods (not Deployments): the ReplicaSet's
    # pod existing at all shows the pod template passed it.
    def operator_pods() -> list[dict]:
        pods = lab.kubectl(
            "get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator", "-o", "json"
        )  # fmt: skip
        return json.loads(pods.stdout)["items"]

    eventually(operator_pods, "the operator's pod to be admitted", timeout=60)


def test_default_install_is_idempotent(lab: Lab, installed: subprocess.CompletedProcess[str]) -> None:
    again = lab.kubectl("apply", "--server-side", "-k", str(REPO / "manifests"), check=False)
    assert again.returncode == 0, again.stderr


def test_manifests_default_is_the_base(lab: Lab) -> None:
    assert kustomize(lab, "manifests") == kustomize(lab, "manifests/base")


@pytest.mark.parametrize(("verb", "resource", "subresource"), NEEDED)
def test_operator_identity_can(
    lab: Lab, installed: subprocess.CompletedProcess[str], verb: str, resource: str, subresource: str | None
) -> None:
    assert can_i(lab, IDENTITY, verb, resource, subresource)


@pytest.mark.parametrize(("verb", "resource", "subresource"), FORBIDDEN + SCALING)
def test_operator_identity_cannot(
    lab: Lab, installed: subprocess.CompletedProcess[str], verb: str, resource: str, subresource: str | None
) -> None:
    assert not can_i(lab, IDENTITY, verb, resource, subresource)


def test_auto_apply_overlay_grants_scaling_and_nothing_else(
    lab: Lab, installed: subprocess.CompletedProcess[str]
) -> None:
    result = lab.kubectl(
        "apply", "--server-side", "-k", str(REPO / "manifests/overlays/auto-apply"), check=False
    )
    assert result.returncode == 0, result.stderr
    try:
        eventually(lambda: can_scale(lab, IDENTITY), "scale rights", timeout=30)
        for verb, resource, subresource in SCALING:
            assert can_i(lab, IDENTITY, verb, resource, subresource), (verb, resource, subresource)
        for verb, resource, subresource in FORBIDDEN:
            assert not can_i(lab, IDENTITY, verb, resource, subresource), (verb, resource, subresource)
    finally:
        lab.kubectl("delete", "clusterrolebinding", "greenmatrix-operator-auto-apply", "--ignore-not-found")
        lab.kubectl("delete", "clusterrole", "greenmatrix-operator-auto-apply", "--ignore-not-found")
    # The authorizer sees RBAC changes through an informer: a moment later, not at once.
    eventually(
        lambda: not can_scale(lab, IDENTITY),
        "the scale rights to go with the auto-apply ClusterRoleBinding",
        timeout=30,
    )


def test_auto_apply_overlay_is_the_base_plus_the_scale_role(lab: Lab) -> None:
    base = kustomize(lab, "manifests/base")
    overlay = kustomize(lab, "manifests/overlays/auto-apply")
    extra = [d for d in overlay if d not in base]
    assert sorted(d["kind"] for d in extra) == ["ClusterRole", "ClusterRoleBinding", "Deployment"]
    # The Deployment differs only by the operator's own switch.
    (switched,) = (d for d in extra if d["kind"] == "Deployment")
    (container,) = switched["spec"]["template"]["spec"]["containers"]
    assert container.pop("env") == [{"name": "GREENMATRIX_AUTO_APPLY", "value": "true"}]
    assert switched in base
    assert all(d in overlay for d in base if d["kind"] != "Deployment")


# -- the Helm chart -------------------------------------------------------------------------


def test_chart_lints_clean(lab: Lab, tmp_path: Path) -> None:
    for values in (
        [],
        ["--set", "autoApply.enabled=true", "--set", "watchNamespaces={a,b}"],
        ["--set", "replicas=2", "--set", "autoApply.dryRun=true"],
        [*MONITORING_ON],
    ):
        result = helm(lab, tmp_path, "lint", "--strict", "charts/greenmatrix", *values)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 chart(s) failed" in result.stdout


def test_helm_is_the_pinned_version(lab: Lab, tmp_path: Path) -> None:
    go_mod = (REPO / "hack" / "greenmatrix_lab" / "gomod" / "helm" / "go.mod").read_text()
    (pin,) = re.findall(r"^require helm\.sh/helm/v3 (v\S+)$", go_mod, re.M)
    result = helm(lab, tmp_path, "version", "--template", "{{.Version}}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == pin


@pytest.mark.parametrize(
    ("values", "field"),
    [
        (["--set", "autoApply.enabled=maybe"], "/autoApply/enabled"),
        (["--set", "autoapply.enabled=true"], "autoapply"),  # a typo must not be ignored
        (["--set", "watchNamespaces={Team_A}"], "/watchNamespaces/0"),
        (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["--set", "prometheus.url=prometheus:9090"], "/prometheus/url"),
    ],
)
def test_chart_rejects_bad_values_naming_the_field(
    lab: Lab, tmp_path: Path, values: list[str], field: str
) -> None:
    result = helm(lab, tmp_path, "template", HELM_RELEASE, "charts/greenmatrix", *values)
    assert result.returncode != 0
    assert field in result.stderr, result.stderr


def _template(lab: Lab, home: Path, *values: str) -> list[dict]:
    result = helm(lab, home, "template", HELM_RELEASE, "charts/greenmatrix", "-n", HELM_NAMESPACE, *values)
    assert result.returncode == 0, result.stderr
    return documents(result.stdout)


MONITORING_ON = [
    "--set",
    "monitoring.serviceMonitor.enabled=true",
    "--set",
    "monitoring.podMonitor.enabled=true",
    "--set",
    "monitoring.prometheusRule.enabled=true",
    "--set",
    "monitoring.dashboards.enabled=true",
]


def test_chart_monitoring_ships_the_same_rules_and_dashboards(lab: Lab, tmp_path: Path) -> None:
    assert not [d for d in _template(lab, tmp_path) if d["apiVersion"].startswith("monitoring.coreos.com")]
    docs = _template(lab, tmp_path, *MONITORING_ON)
    kinds = {d["kind"]: d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com")}
    assert set(kinds) == {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    rules = yaml.safe_load((REPO / "manifests/monitoring/prometheus-rules.yaml").read_text())
    assert kinds["PrometheusRule"]["spec"]["groups"] == rules["groups"]
    assert kinds["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == "metrics"
    boards = {
        key: json.loads(value)
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"
        for key, value in d["data"].items()
    }
    shipped = {
        p.name: json.loads(p.read_text()) for p in (REPO / "manifests/monitoring/dashboards").glob("*.json")
    }
    assert boards == shipped


def test_chart_rbac_matches_the_kustomize_rbac(lab: Lab, tmp_path: Path) -> None:
    kustomize_roles = rules_of(kustomize(lab, "manifests/overlays/auto-apply"))
    off = rules_of(_template(lab, tmp_path))
    on = rules_of(_template(lab, tmp_path, "--set", "autoApply.enabled=true"))
    assert off == {f"{HELM_RELEASE}-greenmatrix-operator": kustomize_roles["greenmatrix-operator"]}
    assert on == {
        f"{HELM_RELEASE}-greenmatrix-operator": kustomize_roles["greenmatrix-operator"],
        f"{HELM_RELEASE}-greenmatrix-operator-auto-apply": kustomize_roles["greenmatrix-operator-auto-apply"],
    }


def test_chart_values_reach_the_operator_arguments(lab: Lab, tmp_path: Path) -> None:
    docs = _template(
        lab,
        tmp_path,
        "--set",
        "watchNamespaces={team-a,team-b}",
        "--set",
        "prometheus.url=http://prometheus.monitoring:9090",
        "--set",
        "image.tag=9.9.9",
    )
    (deployment,) = (d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "operator"
    assert "--namespace=team-a" in container["args"] and "--namespace=team-b" in container["args"]
    assert {"name": "GREENMATRIX_PROMETHEUS_URL", "value": "http://prometheus.monitoring:9090"} in container[
        "env"
    ]
    assert container["image"].endswith(":9.9.9")
    default = _template(lab, tmp_path)
    (plain,) = (d for d in default if d["kind"] == "Deployment")
    assert not any(
        a.startswith("--namespace") for a in plain["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_chart_crds_are_installed_from_the_crds_folder(lab: Lab, tmp_path: Path) -> None:
    with_crds = _template(lab, tmp_path, "--include-crds")
    crds = sorted(d["metadata"]["name"] for d in with_crds if d["kind"] == "CustomResourceDefinition")
    assert crds == ["optimizationpolicies.greenmatrix.io", "workloadprofiles.greenmatrix.io"]
    assert not any(d["kind"] == "CustomResourceDefinition" for d in _template(lab, tmp_path))


def helm_auto_apply(lab: Lab, home: Path, verb: str, *, enabled: bool) -> subprocess.CompletedProcess[str]:
    """`helm template` or `helm upgrade` of the test's release with autoApply on or off; it must succeed."""
    result = helm(
        lab, home, verb, HELM_RELEASE, "charts/greenmatrix", "-n", HELM_NAMESPACE,
        "--set", f"autoApply.enabled={str(enabled).lower()}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm")


@pytest.fixture(scope="module")
def helm_release(lab: Lab, helm_home: Path) -> Iterator[subprocess.CompletedProcess[str]]:
    wait_until_gone(lab, HELM_NAMESPACE)
    result = helm(
        lab,
        helm_home,
        "install",
        HELM_RELEASE,
        "charts/greenmatrix",
        "--namespace",
        HELM_NAMESPACE,
        "--create-namespace",
    )
    yield result
    helm(lab, helm_home, "uninstall", HELM_RELEASE, "--namespace", HELM_NAMESPACE)
    lab.kubectl("delete", "namespace", HELM_NAMESPACE, "--ignore-not-found", "--wait=false", check=False)


def test_helm_install_works_and_grants_recommending_rights_only(
    lab: Lab, helm_release: subprocess.CompletedProcess[str]
) -> None:
    assert helm_release.returncode == 0, helm_release.stderr
    lab.kubectl("get", "deployment", f"{HELM_RELEASE}-greenmatrix-operator", "-n", HELM_NAMESPACE)
    for verb, resource, subresource in NEEDED:
        assert can_i(lab, HELM_IDENTITY, verb, resource, subresource), (verb, resource, subresource)
    for verb, resource, subresource in FORBIDDEN + SCALING:
        assert not can_i(lab, HELM_IDENTITY, verb, resource, subresource), (verb, resource, subresource)


def test_helm_rendering_with_auto_apply_is_accepted_by_the_server(
    lab: Lab, helm_release: subprocess.CompletedProcess[str], helm_home: Path
) -> None:
    assert helm_release.returncode == 0, helm_release.stderr
    rendered = helm_auto_apply(lab, helm_home, "template", enabled=True)
    result = lab.kubectl(
        "apply", "--server-side", "--dry-run=server", "--field-manager=helm-dry-run", "-f", "-",
        input=rendered.stdout, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        f"clusterrole.rbac.authorization.k8s.io/{HELM_RELEASE}-greenmatrix-operator-auto-apply"
        in result.stdout
    )


def test_helm_upgrade_to_auto_apply_grants_scaling(
    lab: Lab, helm_release: subprocess.CompletedProcess[str], helm_home: Path
) -> None:
    assert helm_release.returncode == 0, helm_release.stderr
    helm_auto_apply(lab, helm_home, "upgrade", enabled=True)
    eventually(lambda: can_scale(lab, HELM_IDENTITY), "scale rights", timeout=30)
    for verb, resource, subresource in SCALING:
        assert can_i(lab, HELM_IDENTITY, verb, resource, subresource), (verb, resource, subresource)
    # Without any --set, `helm upgrade` would reuse the last release's values and keep auto-apply on.
    helm_auto_apply(lab, helm_home, "upgrade", enabled=False)
    eventually(
        lambda: not can_scale(lab, HELM_IDENTITY),
        "the scale rights to go after upgrading with autoApply.enabled=false",
        timeout=30,
    )


# -- the operator, running as the installed ServiceAccount -------------------------------


def service_account_kubeconfig(lab: Lab, path: Path) -> Path:
    token = lab.kubectl("create", "token", SERVICE_ACCOUNT, "-n", NAMESPACE, "--duration=1h").stdout.strip()
    assert token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "lab",
                "cluster": {"server": lab.apiserver_url, "certificate-authority": str(lab.ca_file)},
            }
        ],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [
            {
                "name": "operator",
                "context": {"cluster": "lab", "user": SERVICE_ACCOUNT, "namespace": NAMESPACE},
            }
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture
def operator_process(
    lab: Lab, installed: subprocess.CompletedProcess[str], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], Path, int, int, Path]]:
    assert installed.returncode == 0, installed.stderr
    kubeconfig = service_account_kubeconfig(lab, tmp_path / "operator.kubeconfig")
    health_port, metrics_port = free_port(), free_port()
    log_path = tmp_path / "operator.log"
    env = {k: v for k, v in lab.env.items() if not k.startswith("KUBERNETES_")}
    env["KUBECONFIG"] = str(kubeconfig)
    greenmatrix = Path(sys.executable).with_name("greenmatrix")
    argv = [str(greenmatrix), "operator", f"--health-port={health_port}", f"--metrics-port={metrics_port}"]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
    try:
        yield process, kubeconfig, health_port, metrics_port, log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        lab.kubectl("delete", "namespace", E2E_NAMESPACE, "--ignore-not-found", "--wait=false", check=False)


def test_operator_runs_as_the_installed_service_account(
    lab: Lab, operator_process: tuple[subprocess.Popen[str], Path, int, int, Path]
) -> None:
    process, kubeconfig, health_port, metrics_port, log_path = operator_process
    whoami = lab.kubectl("auth", "whoami", f"--kubeconfig={kubeconfig}", "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == IDENTITY
    denied = lab.kubectl("get", "secrets", "-n", NAMESPACE, f"--kubeconfig={kubeconfig}", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()

    def healthy() -> bool:
        assert process.poll() is None, f"the operator exited ({process.returncode}):\n{log_path.read_text()}"
        return http_get(f"http://127.0.0.1:{health_port}/healthz")[0] == 200

    eventually(healthy, "the operator's /healthz")

    wait_until_gone(lab, E2E_NAMESPACE)
    lab.kubectl("create", "namespace", E2E_NAMESPACE)
    for example in ("policy-green-default.yaml", "llama-8b-chat.yaml"):
        lab.kubectl("apply", "-n", E2E_NAMESPACE, "-f", str(REPO / "examples" / example))

    def ready() -> dict | None:
        assert process.poll() is None, f"the operator exited ({process.returncode}):\n{log_path.read_text()}"
        profile = json.loads(
            lab.kubectl("get", "workloadprofile", "llama-8b-chat", "-n", E2E_NAMESPACE, "-o", "json").stdout
        )
        conditions = profile.get("status", {}).get("conditions", [])
        done = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        return profile if done else None

    profile = eventually(ready, "WorkloadProfile llama-8b-chat to be Ready", timeout=180)
    status = profile["status"]
    assert status["observedGeneration"] == profile["metadata"]["generation"]
    # The inventory can only come from listing nodes, which this identity is allowed to do.
    nodes = json.loads(lab.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    products = {n["metadata"]["labels"].get("nvidia.com/gpu.product") for n in nodes} - {None}
    seen = {gpu["product"] for gpu in status["inventory"]["gpus"]}
    assert seen and seen <= products, (seen, products)

    code, body = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert code == 200, body
    assert "# TYPE" in body
    log = log_path.read_text()
    # Least privilege must still be enough: no request of the operator was refused.
    assert "forbidden" not in log.lower(), f"the operator was refused a request as {IDENTITY}:\n{log}"
