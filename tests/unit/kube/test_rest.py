"""The socket factory of kubevip's REST client: TCP keepalive with short timers."""

from __future__ import annotations

import socket

from kubevip.kube.rest import KEEPCNT, KEEPIDLE, KEEPINTVL, USER_TIMEOUT_MS, keepalive_socket


def test_keepalive_socket_options() -> None:
    sock = keepalive_socket((socket.AF_INET, socket.SOCK_STREAM, 0, "", ("127.0.0.1", 0)))
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPIDLE
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == KEEPINTVL
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == KEEPCNT
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == USER_TIMEOUT_MS
        # dead peer found within ~30 s of silence, not the kernel's default two hours
        assert KEEPIDLE + KEEPCNT * KEEPINTVL <= 60
    finally:
        sock.close()
