"""Authentication and transport security of the bridge (no rclpy).

* Bearer tokens in the ``authorization: Bearer <token>`` metadata, each with a role:
  ``viewer`` (streams, status, volume, mesh) or ``operator`` (also control).
* Tokens come from a file (YAML/JSON mapping ``token: role``, or one ``role:token`` per
  line; ``#`` comments) and/or an environment variable (``role:token`` items separated by
  commas or whitespace). Tokens are compared in constant time against every known token.
* Refusals are UNAUTHENTICATED (no/unknown token) or PERMISSION_DENIED (viewer calling a
  control method), each with one log line that never contains the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

ROLES = ("viewer", "operator")
_RANK = {"viewer": 1, "operator": 2}
#: Methods of ultrasound.v1.Ultrasound a viewer may call; every other method needs operator.
VIEWER_METHODS = frozenset(
    {"Stream", "StreamUpdates", "GetStatus", "GetVolume", "GetMesh", "GetNodeState"}
)
#: Services callable without a token (load balancers and orchestrators probe health).
OPEN_SERVICES = frozenset({"grpc.health.v1.Health"})
MIN_TOKEN_CHARS = 16

log = logging.getLogger("us_grpc_bridge.auth")


class AuthConfigError(ValueError):
    """Token file or TLS settings that cannot be used (the server refuses to start)."""


@dataclass
class TokenStore:
    """Known bearer tokens and their roles. Lookup is constant-time per token."""

    _entries: list[tuple[bytes, str]] = field(default_factory=list)

    def add(self, token: str, role: str) -> None:
        role = role.strip().lower()
        if role not in ROLES:
            raise AuthConfigError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        token = token.strip()
        if len(token) < MIN_TOKEN_CHARS:
            raise AuthConfigError(
                f"a {role} token is shorter than {MIN_TOKEN_CHARS} characters; use e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        self._entries.append((token.encode(), role))

    def __len__(self) -> int:
        return len(self._entries)

    def role_of(self, token: str) -> str | None:
        """The role of ``token`` or None. Compares against every token (no early exit)."""
        given = token.encode()
        found: str | None = None
        for known, role in self._entries:
            if hmac.compare_digest(given, known) and found is None:
                found = role
        return found

    # -- loading ------------------------------------------------------------------------
    def load_text(self, text: str, origin: str) -> None:
        """Parse a token document: JSON/YAML mapping ``token: role`` or ``role:token`` lines."""
        stripped = text.strip()
        if not stripped:
            return
        mapping: Any = None
        if stripped.startswith("{"):
            try:
                mapping = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise AuthConfigError(f"{origin}: invalid JSON ({exc.msg})") from None
        elif not _looks_like_lines(stripped):
            import yaml

            try:
                mapping = yaml.safe_load(stripped)
            except yaml.YAMLError:
                raise AuthConfigError(f"{origin}: not YAML/JSON nor role:token lines") from None
        if isinstance(mapping, dict):
            for token, role in mapping.items():
                if not isinstance(token, str) or not isinstance(role, str):
                    raise AuthConfigError(f"{origin}: entries must be 'token: role' strings")
                self.add(token, role)
            return
        for n, line in enumerate(stripped.replace(",", "\n").split(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            role, sep, token = line.partition(":")
            if not sep:
                raise AuthConfigError(f"{origin}: item {n} is not role:token")
            self.add(token, role)

    def load_file(self, path: str | Path) -> None:
        p = Path(path).expanduser()
        try:
            text = p.read_text()
        except OSError as exc:
            raise AuthConfigError(f"cannot read token file {p}: {exc.strerror}") from None
        lines = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
        self.load_text(lines, str(p))


def _looks_like_lines(text: str) -> bool:
    """``role:token`` lines (no space after the colon, roles known), not a YAML mapping."""
    items = [x for x in text.replace(",", "\n").split() if x and not x.startswith("#")]
    return bool(items) and all(x.partition(":")[0].lower() in ROLES for x in items)


def load_tokens(token_file: str, env_value: str | None) -> TokenStore:
    """Tokens from ``token_file`` (if set) and the environment variable's value (if set)."""
    store = TokenStore()
    if token_file:
        store.load_file(token_file)
    if env_value:
        store.load_text(env_value, "environment variable")
    return store


def is_loopback(host: str) -> bool:
    """True if ``host`` (a name or address to bind) only listens on this machine."""
    h = host.strip().strip("[]")
    if h in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        try:
            addrs = {a[4][0] for a in socket.getaddrinfo(h, None)}
        except OSError:
            return False
        return bool(addrs) and all(ipaddress.ip_address(a).is_loopback for a in addrs)


