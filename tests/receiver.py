"""A webhook receiver for tests: a real HTTP(S) server on 127.0.0.1, in the test's event loop.

It verifies every request as a host app would (`standardwebhooks.Webhook(secret).verify`),
records it, and answers 200, or what it was told to answer next. It can be stopped and
started again on the same port, and made to hold its answers until released.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook, WebhookVerificationError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Request:
    """One request as it arrived, and what the receiver made of it."""

    headers: dict[str, str]
    body: bytes
    status: int
    payload: Any = None  # the verified JSON; None if the signature did not verify

    @property
    def verified(self) -> bool:
        """True if the signature verified with the receiver's secret."""
        return self.payload is not None


@dataclass(frozen=True)
class TLSFiles:
    """A certificate for `localhost` signed by a test CA, and that CA for clients."""

    certfile: Path
    keyfile: Path
    cafile: Path

    def client_context(self) -> ssl.SSLContext:
        """An SSL context trusting only the test CA."""
        return ssl.create_default_context(cafile=str(self.cafile))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
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
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_tls_files(directory: Path, hostname: str = "localhost") -> TLSFiles:
    """Write a test CA and a certificate for `hostname` it signed into `directory`."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("Usher test CA", ca_key, None, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(hostname, key, ("Usher test CA", ca_key), ca=False)
    files = TLSFiles(directory / "cert.pem", directory / "key.pem", directory / "ca.pem")
    files.cafile.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.keyfile.write_bytes(_key_pem(key))
    return files


@dataclass
class Receiver:
    """The receiving end of webhooks; `url` is where to point an endpoint."""

    secret: str = ""
    tls: TLSFiles | None = None
    host: str = "127.0.0.1"
    requests: list[Request] = field(default_factory=list)
    # Server names clients asked for in the TLS handshake (SNI).
    tls_names: list[str | None] = field(default_factory=list)
    port: int = 0
    _answers: deque[int] = field(default_factory=deque)
    _holding: asyncio.Event | None = None
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The receiver's URL, by IP address (plain http) or by `localhost` (with TLS)."""
        if self.tls is not None:
            return f"https://localhost:{self.port}/hooks"
        return f"http://{self.host}:{self.port}/hooks"

    @property
    def accepted(self) -> list[Request]:
        """Requests that verified and were answered 2xx."""
        return [r for r in self.requests if r.verified and 200 <= r.status < 300]

    def answer(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (then 200 again)."""
        self._answers.extend(statuses)

    def hold(self) -> None:
        """Keep requests waiting for an answer until `release()` (or `stop()`)."""
        self._holding = asyncio.Event()

    def release(self) -> None:
        """Let held requests be answered."""
        if self._holding is not None:
            self._holding.set()
            self._holding = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            payload = None
        status = 401 if payload is None else (self._answers.popleft() if self._answers else 200)
        if self._holding is not None:
            await self._holding.wait()
        self.requests.append(Request(headers, body, status, payload))
        extra = [(b"location", b"http://127.0.0.1:9/elsewhere")] if 300 <= status < 400 else []
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": f"answer {status}".encode()})

    def _socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # The same port again right after a stop, past connections in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        return sock

    async def start(self) -> Receiver:
        """Listen (on a free port the first time, on the same port after a stop)."""
        assert self._task is None, "already started"
        sock = self._socket()
        config = uvicorn.Config(
            self,
            lifespan="off",
            log_config=None,
            access_log=False,
            http="h11",
            ws="none",
            ssl_certfile=str(self.tls.certfile) if self.tls else None,
            ssl_keyfile=str(self.tls.keyfile) if self.tls else None,
        )
        config.load()
        if config.ssl is not None:
            config.ssl.sni_callback = self._sni
        self._server = uvicorn.Server(config)
        # The socket already listens: connections wait in its backlog while uvicorn starts.
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        return self

    def _sni(self, _: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
        self.tls_names.append(name)

    async def stop(self) -> None:
        """Stop listening; connections are refused until `start()` again."""
        self.release()
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = self._task = None
