"""The profiles kept from the watch: the start's listing completes them without overruling an event,
statuses are kept packed, and the listing pages, filters namespaces and rides out API faults."""

from __future__ import annotations

import asyncio
import json
import sys
from types import SimpleNamespace
from typing import Any

import kubernetes
import pytest
from greenmatrix_operator.adapters.kube import Rejected, Unavailable
from greenmatrix_operator.adapters.listing import ProfileLister, listed_with_retries, serves
from greenmatrix_operator.control.profiles import ProfileStore
from greenmatrix_operator.control.writer import StatusWriter
from greenmatrix_operator.metrics import OperatorMetrics
from greenmatrix_operator.records import WORKLOAD_PROFILE, ObjectRecord, PackedStatus
from greenmatrix_operator.settings import ApiSettings


def body(namespace: str, name: str, status: dict[str, Any] | None = None, rv: str = "1") -> dict[str, Any]:
    meta = {"namespace": namespace, "name": name, "uid": f"u-{name}", "generation": 1, "resourceVersion": rv}
    return {"metadata": meta, "spec": {"task": "inference"}, "status": status or {}}


def record(namespace: str, name: str, **kw: Any) -> ObjectRecord:
    return ObjectRecord.from_body(WORKLOAD_PROFILE, body(namespace, name, **kw), pack=True)


def test_the_listing_fills_in_what_the_watch_has_not_said_and_never_resurrects() -> None:
    store = ProfileStore(listed=False)
    store.put(record("ml", "new", rv="9"))  # an event during the listing: newer than the listing
    store.put(record("ml", "gone"))
    store.remove("ml", "gone")  # deleted while the listing ran; the listing still shows it
    listing = [record("ml", "new", rv="5"), record("ml", "gone"), record("ml", "old"), record("web", "a")]
    assert not store.listed.is_set()
    assert store.prime(listing) == 2
    assert store.listed.is_set()
    assert set(store.records) == {("ml", "new"), ("ml", "old"), ("web", "a")}
    assert store.records[("ml", "new")][0].resource_version == "9"
    assert store.names == {"ml": {"new", "old"}, "web": {"a"}}
    # After the listing, events alone decide.
    store.remove("web", "a")
    assert "web" not in store.names and len(store) == 2


def test_a_status_is_kept_packed_and_still_reads_as_the_status() -> None:
    status = {
        "observedGeneration": 3,
        "conditions": [{"type": "Ready", "status": "True", "reason": "RecommendationProvided"}] * 20,
        "recommendation": {"gpu": "H100", "p50": 2.0, "explanation": "x" * 2000},
    }
    packed = PackedStatus.of(status)
    assert packed.unpack() == status and packed == status and dict(packed) == status
    assert packed.get("observedGeneration") == 3 and "recommendation" in packed
    assert packed.observed_generation == 3 == record("ml", "a", status=status).observed_generation
    assert ObjectRecord.from_body(WORKLOAD_PROFILE, body("ml", "a", status=status)).observed_generation == 3
    assert len(packed.data) * 5 < sys.getsizeof(json.dumps(status))
    # The API server gives 2.0 back as 2: still the same status.
    echoed = json.loads(json.dumps(status).replace('"p50": 2.0', '"p50": 2'))
    assert (
        PackedStatus.of(echoed) == packed and PackedStatus.of({**status, "observedGeneration": 4}) != packed
    )


def test_the_writer_knows_its_echo_through_packed_statuses() -> None:
    seen_during_patch: list[bool] = []

    class Api:
        async def patch_status(self, record: ObjectRecord, patch: Any) -> None:
            # The echo can reach the event loop before the patch call returns: still ours.
            seen_during_patch.append(writer.wrote(record_of_echo))

        async def post_event(self, *args: Any) -> None:
            pass

    writer = StatusWriter(Api(), OperatorMetrics())
    before = record("ml", "chat")
    desired = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "R"}]}
    record_of_echo = record("ml", "chat", status=desired, rv="2")
    asyncio.run(writer.write(before, desired))
    assert seen_during_patch == [True]
    assert writer.known_status(before) == desired  # not yet echoed: our own write
    echo = record("ml", "chat", status=desired, rv="2")
    assert writer.wrote(echo) and not writer.wrote(record("ml", "chat", status={"observedGeneration": 0}))
    assert writer.known_status(echo) == desired and isinstance(writer.known_status(echo), dict)


