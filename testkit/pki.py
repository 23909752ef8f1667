"""A throw-away PKI for TLS tests: a CA, a server and a client certificate, and a stranger's.

Generated with ``cryptography`` in a directory the test owns (0700, keys 0600); nothing is
committed.  The server certificate names 127.0.0.1 and localhost.  Used by the Cloud
Foundry fakes (mutual TLS) and the OVSDB-over-SSL tests (``ssl:`` remotes).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Pki", "make_pki"]


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_cert: Path  # a client certificate from another CA
    other_key: Path
    other_ca: Path  # that other CA's certificate (trusting it, a client refuses our server)

    def server_context(self, *, require_client: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca))
        ctx.load_cert_chain(str(self.server_cert), str(self.server_key))
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_NONE
        return ctx


def make_pki(directory: Path) -> Pki:
    """A CA, a server and a client certificate (and a stranger's client certificate), in ``directory`` (0700)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def write(path: Path, data: bytes) -> Path:
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def pem_key(k: ec.EllipticCurvePrivateKey) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        k = key()
        cert = (
            x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn)).public_key(k.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(k, hashes.SHA256())
        )  # fmt: skip
        return k, cert

    def leaf(cak: ec.EllipticCurvePrivateKey, cacert: x509.Certificate, cn: str, server: bool) -> tuple[bytes, bytes]:
        k = key()
        b = (
            x509.CertificateBuilder().subject_name(name(cn)).issuer_name(cacert.subject).public_key(k.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )  # fmt: skip
        if server:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)  # fmt: skip
        cert = b.sign(cak, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), pem_key(k)

    cak, cacert = ca("ovn-hub test CA")
    ok, ocert = ca("a stranger's CA")
    sc, sk = leaf(cak, cacert, "bbs.service.cf.internal", True)
    cc, ck = leaf(cak, cacert, "ovn-hub", False)
    oc, okey = leaf(ok, ocert, "stranger", False)
    return Pki(
        dir=directory,
        ca=write(directory / "ca.crt", cacert.public_bytes(serialization.Encoding.PEM)),
        server_cert=write(directory / "server.crt", sc), server_key=write(directory / "server.key", sk),
        client_cert=write(directory / "client.crt", cc), client_key=write(directory / "client.key", ck),
        other_cert=write(directory / "other.crt", oc), other_key=write(directory / "other.key", okey),
        other_ca=write(directory / "other-ca.crt", ocert.public_bytes(serialization.Encoding.PEM)),
    )  # fmt: skip
