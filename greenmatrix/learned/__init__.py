"""Learned corrections on top of physics: XGBoost on physics features, conformal intervals."""

from greenmatrix.learned.core import (
    BenchRow,
    CorrectionModel,
    coverage,
    leave_group_out,
    mape,
    models_dir,
    write_model_card,
)

__all__ = [
    "BenchRow",
    "CorrectionModel",
    "coverage",
    "leave_group_out",
    "mape",
    "models_dir",
    "write_model_card",
]
