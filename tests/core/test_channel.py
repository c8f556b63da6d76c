"""The connection to a registry: TLS is verified for `https://`, and costs nothing for `http://`."""

import datetime
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stardag_core.channel import Channel, RegistryUnavailable, tls_context


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no authority signed, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def untrusted_tls_server(tmp_path: Path) -> Iterator[str]:
    """An `https://` address on loopback whose server shows a self-signed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed(tmp_path))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with listener:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return  # closed: the test is over
                with connection, pytest.raises(ssl.SSLError):
                    context.wrap_socket(connection, server_side=True)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{port}"
    listener.close()
    thread.join(5)


def test_an_https_registry_must_show_a_certificate_an_authority_signed(
    untrusted_tls_server: str,
) -> None:
    channel = Channel(untrusted_tls_server, None)
    try:
        with pytest.raises(RegistryUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            channel.execute("{ __typename }", {})
    finally:
        channel.close()


def test_plain_http_reads_no_certificate_authorities_and_trusts_none() -> None:
    verified, unused = tls_context("https://registry.example"), tls_context("http://127.0.0.1")
    assert verified.cert_store_stats()["x509_ca"] > 0
    assert unused.cert_store_stats()["x509_ca"] == 0
    for context in (verified, unused):
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname
    assert tls_context("HTTPS://registry.example") is verified
