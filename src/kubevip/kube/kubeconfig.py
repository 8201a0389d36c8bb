"""Reads API server access from a kubeconfig file or from the Pod environment (in-cluster).

Supported: a cluster's server, CA (file or data), insecure-skip-tls-verify and tls-server-name; a user's
client certificate and key (file or data), token, tokenFile, username/password. Credential plugins
(`exec`, `auth-provider`) are refused: a node daemon runs with a service account or a static kubeconfig.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kubevip.errors import ConfigError, yaml_problem
from kubevip.kube.rest import Access

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
PLUGINS_UNSUPPORTED = (
    "credential plugins are not supported: give the agent a service account (in-cluster), or a kubeconfig "
    "with a client certificate, token or tokenFile (like kubeadm's admin.conf)"
)


def _named(doc: Mapping[str, Any], section: str, name: str, path: str) -> dict[str, Any]:
    """The `section[name=name].<section minus s>` mapping, e.g. clusters[name].cluster."""
    field = section[:-1]
    for entry in doc.get(section) or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            value = entry.get(field) or {}
            if not isinstance(value, Mapping):
                raise ConfigError(f"{section}[{name}].{field}", value, f"must be a mapping (in {path})")
            return dict(value)
    raise ConfigError(section, name, f"no entry named {name!r} in {path}")


def _data(where: str, value: object) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(where, str(value)[:40], f"not valid base64: {exc}") from exc


def _file(where: str, value: object, base: Path) -> str:
    """A file path from the kubeconfig, resolved against the kubeconfig's directory; it must exist."""
    p = Path(os.path.expanduser(str(value)))
    if not p.is_absolute():
        p = base / p
    if not p.is_file():
        raise ConfigError(where, str(value), f"no such file ({p})")
    return str(p)


