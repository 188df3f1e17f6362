"""GreenMatrix lab: a real Kubernetes control plane with fake GPU nodes and Prometheus, locally.

from greenmatrix_lab import Lab
lab = Lab()
lab.up()
lab.kubectl("get", "nodes")
"""

from greenmatrix_lab.errors import LabError
from greenmatrix_lab.lab import ComponentStatus, Lab
from greenmatrix_lab.nodes import NodeFileError, NodeGroup, fake_node, load_node_groups, node_manifest
from greenmatrix_lab.remote_write import Series

__all__ = [
    "ComponentStatus",
    "Lab",
    "LabError",
    "NodeFileError",
    "NodeGroup",
    "Series",
    "fake_node",
    "load_node_groups",
    "node_manifest",
]
