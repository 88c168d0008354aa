"""SMTP over TLS: `smtps://` (TLS from the start) and `smtp://…?starttls=true`, against aiosmtpd
with a certificate from a throwaway CA that the test trusts through SSL_CERT_FILE."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.mail.transports import PermanentFailure, SmtpTransport, TemporaryFailure
from tests.mailserver import MailHandler, free_port


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1 and localhost."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Usher test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def server_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ssl.SSLContext]:
    """A server TLS context; the client trusts its CA for the test's duration."""
    ca, cert, key = _certificates(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    yield context


async def _send(url: str) -> None:
    """Send `_message()` through a transport of its own, closed afterwards."""
    transport = SmtpTransport(url, timeout=5)
    try:
        await transport.send(_message())
    finally:
        await transport.aclose()


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "invitations@usher.test"
    message["To"] = "ben@example.com"
    message["Subject"] = "Over TLS"
    message.set_content("Hello")
    return message


async def test_smtps(server_tls: ssl.SSLContext) -> None:
    handler = MailHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ssl_context=server_tls)
    controller.start()
    try:
        await _send(f"smtps://127.0.0.1:{controller.port}")
        [mail] = await handler.wait_for(1)
        assert mail["Subject"] == "Over TLS"
    finally:
        controller.stop()


async def test_starttls_required(server_tls: ssl.SSLContext) -> None:
    handler = MailHandler()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_tls,
        require_starttls=True,
    )
    controller.start()
    try:
        url = f"smtp://127.0.0.1:{controller.port}"
        await _send(f"{url}?starttls=true")
        # The same server refuses a client that does not upgrade.
        with pytest.raises(PermanentFailure) as refused:
            await _send(f"{url}?starttls=false")
        assert refused.value.reason.startswith("530")
        [mail] = await handler.wait_for(1)
        assert mail["Subject"] == "Over TLS"
    finally:
        controller.stop()


async def test_untrusted_certificate_is_a_temporary_failure(
    server_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _, _ = _certificates(other)
    monkeypatch.setenv("SSL_CERT_FILE", str(other_ca))
    handler = MailHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ssl_context=server_tls)
    controller.start()
    try:
        with pytest.raises(TemporaryFailure):
            await _send(f"smtps://127.0.0.1:{controller.port}")
        assert handler.messages == []
    finally:
        controller.stop()
