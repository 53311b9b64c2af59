"""HTTPS for the live page: a browser only lends its camera to a secure context (HTTPS, or
http://localhost), so a page opened from another machine must be served over TLS.

``server_context(cert, key)`` loads a certificate given with ``--tls-cert/--tls-key``;
``self_signed_context(hosts)`` makes a fresh self-signed one (the ``cryptography`` package) for
a quick start: the browser warns once, and the SHA-256 fingerprint printed at start-up is what
to compare with the one it shows. The generated key never touches the disk for longer than
loading it takes.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from configs.errors import InputError

_VALID_DAYS = 30


@dataclass(frozen=True)
class TlsSetup:
    context: ssl.SSLContext
    fingerprint: str  # SHA-256 of the certificate, hex pairs joined by ':'
    self_signed: bool


def server_context(cert: Path, key: Path) -> TlsSetup:
    """A server context for ``cert`` (PEM chain) and ``key`` (PEM); one clear line if bad."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
        pem = Path(cert).read_text(encoding="ascii", errors="replace")
    except (OSError, ssl.SSLError) as error:
        raise InputError(f"cannot use --tls-cert {cert} / --tls-key {key}: {error}") from None
    return TlsSetup(context, _fingerprint(ssl.PEM_cert_to_DER_cert(_first_pem(pem))), False)


def self_signed_context(hosts: tuple[str, ...]) -> TlsSetup:
    """A context with a new self-signed certificate for ``hosts`` (names or IP literals)."""
    cert_pem, key_pem = _self_signed_pem(hosts)
    with tempfile.TemporaryDirectory(prefix="streamseg-tls-") as folder:
        cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert.write_bytes(cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem)
        setup = server_context(cert, key)
    return TlsSetup(setup.context, setup.fingerprint, True)


def _self_signed_pem(hosts: tuple[str, ...]) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "streamseg live")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _first_pem(text: str) -> str:
    end = "-----END CERTIFICATE-----"
    start = text.find("-----BEGIN CERTIFICATE-----")
    if start < 0 or end not in text:
        raise InputError("the --tls-cert file holds no PEM certificate")
    return text[start : text.index(end, start) + len(end)] + "\n"


def _fingerprint(der: bytes) -> str:
    import hashlib

    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
