"""Auto-apply's part of a WorkloadProfile's status: its actions as `lastAction`/`actions` and back, and
its conditions as a status holds them. Layout only: what is decided comes from `control.actuator`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from greenmatrix import ActionRecord, Interval, Verdict
from greenmatrix_operator.status.conditions import AUTO_APPLY, CONFLICT, ROLLED_BACK, ConditionState
from greenmatrix_operator.status.live import rfc3339

logger = logging.getLogger(__name__)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _interval_wire(i: Interval | None) -> dict[str, float] | None:
    return None if i is None else {"p10": round(i.p10, 3), "p50": round(i.p50, 3), "p90": round(i.p90, 3)}


def action_fields(a: ActionRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": a.id,
        "time": rfc3339(a.at),
        "kind": a.kind,
        "fromReplicas": a.from_replicas,
        "toReplicas": a.to_replicas,
        "reason": a.reason[:1024],
        "phase": a.phase,
        "targetGeneration": a.target_generation,
        "predictedUtilization": _interval_wire(a.predicted_utilization),
        "cooldownSeconds": a.cooldown_s,
    }
    if a.verification is not None:
        v = a.verification
        out["verification"] = {"result": v.result, "reason": v.reason[:1024], "time": rfc3339(v.at)}
    if a.stop_scale_out_until is not None:
        out["stopScaleOutUntil"] = rfc3339(a.stop_scale_out_until)
    return {k: v for k, v in out.items() if v is not None}


def action_of(wire: Mapping[str, Any]) -> ActionRecord:
    u = wire.get("predictedUtilization")
    v = wire.get("verification")
    return ActionRecord(
        id=str(wire["id"]),
        at=_epoch(wire["time"]),
        from_replicas=int(wire["fromReplicas"]),
        to_replicas=int(wire["toReplicas"]),
        reason=str(wire.get("reason", "")),
        phase=wire["phase"],
        target_generation=int(wire.get("targetGeneration", 0)),
        kind=wire.get("kind", "Scale"),
        predicted_utilization=Interval(u["p10"], u["p50"], u["p90"]) if u else None,
        cooldown_s=float(wire.get("cooldownSeconds") or 0.0),
        verification=Verdict(v["result"], v.get("reason", ""), _epoch(v["time"])) if v else None,
        stop_scale_out_until=_epoch(wire["stopScaleOutUntil"]) if wire.get("stopScaleOutUntil") else None,
    )


def history_of(status: Mapping[str, Any]) -> tuple[ActionRecord, ...]:
    """The actions a status records, newest first (an unreadable entry is skipped, not fatal)."""
    out = []
    for wire in status.get("actions") or ():
        try:
            out.append(action_of(wire))
        except (KeyError, TypeError, ValueError):
            logger.warning("skipping an unreadable action in the status: %s", wire)
    return tuple(out)


_OWN = (AUTO_APPLY, CONFLICT, ROLLED_BACK)


def conditions_in(status: Mapping[str, Any]) -> tuple[ConditionState, ...]:
    """Auto-apply's conditions as a status holds them."""
    return tuple(
        ConditionState(c["type"], c.get("status", "Unknown"), c.get("reason", ""), c.get("message", ""))
        for c in status.get("conditions") or ()
        if c.get("type") in _OWN
    )
