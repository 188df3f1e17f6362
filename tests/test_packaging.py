"""What gets shipped: the wheel, the container image recipe and the install manifests.

No cluster needed; tests/lab/test_install.py applies the same files to the lab.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
# The lab is its own distribution (hack/pyproject.toml): it and its PKI's `cryptography` stay out of
# the operator's wheel and image.
LAB = REPO / "hack"
LAB_PYPROJECT = tomllib.loads((LAB / "pyproject.toml").read_text())
# Each distribution's pyproject folder, and the folders scanned for its packages.
DISTRIBUTIONS = {
    "greenmatrix": (
        REPO,
        {
            "greenmatrix": REPO / "greenmatrix",
            "greenmatrix_operator": REPO / "operator" / "greenmatrix_operator",
        },
    ),
    "greenmatrix-lab": (LAB, {"greenmatrix_lab": LAB / "greenmatrix_lab"}),
}
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


# -- pyproject and the package layout -----------------------------------------------------


def _setuptools(distribution: str) -> dict:
    folder, _ = DISTRIBUTIONS[distribution]
    return tomllib.loads((folder / "pyproject.toml").read_text())["tool"]["setuptools"]


def _packages_on_disk(roots: dict[str, Path]) -> set[str]:
    found = set()
    for top, root in roots.items():
        for init in root.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            relative = init.parent.relative_to(root).parts
            found.add(".".join((top, *relative)))
    return found


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
def test_every_package_on_disk_is_listed_in_pyproject(distribution: str) -> None:
    folder, roots = DISTRIBUTIONS[distribution]
    missing = _packages_on_disk(roots) - set(_setuptools(distribution)["packages"])
    where = (folder / "pyproject.toml").relative_to(REPO)
    assert not missing, f"add to [tool.setuptools] packages in {where}: {sorted(missing)}"


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
def test_every_listed_package_exists(distribution: str) -> None:
    root, _ = DISTRIBUTIONS[distribution]
    setuptools = _setuptools(distribution)
    package_dir = setuptools.get("package-dir", {})
    for name in setuptools["packages"]:
        # A package is found through its own package-dir entry or its closest listed parent's.
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in package_dir:
                folder = root / package_dir[prefix] / Path(*parts[cut:])
                break
        else:
            folder = root / Path(*parts)
        assert folder.is_dir(), f"pyproject lists package {name} but {folder} does not exist"


# Import name of each distribution whose import name differs from its own.
IMPORT_NAMES = {"pyyaml": "yaml"}


def _third_party_imports(*folders: Path) -> set[str]:
    """Top-level names the code under `folders` imports, standard library and own packages left out."""
    own = {"greenmatrix", "greenmatrix_operator", "greenmatrix_lab"}
    names = set()
    for folder in folders:
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - own - set(sys.stdlib_module_names)


def _dependencies(pyproject: dict) -> set[str]:
    names = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in pyproject["project"]["dependencies"]}
    return {IMPORT_NAMES.get(n, n.replace("-", "_")) for n in names}


def test_runtime_dependencies_are_what_runtime_code_imports() -> None:
    """No dependency nothing imports (it would only grow the image), none imported but undeclared."""
    _, roots = DISTRIBUTIONS["greenmatrix"]
    assert _dependencies(PYPROJECT) == _third_party_imports(*roots.values())


def test_lab_dependencies_are_what_the_lab_imports() -> None:
    _, roots = DISTRIBUTIONS["greenmatrix-lab"]
    assert _dependencies(LAB_PYPROJECT) == _third_party_imports(*roots.values())


def test_lab_is_its_own_distribution_and_a_plugin_command() -> None:
    assert "greenmatrix_lab" not in SETUPTOOLS["packages"]
    assert "cryptography" not in _dependencies(PYPROJECT)
    plugins = LAB_PYPROJECT["project"]["entry-points"]["greenmatrix.commands"]
    assert plugins == {"lab": "greenmatrix_lab.cli:command"}
    assert "lab" not in PYPROJECT["project"]["entry-points"]["greenmatrix.commands"]


def test_operator_folder_is_not_a_package() -> None:
    assert not (REPO / "operator" / "__init__.py").exists(), (
        "operator/__init__.py would shadow the standard library's `operator` module"
    )


def test_import_operator_from_repo_root_is_the_standard_library() -> None:
    # -c puts the current directory first on sys.path, as a user running from a checkout would.
    code = "import operator, sys; operator.itemgetter; print(operator.__file__)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    origin = Path(result.stdout.strip())
    assert REPO not in origin.parents, f"`import operator` found {origin}, not the standard library"


# -- the wheel -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from what the Dockerfile copies into its builder, and nothing else.

    Building in a copy also keeps setuptools' build/ folder out of the checkout, where stale
    files would leak into later wheels.
    """
    context = tmp_path_factory.mktemp("context")
    for source in _copy_sources():
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        elif (REPO / source).exists():  # a missing file fails test_dockerfile_copies_only_paths_that_exist
            shutil.copy2(REPO / source, context / source)
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(context)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"building the wheel failed:\n{result.stdout}\n{result.stderr}"
    (built,) = out.glob("greenmatrix-*.whl")
    return built


