"""A stand-in for the Kubernetes adapter in the operator's tests: it applies status merge patches to
an in-memory status, as the API server does, and records Events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from greenmatrix_operator.records import ObjectKey, ObjectRecord


class FakeStatusApi:
    def __init__(self) -> None:
        self.statuses: dict[ObjectKey, dict[str, Any]] = {}
        self.patches: list[tuple[ObjectKey, Mapping[str, Any]]] = []
        self.events: list[tuple[ObjectKey, str, str]] = []
        """(object, type, reason) of each Event; `messages` holds their messages."""
        self.messages: list[str] = []
        self.fail_with: Exception | None = None

    async def patch_status(self, record: ObjectRecord, patch: Mapping[str, Any]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.patches.append((record.key, patch))
        status = self.statuses.setdefault(record.key, dict(record.status))
        for k, v in patch.items():
            if v is None:
                status.pop(k, None)
            else:
                status[k] = v

    async def post_event(self, record: ObjectRecord, type_: str, reason: str, message: str) -> None:
        self.events.append((record.key, type_, reason))
        self.messages.append(message)
