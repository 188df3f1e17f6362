"""Which replica works: the same rule Kopf pauses by, read from the same peering object; a replica that
cannot read it for a lifetime stands by."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from greenmatrix_operator.control.peering import Activity, Peer, is_active, peers_of

NOW = 1_800_000_000.0


def keepalive(priority: int, seen_ago: float, lifetime: float = 60) -> dict[str, Any]:
    from datetime import UTC, datetime

    seen = datetime.fromtimestamp(NOW - seen_ago, UTC).isoformat()
    return {"priority": priority, "lastseen": seen, "lifetime": lifetime}


def test_peers_parse_from_kopfs_status() -> None:
    peers = peers_of({"a": keepalive(5, 10), "b": keepalive(3, 100), "broken": {"priority": 1}})
    assert [p.identity for p in peers] == ["a", "b"]
    assert peers[0].deadline == pytest.approx(NOW + 50) and peers[1].deadline == pytest.approx(NOW - 40)


@pytest.mark.parametrize(
    ("others", "active"),
    [
        ([], True),
        ([Peer("b", 3, NOW + 30)], True),  # a lower priority
        ([Peer("b", 9, NOW + 30)], False),  # a higher one, alive
        ([Peer("b", 9, NOW - 1)], True),  # a higher one whose keep-alive expired: killed
        ([Peer("b", 5, NOW + 30)], False),  # a tie: Kopf pauses both, so must we
    ],
)
def test_the_highest_live_priority_works(others: list[Peer], active: bool) -> None:
    assert is_active([Peer("a", 5, NOW + 30), *others], "a", 5, NOW) is active


def test_without_our_own_keepalive_we_do_not_work() -> None:
    assert not is_active([Peer("b", 1, NOW + 30)], "a", 5, NOW)


def test_activity_follows_the_peering_object_and_stands_by_when_blind() -> None:
    state: dict[str, Any] = {"status": {"a": keepalive(5, 1, lifetime=20)}}
    now = [NOW]

    async def read() -> dict[str, Any]:
        if state["status"] is None:
            raise ConnectionError("apiserver unreachable")
        return state["status"]

    async def scenario() -> list[bool]:
        activity = Activity(read, "a", 5, 20, clock=lambda: now[0])
        seen = [await activity.check()]
        state["status"] = {"a": keepalive(5, 1, 20), "b": keepalive(9, 1, 20)}
        seen.append(await activity.check())
        state["status"] = {"a": keepalive(5, 1, 20)}
        seen.append(await activity.check())
        state["status"] = None
        now[0] += 10
        seen.append(await activity.check())  # unread for less than a lifetime: still working
        now[0] += 15
        seen.append(await activity.check())  # a lifetime without reading: stand by
        return seen

    assert asyncio.run(scenario()) == [True, False, True, True, False]


def test_standalone_is_always_active() -> None:
    assert Activity.standalone().active.is_set()
