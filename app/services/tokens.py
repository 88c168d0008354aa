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
import struct
import uuid
from collections.abc import Sequence

PREFIX = "inv_"
_MAC_BYTES = 16  # 128 bits
_DOMAIN = b"usher/invitation-token/v1"


def _mac(secret: str, invitation_id: uuid.UUID, version: int) -> bytes:
    message = _DOMAIN + invitation_id.bytes + struct.pack(">I", version)
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()[:_MAC_BYTES]


def make_token(secret: str, invitation_id: uuid.UUID, version: int) -> str:
    """The token for this invitation at this version, signed with `secret`."""
    raw = invitation_id.bytes + struct.pack(">I", version) + _mac(secret, invitation_id, version)
    return PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def read_token(secrets: Sequence[str], token: str) -> tuple[uuid.UUID, int] | None:
    """(invitation id, version) if `token` was signed by one of `secrets`, else None."""
    if not token.startswith(PREFIX) or len(token) > 100:
        return None
    body = token[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 16 + 4 + _MAC_BYTES:
        return None
    invitation_id = uuid.UUID(bytes=raw[:16])
    (version,) = struct.unpack(">I", raw[16:20])
    given = raw[20:]
    ok = False
    for secret in secrets:
        # Compare against every secret so the time taken does not say which one matched.
        ok |= hmac.compare_digest(given, _mac(secret, invitation_id, version))
    return (invitation_id, version) if ok else None
