"""GreenMatrix engine: pure functions from workloads, hardware and observations to ranked, explained
predictions and decisions.

This module is the engine's public door: the operator and the CLI import from here, never from the
rooms behind it. Names load on first use (PEP 562), so `import greenmatrix` stays cheap and a CLI
command pays only for what it touches. Nothing in this package performs I/O against a cluster or
Prometheus, or reads a clock; the operator and the CLI gather inputs and call in here.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # the API (CRD) models
    "API_VERSION": "greenmatrix.api",
    "GROUP": "greenmatrix.api",
    "VERSION": "greenmatrix.api",
    "WorkloadProfileSpec": "greenmatrix.api",
    "OptimizationPolicySpec": "greenmatrix.api",
    "OptimizationPolicyStatus": "greenmatrix.api",
    "Constraints": "greenmatrix.api.optimizationpolicy",
    "Scaling": "greenmatrix.api.optimizationpolicy",
    "LISTED_WORKLOADS": "greenmatrix.api.optimizationpolicy",
    "HardwareSpec": "greenmatrix.api.workloadprofile",
    "Inventory": "greenmatrix.api.workloadprofile",
    "duration_seconds": "greenmatrix.api.meta",
    # errors
    "GreenMatrixError": "greenmatrix.errors",
    "InvalidSpecError": "greenmatrix.errors",
    "NoFeasibleHardwareError": "greenmatrix.errors",
    "UnknownHardwareError": "greenmatrix.errors",
    "UnknownModelError": "greenmatrix.errors",
    # values
    "Interval": "greenmatrix.interval",
    # the cluster's hardware
    "NodeHardware": "greenmatrix.inventory",
    "cluster_region": "greenmatrix.inventory",
    "summarize": "greenmatrix.inventory",
    "unknown_products": "greenmatrix.inventory",
    # checking specs
    "schema_errors": "greenmatrix.validation",
    "validate_policy": "greenmatrix.validation",
    "validate_workload": "greenmatrix.validation",
    "workload_warnings": "greenmatrix.validation",
    # the static recommendation
    # policy rules
    "applied_policy": "greenmatrix.policy",
    "constraints_of": "greenmatrix.policy",
    "scaling_of": "greenmatrix.policy",
    "weights_of": "greenmatrix.policy",
    # after deployment (live)
    "Series": "greenmatrix.live.observations",
    "series_from_rows": "greenmatrix.live.observations",
    "detect_anomalies": "greenmatrix.live.anomalies",
    "forecast": "greenmatrix.live.forecast",
    "forecast_series": "greenmatrix.live.forecast",
    "decide_replicas": "greenmatrix.live.decide",
    "guardrails_of": "greenmatrix.live.guardrails",
    "GuardrailState": "greenmatrix.live.guardrails",
    "hardware_decision": "greenmatrix.live.hardware",
    "precision_decision": "greenmatrix.live.hardware",
    "verify": "greenmatrix.live.verification",
    "Expected": "greenmatrix.live.verification",
    "Sample": "greenmatrix.live.verification",
    "ScaleAction": "greenmatrix.live.verification",
    "SLOLimits": "greenmatrix.live.verification",
    "VerificationRule": "greenmatrix.live.verification",
    "ActionRecord": "greenmatrix.live.actuation",
    "Autoscaler": "greenmatrix.live.actuation",
    "Gate": "greenmatrix.live.actuation",
    "GateInputs": "greenmatrix.live.actuation",
    "Verdict": "greenmatrix.live.actuation",
    "gate": "greenmatrix.live.actuation",
    "cooldown_of": "greenmatrix.live.actuation",
    "next_cooldown": "greenmatrix.live.actuation",
    "permitted": "greenmatrix.live.actuation",
    "rollback_to": "greenmatrix.live.actuation",
    "settle": "greenmatrix.live.actuation",
    "AnomalyState": "greenmatrix.live.anomalies",
    "ForecastState": "greenmatrix.live.forecast",
    "WorkloadState": "greenmatrix.live.assess",
    "assess": "greenmatrix.live.assess",
    "Calibration": "greenmatrix.live.calibration",
    "Observed": "greenmatrix.live.deployment",
    "DeploymentState": "greenmatrix.live.deployment",
    "DeploymentEvaluation": "greenmatrix.live.deployment",
    "evaluate_deployment": "greenmatrix.live.deployment",
    "at_observed_load": "greenmatrix.live.deployment",
    "at_observed_batch": "greenmatrix.live.deployment",
    "Layout": "greenmatrix.live.hardware",
    "replica_capacity": "greenmatrix.planning.capacity",
    "replicas_for": "greenmatrix.planning.capacity",
    "Plan": "greenmatrix.planning.result",
    "plan": "greenmatrix.planning.planner",
    "with_advice": "greenmatrix.planning.planner",
    "Predictors": "greenmatrix.predict.predictors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'greenmatrix' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
