"""Connect's secrets on disk: pending authorizations (state → PKCE verifier) and each account's tokens, mode 0600.

Layout under ``settings.data_dir/oauth/``: ``pending/<state>.json`` (10 min, single use) and
``tokens/<safe user id>.json``; every write goes through :mod:`soundmates.atomic` with mode 0600
set before the rename, so a secret is never readable by others, not even half-written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spotipy.cache_handler import CacheHandler

from soundmates.atomic import atomic_write_text
from soundmates.config import Settings
from soundmates.keys import storage_key, user_id_from_key

from .connect_errors import StateExpired, StateMismatch

log = logging.getLogger(__name__)

PENDING_TTL_S = 600.0  # an authorization not finished within 10 minutes is dropped
_STATE_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_TOKEN_KEYS = ("access_token", "refresh_token", "expires_at", "expires_in", "scope", "token_type")


def write_private(path: Path, obj: Any) -> None:
    """Atomic JSON write, mode 0600 before the file gets its name (tokens and verifiers are secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write_text(path, json.dumps(obj), mode=0o600)


def oauth_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "oauth"


def forget_account(settings: Settings, user_id: str) -> bool:
    """Delete a connected account's stored tokens ("remove me" must leave no credentials behind)."""
    return TokenStore(oauth_dir(settings) / "tokens").delete(user_id)


@dataclass(frozen=True)
class PendingAuthorization:
    state: str
    code_verifier: str
    redirect_uri: str
    created_at: float


class PendingStore:
    """``state → (code verifier, redirect URI, created_at)`` on disk: survives a new dashboard session."""

    def __init__(self, root: Path, ttl_s: float = PENDING_TTL_S, clock=time.time):
        self.root = Path(root)
        self.ttl_s = ttl_s
        self._clock = clock

    def _path(self, state: str) -> Path:
        return self.root / f"{state}.json"

    def create(self, redirect_uri: str, code_verifier: str) -> PendingAuthorization:
        self.purge_expired()
        pending = PendingAuthorization(secrets.token_urlsafe(32), code_verifier, redirect_uri, self._clock())
        write_private(self._path(pending.state), pending.__dict__)
        return pending

    def take(self, state: str | None) -> PendingAuthorization:
        """The pending authorization of ``state``, removed (single use); StateMismatch / StateExpired otherwise."""
        if not state or not _STATE_RE.match(state):
            raise StateMismatch("the redirect carries no valid state: it did not come from this app's authorization; start again")
        path = self._path(state)
        claimed = path.with_name(f".taken-{state}-{secrets.token_hex(4)}.json")
        try:
            os.rename(path, claimed)  # atomic: of two redirects with the same state, one wins
        except FileNotFoundError:
            raise StateMismatch(
                "state mismatch: this authorization was not started here, or was already used; start again"
            ) from None
        try:
            data = json.loads(claimed.read_text(encoding="utf-8"))
            pending = PendingAuthorization(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise StateMismatch(f"the pending authorization for this state is unreadable ({exc}); start again") from None
        finally:
            claimed.unlink(missing_ok=True)
        if self._clock() - pending.created_at > self.ttl_s:
            raise StateExpired(f"the authorization took longer than {self.ttl_s / 60:g} minutes; start again")
        return pending

    def purge_expired(self) -> int:
        if not self.root.exists():
            return 0
        n = 0
        now = self._clock()
        for p in self.root.glob("*.json"):
            try:
                created = json.loads(p.read_text(encoding="utf-8"))["created_at"]
            except (OSError, ValueError, KeyError, TypeError):
                created = 0.0 if not p.name.startswith(".tmp-") else now
            if now - float(created) > self.ttl_s:
                p.unlink(missing_ok=True)
                n += 1
        return n


class TokenStore:
    """Tokens per account: ``oauth/tokens/<safe user id>.json``, mode 0600, atomic writes."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, user_id: str) -> Path:
        return self.root / f"{storage_key(user_id)}.json"

    def lock(self, user_id: str):
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return FileLock(str(self.path(user_id)) + ".lock")

    def load(self, user_id: str) -> dict | None:
        try:
            data = json.loads(self.path(user_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            log.warning("the stored tokens of one account are unreadable: that account must connect again")
            return None
        return data if isinstance(data, dict) and data.get("refresh_token") else None

    def save(self, user_id: str, token_info: dict) -> None:
        keep = {k: token_info[k] for k in _TOKEN_KEYS if k in token_info}
        write_private(self.path(user_id), keep | {"user_id": user_id})

    def delete(self, user_id: str) -> bool:
        try:
            self.path(user_id).unlink()
            return True
        except FileNotFoundError:
            return False

    def accounts(self) -> list[str]:
        if not self.root.exists():
            return []
        ids = []
        for p in self.root.glob("*.json"):
            if p.name.startswith(".tmp-"):
                continue
            uid = user_id_from_key(p.stem)
            if uid is None:  # a hashed key (a long id): the file says whose it is
                try:
                    uid = json.loads(p.read_text(encoding="utf-8")).get("user_id")
                except (OSError, ValueError, AttributeError):
                    uid = None
            if isinstance(uid, str):
                ids.append(uid)
        return sorted(ids)


class AccountCache(CacheHandler):
    """spotipy's token cache (its public CacheHandler interface) for one account: memory until the
    account is known, then the TokenStore.

    ``save_token_to_cache(None)`` (the client's answer to a 401) forgets the access token only:
    dropping the refresh token would lose the account.
    """

    def __init__(self, store: TokenStore, user_id: str | None = None, token_info: dict | None = None):
        self.store = store
        self.user_id = user_id
        self.token_info = token_info

    def get_cached_token(self):
        if self.user_id is not None:
            stored = self.store.load(self.user_id)
            if stored is not None:
                self.token_info = stored
        return self.token_info

    def save_token_to_cache(self, token_info):
        if token_info is None:
            current = self.get_cached_token()
            if current is not None:
                token_info = {**current, "expires_at": 0}  # the next call refreshes
            else:
                return
        self.token_info = dict(token_info)
        if self.user_id is not None:
            self.store.save(self.user_id, self.token_info)
