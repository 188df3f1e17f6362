"""Status bookkeeping: metav1.Conditions with honest transition times, and minimal status patches.

A condition's lastTransitionTime moves only when its status flips (reason or message changes
keep the time, as Kubernetes' own meta.SetStatusCondition does), so an unchanged world yields
a byte-equal status and the reconciler writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

READY = "Ready"
INVALID_SPEC = "InvalidSpec"


@dataclass(frozen=True)
class ConditionState:
    """A condition as the reconciler decides it, before times are attached."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""

    @property
    def good(self) -> bool:
        """Whether this state is healthy (drives Normal vs Warning Events)."""
        return (self.status == "True") != (self.type == INVALID_SPEC)


def now_rfc3339() -> str:
    """The current time the way metav1.Time serialises it (seconds, UTC, 'Z')."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    desired: Sequence[ConditionState],
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """The conditions list to write: desired states, keeping transition times where status holds.

    Conditions of types this operator does not decide (another controller's) are kept as they are.
    """
    by_type = {c.get("type"): c for c in previous or ()}
    ours = {d.type for d in desired}
    out: list[dict[str, Any]] = []
    for state in desired:
        before = by_type.get(state.type)
        since = before.get("lastTransitionTime") if before and before.get("status") == state.status else None
        out.append(
            {
                "type": state.type,
                "status": state.status,
                "observedGeneration": generation,
                "lastTransitionTime": since or now,
                "reason": state.reason,
                "message": state.message,
            }
        )
    out += [dict(c) for c in previous or () if c.get("type") not in ours]
    return out


def status_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """A JSON merge patch turning `current` into `desired`, or None when they already agree.

    Keys absent from `desired` are removed (null in a merge patch) at every depth: the status is the
    operator's alone, so what it no longer derives must not linger.
    """
    return _merge_patch(current, desired) or None


def _merge_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        before = current.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            # A merge patch merges into objects: sending `value` whole would keep keys it no longer
            # has (a recommendation's sloMargin after its profile dropped the SLO), so null them.
            if nested := _merge_patch(before, value):
                patch[key] = nested
        elif before != value:
            patch[key] = value
    patch.update({k: None for k in current if k not in desired})
    return patch


def condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The condition of a type in a status dict, if any."""
    return next((c for c in status.get("conditions") or () if c.get("type") == type_), None)
