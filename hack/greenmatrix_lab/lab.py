"""The lab as a whole: bring it up, find it again, query it, tear it down."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from greenmatrix_lab import components, pki, processes
from greenmatrix_lab.components import Launch
from greenmatrix_lab.errors import LabError
from greenmatrix_lab.layout import DEFAULT_NODES_FILE, Layout
from greenmatrix_lab.nodes import fake_node, load_node_groups, node_manifest
from greenmatrix_lab.prometheus import find_prometheus, write_config, write_scrape_targets
from greenmatrix_lab.state import ComponentState, LabState
from greenmatrix_lab.toolchain import Toolchain

# Start order; `down` stops in reverse so nothing reconnects to a dead apiserver in a loop.
COMPONENTS = ("etcd", "prometheus", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
_NODES_READY_TIMEOUT = 120
_APISERVER_SANS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int
    ports: Mapping[str, int]
    running: bool
    healthy: bool
    log: str


class Lab:
    """A local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler),
    kwok-run fake GPU nodes and Prometheus, all on 127.0.0.1.

    One lab per cache directory (`$GREENMATRIX_LAB_CACHE`, default ~/.cache/greenmatrix/lab);
    any `Lab` pointed at the same directory sees the same running lab, so the CLI and tests
    share it.
    """

    def __init__(
        self,
        cache_dir: Path | str | None = None,
        nodes_file: Path | str | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.layout = Layout(Path(cache_dir).expanduser().absolute()) if cache_dir else Layout.from_env()
        self.nodes_file = Path(nodes_file).expanduser().absolute() if nodes_file else DEFAULT_NODES_FILE
        self._say = say or (lambda message: None)
        self._timeouts: dict[str, float] = {}

    # -- where things are -------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    @property
    def bin_dir(self) -> Path:
        """kubectl, kube-apiserver, etcd, kwok... of this lab (valid while it is up)."""
        return self.layout.bin_dir

    @property
    def prometheus_url(self) -> str:
        return self._running_state().prometheus_url

    @property
    def apiserver_url(self) -> str:
        return self._running_state().apiserver_url

    @property
    def ca_file(self) -> Path:
        """The lab CA; it signed the apiserver's serving certificate and every client certificate."""
        return self.layout.pki_dir / "ca.crt"

    @property
    def env(self) -> dict[str, str]:
        """The current environment plus KUBECONFIG, PATH (lab binaries first) and the Prometheus URL."""
        return {**self._kube_env(), "GREENMATRIX_PROMETHEUS_URL": self.prometheus_url}

    def _kube_env(self) -> dict[str, str]:
        # Without the Prometheus URL, so kubectl also works while `up` is still creating nodes.
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def export_lines(self) -> list[str]:
        """Shell lines that point a shell at the lab: `eval "$(greenmatrix lab env)"`."""
        return [
            f"export KUBECONFIG={shlex.quote(str(self.kubeconfig))}",
            f"export PATH={shlex.quote(str(self.bin_dir))}:$PATH",
            f"export GREENMATRIX_PROMETHEUS_URL={shlex.quote(self.prometheus_url)}",
        ]

    # -- lifecycle --------------------------------------------------------------------

    def is_up(self) -> bool:
        state = LabState.load(self.layout.state_file)
        return state is not None and state.ready and not self._problems(state)

    def status(self) -> list[ComponentStatus]:
        state = LabState.load(self.layout.state_file)
        if state is None:
            return []
        result = []
        for name, component in state.components.items():
            running = processes.is_running(component.pid, component.exe)
            healthy = running and component.probe.healthy(self.layout.pki_dir)
            result.append(
                ComponentStatus(name, component.pid, component.ports, running, healthy, component.log)
            )
        return result

    def up(self) -> None:
        """Start the lab, or do nothing if it is already up. Builds the binaries on first use."""
        self.layout.cache_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._up(borrowed=False)

    def down(self) -> bool:
        """Stop every process the lab started and remove its run directory. True if a lab was found."""
        if not self.layout.cache_dir.exists():
            return False
        with self._locked():
            return self._down()

    @contextlib.contextmanager
    def borrowed(self) -> Iterator[Lab]:
        """Use the lab for the duration of the block, as a test session does.

        A running lab is reused. Otherwise one is started and marked borrowed; it is stopped
        when the last process using it (each holds a lease, its pid in `run/leases/`) leaves,
        so two test sessions sharing a lab never pull it from under each other. A lab started
        with `up()` (a developer's) is never stopped here.
        """
        self.layout.cache_dir.mkdir(parents=True, exist_ok=True)
        lease = self.layout.run_dir / "leases" / str(os.getpid())
        with self._locked():
            self._up(borrowed=True)
            lease.parent.mkdir(exist_ok=True)
            lease.touch()
        try:
            yield self
        finally:
            with self._locked():
                lease.unlink(missing_ok=True)
                state = LabState.load(self.layout.state_file)
                if state is not None and state.borrowed and not self._live_leases():
                    self._down()

    def _up(self, borrowed: bool) -> None:
        state = LabState.load(self.layout.state_file)
        if state is not None and self.is_stale(state):
            # The processes of a lab die with the session or machine that started them (CI runs
            # right after a session stops): their leftover state is no reason to refuse a new lab.
            self._say(f"clearing a stale lab in {self.layout.run_dir}: none of its processes is running")
            state = None
        if state is not None:
            problems = self._problems(state)
            if state.ready and not problems:
                owner = " by a test session, which stops it when it ends" if state.borrowed else ""
                self._say(f"lab already up{owner} (run dir {self.layout.run_dir})")
                return
            why = "; ".join(problems) or "not ready"
            raise LabError(
                f"a lab in {self.layout.run_dir} is only partly up ({why}); "
                f"logs are in {self.layout.log_dir}. Run `greenmatrix lab down`, then `lab up` again."
            )
        started = time.monotonic()
        groups = load_node_groups(self.nodes_file)  # fail on a bad file before a long build
        binaries = Toolchain(self.layout, self._say).ensure_built()
        prometheus_binary = find_prometheus()
        state = self._prepare_run_dir(binaries)
        state.borrowed = borrowed
        try:
            self._start_all(state, binaries, prometheus_binary)
            self._create_nodes([node_manifest(g, i) for g in groups for i in range(g.count)])
            self._wait_for_default_service_account()
        except BaseException:
            self._say(f"start failed; stopping what was started (logs kept in {self.layout.log_dir})")
            self._stop_components(state)
            self.layout.state_file.unlink(missing_ok=True)
            raise
        state.ready = True
        state.save(self.layout.state_file)
        self._say(f"lab up in {time.monotonic() - started:.0f}s")

    def _down(self) -> bool:
        state = LabState.load(self.layout.state_file)
        if state is not None:
            self._stop_components(state)
        found = state is not None or self.layout.run_dir.exists()
        shutil.rmtree(self.layout.run_dir, ignore_errors=True)
        return found

    def _live_leases(self) -> list[int]:
        pids = []
        for lease in (self.layout.run_dir / "leases").glob("*"):
            pid = int(lease.name) if lease.name.isdigit() else 0
            if pid and Path(f"/proc/{pid}").exists():
                pids.append(pid)
            else:
                lease.unlink(missing_ok=True)  # its session died without cleaning up
        return pids

    # -- using it ---------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the lab's kubectl against the lab. With check=True a failure raises LabError
        carrying kubectl's stderr."""
        argv = [str(self.bin_dir / "kubectl"), *args]
        result = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            env=self._kube_env(),
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise LabError(
                f"`kubectl {shlex.join(args)}` failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def add_node(
        self,
        name: str,
        labels: Mapping[str, str],
        allocatable: Mapping[str, str],
        capacity: Mapping[str, str] | None = None,
        *,
        wait: bool = True,
    ) -> None:
        """Add a kwok-managed node (e.g. with a GPU type the default file lacks); waits until Ready."""
        self._create_nodes([fake_node(name, labels, allocatable, capacity)], wait=wait)

    def delete_node(self, name: str) -> None:
        self.kubectl("delete", "node", name, "--ignore-not-found", "--wait=true")

    def add_scrape_target(
        self, name: str, targets: Sequence[str], labels: Mapping[str, str] | None = None
    ) -> Path:
        """Make Prometheus scrape `targets` (host:port) under job "lab" with extra `labels`."""
        return write_scrape_targets(self.layout.scrape_targets_dir, name, targets, labels)

    def remove_scrape_target(self, name: str) -> None:
        (self.layout.scrape_targets_dir / f"{name}.json").unlink(missing_ok=True)

    # -- internals --------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down across processes (two test sessions, a shell and a test...)."""
        with self.layout.lock_file.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def stop_component(self, name: str) -> None:
        """Stop one component (a fault for tests: Prometheus down, say); `start_prometheus` brings
        Prometheus back on the same port and data."""
        with self._locked():
            state = self._running_state()
            component = state.components.get(name)
            if component is None:
                raise LabError(f"no component {name!r}; the lab runs {', '.join(state.components)}")
            self._say(f"stopping {name} (pid {component.pid})")
            processes.stop(component.pid, component.exe)

    def start_prometheus(self) -> None:
        """Start Prometheus again after `stop_component("prometheus")`: same port, same data."""
        with self._locked():
            state = self._running_state()
            port = state.components["prometheus"].ports["web"]
            self._launch(state, components.prometheus(find_prometheus(), self.layout, port))
            self._wait(state, ["prometheus"])

    def restart_component(self, name: str) -> None:
        """Stop etcd, kube-apiserver or Prometheus and start it again on the same ports and data (a
        fault for tests: clients see connections drop and watches end, then the same cluster)."""
        with self._locked():
            state = self._running_state()
            component = state.components.get(name)
            if component is None:
                raise LabError(f"no component {name!r}; the lab runs {', '.join(state.components)}")
            binaries = Toolchain(self.layout, self._say).ensure_built()
            ports = component.ports
            if name == "etcd":
                launch = components.etcd(binaries["etcd"], self.layout, ports["client"], ports["peer"])
            elif name == "kube-apiserver":
                etcd = state.components["etcd"].ports["client"]
                launch = components.kube_apiserver(
                    binaries["kube-apiserver"], self.layout, ports["secure"], etcd
                )
            elif name == "prometheus":
                launch = components.prometheus(find_prometheus(), self.layout, ports["web"])
            else:
                raise LabError(f"restarting {name!r} is not supported: etcd, kube-apiserver or prometheus")
            self._say(f"restarting {name} (pid {component.pid})")
            processes.stop(component.pid, component.exe)
            self._launch(state, launch)
            self._wait(state, [name])

    def _running_state(self) -> LabState:
        state = LabState.load(self.layout.state_file)
        if state is None or not state.ready:
            raise LabError(
                f"no lab is running (no ready state in {self.layout.run_dir}); run `greenmatrix lab up`"
            )
        return state

    @staticmethod
    def is_stale(state: LabState) -> bool:
        """True when no process of the saved lab is alive (the run dir is a leftover)."""
        return not any(processes.is_running(c.pid, c.exe) for c in state.components.values())

    def _problems(self, state: LabState) -> list[str]:
        problems = []
        for name in COMPONENTS:
            component = state.components.get(name)
            if component is None:
                problems.append(f"{name}: never started")
            elif not processes.is_running(component.pid, component.exe):
                problems.append(f"{name}: not running (log {component.log})")
            elif not self._healthy_within(component, attempts=3):
                problems.append(f"{name}: unhealthy at {component.probe.url}")
        return problems

    def _healthy_within(self, component: ComponentState, attempts: int) -> bool:
        # A loaded 2-core machine can miss one probe; a lab is not "partly up" for that.
        for attempt in range(attempts):
            if component.probe.healthy(self.layout.pki_dir):
                return True
            if attempt + 1 < attempts:
                time.sleep(1)
        return False

    def _prepare_run_dir(self, binaries: Mapping[str, Path]) -> LabState:
        layout = self.layout
        shutil.rmtree(layout.run_dir, ignore_errors=True)
        for directory in (layout.log_dir, layout.pki_dir, layout.bin_dir, layout.scrape_targets_dir):
            directory.mkdir(parents=True)
        for name, path in binaries.items():
            (layout.bin_dir / name).symlink_to(path)
        return LabState(
            kubeconfig=str(layout.kubeconfig), bin_dir=str(layout.bin_dir), nodes_file=str(self.nodes_file)
        )

    def _start_all(self, state: LabState, binaries: Mapping[str, Path], prometheus_binary: str) -> None:
        layout = self.layout
        ports = _distinct_free_ports(7)
        etcd_client, etcd_peer, apiserver, controller_manager, scheduler, kwok, prometheus = ports
        server = f"https://127.0.0.1:{apiserver}"
        self._write_pki(server)
        write_config(
            layout.prometheus_dir / "prometheus.yml",
            layout.scrape_targets_dir,
            prometheus,
            apiserver,
            layout.pki_dir,
        )
        state.apiserver_url = server
        state.prometheus_url = f"http://127.0.0.1:{prometheus}"

        self._launch(state, components.etcd(binaries["etcd"], layout, etcd_client, etcd_peer))
        self._launch(state, components.prometheus(prometheus_binary, layout, prometheus))
        self._wait(state, ["etcd"])
        self._launch(
            state, components.kube_apiserver(binaries["kube-apiserver"], layout, apiserver, etcd_client)
        )
        self._wait(state, ["kube-apiserver"])
        self._launch(
            state,
            components.kube_controller_manager(
                binaries["kube-controller-manager"], layout, controller_manager
            ),
        )
        self._launch(state, components.kube_scheduler(binaries["kube-scheduler"], layout, scheduler))
        self._launch(state, components.kwok(binaries["kwok"], layout, kwok))
        self._wait(state, ["kube-controller-manager", "kube-scheduler", "kwok", "prometheus"])

    def _write_pki(self, server: str) -> None:
        directory = self.layout.pki_dir
        ca = pki.new_ca()
        ca.write(directory, "ca")
        serving = pki.issue(
            ca,
            "kube-apiserver",
            dns_names=_APISERVER_SANS,
            ip_addresses=("127.0.0.1", "10.0.0.1"),
            server=True,
        )
        serving.write(directory, "apiserver")
        admin = pki.issue(ca, "greenmatrix-admin", ["system:masters"])
        admin.write(directory, "admin")
        pki.write_kubeconfig(self.layout.kubeconfig, server, ca, admin, "greenmatrix-admin")
        # Bootstrap RBAC already binds these user names to their roles.
        for component, user, groups in (
            ("kube-controller-manager", "system:kube-controller-manager", ()),
            ("kube-scheduler", "system:kube-scheduler", ()),
            ("kwok", "greenmatrix-lab-kwok", ("system:masters",)),
        ):
            pki.write_kubeconfig(
                directory / f"{component}.kubeconfig", server, ca, pki.issue(ca, user, groups), user
            )
        # system:monitoring may read /metrics, which is all Prometheus needs.
        pki.issue(ca, "greenmatrix-lab-prometheus", ["system:monitoring"]).write(directory, "prometheus")
        pki.write_service_account_keys(directory)

    def _launch(self, state: LabState, launch: Launch) -> None:
        log = self.layout.log_dir / f"{launch.name}.log"
        self._say(f"starting {launch.name} (log: {log})")
        pid = processes.start(launch.argv, log, launch.environ())
        state.components[launch.name] = ComponentState(pid, launch.exe, launch.ports, str(log), launch.probe)
        state.save(self.layout.state_file)
        self._timeouts[launch.name] = launch.timeout

    def _wait(self, state: LabState, names: Sequence[str]) -> None:
        pending = set(names)
        deadline = time.monotonic() + max(self._timeouts.get(n, 60.0) for n in names)
        while pending:
            for name in sorted(pending):
                component = state.components[name]
                if not processes.is_running(component.pid, component.exe):
                    tail = processes.log_tail(Path(component.log))
                    raise LabError(f"{name} exited during start; log {component.log}:\n{tail}")
                if component.probe.healthy(self.layout.pki_dir):
                    pending.discard(name)
                    self._say(f"{name} ready")
            if not pending:
                return
            if time.monotonic() > deadline:
                name = sorted(pending)[0]
                log = state.components[name].log
                raise LabError(
                    f"{name} not ready at {state.components[name].probe.url} in time; log {log}:\n"
                    f"{processes.log_tail(Path(log))}"
                )
            time.sleep(0.25)

    def _create_nodes(self, manifests: list[dict], wait: bool = True) -> None:
        names = [m["metadata"]["name"] for m in manifests]
        document = {"apiVersion": "v1", "kind": "List", "items": manifests}
        self._say(f"creating {len(names)} fake node(s)")
        self.kubectl("create", "-f", "-", input=json.dumps(document))
        if wait:
            result = self.kubectl(
                "wait", "--for=condition=Ready", f"--timeout={_NODES_READY_TIMEOUT}s",
                *(f"node/{n}" for n in names), check=False, timeout=_NODES_READY_TIMEOUT + 30,
            )  # fmt: skip
            if result.returncode != 0:
                kwok_log = self.layout.log_dir / "kwok.log"
                tail = processes.log_tail(kwok_log)
                raise LabError(f"nodes not Ready: {result.stderr.strip()}; kwok log {kwok_log}:\n{tail}")

    def _wait_for_default_service_account(self, timeout: float = 60) -> None:
        """Pods are refused until kube-controller-manager has made the `default` ServiceAccount."""
        deadline = time.monotonic() + timeout
        while self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode != 0:
            if time.monotonic() > deadline:
                log = self.layout.log_dir / "kube-controller-manager.log"
                raise LabError(
                    f"ServiceAccount default/default not created in {timeout:.0f}s; log {log}:\n"
                    f"{processes.log_tail(log)}"
                )
            time.sleep(0.5)

    def _stop_components(self, state: LabState) -> None:
        for name in reversed(list(state.components)):
            component = state.components[name]
            self._say(f"stopping {name} (pid {component.pid})")
            processes.stop(component.pid, component.exe)


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = processes.free_port()
        if port not in ports:
            ports.append(port)
    return ports
