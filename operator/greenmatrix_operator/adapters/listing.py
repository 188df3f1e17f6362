"""The one listing of WorkloadProfiles at start: paged, decoded as plain JSON (no client models), in
the namespaces the operator serves.

Namespaces named plainly are listed one by one (the rights a namespaced install has); patterns
(`ml-*`, `!kube-*`, as Kopf accepts them) need a cluster-wide listing, filtered here.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import kubernetes

from greenmatrix import GROUP, VERSION
from greenmatrix_operator.adapters.kube import Gone, KubeError, Rejected, read_raw, translate_error
from greenmatrix_operator.settings import LISTING_PAGE, ApiSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
_GLOB = set("*?[!")


def _plain(namespaces: Sequence[str]) -> bool:
    return all(not set(ns) & _GLOB for ns in namespaces)


def serves(namespace: str, patterns: Sequence[str]) -> bool:
    """Whether a namespace is among those the patterns name (`!pattern` excludes; no patterns: all)."""
    included = [p for p in patterns if not p.startswith("!")]
    excluded = [p[1:] for p in patterns if p.startswith("!")]
    if any(fnmatch.fnmatchcase(namespace, p) for p in excluded):
        return False
    return not included or any(fnmatch.fnmatchcase(namespace, p) for p in included)


class ProfileLister:
    """Lists every WorkloadProfile the operator serves, a page at a time."""

    def __init__(self, api_client: kubernetes.client.ApiClient, settings: ApiSettings) -> None:
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._timeout = (settings.connect_timeout, settings.read_timeout)

    async def list(
        self,
        namespaces: Sequence[str],
        keep: Callable[[Mapping[str, Any]], T],
        plural: str = "workloadprofiles",
    ) -> list[T]:
        """What `keep` makes of each object, a page at a time (10,000 bodies as dicts would be
        hundreds of MB at once); raises the Kubernetes adapter's errors."""
        try:
            return await asyncio.to_thread(lambda: [keep(body) for body in self._all(namespaces, plural)])
        except KubeError:
            raise
        except Exception as err:
            raise translate_error(err, f"list the {plural}") from err

    def _all(self, namespaces: Sequence[str], plural: str) -> Iterator[Mapping[str, Any]]:
        if namespaces and _plain(namespaces):
            for namespace in namespaces:
                yield from self._pages(plural, namespace)
            return
        for body in self._pages(plural, None):
            if serves(str(body.get("metadata", {}).get("namespace", "")), namespaces):
                yield body

    def _pages(self, plural: str, namespace: str | None) -> Iterator[Mapping[str, Any]]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": LISTING_PAGE, "_request_timeout": self._timeout}
            if token:
                kwargs["_continue"] = token
            # Raw JSON: the client's model objects would cost more than the listing itself.
            if namespace is None:
                raw = self._custom.list_cluster_custom_object(
                    GROUP, VERSION, plural, _preload_content=False, **kwargs
                )
            else:
                raw = self._custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, _preload_content=False, **kwargs
                )
            page = json.loads(read_raw(raw))
            yield from page.get("items", ())
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return


async def listed_with_retries(
    listing: Callable[[], Awaitable[list[T]]],
    delays: Sequence[float],
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[T] | None:
    """The listing, retried through API faults (`delays` between tries, the last repeating); None
    when the API server refuses it outright (no right to list where the patterns point, or no CRD)."""
    attempt = 0
    while True:
        try:
            return await listing()
        except KubeError as err:
            if isinstance(err, (Rejected, Gone)):
                logger.warning("cannot list the WorkloadProfiles at start (%s); going on without", err)
                return None
            delay = delays[min(attempt, len(delays) - 1)]
            attempt += 1
            logger.warning("listing the WorkloadProfiles at start failed: %s; retrying in %.0fs", err, delay)
            await sleep(delay)
