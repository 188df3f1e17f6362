"""The status patch and the Event over aiohttp (`adapters.apiserver`): what is sent, with which
credentials, and how each failure is translated.

A local HTTP server stands in for the API server only for what the real one cannot be made to do on
demand (a 500, a 429, an answer slower than the timeout) or for what it does not show (the headers a
request carried); the lab's real API server, with TLS and client certificates, takes every status
write of tests/lab.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import kubernetes
import pytest
from aiohttp import web
from greenmatrix_operator.adapters import kube
from greenmatrix_operator.adapters.apiserver import proxy_of, ssl_context
from greenmatrix_operator.records import WORKLOAD_PROFILE, ObjectRecord
from greenmatrix_operator.settings import ApiSettings
from local_http import serve

RECORD = ObjectRecord(WORKLOAD_PROFILE, "team-a", "chat", "uid-1", 3, "41")
Reply = Callable[[web.Request], Awaitable[web.Response]]


def answer(status: int, body: Any = None) -> Reply:
    async def reply(request: web.Request) -> web.Response:
        return web.json_response(body or {"kind": "Status", "code": status}, status=status)

    return reply


def slow(seconds: float) -> Reply:
    async def reply(request: web.Request) -> web.Response:
        await asyncio.sleep(seconds)
        return web.json_response({})

    return reply


class FakeApiServer:
    """Answers every request with `reply` and keeps what each request carried."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []

    async def __aenter__(self) -> FakeApiServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self.url = await serve(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": request.headers.copy(),  # case-insensitive, as HTTP headers are
                "body": json.loads(await request.read()),
            }
        )
        return await self.reply(request)


def client(url: str, *, token: str | None = None, read_timeout: float = 30) -> kube.KubeClient:
    configuration = kubernetes.client.Configuration(host=url)
    if token is not None:
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
    return kube.KubeClient(
        kubernetes.client.ApiClient(configuration), ApiSettings(connect_timeout=1, read_timeout=read_timeout)
    )


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


def test_a_status_patch_is_a_merge_patch_of_the_status_subresource_with_the_bearer_token() -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with FakeApiServer(answer(200)) as server:
            api = client(server.url, token="t0ken")
            await api.patch_status(RECORD, {"observedGeneration": 3, "advice": None})
            await api.aclose()
            return server.requests

    (request,) = run(scenario)
    assert request["method"] == "PATCH"
    assert request["path"] == "/apis/greenmatrix.io/v1alpha1/namespaces/team-a/workloadprofiles/chat/status"
    assert request["headers"]["Content-Type"] == "application/merge-patch+json"
    assert request["headers"]["authorization"] == "Bearer t0ken"
    # null stays null: it is how a merge patch removes what the status no longer has
    assert request["body"] == {"status": {"observedGeneration": 3, "advice": None}}


def test_a_token_renewed_by_the_configurations_hook_is_used_on_the_next_request() -> None:
    tokens = iter(["first", "second"])

    def refresh(configuration: kubernetes.client.Configuration) -> None:
        configuration.api_key["authorization"] = next(tokens)

    async def scenario() -> list[dict[str, Any]]:
        async with FakeApiServer(answer(201)) as server:
            api = client(server.url, token="stale")
            api.api_client.configuration.refresh_api_key_hook = refresh
            await api.post_event(RECORD, "Normal", "RecommendationProvided", "a")
            await api.post_event(RECORD, "Normal", "RecommendationProvided", "b")
            await api.aclose()
            return server.requests

    first, second = run(scenario)
    assert first["headers"]["authorization"] == "Bearer first"
    assert second["headers"]["authorization"] == "Bearer second"


def test_an_event_names_its_object_and_is_posted_in_its_namespace() -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with FakeApiServer(answer(201)) as server:
            api = client(server.url)
            await api.post_event(RECORD, "Warning", "SpecDoubtful", "x" * 2000)
            await api.aclose()
            return server.requests

    (request,) = run(scenario)
    assert request["method"] == "POST"
    assert request["path"] == "/api/v1/namespaces/team-a/events"
    body = request["body"]
    assert body["involvedObject"] == {
        "apiVersion": "greenmatrix.io/v1alpha1",
        "kind": "WorkloadProfile",
        "namespace": "team-a",
        "name": "chat",
        "uid": "uid-1",
    }
    assert (body["type"], body["reason"], len(body["message"])) == ("Warning", "SpecDoubtful", 1024)
    assert "authorization" not in request["headers"]  # no credentials configured, none sent


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, kube.Gone),
        (422, kube.Rejected),
        (403, kube.Rejected),
        (429, kube.Unavailable),
        (500, kube.Unavailable),
    ],
)
def test_a_refused_patch_is_translated_by_its_status(status: int, error: type[kube.KubeError]) -> None:
    async def scenario() -> None:
        async with FakeApiServer(answer(status, {"kind": "Status", "message": "said the server"})) as server:
            api = client(server.url)
            try:
                await api.patch_status(RECORD, {"observedGeneration": 3})
            finally:
                await api.aclose()

    with pytest.raises(
        error, match=rf"patch status of WorkloadProfile team-a/chat: {status}: .*said the server"
    ):
        run(scenario)


def test_an_answer_slower_than_the_read_timeout_is_unavailable() -> None:
    async def scenario() -> None:
        async with FakeApiServer(slow(5)) as server:
            api = client(server.url, read_timeout=0.2)
            try:
                await api.patch_status(RECORD, {"observedGeneration": 3})
            finally:
                await api.aclose()

    with pytest.raises(kube.Unavailable, match="patch status of WorkloadProfile team-a/chat"):
        run(scenario)


def test_nobody_listening_is_unavailable_and_a_failed_event_is_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: refused

        async def scenario() -> None:
            api = client(url)
            try:
                with caplog.at_level(logging.WARNING):
                    await api.post_event(RECORD, "Normal", "RecommendationProvided", "lost")
                await api.patch_status(RECORD, {"observedGeneration": 3})
            finally:
                await api.aclose()

        with pytest.raises(kube.Unavailable):
            run(scenario)
    assert "could not post event RecommendationProvided on WorkloadProfile team-a/chat" in caplog.text


def test_the_proxy_is_the_official_clients_choice_and_socks_is_refused_by_name() -> None:
    configuration = kubernetes.client.Configuration(host="https://10.0.0.1:443")
    configuration.proxy = "http://proxy.corp:3128"
    configuration.no_proxy = ""
    assert proxy_of(configuration) == "http://proxy.corp:3128"
    configuration.no_proxy = "10.0.0.1"
    assert proxy_of(configuration) is None
    configuration.no_proxy = ""
    configuration.proxy = "socks5://proxy.corp:1080"
    with pytest.raises(kubernetes.config.ConfigException, match=r"SOCKS proxy .* not supported"):
        proxy_of(configuration)


def test_tls_follows_the_configuration() -> None:
    assert ssl_context(kubernetes.client.Configuration(host="http://127.0.0.1:8080")) is False
    checked = ssl_context(kubernetes.client.Configuration(host="https://10.0.0.1"))
    assert isinstance(checked, ssl.SSLContext)
    assert checked.verify_mode == ssl.CERT_REQUIRED and checked.check_hostname
    insecure = kubernetes.client.Configuration(host="https://10.0.0.1")
    insecure.verify_ssl = False  # kubeconfig's insecure-skip-tls-verify
    context = ssl_context(insecure)
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_NONE
