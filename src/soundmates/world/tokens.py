"""Signed access tokens of the local server: never stored, so they stay valid across restarts on one world."""

from __future__ import annotations

import hashlib
import hmac
import secrets


class TokenSigner:
    """Issues and checks ``BQ<nonce>.<hmac>`` tokens keyed by the world's seed."""

    def __init__(self, seed: int):
        self._key = hashlib.sha256(f"soundmates-world-{seed}".encode()).digest()

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._key, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"BQ{nonce}.{self._sign(nonce)}"

    def valid(self, token: str) -> bool:
        if not token.startswith("BQ") or "." not in token:
            return False
        nonce, _, sig = token[2:].rpartition(".")
        return hmac.compare_digest(sig, self._sign(nonce))
