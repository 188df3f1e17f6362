"""Fake nodes: node groups read from YAML and the Node manifests kwok brings to life."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from greenmatrix_lab.layout import DEFAULT_NODES_FILE, KUBE_VERSION

# kwok manages only nodes carrying this annotation, so a lab never touches other nodes.
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_ANNOTATION_VALUE = "fake"
LAB_NODE_LABEL = "greenmatrix.io/lab-node"
NODE_GROUP_LABEL = "greenmatrix.io/lab-node-group"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")


class NodeFileError(ValueError):
    """A node-group file that does not describe valid nodes; the message names the field."""


@dataclass(frozen=True)
class NodeGroup:
    """`count` identical nodes named `<prefix><index>`."""

    name: str
    prefix: str
    count: int
    labels: Mapping[str, str] = field(default_factory=dict)
    allocatable: Mapping[str, str] = field(default_factory=dict)
    capacity: Mapping[str, str] = field(default_factory=dict)

    def node_names(self) -> list[str]:
        return [f"{self.prefix}{index}" for index in range(self.count)]


def load_node_groups(path: Path | str = DEFAULT_NODES_FILE) -> list[NodeGroup]:
    """Read and validate a node-group file (see nodes/default.yaml for the format)."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise NodeFileError(f"{path}: cannot read node file: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise NodeFileError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("nodeGroups"), list):
        raise NodeFileError(f"{path}: expected a mapping with a list `nodeGroups`")
    groups = [_parse_group(raw, f"{path}: nodeGroups[{i}]") for i, raw in enumerate(document["nodeGroups"])]
    _reject_duplicates(groups, path)
    return groups


def node_manifest(group: NodeGroup, index: int) -> dict[str, Any]:
    """The Node object for the `index`-th node of `group`."""
    if not 0 <= index < group.count:
        raise ValueError(f"index must be in [0, {group.count}) for node group {group.name!r}, got {index}")
    name = f"{group.prefix}{index}"
    return fake_node(
        name,
        labels={**group.labels, NODE_GROUP_LABEL: group.name},
        allocatable=group.allocatable,
        capacity=group.capacity or None,
    )


def fake_node(
    name: str,
    labels: Mapping[str, str],
    allocatable: Mapping[str, str],
    capacity: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Node that kwok will manage, with the given labels and resources.

    Nodes are the one kind whose status the apiserver keeps on create, which is how
    allocatable `nvidia.com/gpu` gets there without a device plugin.
    """
    where = f"node {name!r}"
    _check_node_name(name, where)
    labels = _string_map(labels, f"{where}: labels")
    _check_labels(labels, f"{where}: labels")
    allocatable = _resource_map(allocatable, f"{where}: allocatable")
    capacity = _resource_map(capacity, f"{where}: capacity") if capacity else dict(allocatable)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: KWOK_ANNOTATION_VALUE, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                **labels,
                LAB_NODE_LABEL: "true",
            },
        },
        "spec": {},
        "status": {
            "allocatable": allocatable,
            "capacity": capacity,
            # The OpenAPI schema requires all of nodeInfo; ids are stable per name.
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": KUBE_VERSION,
                "kubeProxyVersion": KUBE_VERSION,
                "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.machine").hex,
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.system")),
                "bootID": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.boot")),
                "kernelVersion": "kwok",
                "osImage": "kwok fake node",
                "containerRuntimeVersion": "kwok",
            },
        },
    }


def _parse_group(raw: Any, where: str) -> NodeGroup:
    if not isinstance(raw, dict):
        raise NodeFileError(f"{where}: expected a mapping with name, prefix, count, labels, allocatable")
    unknown = set(raw) - {"name", "prefix", "count", "labels", "allocatable", "capacity"}
    if unknown:
        raise NodeFileError(
            f"{where}: unknown field(s) {sorted(unknown)}; allowed: name, prefix, count, labels, "
            "allocatable, capacity"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not _DNS_LABEL.match(name):
        raise NodeFileError(f"{where}.name: must be a lowercase DNS label such as 'h100', got {name!r}")
    prefix = raw.get("prefix", f"{name}-")
    if not isinstance(prefix, str) or not re.match(r"^[a-z0-9][-a-z0-9.]*$", prefix):
        raise NodeFileError(
            f"{where}.prefix: must start a lowercase DNS name such as 'gpu-h100-', got {prefix!r}"
        )
    count = raw.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise NodeFileError(f"{where}.count: must be a positive integer, got {count!r}")
    labels = _string_map(raw.get("labels", {}), f"{where}.labels")
    _check_labels(labels, f"{where}.labels")
    if "allocatable" not in raw:
        raise NodeFileError(f"{where}.allocatable: required (cpu, memory, pods and e.g. nvidia.com/gpu)")
    allocatable = _resource_map(raw["allocatable"], f"{where}.allocatable")
    capacity = _resource_map(raw.get("capacity") or {}, f"{where}.capacity")
    group = NodeGroup(name, prefix, count, labels, allocatable, capacity)
    for node_name in group.node_names():
        _check_node_name(node_name, f"{where}: node name")
    return group


def _reject_duplicates(groups: list[NodeGroup], path: Path) -> None:
    seen: dict[str, str] = {}
    for group in groups:
        for node_name in group.node_names():
            if node_name in seen:
                raise NodeFileError(
                    f"{path}: node {node_name!r} comes from both groups {seen[node_name]!r} and "
                    f"{group.name!r}; give the groups distinct prefixes"
                )
            seen[node_name] = group.name


def _string_map(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise NodeFileError(f"{where}: expected a mapping of strings, got {type(raw).__name__}")
    result: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise NodeFileError(f"{where}: key {key!r} must be a string")
        # YAML turns unquoted true/8 into bool/int; Kubernetes wants their string forms.
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int):
            value = str(value)
        if not isinstance(value, str):
            raise NodeFileError(f"{where}[{key!r}]: must be a string, got {value!r}")
        result[key] = value
    return result


def _resource_map(raw: Any, where: str) -> dict[str, str]:
    resources = _string_map(raw, where)
    for key, value in resources.items():
        if not _QUANTITY.match(value):
            raise NodeFileError(
                f"{where}[{key!r}]: {value!r} is not a Kubernetes quantity (e.g. '8', '3920m', '16Gi')"
            )
    return resources


def _check_labels(labels: Mapping[str, str], where: str) -> None:
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))) or not (
            len(name) <= 63 and _LABEL_NAME.match(name)
        ):
            raise NodeFileError(
                f"{where}: {key!r} is not a valid label key ([prefix/]name, name <= 63 chars)"
            )
        if value and not (len(value) <= 63 and _LABEL_NAME.match(value)):
            raise NodeFileError(
                f"{where}[{key!r}]: {value!r} is not a valid label value "
                "(<= 63 chars of letters, digits, '-', '_', '.')"
            )


def _check_node_name(name: str, where: str) -> None:
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise NodeFileError(f"{where}: {name!r} is not a valid node name (lowercase DNS subdomain)")