def _wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_ships_trained_models(wheel: Path) -> None:
    models = [
        n
        for n in _wheel_names(wheel)
        if fnmatch.fnmatch(n, "greenmatrix/trained/*.json") or fnmatch.fnmatch(n, "greenmatrix/trained/*.ubj")
    ]
    assert models, "the wheel has no greenmatrix/trained/*.json or *.ubj model files"
    on_disk = {p.name for p in (REPO / "models").iterdir() if p.suffix in (".json", ".ubj")}
    shipped = {Path(n).name for n in _wheel_names(wheel) if n.startswith("greenmatrix/trained/")}
    assert on_disk <= shipped, f"model files left out of the wheel: {sorted(on_disk - shipped)}"


def test_wheel_ships_catalog_data(wheel: Path) -> None:
    on_disk = {p.name for p in (REPO / "greenmatrix" / "catalog" / "data").glob("*.json")}
    shipped = {
        Path(n).name for n in _wheel_names(wheel) if fnmatch.fnmatch(n, "greenmatrix/catalog/data/*.json")
    }
    assert on_disk, "greenmatrix/catalog/data has no catalogs"
    assert on_disk == shipped


def test_wheel_has_no_pickles(wheel: Path) -> None:
    pickles = [n for n in _wheel_names(wheel) if n.endswith(PICKLE_SUFFIXES)]
    assert not pickles, f"pickled files must not ship (use XGBoost JSON/UBJ): {pickles}"


def test_wheel_has_no_operator_top_level_package(wheel: Path) -> None:
    assert not any(n.startswith("operator/") for n in _wheel_names(wheel))


def test_wheel_leaves_the_lab_and_its_dependencies_out(wheel: Path) -> None:
    assert not any(n.startswith("greenmatrix_lab/") for n in _wheel_names(wheel))
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requires = re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+)", archive.read(metadata).decode(), re.M)
        (entry_points,) = (n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        plugins = archive.read(entry_points).decode()
    assert "cryptography" not in {r.lower() for r in requires}
    assert "greenmatrix_lab" not in plugins


# Debian's interpreter when present: world-readable, and as bare as the image's python:3.11-slim.
SYSTEM_PYTHON = Path("/usr/bin/python3.11")
IMAGE_UID = 65532


@pytest.fixture(scope="module")
def fresh_install(wheel: Path) -> Iterator[Path]:
    """The wheel and its dependencies in a new virtualenv; yields its bin directory.

    The virtualenv lives in a world-readable folder owned by root, as /opt/greenmatrix does in
    the image, so an unprivileged user can run it but not write to it.
    """
    base = SYSTEM_PYTHON if SYSTEM_PYTHON.exists() else Path(sys.executable)
    env_dir = Path(tempfile.mkdtemp(prefix="greenmatrix-venv-"))
    env_dir.chmod(0o755)
    try:
        subprocess.run([str(base), "-m", "venv", "--without-pip", str(env_dir)], check=True)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install",
             "--quiet", "--disable-pip-version-check", str(wheel)],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"installing the wheel failed:\n{result.stdout}\n{result.stderr}"
        yield env_dir / "bin"
    finally:
        shutil.rmtree(env_dir, ignore_errors=True)


