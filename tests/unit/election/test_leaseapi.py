"""The real LeaseApi over a scripted RestClient: the exact requests it sends (verb, path, body with the
resourceVersion that makes an update a compare-and-swap, the deadline) and what each answer becomes.

Pure unit tests: the REST layer is a script (each request answered by the next scripted reply); the real
API server is exercised by tests/cluster/test_election_api.py and friends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.election.leaseapi import LeaseApi
from kubevip.election.record import lease_body, parse_lease
from kubevip.kube.errors import (
    TRANSIENT,
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    ServerError,
    TooManyRequests,
)

NS, NAME = "kube-system", "vip-lease"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"


def _server_lease(rv: str = "42", holder: str = "node-a", name: str = NAME) -> dict[str, Any]:
    body = lease_body(NS, name, holder=holder, duration=1.5, transitions=3, acquire_wall=1.7e9,
                      renew_wall=1.7e9 + 1, labels={"role": "claim"}, annotations={"unit": "u1"})
    body["metadata"]["resourceVersion"] = rv
    return body


class _Content:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


class Reply:
    """One scripted aiohttp response: status, body, headers; counts its release()."""

    def __init__(self, status: int, body: Any = b"", headers: dict[str, str] | None = None,
                 chunks: list[bytes] | None = None) -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = headers or {}
        self.content = _Content(chunks or [])
        self.released = 0

    async def read(self) -> bytes:
        return self.body

    def release(self) -> None:
        self.released += 1


class ScriptedRest:
    """Stands in for RestClient.request: records each call, answers with the next scripted step (a
    Reply, or an exception to raise, e.g. the timeout aiohttp raises when the deadline passes)."""

    def __init__(self, *steps: Reply | BaseException) -> None:
        self.steps = list(steps)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def request(self, method: str, path: str, **kw: Any) -> Reply:
        self.calls.append((method, path, kw))
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


def _api(*steps: Reply | BaseException, timeout: float = 1.0) -> tuple[LeaseApi, ScriptedRest]:
    rest = ScriptedRest(*steps)
    return LeaseApi(rest, request_timeout=timeout), rest  # type: ignore[arg-type]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- get -------------------------------------------------------------------------------------------


def test_get_reads_the_one_lease_with_the_default_deadline_and_parses_it():
    lease = _server_lease()
    reply = Reply(200, lease)
    api, rest = _api(reply, timeout=0.8)
    assert api.client is rest
    rec = run(api.get(NS, NAME))
    assert rest.calls == [("GET", f"{LEASES}/{NAME}", {"timeout": 0.8})]
    assert rec == parse_lease(lease)
    assert (rec.resource_version, rec.holder, rec.namespace, rec.name) == ("42", "node-a", NS, NAME)
    assert reply.released == 1


def test_without_a_deadline_of_its_own_a_request_gets_one_second():
    """The scalable elector builds its LeaseApi from a bare RestClient: every read without a limit
    waits at most 1 s, well inside the default 1.5 s Lease."""
    rest = ScriptedRest(Reply(200, _server_lease()))
    run(LeaseApi(rest).get(NS, NAME))  # type: ignore[arg-type]
    assert rest.calls[0][2] == {"timeout": 1.0}


def test_get_with_a_limit_uses_that_deadline():
    api, rest = _api(Reply(200, _server_lease()))
    run(api.get(NS, NAME, limit=0.25))
    assert rest.calls[0][2] == {"timeout": 0.25}


def test_get_of_a_missing_lease_is_none_not_an_error():
    reply = Reply(404, {"kind": "Status", "message": "leases \"vip-lease\" not found"})
    api, _ = _api(reply)
    assert run(api.get(NS, NAME)) is None
    assert reply.released == 1


@pytest.mark.parametrize(
    ("status", "cls"),
    [(409, Conflict), (410, Gone), (403, Forbidden), (429, TooManyRequests), (500, ServerError),
     (503, ServerError), (400, ApiError)],
)
def test_get_maps_every_other_error_status_to_its_class_naming_the_lease(status, cls):
    api, _ = _api(Reply(status, b"boom"))
    with pytest.raises(cls) as err:
        run(api.get(NS, NAME))
    assert type(err.value) is cls and err.value.status == status
    assert f"get lease {NS}/{NAME}" in str(err.value)


def test_a_timeout_of_the_request_reaches_the_caller_as_a_transient_error():
    for api_call in ("get", "create", "replace", "delete"):
        api, _ = _api(TimeoutError())
        with pytest.raises(asyncio.TimeoutError) as err:
            if api_call == "get":
                run(api.get(NS, NAME))
            elif api_call == "create":
                run(api.create(_server_lease(rv="")))
            elif api_call == "replace":
                run(api.replace(_server_lease()))
            else:
                run(api.delete(NS, NAME, "42"))
        assert isinstance(err.value, TRANSIENT)


def test_a_body_that_is_not_a_json_object_is_an_error_not_a_lease():
    api, _ = _api(Reply(200, b"[1, 2]"))
    with pytest.raises(ValueError, match="get lease"):
        run(api.get(NS, NAME))


# --- create ----------------------------------------------------------------------------------------


def test_create_posts_the_body_to_the_collection_of_its_namespace():
    body = lease_body(NS, NAME, holder="node-a", duration=2.0, transitions=0, acquire_wall=1.7e9,
                      renew_wall=1.7e9)
    answer = _server_lease(rv="7")
    api, rest = _api(Reply(201, answer), timeout=0.6)
    rec = run(api.create(body))
    assert rest.calls == [("POST", LEASES, {"body": body, "timeout": 0.6})]
    assert rec == parse_lease(answer) and rec.resource_version == "7"


def test_create_accepts_200_and_takes_a_limit():
    api, rest = _api(Reply(200, _server_lease(rv="8")))
    assert run(api.create(_server_lease(rv=""), limit=0.3)).resource_version == "8"
    assert rest.calls[0][2]["timeout"] == 0.3


def test_create_of_an_existing_lease_is_a_conflict():
    api, _ = _api(Reply(409, {"kind": "Status", "message": "already exists"}))
    with pytest.raises(Conflict, match=f"create lease {NS}/{NAME}: HTTP 409 already exists"):
        run(api.create(_server_lease(rv="")))


def test_create_in_a_missing_namespace_raises_not_found_never_returns_nothing():
    api, _ = _api(Reply(404, b""))
    with pytest.raises(NotFound) as err:
        run(api.create(_server_lease(rv="")))
    assert type(err.value) is NotFound and err.value.status == 404
    assert str(err.value) == f"create lease {NS}/{NAME}: namespace missing: HTTP 404"


def test_create_maps_server_errors():
    api, _ = _api(Reply(500, b"etcd down"))
    with pytest.raises(ServerError, match=f"create lease {NS}/{NAME}: HTTP 500 etcd down"):
        run(api.create(_server_lease(rv="")))


# --- replace (compare-and-swap) --------------------------------------------------------------------


def test_replace_puts_the_body_with_its_resource_version_to_the_lease_s_path():
    body = _server_lease(rv="41", holder="node-b")
    answer = _server_lease(rv="43", holder="node-b")
    reply = Reply(200, answer)
    api, rest = _api(reply, timeout=0.9)
    rec = run(api.replace(body))
    assert rest.calls == [("PUT", f"{LEASES}/{NAME}", {"body": body, "timeout": 0.9})]
    assert rest.calls[0][2]["body"]["metadata"]["resourceVersion"] == "41"
    assert rec == parse_lease(answer) and rec.resource_version == "43" and rec.holder == "node-b"
    assert reply.released == 1


def test_replace_takes_a_limit():
    api, rest = _api(Reply(200, _server_lease()))
    run(api.replace(_server_lease(), limit=0.2))
    assert rest.calls[0][2]["timeout"] == 0.2


@pytest.mark.parametrize("rv", [None, ""])
def test_replace_without_a_resource_version_is_refused_before_any_request(rv):
    body = _server_lease()
    if rv is None:
        del body["metadata"]["resourceVersion"]
    else:
        body["metadata"]["resourceVersion"] = rv
    api, rest = _api(Reply(200, _server_lease()))
    want = r"^replace needs metadata\.resourceVersion \(optimistic concurrency\)$"
    with pytest.raises(ValueError, match=want):
        run(api.replace(body))
    assert rest.calls == []


def test_replace_after_someone_else_wrote_is_a_conflict():
    api, _ = _api(Reply(409, {"kind": "Status", "message": "the object has been modified"}))
    with pytest.raises(Conflict, match=f"update lease {NS}/{NAME}: HTTP 409 the object has been modified"):
        run(api.replace(_server_lease()))


def test_replace_of_a_deleted_lease_is_a_conflict_too():
    """A Lease deleted since it was read: the write did not land, the caller must re-read (a 404 must
    never look like a successful replace)."""
    api, _ = _api(Reply(404, b""))
    with pytest.raises(Conflict) as err:
        run(api.replace(_server_lease()))
    assert type(err.value) is Conflict and err.value.status == 404
    assert str(err.value) == f"update lease {NS}/{NAME}: HTTP 404 deleted since it was read"


def test_replace_maps_other_errors():
    api, _ = _api(Reply(429, b"slow down", headers={"Retry-After": "3"}))
    with pytest.raises(TooManyRequests) as err:
        run(api.replace(_server_lease()))
    assert err.value.retry_after == 3.0 and f"update lease {NS}/{NAME}" in str(err.value)


# --- delete ----------------------------------------------------------------------------------------


def test_delete_sends_the_resource_version_as_a_precondition():
    reply = Reply(200, {"kind": "Status", "status": "Success"})
    api, rest = _api(reply, timeout=0.7)
    assert run(api.delete(NS, NAME, "42")) is None
    assert rest.calls == [
        ("DELETE", f"{LEASES}/{NAME}", {"body": {"preconditions": {"resourceVersion": "42"}}, "timeout": 0.7})
    ]
    assert reply.released == 1


def test_delete_accepts_202_and_takes_a_limit():
    api, rest = _api(Reply(202, b""))
    run(api.delete(NS, NAME, "42", limit=0.1))
    assert rest.calls[0][2]["timeout"] == 0.1


def test_delete_of_a_lease_already_gone_is_done():
    api, _ = _api(Reply(404, b""))
    assert run(api.delete(NS, NAME, "42")) is None


def test_delete_after_someone_else_wrote_is_a_conflict():
    api, _ = _api(Reply(409, b"precondition failed"))
    with pytest.raises(Conflict, match=f"delete lease {NS}/{NAME}: HTTP 409"):
        run(api.delete(NS, NAME, "42"))


def test_delete_refuses_201():
    api, _ = _api(Reply(201, b"{}"))
    with pytest.raises(ApiError, match=f"delete lease {NS}/{NAME}: HTTP 201"):
        run(api.delete(NS, NAME, "42"))


# --- watch -----------------------------------------------------------------------------------------


def _events(*events: tuple[str, dict[str, Any]]) -> list[bytes]:
    return [json.dumps({"type": k, "object": o}).encode() + b"\n" for k, o in events]


async def _collect(api: LeaseApi, **kw: Any) -> list[tuple[str, Any]]:
    return [e async for e in api.watch(NS, **kw)]


def test_watch_follows_the_collection_from_the_version_and_yields_records():
    a, b = _server_lease(rv="50", name="a"), _server_lease(rv="51", name="b")
    bookmark = {"metadata": {"resourceVersion": "52"}}
    reply = Reply(200, chunks=_events(("ADDED", a), ("MODIFIED", b), ("BOOKMARK", bookmark)))
    api, rest = _api(reply, timeout=0.4)
    got = run(_collect(api, selector="role=claim", resource_version="49", idle_timeout=7.0,
                       field_selector="metadata.name=a"))
    assert got == [("ADDED", parse_lease(a)), ("MODIFIED", parse_lease(b)),
                   ("BOOKMARK", parse_lease(bookmark))]
    assert got[2][1].resource_version == "52"
    ((method, path, kw),) = rest.calls
    assert (method, path) == ("GET", LEASES)
    assert kw["stream"] is True
    q = kw["query"]
    assert q["labelSelector"] == "role=claim" and q["fieldSelector"] == "metadata.name=a"
    assert q["resourceVersion"] == "49" and q["watch"] is True
    assert kw["timeout"].sock_read == 7.0 and kw["timeout"].sock_connect == 0.4
    assert isinstance(kw["timeout"], aiohttp.ClientTimeout)
    assert reply.released == 1


def test_watch_without_selectors_sends_none_for_them():
    api, rest = _api(Reply(200, chunks=[]))
    assert run(_collect(api, selector="", resource_version="1", idle_timeout=1.0)) == []
    q = rest.calls[0][2]["query"]
    assert q["labelSelector"] is None and q["fieldSelector"] is None


def test_watch_from_a_version_too_old_is_gone():
    api, _ = _api(Reply(410, b"too old"))
    with pytest.raises(Gone, match=r"^watch leases: HTTP 410 too old$"):
        run(_collect(api, selector="x", resource_version="1", idle_timeout=1.0))


# --- properties ------------------------------------------------------------------------------------

_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)


@given(_names, _names, st.sampled_from(["GET", "DELETE"]))
def test_every_single_lease_request_goes_to_exactly_that_lease(ns, name, verb):
    api, rest = _api(Reply(404, b""))
    run(api.get(ns, name) if verb == "GET" else api.delete(ns, name, "1"))
    assert rest.calls[0][:2] == (verb, f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}")


@given(st.integers(100, 599), st.sampled_from(["get", "replace", "delete", "create"]))
def test_only_success_statuses_return_a_result(status, call):
    """The error decision: each call returns only on its success statuses (and get/delete on 404)."""
    ok = {"get": {200, 201}, "create": {200, 201}, "replace": {200, 201}, "delete": {200, 202}}[call]
    api, _ = _api(Reply(status, _server_lease()))
    coro = {
        "get": lambda: api.get(NS, NAME),
        "create": lambda: api.create(_server_lease(rv="")),
        "replace": lambda: api.replace(_server_lease()),
        "delete": lambda: api.delete(NS, NAME, "42"),
    }[call]()
    if status in ok:
        out = run(coro)
        assert out is None if call == "delete" else out == parse_lease(_server_lease())
    elif status == 404 and call in ("get", "delete"):
        assert run(coro) is None
    else:
        with pytest.raises(ApiError) as err:
            run(coro)
        expected = Conflict if status == 409 or (status == 404 and call == "replace") else ApiError
        assert isinstance(err.value, expected) and err.value.status == status
