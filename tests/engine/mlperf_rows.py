"""MLPerf Inference result rows as the predictors read them (CSV columns as text)."""

from __future__ import annotations


def mlperf_row(**columns: str) -> dict[str, str]:
    """ResNet-50 Offline on one node of one H100 under TensorRT, round v4.0; `columns` replace or add."""
    return {
        "version": "v4.0",
        "Model": "resnet50",
        "Scenario": "Offline",
        "Units": "Samples/s",
        "accelerator_model_name": "NVIDIA H100-SXM-80GB",
        "accelerators_per_node": "1",
        "number_of_nodes": "1",
        "framework": "TensorRT 9.3.0, CUDA 12.2",
        **columns,
    }