def method_parts(full_method: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` -> (``pkg.Service``, ``Method``)."""
    _, service, method = full_method.split("/", 2) if full_method.count("/") >= 2 else ("", "", "")
    return service, method


def required_role(full_method: str, service_name: str) -> str | None:
    """Role a method needs: None (open), ``viewer`` or ``operator``."""
    service, method = method_parts(full_method)
    if service in OPEN_SERVICES:
        return None
    if service == service_name and method not in VIEWER_METHODS:
        return "operator"
    return "viewer"  # reflection and read-only methods


def _bearer(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return ""
    return None


def _deny(handler: Any, code: grpc.StatusCode, message: str) -> Any:
    """A handler of the same kind as ``handler`` that aborts with ``code``."""

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    def stream(request_iterator: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    kw = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary, **kw)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(unary, **kw)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(stream, **kw)
    return grpc.stream_stream_rpc_method_handler(stream, **kw)


class AuthInterceptor(grpc.ServerInterceptor):
    """Checks the bearer token and the role of every call before its handler runs.

    With ``tokens`` empty and ``required`` False every caller is an operator (loopback
    without tokens); otherwise a valid token is needed for everything but health checks.
    ``on_refusal(code_name, method, peer_hint)`` is called once per refusal (for status).
    """

    def __init__(
        self,
        tokens: TokenStore,
        service_name: str,
        *,
        required: bool,
        on_refusal: Callable[[str, str], None] | None = None,
    ) -> None:
        self._tokens = tokens
        self._service = service_name
        self._required = required or len(tokens) > 0
        self._on_refusal = on_refusal

    @property
    def enabled(self) -> bool:
        return self._required

    def role_for(self, metadata: Any) -> str | None:
        """Role of the caller given its invocation metadata (None = refused)."""
        if not self._required:
            return "operator"
        token = _bearer(metadata)
        if not token:
            return None
        return self._tokens.role_of(token)

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or not self._required:
            return handler
        method = handler_call_details.method
        need = required_role(method, self._service)
        if need is None:
            return handler
        token = _bearer(handler_call_details.invocation_metadata)
        if token is None or token == "":
            return self._refuse(
                handler, grpc.StatusCode.UNAUTHENTICATED, method, "missing bearer token"
            )
        role = self._tokens.role_of(token)
        if role is None:
            return self._refuse(handler, grpc.StatusCode.UNAUTHENTICATED, method, "unknown token")
        if _RANK[role] < _RANK[need]:
            return self._refuse(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                method,
                f"role {role} may not call this method (needs {need})",
            )
        return handler

    def _refuse(self, handler: Any, code: grpc.StatusCode, method: str, why: str) -> Any:
        log.warning("refused %s: %s (%s)", method, code.name, why)
        if self._on_refusal is not None:
            self._on_refusal(code.name, method)
        return _deny(handler, code, f"{why}; send 'authorization: Bearer <token>' metadata")


# -------------------------------------------------------------------------------- TLS
@dataclass(frozen=True)
class TlsSettings:
    """Paths of PEM files; all empty = plaintext. ``client_ca`` set = mutual TLS."""

    cert: str = ""
    key: str = ""
    client_ca: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cert or self.key)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise AuthConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials | None:
    """Server TLS credentials, requiring client certificates when ``client_ca`` is set."""
    if not tls.enabled:
        if tls.client_ca:
            raise AuthConfigError("tls_client_ca needs tls_cert and tls_key (mutual TLS)")
        return None
    if not (tls.cert and tls.key):
        raise AuthConfigError("TLS needs both tls_cert and tls_key")
    pair = (_read(tls.key, "TLS key"), _read(tls.cert, "TLS certificate"))
    if tls.client_ca:
        return grpc.ssl_server_credentials(
            [pair], root_certificates=_read(tls.client_ca, "client CA"), require_client_auth=True
        )
    return grpc.ssl_server_credentials([pair])


def channel_credentials(ca: str = "", cert: str = "", key: str = "") -> grpc.ChannelCredentials:
    """Client TLS credentials: server CA (empty = system roots), optional client cert/key."""
    if bool(cert) != bool(key):
        raise AuthConfigError("a client certificate needs both --tls-cert and --tls-key")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca, "CA") if ca else None,
        private_key=_read(key, "client key") if key else None,
        certificate_chain=_read(cert, "client certificate") if cert else None,
    )
