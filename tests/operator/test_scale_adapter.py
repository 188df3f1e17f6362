"""The scale adapter lists a namespace's autoscalers once per ttl for all its workloads, and picks the
ones that scale the asked target."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import kubernetes
from greenmatrix_operator.adapters.scale import ScaleClient
from greenmatrix_operator.settings import ApiSettings


def test_one_listing_per_namespace_per_ttl() -> None:
    now = [0.0]
    client = ScaleClient(kubernetes.client.ApiClient(), ApiSettings(), ttl=30.0, clock=lambda: now[0])
    calls: list[str] = []

    def hpas(namespace: str, **_: object) -> SimpleNamespace:
        calls.append(namespace)
        ref = SimpleNamespace(kind="Deployment", name="chat")
        return SimpleNamespace(
            items=[
                SimpleNamespace(
                    metadata=SimpleNamespace(name="theirs"), spec=SimpleNamespace(scale_target_ref=ref)
                )
            ]
        )

    def keda(*_: object, **__: object) -> dict:
        return {"items": [{"metadata": {"name": "so"}, "spec": {"scaleTargetRef": {"name": "web"}}}]}

    client._hpa.list_namespaced_horizontal_pod_autoscaler = hpas  # type: ignore[method-assign]
    client._custom.list_namespaced_custom_object = keda  # type: ignore[method-assign]

    async def ask(name: str) -> list[str]:
        return [a.name for a in await client.autoscalers("ns", "Deployment", name)]

    assert asyncio.run(ask("chat")) == ["theirs"]
    assert asyncio.run(ask("web")) == ["so"]
    assert asyncio.run(ask("other")) == []
    assert calls == ["ns"]  # three workloads, one listing
    now[0] = 31.0
    asyncio.run(ask("chat"))
    assert calls == ["ns", "ns"]
