"""A small synchronous Kubernetes REST client (token or client-cert kubeconfig) for the benchmark driver."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml


class ApiError(RuntimeError):
    """The API server answered with an error status."""

    def __init__(self, status: int, body: str, what: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {body[:300]}")
        self.status = status


# Statuses a loaded API server answers with for a while (overload, etcd timeouts): worth a retry.
_TRANSIENT = (429, 500, 502, 503, 504)


class Kube:
    """Talks to the API server named in a kubeconfig's current context."""

    def __init__(self, kubeconfig: str | Path) -> None:
        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        ctx_name = cfg.get("current-context") or cfg["contexts"][0]["name"]
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next((u["user"] for u in cfg.get("users", []) if u["name"] == ctx.get("user")), {})
        self.server = cluster["server"].rstrip("/")
        self.kubeconfig = str(kubeconfig)
        self.ca_data = _material(cluster, "certificate-authority", Path(kubeconfig).parent)
        tls = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        elif self.ca_data:
            tls.load_verify_locations(cadata=self.ca_data.decode())
        self.token: str | None = user.get("token")
        if user.get("tokenFile"):
            self.token = Path(user["tokenFile"]).read_text().strip()
        cert = _material(user, "client-certificate", Path(kubeconfig).parent)
        key = _material(user, "client-key", Path(kubeconfig).parent)
        if cert and key:
            self._tmp = tempfile.TemporaryDirectory(prefix="kvbench-")
            cf, kf = Path(self._tmp.name, "c.pem"), Path(self._tmp.name, "k.pem")
            cf.write_bytes(cert)
            kf.write_bytes(key)
            tls.load_cert_chain(str(cf), str(kf))
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=tls))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
        attempts: int = 4,
    ) -> Any:
        """One API call, retried on timeouts, dropped connections and overload statuses: a loaded API
        server (1000 Services, agents restarting) must cost a pause, not the benchmark run. A retried
        create that meets its own earlier success (409) or a retried delete (404) counts as done."""
        for attempt in range(attempts):
            try:
                return self._once(method, path, body, content_type, timeout)
            except ApiError as exc:
                if attempt and (
                    (method == "POST" and exc.status == 409) or (method == "DELETE" and exc.status == 404)
                ):
                    return None
                if exc.status not in _TRANSIENT or attempt == attempts - 1:
                    raise
            except (TimeoutError, ConnectionError, http.client.HTTPException, urllib.error.URLError) as exc:
                if attempt == attempts - 1:
                    raise ApiError(0, repr(exc), f"{method} {path} ({attempts} attempts)") from None
            time.sleep(min(2.0 * (attempt + 1), 10.0))
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, body: Any, content_type: str, timeout: float) -> Any:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        req.add_header("Accept", "application/json")
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, exc.read().decode(errors="replace"), f"{method} {path}") from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def create(self, path: str, obj: dict[str, Any]) -> Any:
        return self.request("POST", path, obj)

    def delete(self, path: str, missing_ok: bool = True) -> None:
        try:
            self.request("DELETE", path, {"propagationPolicy": "Background"})
        except ApiError as exc:
            if not (missing_ok and exc.status == 404):
                raise

    def merge_patch(self, path: str, patch: dict[str, Any]) -> Any:
        return self.request("PATCH", path, patch, "application/merge-patch+json")

    def metrics_text(self) -> str:
        out = self.request("GET", "/metrics")
        return out if isinstance(out, str) else json.dumps(out)


def _material(section: dict[str, Any], key: str, base: Path) -> bytes | None:
    if section.get(f"{key}-data"):
        return base64.b64decode(section[f"{key}-data"])
    if section.get(key):
        path = Path(section[key])
        return (path if path.is_absolute() else base / path).read_bytes()
    return None
