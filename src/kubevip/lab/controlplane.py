"""A real dual-stack control plane (etcd, kube-apiserver, kube-controller-manager) as child processes."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubevip import yamlout
from kubevip.errors import LabError
from kubevip.ip import IPAddress, IPNetwork
from kubevip.lab import procs
from kubevip.lab.ports import free_port
from kubevip.manifests import rbac

# Cluster-internal data only: nothing is routed to these ranges, they only appear in API objects.
DEFAULT_SERVICE_CIDRS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("10.96.0.0/16"),
    ipaddress.ip_network("fd00:10:96::/112"),
)
DEFAULT_CLUSTER_CIDRS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("10.244.0.0/16"),
    ipaddress.ip_network("fd00:10:244::/56"),
)
# node-lifecycle is left out on purpose: without kubelets it would mark every pod NotReady.
CONTROLLERS = (
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "service-cidr-controller",
    "node-ipam-controller",
)
PROCESS_NAMES = ("etcd", "kube-apiserver", "kube-controller-manager")
# A mask per family: the /24 and /64 every Node's podCIDR gets.
NODE_CIDR_MASK = {4: 24, 6: 64}
ADMIN_USER = "kubevip-lab-admin"
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


@dataclass(frozen=True)
class Ports:
    """The TCP ports one control plane listens on (picked free at start, kept across apiserver restarts)."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int

    @staticmethod
    def pick(bind_host: str) -> Ports:
        lo = "127.0.0.1"
        return Ports(free_port(lo), free_port(lo), free_port(bind_host), free_port(lo))


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager for one test run or lab, all files under state_dir.

    `bind_address` 127.0.0.1 keeps the API private to this host; the lab binds 0.0.0.0 so that node
    namespaces reach it through their uplink (token auth and TLS still apply, anonymous is off).
    `die_with_parent` kills the children if the Python process dies (tests); the lab CLI turns it off.
    """

    bin_dir: Path
    state_dir: Path
    bind_address: IPAddress = LOOPBACK
    service_cidrs: tuple[IPNetwork, ...] = DEFAULT_SERVICE_CIDRS
    cluster_cidrs: tuple[IPNetwork, ...] = DEFAULT_CLUSTER_CIDRS
    die_with_parent: bool = True
    start_timeout: float = 120.0
    ports: Ports | None = None
    admin_token: str = ""
    kubevip_token: str = ""
    # `kubevip ipam`'s own ServiceAccount (manifests/rbac.py render_ipam), never system:masters.
    ipam_token: str = ""
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.bin_dir = Path(self.bin_dir)
        self.state_dir = Path(self.state_dir)

    # ---- paths and addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API server URL as seen from the host (always loopback)."""
        return f"https://127.0.0.1:{self._ports().apiserver}"

    def url_via(self, address: IPAddress) -> str:
        """The API server URL through another local address (e.g. the lab uplink seen from a node)."""
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"https://{host}:{self._ports().apiserver}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    @property
    def kubevip_kubeconfig(self) -> Path:
        return self.state_dir / "kube-vip.kubeconfig"

    @property
    def ipam_kubeconfig(self) -> Path:
        """`kubevip ipam`'s credentials: exactly the rights of manifests/rbac.py `render_ipam`."""
        return self.state_dir / "kube-vip-ipam.kubeconfig"

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of the running children by process name."""
        return {n: p.pid for n, p in self._procs.items() if p.poll() is None}

    def log_path(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    def _ports(self) -> Ports:
        if self.ports is None:
            raise LabError("control plane not started: call start() first")
        return self.ports

    # ---- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start all three processes and wait until the API serves and controllers run (or raise LabError)."""
        for b in ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl"):
            if not os.access(self.bin_dir / b, os.X_OK):
                raise LabError(
                    f"{self.bin_dir / b} missing: run hack/controlplane/build.sh and pass its output "
                    "(or set KUBEVIP_BIN_DIR)"
                )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "logs").mkdir(exist_ok=True)
        # A few attempts: a port picked free can be taken by a concurrent lab before we bind it.
        last: LabError | None = None
        for _ in range(3):
            self.ports = Ports.pick(str(self.bind_address))
            try:
                self._prepare_files()
                self._start_etcd()
                self.start_apiserver()
                self._apply_rbac()
                self._start_controller_manager()
                self._wait_service_cidrs()
                return
            except LabError as exc:
                self.stop()
                if "address already in use" not in str(exc):
                    raise
                last = exc
        assert last is not None
        raise last

    def stop(self) -> None:
        """Stop every child (controller-manager, apiserver, etcd), SIGTERM then SIGKILL."""
        if not self._procs:
            # Loaded from state_dir (another process started them): stop what is recorded there.
            kill_recorded(self.state_dir)
            return
        for name in reversed(PROCESS_NAMES):
            self._stop(name)
        self._write_state()

    def stop_apiserver(self, grace: float = 2.0) -> None:
        """Stop only kube-apiserver (clients then see connection refused; etcd keeps the data).

        With watches open it would drain them for a long time; after `grace` seconds it is killed.
        """
        self._stop("kube-apiserver", grace)
        self._write_state()

    def start_apiserver(self) -> None:
        """(Re)start kube-apiserver on the same port and wait until /readyz answers ok."""
        self._spawn("kube-apiserver", self._apiserver_args())
        self._wait("kube-apiserver", lambda: self._get("/readyz") == "ok")

    def restart_apiserver(self) -> None:
        self.stop_apiserver()
        self.start_apiserver()

    def restart_etcd(self) -> None:
        """Stop etcd and start it again on its data (the API server stays up, failing meanwhile); wait
        until the API server is ready again."""
        self._stop("etcd")
        self._start_etcd(wipe=False)
        self._wait("kube-apiserver", lambda: self._get("/readyz") == "ok")
        self._write_state()

    @classmethod
    def load(cls, state_dir: Path) -> ControlPlane:
        """The control plane recorded in state_dir (started by another process, e.g. `kubevip lab up`).

        The returned object can query and write kubeconfigs; `kill_recorded` stops its processes.
        """
        state_dir = Path(state_dir)
        try:
            state = json.loads((state_dir / "controlplane.json").read_text())
            tokens = (state_dir / "tokens.csv").read_text().splitlines()
        except (OSError, ValueError) as exc:
            raise LabError(f"no control plane recorded in {state_dir}: {exc}") from None
        by_user = {line.split(",")[1]: line.split(",")[0] for line in tokens if line.count(",") >= 2}
        ports = state.get("ports")
        return cls(
            Path(state["bin_dir"]),
            state_dir,
            bind_address=ipaddress.ip_address(state.get("bind_address", "127.0.0.1")),
            service_cidrs=tuple(ipaddress.ip_network(c) for c in state.get("service_cidrs") or [])
            or DEFAULT_SERVICE_CIDRS,
            cluster_cidrs=tuple(ipaddress.ip_network(c) for c in state.get("cluster_cidrs") or [])
            or DEFAULT_CLUSTER_CIDRS,
            die_with_parent=False,
            ports=Ports(**ports) if ports else None,
            admin_token=by_user.get(ADMIN_USER, ""),
            kubevip_token=by_user.get(rbac.service_account_username(), ""),
            ipam_token=by_user.get(rbac.service_account_username(name=rbac.IPAM_SERVICE_ACCOUNT), ""),
        )

    def ready(self) -> bool:
        """True when the API server answers /readyz with ok."""
        try:
            return self.ports is not None and self._get("/readyz") == "ok"
        except LabError:
            return False

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---- queries --------------------------------------------------------------------------------------

    def server_version(self) -> str:
        """The API server's gitVersion (e.g. v1.36.3), as `kubectl version` reports it."""
        return str(json.loads(self._get("/version")).get("gitVersion", "unknown"))

    def metrics_text(self) -> str:
        """The API server's Prometheus text (apiserver_request_total etc.), read with the admin token."""
        return self._get("/metrics")

    def kubectl_run(self, *args: str, stdin: str | None = None, token: str | None = None) -> str:
        """Run kubectl against this cluster (admin unless another token is given); LabError on failure."""
        cfg = self.admin_kubeconfig if token is None else None
        argv = [str(self.kubectl)]
        if cfg is not None:
            argv += ["--kubeconfig", str(cfg)]
        else:
            argv += ["--kubeconfig", os.devnull, "--server", self.url, "--token", str(token),
                     "--insecure-skip-tls-verify"]
        res = subprocess.run([*argv, *args], input=stdin, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise LabError(f"kubectl {' '.join(args)} failed: {res.stderr.strip()}")
        return res.stdout

    def kubeconfig(self, token: str, server: str | None = None, user: str = "user") -> dict[str, Any]:
        """A kubeconfig document for `token` (server defaults to the loopback URL)."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kubevip-lab", "cluster": {
                "server": server or self.url,
                # The apiserver self-signs its serving certificate; tokens are the credential here.
                "insecure-skip-tls-verify": True,
            }}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "kubevip-lab", "context": {"cluster": "kubevip-lab", "user": user}}],
            "current-context": "kubevip-lab",
        }

    def write_kubeconfig(self, path: Path, token: str, server: str | None = None, user: str = "user") -> Path:
        """Write `kubeconfig(...)` to `path` with mode 0600 and return the path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yamlout.dump(self.kubeconfig(token, server, user), f)
        return path

    # ---- internals -----------------------------------------------------------------------------------

    def _prepare_files(self) -> None:
        sd = self.state_dir
        if not self.admin_token:
            self.admin_token = secrets.token_hex(24)
        if not self.kubevip_token:
            self.kubevip_token = secrets.token_hex(24)
        if not self.ipam_token:
            self.ipam_token = secrets.token_hex(24)
        sa_user = rbac.service_account_username()
        ipam_user = rbac.service_account_username(name=rbac.IPAM_SERVICE_ACCOUNT)
        _write_private(sd / "tokens.csv", (
            f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n'
            # The kube-vip token authenticates as the ServiceAccount's user name, so the very same
            # ClusterRoleBinding (subject kind ServiceAccount) a real cluster uses grants it rights.
            f'{self.kubevip_token},{sa_user},kube-vip,"system:serviceaccounts,'
            f'system:serviceaccounts:{rbac.NAMESPACE}"\n'
            f'{self.ipam_token},{ipam_user},kube-vip-ipam,"system:serviceaccounts,'
            f'system:serviceaccounts:{rbac.NAMESPACE}"\n'
        ))
        if not (sd / "sa.key").exists():
            key = str(sd / "sa.key")
            _run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key])
            _run(["openssl", "ec", "-in", str(sd / "sa.key"), "-pubout", "-out", str(sd / "sa.pub")])
        self.write_kubeconfig(self.admin_kubeconfig, self.admin_token, user=ADMIN_USER)
        self.write_kubeconfig(self.kubevip_kubeconfig, self.kubevip_token, user="kube-vip")
        self.write_kubeconfig(self.ipam_kubeconfig, self.ipam_token, user="kube-vip-ipam")

    def _start_etcd(self, wipe: bool = True) -> None:
        p = self._ports()
        data = self.state_dir / "etcd"
        if wipe and data.exists():
            subprocess.run(["rm", "-rf", str(data)], check=True)
        peer = f"http://127.0.0.1:{p.etcd_peer}"
        client = f"http://127.0.0.1:{p.etcd_client}"
        self._spawn("etcd", [
            "--name", "kubevip-lab", "--data-dir", str(data),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"kubevip-lab={peer}",
            "--log-level", "warn",
            # Throwaway data: fsync would only make tests slower.
            "--unsafe-no-fsync",
        ])
        self._wait("etcd", lambda: '"health":"true"' in http_get(f"{client}/health", None))

    def _apiserver_args(self) -> list[str]:
        p = self._ports()
        sd = self.state_dir
        return [
            f"--etcd-servers=http://127.0.0.1:{p.etcd_client}",
            f"--bind-address={self.bind_address}",
            f"--secure-port={p.apiserver}",
            # kube-apiserver requires the advertise address in the primary Service CIDR's family.
            f"--advertise-address={'::1' if self.service_cidrs[0].version == 6 else '127.0.0.1'}",
            # A loopback advertise address must not end up in the kubernetes Service's Endpoints.
            "--endpoint-reconciler-type=none",
            f"--cert-dir={sd / 'pki'}",
            f"--token-auth-file={sd / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--anonymous-auth=false",
            f"--service-account-key-file={sd / 'sa.pub'}",
            f"--service-account-signing-key-file={sd / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-cluster-ip-range={','.join(map(str, self.service_cidrs))}",
            # No serviceaccount controller runs, so the admission plugin would reject every pod.
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false",
            "--v=1",
        ]

    def _start_controller_manager(self) -> None:
        p = self._ports()
        cfg = str(self.admin_kubeconfig)
        args = [
            f"--kubeconfig={cfg}",
            f"--authentication-kubeconfig={cfg}",
            f"--authorization-kubeconfig={cfg}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p.controller_manager}",
            f"--cert-dir={self.state_dir / 'kcm-pki'}",
            f"--controllers={','.join(CONTROLLERS)}",
            "--leader-elect=false",
            "--allocate-node-cidrs=true",
            f"--cluster-cidr={','.join(map(str, self.cluster_cidrs))}",
            f"--service-cluster-ip-range={','.join(map(str, self.service_cidrs))}",
            *node_cidr_mask_args(self.cluster_cidrs),
            "--profiling=false",
            "--v=1",
        ]
        self._spawn("kube-controller-manager", args)
        url = f"https://127.0.0.1:{p.controller_manager}/healthz"
        self._wait("kube-controller-manager", lambda: http_get(url, self.admin_token) == "ok")

    def _apply_rbac(self) -> None:
        self._wait("kube-apiserver", lambda: self._namespace_exists(rbac.NAMESPACE))
        self.kubectl_run("apply", "-f", "-", stdin=rbac.render_yaml())
        self.kubectl_run("apply", "-f", "-", stdin=yamlout.dump_all(rbac.render_ipam()))

    def _namespace_exists(self, name: str) -> bool:
        try:
            self._get(f"/api/v1/namespaces/{name}")
        except LabError:
            return False
        return True

    def _wait_service_cidrs(self) -> None:
        """Services get ClusterIPs only once the default ServiceCIDR is Ready; wait for it.

        Servers without the networking.k8s.io/v1 ServiceCIDR API (1.29-1.32: alpha/beta behind a gate)
        allocate ClusterIPs from the flag's range directly, so there is nothing to wait for.
        """
        group = json.loads(self._get("/apis/networking.k8s.io/v1"))
        if not any(r.get("name") == "servicecidrs" for r in group.get("resources") or []):
            return

        def ready() -> bool:
            obj = json.loads(self._get("/apis/networking.k8s.io/v1/servicecidrs/kubernetes"))
            conds = obj.get("status", {}).get("conditions") or []
            return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)

        self._wait("kube-controller-manager", ready)

    def _spawn(self, name: str, args: Sequence[str]) -> None:
        log = open(self.log_path(name), "ab")  # noqa: SIM115 -- handed to the child, closed below
        try:
            popen = procs.in_spawner_thread(lambda: subprocess.Popen(
                [str(self.bin_dir / name), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=not self.die_with_parent,
                preexec_fn=procs.die_with_parent if self.die_with_parent else None,
            ))
        finally:
            log.close()
        self._procs[name] = popen
        self._write_state()

    def _stop(self, name: str, grace: float = 10.0) -> None:
        popen = self._procs.pop(name, None)
        if popen is None:
            return
        procs.terminate(popen, grace)

    def _wait(self, name: str, check: Callable[[], bool]) -> None:
        """Poll `check` until true; LabError names a dead process (with its log tail) or the timeout."""
        deadline = time.monotonic() + self.start_timeout
        last_err = ""
        while True:
            for pname, popen in list(self._procs.items()):
                rc = popen.poll()
                if rc is not None:
                    tail = procs.log_tail(self.log_path(pname))
                    raise LabError(f"{pname} exited with code {rc} during start; last lines of "
                                   f"{self.log_path(pname)}:\n{tail}")
            try:
                if check():
                    return
            except (LabError, OSError, ValueError) as exc:
                last_err = str(exc)
            if time.monotonic() > deadline:
                tail = procs.log_tail(self.log_path(name))
                raise LabError(f"{name} not ready after {self.start_timeout:.0f}s ({last_err}); last lines "
                               f"of {self.log_path(name)}:\n{tail}")
            time.sleep(0.1)

    def _get(self, path: str) -> str:
        return http_get(f"{self.url}{path}", self.admin_token)

    def _write_state(self) -> None:
        """Record PIDs and ports so that `kubevip lab down` can clean up after a crash."""
        p = self.ports
        state = {
            "bin_dir": str(self.bin_dir),
            "bind_address": str(self.bind_address),
            "service_cidrs": [str(c) for c in self.service_cidrs],
            "cluster_cidrs": [str(c) for c in self.cluster_cidrs],
            "url": self.url if p else None,
            "ports": p.__dict__ if p else None,
            "pids": {n: {"pid": pid, "exe": str(self.bin_dir / n)} for n, pid in self.pids.items()},
        }
        tmp = self.state_dir / "controlplane.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.state_dir / "controlplane.json")


def node_cidr_mask_args(cluster_cidrs: Sequence[IPNetwork]) -> list[str]:
    """kube-controller-manager refuses the per-family mask flags on a single-stack cluster, and wants
    them (not --node-cidr-mask-size) on a dual-stack one."""
    families = [c.version for c in cluster_cidrs]
    if len(set(families)) == 1:
        return [f"--node-cidr-mask-size={NODE_CIDR_MASK[families[0]]}"]
    return [f"--node-cidr-mask-size-ipv{f}={NODE_CIDR_MASK[f]}" for f in (4, 6)]


def cidrs_of(families: Sequence[int]) -> tuple[tuple[IPNetwork, ...], tuple[IPNetwork, ...]]:
    """(Service CIDRs, cluster CIDRs) of the default ranges restricted to `families` (4, 6)."""
    return (tuple(c for c in DEFAULT_SERVICE_CIDRS if c.version in families),
            tuple(c for c in DEFAULT_CLUSTER_CIDRS if c.version in families))


def kill_recorded(state_dir: Path) -> list[int]:
    """Kill control-plane processes recorded in state_dir (after a crash); returns the PIDs killed."""
    path = Path(state_dir) / "controlplane.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    killed = []
    pids = state.get("pids") or {}
    # Clients before servers: an apiserver whose etcd is gone takes long to shut down.
    for name in reversed(PROCESS_NAMES):
        entry = pids.get(name)
        if entry and procs.kill_if_exe(int(entry["pid"]), entry["exe"]):
            killed.append(int(entry["pid"]))
    return killed


def recorded_alive(state_dir: Path) -> dict[str, int]:
    """Recorded control-plane processes that still run (checked by executable path, not just PID)."""
    try:
        state = json.loads((Path(state_dir) / "controlplane.json").read_text())
    except (OSError, ValueError):
        return {}
    pids = state.get("pids") or {}
    return {n: int(e["pid"]) for n, e in pids.items() if procs.is_exe(int(e["pid"]), e["exe"])}


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _run(argv: list[str]) -> None:
    res = subprocess.run(argv, capture_output=True, text=True)
    if res.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed: {res.stderr.strip()}")


_INSECURE = ssl.create_default_context()
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE


def http_get(url: str, token: str | None, timeout: float = 5.0, context: ssl.SSLContext | None = None) -> str:
    """GET `url` (bearer `token` if any) and return the body; LabError naming the URL on any failure.
    Without `context` the server's certificate is not checked (the lab's own, on loopback)."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context or _INSECURE) as resp:
            body: bytes = resp.read()
    except urllib.error.HTTPError as exc:
        raise LabError(f"GET {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise LabError(f"GET {url}: {exc}") from None
    return body.decode()
