"""The recommend stage's collaborators (store, index, served embedder, encoder, ingest) and their caches.

Nothing heavy is imported at module level: the store, the embedder (torch), the encoder
(sentence-transformers) and Annoy load on first use and stay loaded for the life of the object
(the dashboard keeps one per process). The rooms of this stage (``query``, ``privacy``,
``status``, ``detail``) read everything through a :class:`RecommendContext`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from soundmates.config import Settings, get_settings
from soundmates.profiles import Profile, ProfileRepository
from soundmates.recommend.models import EmbedderInfo, InvalidReference

log = logging.getLogger("soundmates.recommend")

Progress = Callable[[str], Any]
# Live (not stored) users kept in memory so match_detail can explain their matches afterwards.
LIVE_CACHE = 32
TASTE_CACHE = 512
TEXT_MEMO = 200_000
RAW_FEATURES_VERSION = "raw-features"  # the model stage's fallback embedder (no model registered)


def say(progress: Progress | None, message: str) -> None:
    log.info("%s", message)
    if progress is not None:
        try:
            progress(message)
        except Exception:  # a broken progress display must not break the recommendation
            log.debug("progress callback failed", exc_info=True)


def embedder_info(emb) -> EmbedderInfo:
    """Name and version of a served embedder (``name`` is the model stage's; older embedders lack it)."""
    version = str(getattr(emb, "version", "") or "unknown")
    name = getattr(emb, "name", None)
    if not name:
        name = "raw_cosine" if version == RAW_FEATURES_VERSION else "two_tower"
    return EmbedderInfo(name=str(name), version=version)


def query_is_candidate(emb) -> bool:
    """True when the embedder's query side is its candidate side (one space: index vectors can be reused)."""
    cls = type(emb)
    query, candidate = getattr(cls, "embed_query", None), getattr(cls, "embed", None)
    if query is None or query is candidate:
        return True
    shared = getattr(emb, "shared_towers", None)
    if shared is None:
        meta = getattr(emb, "meta", None)
        shared = ((meta or {}).get("config") or {}).get("shared_towers") if isinstance(meta, Mapping) else None
    return bool(shared)


class RecommendContext:
    """Settings, index, profiles and the lazily loaded store, embedder, encoder and ingestors."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store=None,
        embedder=None,
        encoder=None,
        ingestor_factory: Callable[..., Any] | None = None,
    ):
        from soundmates.index import UserIndex

        self.settings = settings or get_settings()
        self.index = UserIndex(self.settings)
        self.profiles = ProfileRepository(self.settings.profiles_dir)
        self._store = store
        self._embedder = embedder
        self._embedder_injected = embedder is not None
        self._encoder = encoder
        # ``factory(settings, user_data_dir=None)`` -> an object with ``ingest_user`` and ``delete_user_data``.
        self._ingestor_factory = ingestor_factory
        self._lock = threading.RLock()
        self.live: OrderedDict[str, Any] = OrderedDict()  # user_id -> query.Subject
        # One ingestor per mode, kept: building one re-reads the whole shared artist cache.
        self._ingestors: dict[bool, Any] = {}
        self.ingest_lock = threading.Lock()
        self._live_tmp: Path | None = None
        # Stored users' parsed profiles and taste counts, keyed by the profile file's stat.
        self._tastes: OrderedDict[str, tuple[tuple | None, Profile, Any]] = OrderedDict()
        self._text_memo: dict[str, np.ndarray] = {}
        self.calibration: dict[tuple, np.ndarray] = {}  # scores.py: served pair scores per index and model

    # ------------------------------------------------------------------ collaborators
    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @property
    def store(self):
        if self._store is None:
            from soundmates.store import get_store

            self._store = get_store(self.settings)
        return self._store

    def embedder(self, want_version: str | None = None):
        """The embedder of ``want_version`` (the index's, so a query lands in the index's space), else the
        served one. Loaded once and kept until the index moves to another model, or the served embedder
        becomes a feedback-tuned one on that same candidate side (``want_version`` is its base)."""
        with self._lock:
            if self._embedder_injected or (
                self._embedder is not None and (want_version is None or self._still_serves(self._embedder, want_version))
            ):
                return self._embedder
            self._embedder = self._load_embedder(want_version)
            return self._embedder

    def _served_on(self, candidate: str) -> str | None:
        """The registry's served version when its candidate side is ``candidate`` (a feedback-tuned one on that
        base, or that version itself); None otherwise or when the registry cannot say (two small files read)."""
        try:
            from soundmates.model.registry import ModelRegistry

            reg = ModelRegistry.for_settings(self.settings)
            served = reg.served_version()
            return served if served is not None and reg.candidate_version(served) == candidate else None
        except Exception:  # the loaded embedder stays; loading reports a real problem
            log.debug("model registry unreadable", exc_info=True)
            return None

    def _still_serves(self, emb, want_version: str) -> bool:
        from soundmates.model.embedder import candidate_version

        if want_version not in (emb.version, candidate_version(emb)):
            return False
        served = self._served_on(want_version)
        return served is None or served == emb.version

    def _load_embedder(self, want_version: str | None):
        from soundmates.model import embedder as model_embedder

        if want_version == RAW_FEATURES_VERSION and hasattr(model_embedder, "RawFeatureEmbedder"):
            return model_embedder.RawFeatureEmbedder()
        if want_version is not None:
            try:
                return model_embedder.get_embedder(self.settings, version=self._served_on(want_version) or want_version)
            except Exception as e:  # noqa: BLE001 - that model is gone: the served one, and recommend says so
                log.warning("model %s of the index cannot be loaded (%s): using the served model", want_version, e)
        return model_embedder.get_embedder(self.settings)

    @property
    def encoder(self):
        if self._encoder is None:
            from soundmates.features.encoder import TextEncoder

            self._encoder = TextEncoder(self.settings)
        return self._encoder

    def ingestor(self, *, store_results: bool):
        """The ingest stage's ingestor; without consent it keeps everything personal in a private scratch
        directory (emptied after each request), while the shared artist cache (public catalogue data) stays warm."""
        ing = self._ingestors.get(store_results)
        if ing is not None:
            return ing
        scratch = None if store_results else self._scratch_dir()
        if self._ingestor_factory is not None:
            ing = self._ingestor_factory(self.settings, user_data_dir=scratch)
        else:
            from soundmates.spotify.ingest import Ingestor

            ing = Ingestor(self.settings, user_data_dir=scratch)
        self._ingestors[store_results] = ing
        return ing

    def _scratch_dir(self) -> Path:
        if self._live_tmp is None:
            self._live_tmp = Path(tempfile.mkdtemp(prefix="soundmates-live-"))
            weakref.finalize(self, shutil.rmtree, str(self._live_tmp), True)
        return self._live_tmp

    # ------------------------------------------------------------------ references
    @staticmethod
    def resolve(ref: str) -> str:
        """The user id a reference points at; InvalidReference (with the accepted forms) otherwise."""
        from soundmates.spotify.refs import InvalidProfileRef, parse_profile_ref

        try:
            return parse_profile_ref(ref)
        except InvalidProfileRef as e:
            raise InvalidReference(str(ref), getattr(e, "why", str(e))) from None

    # ------------------------------------------------------------------ caches
    def remember_live(self, subject) -> None:
        with self._lock:
            self.live[subject.user_id] = subject
            self.live.move_to_end(subject.user_id)
            while len(self.live) > LIVE_CACHE:
                self.live.popitem(last=False)

    def forget(self, user_id: str) -> None:
        with self._lock:
            self.live.pop(user_id, None)
            self._tastes.pop(user_id, None)

    def stored_taste(self, user_id: str):
        """(Profile, Taste) of a stored user, or (None, None); parsed once per profile file version."""
        from soundmates.index._files import stat_key
        from soundmates.recommend import explain as X

        key = stat_key(self.profiles.path(user_id))
        if key is None:
            return None, None
        with self._lock:
            hit = self._tastes.get(user_id)
            if hit is not None and hit[0] == key:
                self._tastes.move_to_end(user_id)
                return hit[1], hit[2]
        prof = self.profiles.load(user_id)
        if prof is None:
            return None, None
        taste = X.taste_of(prof)
        with self._lock:
            self._tastes[user_id] = (key, prof, taste)
            while len(self._tastes) > TASTE_CACHE:
                self._tastes.popitem(last=False)
        return prof, taste

    def text_vectors(self) -> Callable[[list[str]], Mapping[str, np.ndarray]] | None:
        """Cached text vectors only (the features stage encoded every genre and top artist): never loads a model."""
        try:
            enc = self.encoder
            cache, model_id = enc.cache, enc.model_id
        except Exception:  # noqa: BLE001 - no encoder configured: explanations fall back to genre overlap
            return None

        memo = self._text_memo

        def lookup(texts: list[str]) -> Mapping[str, np.ndarray]:
            out = {t: memo[t] for t in texts if t in memo}
            todo = [t for t in texts if t not in out]
            if todo:
                try:
                    found = cache.get_many(model_id, todo)
                except Exception:
                    log.debug("text cache unavailable", exc_info=True)
                    found = {}
                if len(memo) < TEXT_MEMO:
                    memo.update(found)
                out.update(found)
            return out

        return lookup
