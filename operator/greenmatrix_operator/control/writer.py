"""The one place statuses are written: only the difference, as a JSON merge patch, and an Event when
the Ready state or the recommended hardware moves (and once per doubt about a spec).

The writer remembers its last write per object, so a reconcile that runs before the watch echoes
that write compares against it rather than against the stale snapshot, and the echo itself is
recognised as ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from greenmatrix_operator.metrics import OperatorMetrics
from greenmatrix_operator.records import ObjectKey, ObjectRecord, PackedStatus, as_served, unpacked
from greenmatrix_operator.status.conditions import INVALID_SPEC, READY, SPEC_DOUBTFUL, condition

RECOMMENDATION_CHANGED = "RecommendationChanged"


class StatusApi(Protocol):
    """What the writer needs of the Kubernetes adapter (`adapters.kube.KubeClient`)."""

    async def patch_status(self, record: ObjectRecord, patch: Mapping[str, Any]) -> None: ...
    async def post_event(self, record: ObjectRecord, type_: str, reason: str, message: str) -> None: ...


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class _Written:
    """The last status this process wrote for a key, and the resourceVersion it replaced."""

    uid: str
    replaced_version: str
    status: PackedStatus


class StatusWriter:
    """Writes statuses and their Events through the API adapter; counts both in the metrics."""

    def __init__(self, api: StatusApi, metrics: OperatorMetrics) -> None:
        self.api = api
        self._metrics = metrics
        self._written: dict[ObjectKey, _Written] = {}
        self._writing: dict[ObjectKey, PackedStatus] = {}

    def known_status(self, record: ObjectRecord) -> Mapping[str, Any]:
        """The freshest status we know: our own last write when the watch has not echoed it yet."""
        written = self._written.get(record.key)
        if written and written.uid == record.uid and written.replaced_version == record.resource_version:
            return written.status.unpack()
        return unpacked(record.status)

    def wrote(self, record: ObjectRecord) -> bool:
        """Whether the record's status is the one this process last wrote for it (the watch's echo),
        or is writing now: the echo can reach the event loop before the patch call returns."""
        written = self._written.get(record.key)
        ours = [written.status] if written is not None and written.uid == record.uid else []
        if (writing := self._writing.get(record.key)) is not None:
            ours.append(writing)
        if not ours:
            return False
        # Both sides packed as the API server spells JSON: equal bytes are the echo (the usual case).
        if isinstance(record.status, PackedStatus) and any(s.data == record.status.data for s in ours):
            return True
        # As dicts, for what the packing does not match (a field the API server pruned or spelled
        # otherwise): Python holds 2 and 2.0 equal.
        seen = unpacked(record.status)
        return any(s.unpack() == seen for s in ours)

    def forget(self, key: ObjectKey) -> None:
        self._written.pop(key, None)
        self._writing.pop(key, None)

    async def write(self, record: ObjectRecord, desired: Mapping[str, Any]) -> None:
        """Patch the status to `desired` when it differs from the known one, then post its Events."""
        current = self.known_status(record)
        patch = status_patch(current, desired)
        if patch is None:
            return
        packed = PackedStatus.of(as_served(desired))
        self._writing[record.key] = packed
        try:
            await self.api.patch_status(record, patch)
        finally:
            self._writing.pop(record.key, None)
        self._written[record.key] = _Written(record.uid, record.resource_version, packed)
        self._metrics.status_writes.inc(record.kind)
        for event in events(current, desired):
            self._metrics.events.inc(event.type)
            await self.api.post_event(record, event.type, event.reason, event.message)


def events(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[Event]:
    """The Events a status change deserves: Ready moving, else the recommendation moving; a new doubt."""
    out = []
    before, after = condition(current, READY), condition(desired, READY)
    if after is not None and (
        before is None or (before.get("status"), before.get("reason")) != (after["status"], after["reason"])
    ):
        type_ = "Normal" if after["status"] == "True" else "Warning"
        out.append(Event(type_, after["reason"], after.get("message", "")))
    elif (moved := _moved(current.get("recommendation"), desired.get("recommendation"))) is not None:
        out.append(Event("Normal", RECOMMENDATION_CHANGED, moved))
    doubt = condition(desired, INVALID_SPEC)
    if doubt is not None and doubt["reason"] == SPEC_DOUBTFUL:
        seen = condition(current, INVALID_SPEC) or {}
        # Once per doubt: the same doubt on every resync would bury the other Events.
        if (seen.get("reason"), seen.get("message")) != (SPEC_DOUBTFUL, doubt.get("message")):
            out.append(Event("Warning", SPEC_DOUBTFUL, doubt.get("message", "")))
    return out


def _headline(recommendation: Mapping[str, Any]) -> str:
    replicas = recommendation.get("replicas", 1)
    return (
        f"{recommendation.get('gpu')} x{recommendation.get('gpusPerReplica')},"
        f" {replicas} replica{'s' * (replicas != 1)}"
    )


def _moved(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str | None:
    """The Event message when the recommended hardware or replica count changed, else None."""
    if not before or not after:
        return None  # appearing or vanishing recommendations move Ready, which has its own Event
    if _headline(before) == _headline(after):
        return None
    return f"{_headline(before)} -> {_headline(after)}: {after.get('explanation', '')}"


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
