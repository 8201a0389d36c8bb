"""The one mapping from an API status to IPAM's errors (calls, watch responses and watch ERROR events)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.ipam.kubeapi import ApiError, Conflict, Gone, api_error


@pytest.mark.parametrize(("status", "kind"), [(409, Conflict), (410, Gone), (500, ApiError), (0, ApiError)])
def test_status_picks_the_error(status: int, kind: type[ApiError]) -> None:
    err = api_error(status, "watch services", "too old")
    assert type(err) is kind
    assert err.status == status
    assert str(err) == f"watch services: HTTP {status} too old"


@given(st.integers(min_value=0, max_value=599).filter(lambda s: s not in (409, 410)), st.text())
def test_other_statuses_are_plain_api_errors_with_a_bounded_body(status: int, body: str) -> None:
    err = api_error(status, "patch service a/b", body)
    assert type(err) is ApiError and err.status == status
    assert str(err) == f"patch service a/b: HTTP {status} {body[:300]}"
