"""Errors the engine raises for bad input: each names the field and what would be accepted."""

from __future__ import annotations

from collections.abc import Sequence


class GreenMatrixError(Exception):
    """Base of every error meant for a user: the CLI prints it and exits 2, the operator sets a condition."""

    reason = "InvalidInput"

    def __init__(self, field: str, message: str, allowed: Sequence[str] = ()) -> None:
        self.field = field
        self.message = message
        self.allowed = tuple(allowed)
        text = f"{field}: {message}"
        if self.allowed:
            text += f" (allowed: {', '.join(self.allowed[:8])}{', ...' if len(self.allowed) > 8 else ''})"
        super().__init__(text)


class InvalidSpecError(GreenMatrixError):
    """A spec that passes the CRD schema but cannot be acted on."""

    reason = "InvalidSpec"


class UnknownModelError(GreenMatrixError):
    """The model name is not in the catalog."""

    reason = "UnknownModel"


class UnknownHardwareError(GreenMatrixError):
    """A GPU or CPU name the catalog cannot resolve."""

    reason = "UnknownHardware"


class NoFeasibleHardwareError(GreenMatrixError):
    """No hardware option meets the workload's memory needs or objectives.

    `best_catalog_option` is the label of the best feasible option the catalog offers outside the
    cluster (None when there is none); `catalog_note` says it, or the closest infeasible one, in words
    ("best catalog option: H100-SXM-80GB x1 (TPOT 9 ms [7-12], $3.9/h)"), as the message ends with it.
    """

    reason = "NoFeasibleHardware"

    def __init__(
        self,
        field: str,
        message: str,
        allowed: Sequence[str] = (),
        *,
        best_catalog_option: str | None = None,
        catalog_note: str = "",
    ) -> None:
        super().__init__(field, message, allowed)
        self.best_catalog_option = best_catalog_option
        self.catalog_note = catalog_note