@pytest.mark.parametrize(
    ("namespace", "patterns", "served"),
    [
        ("ml", (), True),
        ("ml", ("ml",), True),
        ("ml-prod", ("ml-*",), True),
        ("web", ("ml-*",), False),
        ("kube-system", ("!kube-*",), False),
        ("ml", ("!kube-*",), True),
        ("ml-test", ("ml-*", "!*-test"), False),
    ],
)
def test_namespace_patterns_as_kopf_reads_them(
    namespace: str, patterns: tuple[str, ...], served: bool
) -> None:
    assert serves(namespace, patterns) is served


def test_the_listing_pages_and_filters_patterns() -> None:
    lister = ProfileLister(kubernetes.client.ApiClient(), ApiSettings())
    items = [body("ml-a", f"p{i}") for i in range(3)] + [body("web", "w")]
    calls: list[tuple[str | None, str | None]] = []
    released: list[str | None] = []  # pages whose connection is not back in the pool yet

    def page(token: str | None, namespace: str | None) -> SimpleNamespace:
        calls.append((namespace, token))
        pool = [i for i in items if namespace in (None, i["metadata"]["namespace"])]
        start = int(token or 0)
        more = {"continue": str(start + 2)} if start + 2 < len(pool) else {}
        released.append(namespace)
        data = json.dumps({"items": pool[start : start + 2], "metadata": more}).encode()
        return SimpleNamespace(data=data, release_conn=lambda: released.pop())

    def cluster(group: str, version: str, plural: str, **kw: Any) -> SimpleNamespace:
        return page(kw.get("_continue"), None)

    def namespaced(group: str, version: str, namespace: str, plural: str, **kw: Any) -> SimpleNamespace:
        return page(kw.get("_continue"), namespace)

    lister._custom.list_cluster_custom_object = cluster  # type: ignore[method-assign]
    lister._custom.list_namespaced_custom_object = namespaced  # type: ignore[method-assign]

    def name(b: Any) -> str:
        return b["metadata"]["name"]

    names = asyncio.run(lister.list(("ml-*",), name))
    assert names == ["p0", "p1", "p2"] and calls == [(None, None), (None, "2")]
    calls.clear()
    names = asyncio.run(lister.list(("web", "ml-a"), name))
    assert names == ["w", "p0", "p1", "p2"] and calls == [("web", None), ("ml-a", None), ("ml-a", "2")]
    assert released == []  # every page's connection went back to the pool


def test_the_listing_rides_out_faults_and_gives_up_only_when_refused() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    tries = iter([Unavailable("503"), Unavailable("timeout"), [body("ml", "a")]])

    async def flaky() -> list[Any]:
        outcome = next(tries)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    got = asyncio.run(listed_with_retries(flaky, (1.0, 2.0), sleep=sleep))
    assert got is not None and len(got) == 1 and slept == [1.0, 2.0]

    async def refused() -> list[Any]:
        raise Rejected("list workloadprofiles: 403: forbidden")

    assert asyncio.run(listed_with_retries(refused, (1.0,), sleep=sleep)) is None


def test_the_echo_of_whole_floats_is_told_by_its_bytes_and_other_spellings_still_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Api:
        async def patch_status(self, record: ObjectRecord, patch: Any) -> None:
            pass

        async def post_event(self, *args: Any) -> None:
            pass

    writer = StatusWriter(Api(), OperatorMetrics())
    desired = {"observedGeneration": 1, "scaling": {"desiredReplicas": 3.0, "share": 1.5e-05}}
    asyncio.run(writer.write(record("ml", "chat"), desired))
    # The API server (Go) writes 3.0 as 3 and 1.5e-05 as 0.000015; Python reads both back.
    served = json.loads('{"observedGeneration": 1, "scaling": {"desiredReplicas": 3, "share": 0.000015}}')
    echo = record("ml", "chat", status=served, rv="2")
    assert writer.wrote(echo)  # 1.5e-05 == 0.000015 as floats: equal dicts
    whole = {"observedGeneration": 1, "scaling": {"desiredReplicas": 3.0}}
    asyncio.run(writer.write(echo, whole))
    assert not writer.wrote(
        record("ml", "chat", status={"observedGeneration": 1, "scaling": {"desiredReplicas": 4}})
    )
    unpacking = []
    monkeypatch.setattr(PackedStatus, "unpack", lambda self: unpacking.append(self) or {})
    assert writer.wrote(
        record("ml", "chat", status={"observedGeneration": 1, "scaling": {"desiredReplicas": 3}})
    )
    assert not unpacking  # told by the bytes alone
