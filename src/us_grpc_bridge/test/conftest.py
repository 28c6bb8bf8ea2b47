"""Fixtures of the bridge tests: the producer, a server with a fake ROS backend, certificates
made on the fly (helpers in grpc_test_utils.py)."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from grpc_test_utils import Certs, FakeBackend, Producer, make_server
from us_grpc_bridge.service import BridgeServer


@pytest.fixture(scope="module")
def producer() -> Iterator[Producer]:
    p = Producer()
    yield p
    p.close()


@pytest.fixture(scope="module")
def server(producer: Producer) -> Iterator[tuple[BridgeServer, FakeBackend]]:
    backend = FakeBackend()
    srv = make_server(producer, backend, max_clients=6)
    yield srv, backend
    srv.stop()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = tmp_path_factory.mktemp("certs")
    now = datetime.datetime.now(datetime.UTC)

    def key() -> Any:
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str) -> Any:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def save(path: Path, obj: Any) -> Path:
        if hasattr(obj, "private_bytes"):
            data = obj.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        else:
            data = obj.public_bytes(serialization.Encoding.PEM)
        path.write_bytes(data)
        return path

    ca_key = key()
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("us test CA"))
        .issuer_name(name("us test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, usage: Any, sans: list[Any]) -> tuple[Any, Any]:
        k = key()
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return b.sign(ca_key, hashes.SHA256()), k

    srv, srv_key = leaf(
        "localhost",
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    cli, cli_key = leaf("headset-1", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    return Certs(
        save(d / "ca.pem", ca),
        save(d / "server.pem", srv),
        save(d / "server.key", srv_key),
        save(d / "client.pem", cli),
        save(d / "client.key", cli_key),
    )
