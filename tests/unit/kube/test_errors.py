"""The one mapping from an API status to an exception (calls, watch responses, watch ERROR events)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.kube.errors import (
    TRANSIENT,
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    api_error,
    read_json,
    retry_after,
)

MAPPED = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 410: Gone, 429: TooManyRequests}


@pytest.mark.parametrize(("status", "kind"), [*MAPPED.items(), (500, ServerError), (503, ServerError),
                                              (400, ApiError), (0, ApiError)])
def test_status_picks_the_error(status: int, kind: type[ApiError]) -> None:
    err = api_error(status, "watch services", "too old")
    assert type(err) is kind
    assert err.status == status
    assert str(err) == f"watch services: HTTP {status} too old"
    assert isinstance(err, TRANSIENT)


@given(st.integers(min_value=0, max_value=599), st.text())
def test_every_status_is_an_api_error_naming_the_request_with_a_bounded_body(status: int, body: str) -> None:
    err = api_error(status, "patch service a/b", body)
    assert isinstance(err, ApiError) and err.status == status
    assert type(err) is MAPPED.get(status, ServerError if status >= 500 else ApiError)
    assert str(err).startswith(f"patch service a/b: HTTP {status}")
    assert len(str(err)) <= len(f"patch service a/b: HTTP {status} ") + 300


def test_a_status_body_is_shown_by_its_message() -> None:
    body = json.dumps({"kind": "Status", "message": 'services "x" is forbidden', "code": 403})
    want = 'get service d/x: HTTP 403 services "x" is forbidden'
    assert str(api_error(403, "get service d/x", body)) == want


@pytest.mark.parametrize(("header", "seconds"), [("3", 3.0), (" 1 ", 1.0), ("-2", 0.0), ("", None),
                                                 (None, None), ("Wed, 21 Oct 2015 07:28:00 GMT", None)])
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert retry_after(header) == seconds


class Resp:
    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status, self._body, self.headers = status, body, headers or {}
        self.released = False

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        self.released = True


async def test_read_json_maps_the_status_and_carries_retry_after() -> None:
    r = Resp(429, b'{"kind":"Status","message":"too many"}', {"Retry-After": "4"})
    with pytest.raises(TooManyRequests) as info:
        await read_json(r, "list leases")
    assert info.value.retry_after == 4.0 and r.released
    ok: Any = await read_json(Resp(201, b'{"a": 1}'), "create")
    assert ok == {"a": 1}
    with pytest.raises(ValueError, match="not a JSON object"):
        await read_json(Resp(200, b"[1]"), "get")
