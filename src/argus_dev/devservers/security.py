"""TLS material and credentials for development servers started in "secure" mode.

Production gets its certificates from the cluster's issuer (cert-manager) and its passwords from Secrets; a test
needs the same shape on a laptop: a private CA, a server certificate for ``127.0.0.1``/``localhost`` signed by it,
and one user with a password. :func:`make_security` writes them under a state dir; ``up(..., security=...)`` hands
them to each server spec, which uses what its server supports (Kafka: TLS + SCRAM-SHA-512; the MongoDB-wire server:
TLS + SCRAM-SHA-256; Triton: TLS on gRPC). Without ``security`` every server starts exactly as before (plaintext,
no authentication), which is what every other test expects.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from argus_dev.devservers import HOST, DevServerError

#: Iterations of the SCRAM credential written at format time (Kafka's minimum is 4096).
SCRAM_ITERATIONS = 8192


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    """PEM files: the CA clients trust, and the server's certificate and (unencrypted PKCS#8) key."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True, kw_only=True)
class Security:
    """What a secure dev server is started with. ``password`` never appears in a repr."""

    tls: TlsFiles
    username: str = "argus"
    password: str = field(repr=False)
    #: A second identity the Kafka broker uses for its own inter-broker connections.
    broker_username: str = "argus-broker"
    broker_password: str = field(repr=False, default_factory=lambda: secrets.token_urlsafe(24))


def make_tls(directory: Path, *, hosts: tuple[str, ...] = (HOST, "localhost"), days: int = 7) -> TlsFiles:
    """A throw-away CA and a server certificate for ``hosts`` (IP addresses become IP SANs), written as PEM."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as e:
        raise DevServerError("secure dev servers need the 'cryptography' package to make certificates") from e

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "argus dev CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(ca_cert=directory / "ca.pem", server_cert=directory / "server.pem",
                     server_key=directory / "server.key")
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # PKCS#8, unencrypted: the one private-key PEM form Kafka's PEM keystore, Triton and Python's ssl all read.
    files.server_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    files.server_key.chmod(0o600)
    return files


def make_security(directory: Path, *, password: str | None = None, username: str = "argus") -> Security:
    """Certificates under ``directory`` and a user (a random password unless one is given)."""
    return Security(tls=make_tls(directory), username=username, password=password or secrets.token_urlsafe(24))


def scram_credential(mechanism: str, password: str, *, iterations: int = SCRAM_ITERATIONS) -> tuple[str, str]:
    """(salt, salted password), both base64, as RFC 5802 defines them (``Hi`` is PBKDF2 with HMAC-H).

    Kafka's storage tool takes this form, so the password itself never appears on a command line (where any local
    user could read it in /proc) or in the install log.
    """
    algo = {"SCRAM-SHA-512": "sha512", "SCRAM-SHA-256": "sha256"}.get(mechanism)
    if algo is None:
        raise DevServerError(f"scram: expected SCRAM-SHA-512 or SCRAM-SHA-256, got {mechanism!r}")
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac(algo, password.encode(), salt, iterations)
    return base64.b64encode(salt).decode(), base64.b64encode(salted).decode()


__all__ = ["Security", "TlsFiles", "make_security", "make_tls", "scram_credential"]
