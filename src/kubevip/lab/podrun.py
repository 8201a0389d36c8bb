"""Run a lab agent the way a rendered DaemonSet says, as a kubelet and a container runtime would.

- Environment: the container's `env` of the rendered manifest, resolved like the kubelet does (`value`
  with `$(VAR)` expansion from the entries before it, `fieldRef` from the node, `secretKeyRef` and
  `configMapKeyRef` read from the API), plus what the kubelet injects (KUBERNETES_SERVICE_HOST/PORT).
- Linux capabilities: exactly the manifest's `securityContext` (`drop: [ALL]`, then `add`), through
  `setpriv` (util-linux): bounding, inheritable and ambient sets cut, so the root process keeps only the
  added ones; `allowPrivilegeEscalation: false` is no_new_privs.
- Credentials: in-cluster, from a projected service-account token file that expires: the lab asks the
  TokenRequest API for a token bound to a Secret (the kubelet binds to the Pod), writes it atomically and
  rotates it before expiry; deleting the previous Secret invalidates the previous token at once. The
  directory is bind-mounted at /var/run/secrets/kubernetes.io/serviceaccount in the agent's own mount
  namespace (`ip netns exec` gives every command one; nothing propagates back to the host).
- The API server is reached like a hostNetwork Pod reaches it: KUBERNETES_SERVICE_HOST is the
  `kubernetes` Service's ClusterIP (a name in the API server's self-signed certificate), DNATed to the
  API server in the node namespace, as kube-proxy does.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubevip.errors import LabError
from kubevip.ip import IPAddress
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.network import LabNetwork
from kubevip.lab.topology import Endpoint
from kubevip.manifests import daemonset
from kubevip.manifests.agent import AgentOptions

SA_MOUNT = "/run/secrets/kubernetes.io/serviceaccount"  # /var/run is /run
# The API server refuses a TokenRequest shorter than 10 minutes; the kubelet rewrites the file when 80%
# of the lifetime has passed.
TOKEN_SECONDS = 600
ROTATE_AT = 0.8
KUBE_PROXY_TABLE = "kubevip-lab-kubeproxy"
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@dataclass(frozen=True)
class PodSpec:
    """What the lab takes from the agent container of a rendered DaemonSet or Pod."""

    env: tuple[Mapping[str, Any], ...]
    capabilities: tuple[str, ...]  # kept after `drop: [ALL]`, upper case without CAP_
    no_new_privs: bool

    @classmethod
    def from_manifest(cls, obj: Mapping[str, Any], container: str = "kube-vip") -> PodSpec:
        spec = obj["spec"] if obj.get("kind") == "Pod" else obj["spec"]["template"]["spec"]
        found = [c for c in spec.get("containers") or [] if c.get("name") == container]
        if not found:
            raise LabError(f"{obj.get('kind')} {obj['metadata']['name']}: no container {container!r}")
        c = found[0]
        sc = c.get("securityContext") or {}
        caps = sc.get("capabilities") or {}
        drop = [str(d).upper() for d in caps.get("drop") or []]
        if drop != ["ALL"]:
            # A runtime's default set depends on the runtime; the manifests always drop ALL.
            raise LabError(f"securityContext.capabilities.drop={drop}: the lab runs only manifests that "
                           "drop ALL and add what they need")
        return cls(
            env=tuple(c.get("env") or ()),
            capabilities=tuple(str(a).upper().removeprefix("CAP_") for a in caps.get("add") or ()),
            no_new_privs=sc.get("allowPrivilegeEscalation") is False,
        )


def resolve_env(
    env: tuple[Mapping[str, Any], ...], fields: Mapping[str, str],
    lookup: Callable[[str, str, str], str | None],
) -> dict[str, str]:
    """The kubelet's view of `env`: `$(VAR)` expands from entries listed before (an unknown reference is
    left as written, as the kubelet does); `fieldRef` from `fields`; `secretKeyRef` / `configMapKeyRef`
    through `lookup(kind, name, key)` (None: missing; an `optional` ref is then skipped)."""
    out: dict[str, str] = {}
    for e in env:
        name = str(e["name"])
        if "value" in e or "valueFrom" not in e:
            out[name] = VAR_REF.sub(lambda m: out.get(m.group(1), m.group(0)), str(e.get("value", "")))
            continue
        src = e["valueFrom"]
        if "fieldRef" in src:
            path = src["fieldRef"]["fieldPath"]
            if path not in fields:
                raise LabError(f"env {name}: fieldRef {path} is not known to the lab ({sorted(fields)})")
            out[name] = fields[path]
            continue
        kind = "secret" if "secretKeyRef" in src else "configmap" if "configMapKeyRef" in src else ""
        if not kind:
            raise LabError(f"env {name}: valueFrom {sorted(src)} is not supported by the lab")
        ref = src["secretKeyRef" if kind == "secret" else "configMapKeyRef"]
        value = lookup(kind, ref["name"], ref["key"])
        if value is None:
            if ref.get("optional"):
                continue
            raise LabError(f"env {name}: {kind} {ref['name']} has no key {ref['key']!r}")
        out[name] = value
    return out


def setpriv_argv(capabilities: tuple[str, ...], no_new_privs: bool) -> list[str]:
    """`setpriv` keeping exactly `capabilities`: a root process gets its bounding set at execve, so
    bounding = the added set, inheritable and ambient empty (what runc does for a root container)."""
    keep = "".join(f",+{c.lower()}" for c in capabilities)
    return ["setpriv", f"--bounding-set=-all{keep}", "--inh-caps=-all", "--ambient-caps=-all",
            *(["--no-new-privs"] if no_new_privs else []), "--"]


def pod_argv(sa_dir: Path, spec: PodSpec, command: list[str]) -> list[str]:
    """Inside `ip netns exec`: bind the token directory at the service-account path, then drop
    capabilities and exec the agent (one pid throughout: every step execs the next)."""
    script = f'mount --bind "$0" {SA_MOUNT} && exec "$@"'
    return ["sh", "-c", script, str(sa_dir), *setpriv_argv(spec.capabilities, spec.no_new_privs), *command]


def ensure_mount_point() -> None:
    """The empty directory the token directory is bind-mounted on (in the agent's mount namespace only)."""
    os.makedirs(SA_MOUNT, exist_ok=True)


@dataclass(frozen=True)
class ApiService:
    """The `kubernetes` Service as a hostNetwork Pod sees it: ClusterIP:443, DNATed to the API server."""

    cluster_ip: IPAddress
    port: int = 443

    def env(self) -> dict[str, str]:
        return {"KUBERNETES_SERVICE_HOST": str(self.cluster_ip),
                "KUBERNETES_SERVICE_PORT": str(self.port)}


def kube_proxy(cp: ControlPlane, net: LabNetwork, node: Endpoint) -> ApiService:
    """In `node`'s namespace: a host route to the ClusterIP and a DNAT to the API server through the lab
    uplink (idempotent: the table is replaced)."""
    cluster_ip = cp.service_cidrs[0][1]
    api = net.api_address
    if api.version != cluster_ip.version:
        raise LabError(f"the kubernetes ClusterIP {cluster_ip} and the API address {api} differ in family")
    fam = "ip" if api.version == 4 else "ip6"
    target = str(api) if api.version == 4 else f"[{api}]"
    port = int(cp.url.rpartition(":")[2])
    rules = "\n".join([
        f"table {fam} {KUBE_PROXY_TABLE}", f"delete table {fam} {KUBE_PROXY_TABLE}",
        f"table {fam} {KUBE_PROXY_TABLE} {{",
        "  chain output { type nat hook output priority -100; policy accept;",
        f"    {fam} daddr {cluster_ip} tcp dport 443 dnat to {target}:{port}",
        "  }",
        "}",
    ])
    net.run(node.netns, ["sh", "-c", "printf '%s\\n' \"$0\" | nft -f -", rules])
    net.run(node.netns, ["ip", "route", "replace", f"{cluster_ip}/{cluster_ip.max_prefixlen}",
                         "dev", node.interface])
    return ApiService(cluster_ip)


class ProjectedToken:
    """The kubelet's projected service-account volume for one agent: token, ca.crt, namespace, rotated."""

    def __init__(self, cp: ControlPlane, directory: Path, owner: str, namespace: str = "kube-system",
                 account: str = "kube-vip", seconds: int = TOKEN_SECONDS) -> None:
        self.cp, self.dir, self.owner = cp, directory, owner
        self.namespace, self.account, self.seconds = namespace, account, seconds
        self.bound: str | None = None  # the Secret the current token is bound to
        self.token = ""
        self.rotations = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def write_static(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        # kube-apiserver's self-signed serving certificate file holds the leaf and its CA.
        _atomic(self.dir / "ca.crt", (self.cp.state_dir / "pki" / "apiserver.crt").read_text())
        _atomic(self.dir / "namespace", self.namespace)

    def rotate(self) -> str:
        """A new token bound to a new Secret, written atomically; then the previous Secret is deleted, so
        the previous token is refused from now on. Returns the previous token."""
        with self._lock:
            old, old_secret = self.token, self.bound
            name = f"kubevip-lab-token-{self.owner}-{secrets.token_hex(3)}"
            self.cp.kubectl_run("create", "secret", "generic", name, "-n", self.namespace)
            token = self.cp.kubectl_run(
                "create", "token", self.account, "-n", self.namespace, f"--duration={self.seconds}s",
                "--bound-object-kind=Secret", f"--bound-object-name={name}",
            ).strip()
            if not self.dir.exists():
                self.write_static()
            _atomic(self.dir / "token", token)
            _atomic(self._bound_file, name)
            self.token, self.bound = token, name
            self.rotations += 1
            if old_secret:
                self.cp.kubectl_run("delete", "secret", old_secret, "-n", self.namespace, "--wait=false")
            return old

    @property
    def _bound_file(self) -> Path:
        # Beside the mounted directory, not in it: the agent sees only what a projected volume holds.
        return self.dir.with_name(f"{self.dir.name}.bound")

    def start(self) -> None:
        """First token now, then a rewrite at 80% of every token's lifetime (the kubelet's rule)."""
        self.write_static()
        self.rotate()
        self._thread = threading.Thread(target=self.run, name=f"token-{self.owner}", daemon=True)
        self._thread.start()

    def resume(self) -> None:
        """Take over a token an earlier process wrote (`lab up`, then the rotator process)."""
        with contextlib.suppress(OSError):
            self.bound = self._bound_file.read_text().strip() or None
            self.token = (self.dir / "token").read_text().strip()

    def run(self) -> None:
        """Rewrite the token when 80% of its lifetime has passed, until `halt()`."""
        while True:
            try:
                age = time.time() - (self.dir / "token").stat().st_mtime
            except OSError:
                age = self.seconds  # no token yet: now
            if self._stop.wait(max(0.0, self.seconds * ROTATE_AT - age)):
                return
            try:
                self.rotate()
            except LabError:  # the token is still valid for a while: try again soon
                if self._stop.wait(10.0):
                    return

    def halt(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Stop rotating and delete the bound Secret (the token dies with it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self.bound:
            with contextlib.suppress(LabError):
                self.cp.kubectl_run("delete", "secret", self.bound, "-n", self.namespace, "--wait=false")
            self.bound = None


def _atomic(path: Path, text: str) -> None:
    """Write `text` with mode 0600 by rename, as the kubelet swaps a projected volume's files."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def lookup_via(cp: ControlPlane, namespace: str) -> Callable[[str, str, str], str | None]:
    """`resolve_env`'s lookup: a key of a Secret or ConfigMap in `namespace`, read with the admin token."""
    def lookup(kind: str, name: str, key: str) -> str | None:
        try:
            obj = json.loads(cp.kubectl_run("get", kind, name, "-n", namespace, "-o", "json"))
        except LabError:
            return None
        data = obj.get("data") or {}
        if key not in data:
            return None
        return base64.b64decode(data[key]).decode() if kind == "secret" else str(data[key])

    return lookup


@dataclass(frozen=True)
class PodRun:
    """How to start one agent as its manifest says: its env, the argv before the agent's own (mount +
    setpriv), and its projected token (call `token.start()`, or `rotate()` and a rotator, first)."""

    env: dict[str, str]
    prefix: tuple[str, ...]
    token: ProjectedToken


def prepare(
    cp: ControlPlane, net: LabNetwork, node: Endpoint, manifest: Mapping[str, Any], state_dir: Path,
) -> PodRun:
    """The agent on `node` as `manifest` (a rendered DaemonSet) says."""
    namespace = str(manifest["metadata"].get("namespace") or "kube-system")
    spec = PodSpec.from_manifest(manifest)
    host_ip = str(net.topo.addresses(node)[0])
    fields = {"spec.nodeName": node.name, "status.hostIP": host_ip, "status.podIP": host_ip,
              "metadata.namespace": namespace, "metadata.name": f"kube-vip-{node.name}"}
    home = state_dir / f"home-{node.name}"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        # What the image and the kubelet give every container.
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PYTHONUNBUFFERED": "1",
        **kube_proxy(cp, net, node).env(),
        **resolve_env(spec.env, fields, lookup_via(cp, namespace)),
    }
    ensure_mount_point()
    sa_dir = state_dir / f"serviceaccount-{node.name}"
    return PodRun(env, tuple(pod_argv(sa_dir, spec, [])), ProjectedToken(cp, sa_dir, node.name, namespace))


def lab_manifest(interface: str, env: Mapping[str, str]) -> dict[str, Any]:
    """`kubevip manifest daemonset` for the lab's settings: the switches the manifest renders itself come
    from `env` (no name twice), the rest is extra env."""
    own = {"vip_arp", "vip_leaderelection", "svc_election", "prometheus_server", "vip_interface",
           "svc_enable", "vip_nodename"}
    on = {k: env.get(k, "").lower() == "true" for k in ("vip_arp", "vip_leaderelection", "svc_election")}
    opts = AgentOptions(
        interface=env.get("vip_interface", interface),
        arp=on["vip_arp"] if "vip_arp" in env else True,
        leader_election=on["vip_leaderelection"] if "vip_leaderelection" in env else True,
        svc_election=on["svc_election"],
        prometheus_server=env.get("prometheus_server", ":2112"),
        extra_env=tuple((k, v) for k, v in env.items() if k not in own),
    )
    return daemonset.render(opts)


def main(argv: list[str]) -> int:
    """`python -m kubevip.lab.podrun rotate CP_STATE_DIR SA_DIR OWNER NAMESPACE`: the kubelet's token
    refresh for an agent of `kubevip lab up`, until SIGTERM (`lab down`)."""
    import signal

    if len(argv) != 5 or argv[0] != "rotate":
        print("usage: python -m kubevip.lab.podrun rotate CP_STATE_DIR SA_DIR OWNER NAMESPACE")
        return 2
    cp = ControlPlane.load(Path(argv[1]))
    token = ProjectedToken(cp, Path(argv[2]), argv[3], argv[4])
    token.resume()
    signal.signal(signal.SIGTERM, lambda *_: token.halt())
    token.run()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