def _run_installed(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # Only the fresh venv on PATH and no source tree on sys.path: this is what a user gets.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}/usr/bin:/bin"
    return subprocess.run(
        [str(bin_dir / "greenmatrix"), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_installed_wheel_runs_help(fresh_install: Path, tmp_path: Path) -> None:
    result = _run_installed(fresh_install, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("crds", "operator"):
        assert re.search(rf"^\s+{command}\b", result.stdout, re.M), f"`{command}` missing:\n{result.stdout}"
    # The lab is installed from hack/ for development, never with the operator.
    assert not re.search(r"^\s+lab\b", result.stdout, re.M), result.stdout


def test_installed_wheel_loads_its_trained_models(fresh_install: Path, tmp_path: Path) -> None:
    code = (
        "import importlib.resources as r; "
        "names = sorted(p.name for p in r.files('greenmatrix.trained').iterdir()); "
        "print(' '.join(names))"
    )
    result = subprocess.run(
        [str(fresh_install / "python"), "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert any(n.endswith((".json", ".ubj")) for n in result.stdout.split()), result.stdout


def test_installed_wheel_simulates_an_example(fresh_install: Path, tmp_path: Path) -> None:
    help_text = _run_installed(fresh_install, "--help", cwd=tmp_path).stdout
    if not re.search(r"^\s+simulate\b", help_text, re.M):
        pytest.skip("`greenmatrix simulate` does not exist yet (not in `greenmatrix --help`)")
    example = REPO / "examples" / "llama-8b-chat.yaml"
    result = _run_installed(fresh_install, "simulate", "-f", str(example), "-o", "json", cwd=tmp_path)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    # The ranking needs the catalogs and trained models from inside the wheel, not the checkout.
    report = json.loads(result.stdout)
    assert report["options"], "simulate ranked no hardware options"
    assert report["recommendation"], "simulate made no recommendation"


def test_import_operator_with_wheel_installed_is_the_standard_library(fresh_install: Path) -> None:
    code = "import operator; operator.itemgetter; print(operator.__file__)"
    result = subprocess.run(
        [str(fresh_install / "python"), "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert REPO not in Path(result.stdout.strip()).parents


def _image_env(scratch: Path, bin_dir: Path) -> dict[str, str]:
    """The final stage's ENV, with /tmp (an emptyDir in the pod) moved to `scratch`."""
    env: dict[str, str] = {}
    for name, args in _stages()[-1]:
        if name == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value.replace("/tmp", str(scratch))
    env["PATH"] = f"{bin_dir}{os.pathsep}/usr/bin:/bin"
    return env


def test_installed_wheel_runs_unprivileged_with_only_tmp_writable(
    fresh_install: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """What the pod does: UID 65532, nothing writable but /tmp, the image's environment."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run as the image's UID 65532")
    scratch = Path(tempfile.mkdtemp(prefix="greenmatrix-tmp-"))
    try:
        os.chown(scratch, IMAGE_UID, IMAGE_UID)
        example = scratch / "workload.yaml"
        shutil.copy(REPO / "examples" / "llama-8b-chat.yaml", example)
        os.chown(example, IMAGE_UID, IMAGE_UID)
        drop = ["setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups"]
        env = _image_env(scratch, fresh_install)
        for args in (["operator", "--help"], ["simulate", "-f", str(example), "-o", "json"]):
            result = subprocess.run(
                [*drop, str(fresh_install / "greenmatrix"), *args],
                cwd=scratch,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, (
                f"greenmatrix {' '.join(args)} as UID {IMAGE_UID}:\n{result.stderr}"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# -- the Dockerfile --------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with continuation lines joined and comments dropped."""
    text = (REPO / "Dockerfile").read_text()
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in logical]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _dockerfile_instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _resolve_args(text: str) -> str:
    defaults = {}
    for name, args in _dockerfile_instructions():
        if name == "ARG" and "=" in args:
            key, value = args.split("=", 1)
            defaults[key.strip()] = value.strip()
    return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), text)


def test_dockerfile_is_multi_stage_with_a_builder() -> None:
    stages = _stages()
    assert len(stages) >= 2, "expected a builder stage and a final stage"
    final_sources = [args for name, args in stages[-1] if name == "COPY" and "--from=" in args]
    assert final_sources, "the final stage should copy its install from the builder"


def test_dockerfile_base_images_are_pinned_python_slim() -> None:
    for name, args in _dockerfile_instructions():
        if name != "FROM":
            continue
        image = _resolve_args(args.split()[0])
        assert ":" in image and not image.endswith(":latest"), f"unpinned base image {image!r}"
        assert image.startswith("python:3.11-slim"), f"base image {image!r} is not python:3.11-slim"


def test_dockerfile_final_stage_runs_as_numeric_non_root() -> None:
    users = [args for name, args in _stages()[-1] if name == "USER"]
    assert users, "the final stage has no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]} must be a numeric non-root UID"
    assert int(uid) == 65532
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_dockerfile_final_stage_is_fit_for_a_read_only_root() -> None:
    env_text = " ".join(args for name, args in _stages()[-1] if name == "ENV")
    for setting in ("HOME=/tmp", "TMPDIR=/tmp", "PYTHONDONTWRITEBYTECODE=1"):
        assert setting in env_text, f"final stage should set {setting}"


def test_dockerfile_entrypoint_and_cmd() -> None:
    final = dict(_stages()[-1])
    assert final["ENTRYPOINT"] == '["greenmatrix"]'
    assert final["CMD"] == '["operator"]'


def test_dockerfile_adds_nothing_from_urls() -> None:
    for name, args in _dockerfile_instructions():
        if name == "ADD":
            assert "://" not in args, f"ADD from a URL: {args}"


def _copy_sources() -> list[str]:
    sources = []
    for name, args in _dockerfile_instructions():
        if name != "COPY" or "--from=" in args:
            continue
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        sources.extend(words[:-1])
    return sources


def test_dockerfile_copies_only_paths_that_exist() -> None:
    sources = _copy_sources()
    assert sources
    missing = [s for s in sources if not (REPO / s).exists()]
    assert not missing, f"Dockerfile COPYs paths that do not exist: {missing}"


def test_dockerfile_leaves_the_lab_out() -> None:
    assert not [c for c in _copy_sources() if c.startswith("hack")], "the lab is no part of the image"
    assert "hack" not in (REPO / ".dockerignore").read_text(), ".dockerignore should not let the lab in"


def test_dockerignore_lets_every_copied_path_through() -> None:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip()]
    patterns = [p for p in patterns if not p.startswith("#")]
    for source in _copy_sources():
        # The last matching pattern decides; "!" re-includes.
        included = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(source, bare) or source.startswith(bare + "/"):
                included = negated
        assert included, f".dockerignore excludes {source}, which the Dockerfile copies"


def test_dockerfile_copies_every_package_source() -> None:
    copied = _copy_sources()
    package_dir = SETUPTOOLS.get("package-dir", {})
    for top in ("greenmatrix", "greenmatrix.trained", "greenmatrix_operator"):
        folder = package_dir.get(top, top.replace(".", "/"))
        assert any(folder == c or folder.startswith(c.rstrip("/") + "/") for c in copied), (
            f"the image would miss package {top} ({folder})"
        )
    readme = PYPROJECT["project"].get("readme")
    if isinstance(readme, str):
        assert readme in copied, f"pyproject's readme {readme} is not copied into the builder"


# -- manifests and chart, read as files ----------------------------------------------------


def _generated_crds() -> dict[str, str]:
    from greenmatrix.api.crd import render_all

    return render_all()


def test_crds_kustomization_lists_every_generated_crd() -> None:
    kustomization = yaml.safe_load((REPO / "crds" / "Kustomization").read_text())
    assert sorted(kustomization["resources"]) == sorted(_generated_crds())


def test_chart_crds_are_the_generated_ones() -> None:
    chart_crds = REPO / "charts" / "greenmatrix" / "crds"
    generated = _generated_crds()
    assert sorted(p.name for p in chart_crds.iterdir()) == sorted(generated)
    for name, text in generated.items():
        assert (chart_crds / name).read_text() == text, f"charts/greenmatrix/crds/{name} is stale"


def test_versions_agree() -> None:
    version = PYPROJECT["project"]["version"]
    chart = yaml.safe_load((REPO / "charts" / "greenmatrix" / "Chart.yaml").read_text())
    base = yaml.safe_load((REPO / "manifests" / "base" / "kustomization.yaml").read_text())
    (image,) = (i for i in base["images"] if i["name"] == "greenmatrix")
    assert chart["appVersion"] == version
    assert image["newTag"] == version


def _load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _rbac_rules() -> list[tuple[Path, dict]]:
    rules = []
    for path in sorted((REPO / "manifests").rglob("*.yaml")):
        for doc in _load_all(path):
            if isinstance(doc, dict) and doc.get("kind") in ("ClusterRole", "Role"):
                rules.extend((path, rule) for rule in doc["rules"])
    return rules


def test_rbac_has_no_wildcards_secrets_or_pod_access() -> None:
    rules = _rbac_rules()
    assert rules
    for path, rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(field, []), f"{path}: wildcard in {field}: {rule}"
        resources = set(rule["resources"])
        assert not resources & {"secrets", "pods", "pods/exec", "pods/attach", "configmaps"}, (
            f"{path}: {rule}"
        )
        assert "escalate" not in rule["verbs"] and "bind" not in rule["verbs"]


def test_scale_rights_only_in_the_auto_apply_component() -> None:
    # Outside the component a workload may be read (the live loop reads its target), never changed.
    component = REPO / "manifests" / "components" / "auto-apply"
    for path, rule in _rbac_rules():
        resources = set(rule["resources"])
        scales = {"deployments/scale", "statefulsets/scale"} & resources
        writes = {"deployments", "statefulsets"} & resources and set(rule["verbs"]) - {"get", "list", "watch"}
        if scales or writes:
            assert component in path.parents, f"{path} grants workload rights outside the component"


def test_deployment_is_locked_down() -> None:
    (deployment,) = _load_all(REPO / "manifests" / "base" / "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert {"requests", "limits"} <= set(container["resources"])


def _operator_flags() -> set[str]:
    from click.testing import CliRunner

    from greenmatrix.cli import main

    result = CliRunner().invoke(main, ["operator", "--help"])
    assert result.exit_code == 0, result.output
    return set(re.findall(r"--[a-z][a-z0-9-]*", result.output))


def test_manifests_pass_only_flags_the_operator_has() -> None:
    (deployment,) = _load_all(REPO / "manifests" / "base" / "deployment.yaml")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "operator"
    chart_template = (REPO / "charts" / "greenmatrix" / "templates" / "deployment.yaml").read_text()
    used = {a.split("=")[0] for a in args[1:]} | set(re.findall(r"- (--[a-z-]+)=", chart_template))
    assert {"--health-port", "--metrics-port", "--namespace"} <= used
    unknown = used - _operator_flags()
    assert not unknown, f"`greenmatrix operator` has no {sorted(unknown)}"


def test_the_ha_component_passes_only_flags_the_operator_has() -> None:
    (patch,) = _load_all(REPO / "manifests" / "components" / "ha" / "replicas.yaml")
    added = [op["value"] for op in patch if op["path"].endswith("/args/-")]
    assert added and {a.split("=", 1)[0] for a in added} <= _operator_flags()
    assert next(op["value"] for op in patch if op["path"] == "/spec/replicas") == 2
