"""GreenMatrix engine: pure functions from workloads and hardware to ranked, explained predictions.

Nothing in this package performs I/O against a cluster or Prometheus; the operator and the CLI
gather inputs and call in here.
"""

__version__ = "0.1.0"
