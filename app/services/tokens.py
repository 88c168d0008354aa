"""Invitation tokens, derived rather than stored.

`token = "inv_" + base64url(invitation_id ‖ version ‖ HMAC-SHA256(secret, id ‖ version)[:16])`

The database holds nothing that opens an invitation; the worker rebuilds the link when
it sends; bumping the version rotates the token. The first secret signs and every
configured secret verifies, so a secret can be rotated without breaking live links.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import uuid
from collections.abc import Sequence

PREFIX = "inv_"
_MAC_BYTES = 16  # 128 bits
_DOMAIN = b"usher/invitation-token/v1"
_RAW_LENGTH = 16 + 4 + _MAC_BYTES  # id, version, MAC: 36 bytes, a multiple of 3
_BODY_LENGTH = _RAW_LENGTH * 4 // 3  # so base64 needs no padding: 48 characters
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def _mac(secret: str, invitation_id: uuid.UUID, version: int) -> bytes:
    message = _DOMAIN + invitation_id.bytes + struct.pack(">I", version)
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()[:_MAC_BYTES]


def make_token(secret: str, invitation_id: uuid.UUID, version: int) -> str:
    """The token for this invitation at this version, signed with `secret`."""
    raw = invitation_id.bytes + struct.pack(">I", version) + _mac(secret, invitation_id, version)
    return PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_body(body: str) -> bytes | None:
    """The bytes of a token body in its one canonical spelling, else None.

    base64 decoders forgive a lot (padding, `+` and `/`, characters they skip), which would
    let one token be written many ways; only what `make_token` writes is read.
    """
    if len(body) != _BODY_LENGTH or not _ALPHABET.fullmatch(body):
        return None
    try:
        raw = base64.urlsafe_b64decode(body)
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != body:
        return None
    return raw


def read_token(secrets: Sequence[str], token: str) -> tuple[uuid.UUID, int] | None:
    """(invitation id, version) if `token` is exactly as signed by one of `secrets`, else None."""
    if not token.startswith(PREFIX):
        return None
    raw = _decode_body(token[len(PREFIX) :])
    if raw is None:
        return None
    invitation_id = uuid.UUID(bytes=raw[:16])
    (version,) = struct.unpack(">I", raw[16:20])
    given = raw[20:]
    ok = False
    for secret in secrets:
        # Compare against every secret so the time taken does not say which one matched.
        ok |= hmac.compare_digest(given, _mac(secret, invitation_id, version))
    return (invitation_id, version) if ok else None
