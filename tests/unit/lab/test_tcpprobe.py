"""The client's TCP probe (kubevip.lab.tcpprobe) against a loopback listener: the answer, or nothing."""

from __future__ import annotations

import socket
import subprocess
import threading

from kubevip.lab.tcpprobe import probe_argv


def test_prints_the_answer_then_nothing_once_the_listener_is_gone() -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]

        def answer_once() -> None:
            conn, _ = srv.accept()
            with conn:
                conn.sendall(b"node1\n")

        t = threading.Thread(target=answer_once)
        t.start()
        out = subprocess.run(probe_argv("127.0.0.1", port, 5.0), capture_output=True, text=True, check=True)
        t.join()
    assert out.stdout == "node1\n"
    # The listener is closed: the probe prints nothing and still exits 0 (callers read "" as no answer).
    gone = subprocess.run(probe_argv("127.0.0.1", port, 1.0), capture_output=True, text=True, check=True)
    assert gone.stdout == ""
