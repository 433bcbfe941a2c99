"""Artist details for a user's artist ids: from the shared cache, else fetched once across workers (batched, dev-mode fallbacks)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from soundmates.profiles import Artist

from .errors import ApiRefused, MalformedResponse, NotFound
from .parsing import artist_from
from .raw_store import ArtistCache
from .refs import quote_user_id

log = logging.getLogger(__name__)

ARTIST_BATCH = 50  # the most /artists?ids= allows
# Rounds of waiting for artists another worker is fetching before a worker fetches them itself.
MAX_ARTIST_ROUNDS = 4


class ArtistFetcher:
    """Fills and reads the artist cache for every worker of one ingestor (thread-safe)."""

    def __init__(self, client: Any, cache: ArtistCache, settings: Any):
        self.client = client
        self.cache = cache
        self.settings = settings
        self.fetched = 0  # artists fetched from the API by this fetcher (found or not)
        self._lock = threading.Lock()  # the cache and the pending fetches
        self._pending: dict[str, threading.Event] = {}  # artist id -> set once its fetching worker is done
        # Development mode refuses /artists?ids= (and maybe /artists/{id}): learn it once per run.
        self._batch_refused = False
        self._single_refused = False

    def details(self, artist_names: dict[str, str]) -> dict[str, Artist]:
        """The artists of one user (``artist_names``: id -> name from the tracks); those not cached are fetched once,
        whichever worker needs them first."""
        for round_ in range(MAX_ARTIST_ROUNDS + 1):
            mine, theirs = self._claim(list(artist_names), force=round_ == MAX_ARTIST_ROUNDS)
            try:
                self._fetch(mine)
            finally:
                self._release(mine)
            if not theirs:
                break
            for done in theirs:  # a fetch is one bounded call per 50 ids: so is this wait
                done.wait(self.settings.spotify_deadline_s * (self.settings.spotify_max_retries + 1))
        return {aid: artist_from(aid, self.cache.get(aid), name) for aid, name in artist_names.items()}

    def _remember(self, found: Mapping[str, dict | None]) -> None:
        with self._lock:
            self.cache.add(found)
            self.fetched += len(found)

    def _claim(self, ids: list[str], *, force: bool) -> tuple[list[str], set[threading.Event]]:
        """(uncached ids this worker fetches, the events of those another worker is fetching)."""
        mine, theirs = [], set()
        with self._lock:
            if any(aid not in self.cache for aid in ids):
                self.cache.refresh()  # another run (a parallel batch) may have fetched them meanwhile
            for aid in ids:
                if aid in self.cache:
                    continue
                pending = self._pending.get(aid)
                if pending is not None and not force:
                    theirs.add(pending)
                    continue
                mine.append(aid)
            done = threading.Event()
            for aid in mine:
                self._pending.setdefault(aid, done)
        return mine, theirs

    def _release(self, ids: list[str]) -> None:
        with self._lock:
            for aid in ids:
                done = self._pending.pop(aid, None)
                if done is not None:
                    done.set()

    def _fetch(self, missing: list[str]) -> None:
        for start in range(0, len(missing), ARTIST_BATCH):
            batch = missing[start : start + ARTIST_BATCH]
            if not self._batch_refused:
                try:
                    answer = self.client.get("artists", "artists", {"ids": ",".join(batch)})
                except ApiRefused:
                    self._batch_refused = True
                    log.info("/artists?ids= refused (development mode): falling back to /artists/{id}")
                else:
                    found = answer.get("artists")
                    if not isinstance(found, list) or len(found) != len(batch):
                        raise MalformedResponse("malformed data: /artists did not answer one entry per id", endpoint="artists")
                    self._remember({aid: (obj if isinstance(obj, dict) else None) for aid, obj in zip(batch, found)})
                    continue
            self._one_by_one(batch)

    def _one_by_one(self, ids: list[str]) -> None:
        for aid in ids:
            if self._single_refused:
                return  # details stay unknown; names come from the tracks
            try:
                obj = self.client.get("artist", f"artists/{quote_user_id(aid)}")
            except ApiRefused:
                self._single_refused = True
                return
            except NotFound:
                obj = None
            self._remember({aid: obj})