@contextlib.contextmanager
def _pem_file(data: bytes) -> Iterator[str]:
    """`data` in a private (0600) temporary file, deleted on exit: load_cert_chain reads only files."""
    fd, name = tempfile.mkstemp(prefix="kubevip-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield name
    finally:
        os.unlink(name)


def _ssl_context(cluster: Mapping[str, Any], user: Mapping[str, Any], base: Path, where: str,
                 user_where: str) -> ssl.SSLContext:
    skip = cluster.get("insecure-skip-tls-verify", False)
    if not isinstance(skip, bool):
        # A quoted "false" is a non-empty string: read as truthy it would turn verification OFF.
        raise ConfigError(f"{where}.insecure-skip-tls-verify", skip,
                          "must be a YAML boolean (true or false, unquoted)")
    field, value = f"{where}.certificate-authority", str(cluster.get("certificate-authority") or "")
    try:
        if cluster.get("certificate-authority-data"):
            field, value = f"{field}-data", "(inline data)"
            pem = _data(field, cluster["certificate-authority-data"])
            ctx = ssl.create_default_context(cadata=pem.decode(errors="replace"))
        elif value:
            ctx = ssl.create_default_context(cafile=_file(field, value, base))
        elif skip:
            # Nothing is verified: loading the system CA bundle would cost 20-25 ms of CPU per client
            # on every start (issue 21) and trust nothing.
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        else:
            ctx = ssl.create_default_context()
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(field, value, f"not a usable PEM CA certificate: {exc}") from exc
    if skip:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    _client_certificate(ctx, user, base, user_where)
    return ctx


def _client_certificate(ctx: ssl.SSLContext, user: Mapping[str, Any], base: Path, where: str) -> None:
    with contextlib.ExitStack() as stack:
        files: dict[str, str] = {}
        shown = ""  # what the error names: the certificate's field and file
        for kind in ("client-certificate", "client-key"):
            if user.get(f"{kind}-data"):
                pem = _data(f"{where}.{kind}-data", user[f"{kind}-data"])
                files[kind] = stack.enter_context(_pem_file(pem))
                shown = shown or f"{kind}-data"
            elif user.get(kind):
                files[kind] = _file(f"{where}.{kind}", user[kind], base)
                shown = shown or kind
        if not files:
            return
        if "client-certificate" not in files:
            raise ConfigError(f"{where}.client-key", "set", "needs client-certificate(-data) as well")
        try:
            ctx.load_cert_chain(files["client-certificate"], files.get("client-key"))
        except (ssl.SSLError, OSError) as exc:
            value = "(inline data)" if shown.endswith("-data") else str(user.get(shown))
            raise ConfigError(f"{where}.{shown}", value,
                              f"cannot load the client certificate and key: {exc}") from exc


def _string(section: Mapping[str, Any], key: str, where: str) -> None:
    """A field that must be a string when set: anything else (a number, a list, a boolean) is an error
    rather than something `str()` turns into a value nobody wrote."""
    value = section.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(where, value, "must be a string")


def load_kubeconfig(path: str | Path, context: str = "") -> Access:
    """Access from `path` using `context` (default: its current-context)."""
    import yaml  # here: an agent in a Pod (service-account credentials) never parses YAML at start

    p = Path(path)
    try:
        # libyaml's loader when PyYAML has it: the same documents, about 8x less CPU (a file with
        # embedded certificates took milliseconds of an agent's start in pure Python)
        doc = yaml.load(p.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        raise ConfigError("kubeconfig", str(p), f"cannot read it: {exc}") from exc
    except yaml.YAMLError as exc:
        # what and where only: PyYAML's message quotes the offending line, which may hold a token
        raise ConfigError("kubeconfig", str(p), f"not valid YAML: {yaml_problem(exc)}") from None
    if not isinstance(doc, Mapping):
        raise ConfigError("kubeconfig", str(p), "not a kubeconfig (expected a YAML mapping)")
    name = context or str(doc.get("current-context") or "")
    if not name:
        raise ConfigError("current-context", "", f"{p} sets no current-context")
    ctx = _named(doc, "contexts", name, str(p))
    cluster_name, user_name = str(ctx.get("cluster") or ""), str(ctx.get("user") or "")
    cluster = _named(doc, "clusters", cluster_name, str(p))
    user = _named(doc, "users", user_name, str(p)) if user_name else {}
    for plugin in ("exec", "auth-provider"):
        if conf := user.get(plugin):
            value = (conf.get("command") or conf.get("name")) if isinstance(conf, Mapping) else conf
            raise ConfigError(f"users[{user_name}].user.{plugin}", value, PLUGINS_UNSUPPORTED)
    cwhere = f"clusters[{cluster_name}].cluster"
    for key in ("server", "certificate-authority", "certificate-authority-data", "tls-server-name"):
        _string(cluster, key, f"{cwhere}.{key}")
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise ConfigError(f"clusters[{cluster_name}].cluster.server", server,
                          "needs an https:// (or http://) URL of the API server")
    base, user_where = p.parent, f"users[{user_name}].user"
    token_file = _file(f"{user_where}.tokenFile", user["tokenFile"], base) if user.get("tokenFile") else ""
    return Access(
        server=server,
        ssl=(_ssl_context(cluster, user, base, f"clusters[{cluster_name}].cluster", user_where)
             if server.startswith("https://") else None),
        tls_server_name=str(cluster.get("tls-server-name") or ""),
        token=str(user.get("token") or ""),
        token_file=token_file,
        username=str(user.get("username") or ""),
        password=str(user.get("password") or ""),
    )


def load_incluster(env: Mapping[str, str] | None = None, root: Path = SERVICE_ACCOUNT) -> Access:
    """Access from KUBERNETES_SERVICE_HOST/_PORT and the Pod's service-account token and CA."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError("KUBERNETES_SERVICE_HOST", host,
                          "in-cluster access needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address in a URL
    token, ca = root / "token", root / "ca.crt"
    for f in (token, ca):
        if not f.is_file():
            raise ConfigError("service account", str(f), "missing: is the service-account token mounted?")
    try:
        ctx = ssl.create_default_context(cafile=str(ca))
    except ssl.SSLError as exc:
        raise ConfigError("service account", str(ca), f"not a usable PEM CA: {exc}") from exc
    return Access(server=f"https://{host}:{port}", ssl=ctx, token_file=str(token))
