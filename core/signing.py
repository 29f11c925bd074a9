"""Signed web identity: the retailer's site signs the signed-in customer's handle with a per-site secret
(HMAC-SHA256, hex), as chat widgets do; a valid signature makes the message's identity strong."""

from __future__ import annotations

import hashlib
import hmac


def sign_identity(secret: str, handle: str) -> str:
    """The signature the site puts beside the handle."""
    return hmac.new(secret.encode(), handle.strip().encode(), hashlib.sha256).hexdigest()


def identity_is_signed(secret: str, handle: str, signature: str) -> bool:
    """Whether `signature` is the site's signature of `handle` (constant-time comparison)."""
    return hmac.compare_digest(sign_identity(secret, handle).encode(), signature.strip().lower().encode())
