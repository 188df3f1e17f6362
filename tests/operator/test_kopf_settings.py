"""What the operator asks of Kopf: the empty diff-base is safe only while no handler reads an essence."""

from __future__ import annotations

import kopf
from fake_api import FakeStatusApi
from greenmatrix_operator.control.reconciler import Reconciler
from greenmatrix_operator.handlers import register
from greenmatrix_operator.settings import LISTING_PAGE, OperatorSettings, kopf_settings


def test_no_handler_reads_the_essence_the_empty_diff_base_skips() -> None:
    registry = kopf.OperatorRegistry()
    register(registry, Reconciler(FakeStatusApi(), clock=lambda: "2026-01-01T00:00:00Z"))
    # Change handlers (on.create/update/resume/delete, on.field) and daemons/timers read the essence
    # and store a diff-base; the operator's handlers are indexes and on.event only.
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()
    assert registry._watching.get_all_handlers() and registry._indexing.get_all_handlers()


def test_the_diff_base_builds_an_empty_essence_and_stores_nothing() -> None:
    storage = kopf_settings(OperatorSettings()).persistence.diffbase_storage
    body = kopf.Body({"metadata": {"name": "a", "annotations": {}}, "spec": {"x": 1}, "status": {"y": 2}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=kopf.BodyEssence(spec={"x": 1}))
    assert not patch


def test_kopf_lists_in_pages_as_the_profile_store_does() -> None:
    assert kopf_settings(OperatorSettings()).watching.chunk_size == LISTING_PAGE == 500
