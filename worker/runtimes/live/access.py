"""Who may drive the live page: token, Host header, Origin, content type, response headers.

Bound to loopback the page needs no token (as before: only this machine reaches it). Bound
beyond loopback a random token is required on every request (it is printed as part of the
page's URL, as Jupyter does; the page then keeps it in a ``SameSite=Strict`` cookie). In every
case:

- the Host header must name this machine: an IP literal, ``localhost``, this machine's host
  names, or a name given with ``--allow-host`` (a DNS-rebinding page's Host is its own name);
- a state-changing request (POST, WebSocket) must come from the page's own origin: its
  ``Origin``, when a browser sends one, is this server's, and a POST's body is
  ``application/json`` (a cross-origin page can only send text, form or multipart bodies
  without a CORS preflight, which this server never grants);
- every response forbids framing and sniffing and leaks no referrer.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TOKEN_COOKIE = "streamseg_live_token"
TOKEN_PARAM = "token"
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class AccessDenied(Exception):
    """A request this server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def machine_names() -> frozenset[str]:
    """``localhost`` and the names this machine goes by (lower case)."""
    names = {"localhost", socket.gethostname().lower()}
    try:
        names.add(socket.getfqdn().lower())
    except OSError:
        pass
    return frozenset(n for n in names if n)


@dataclass(frozen=True)
class AccessPolicy:
    """``token``: None where none is needed (loopback); ``hosts``: names accepted in Host."""

    token: str | None
    hosts: frozenset[str] = field(default_factory=machine_names)

    @classmethod
    def for_bind(
        cls, host: str, token: str | None = None, allow_hosts: tuple[str, ...] = ()
    ) -> AccessPolicy:
        """A token is required when ``host`` is not loopback (one is made unless given)."""
        if token is None and not is_loopback(host):
            token = new_token()
        extra = {h.lower() for h in allow_hosts}
        if host and not _is_ip(host) and host not in ("0.0.0.0", "::"):
            extra.add(host.lower())
        return cls(token or None, machine_names() | extra)

    def check_host(self, host_header: str | None) -> None:
        """Refuse a Host header that does not name this machine (DNS rebinding)."""
        name = _host_name(host_header or "")
        if not name or not (_is_ip(name) or name in self.hosts):
            raise AccessDenied(403, f"refused: unknown Host header {host_header!r}")

    def token_ok(self, given: str | None) -> bool:
        if self.token is None:
            return True
        return given is not None and secrets.compare_digest(given.encode(), self.token.encode())

    def check_origin(self, origin: str | None, fetch_site: str | None, own_origin: str) -> None:
        """A state-changing request must come from this server's own page."""
        if origin is not None and origin.rstrip("/").lower() != own_origin.lower():
            raise AccessDenied(403, "refused: cross-origin request")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            raise AccessDenied(403, "refused: cross-site request")


def check_json_type(content_type: str | None) -> None:
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json":
        raise AccessDenied(415, "refused: the request body must be application/json")


def _host_name(host_header: str) -> str:
    """The host part of a Host header, lower case, without port or IPv6 brackets."""
    text = host_header.strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else ""
    try:
        return (urlsplit(f"//{text}").hostname or "").rstrip(".")
    except ValueError:
        return ""


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True
