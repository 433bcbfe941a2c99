"""The Recommender: index, model, features, store and ingest tied together for one user.

Nothing heavy is imported at module level: the store, the embedder (torch), the encoder
(sentence-transformers) and Annoy load on first use, and stay loaded for the life of the
object (the dashboard keeps one per process).
"""

from __future__ import annotations

import logging
import math
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
from soundmates.keys import storage_key, storage_names
from soundmates.profiles import Profile, ProfileRepository
from soundmates.recommend.models import (
    InboxEntry,
    InvalidReference,
    MapData,
    Match,
    MatchDetail,
    NotEnoughData,
    NothingBuiltYet,
    PipelineStatus,
    RecommendError,
    RecommendResult,
    SpotifyRefused,
    UnknownUser,
)

log = logging.getLogger("soundmates.recommend")

Progress = Callable[[str], Any]
MAX_K = 100
# Live (not stored) users kept in memory so match_detail can explain their matches afterwards.
LIVE_CACHE = 32
TASTE_CACHE = 512
TEXT_MEMO = 200_000
MAP_MAX_USERS = 5000


def _say(progress: Progress | None, message: str) -> None:
    log.info("%s", message)
    if progress is not None:
        try:
            progress(message)
        except Exception:  # a broken progress display must not break the recommendation
            log.debug("progress callback failed", exc_info=True)


def _profile_url(user_id: str) -> str:
    from soundmates.spotify.refs import profile_url

    return profile_url(user_id)


class _Subject:
    """The user we recommend for: their vector, profile (if any) and where they came from."""

    def __init__(self, user_id: str, vector: np.ndarray, profile: Profile | None, known: bool, model_version: str | None):
        self.user_id = user_id
        self.vector = vector
        self.profile = profile
        self.known = known
        self.model_version = model_version


class Recommender:
    """See ARCHITECTURE.md ("Recommend"). Collaborators may be injected (tests, benchmarks)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store=None,
        embedder=None,
        encoder=None,
        ingestor_factory: Callable[[Settings], Any] | None = None,
    ):
        from soundmates.index import UserIndex

        self.settings = settings or get_settings()
        self.index = UserIndex(self.settings)
        self.profiles = ProfileRepository(self.settings.profiles_dir)
        self._store = store
        self._embedder = embedder
        self._embedder_injected = embedder is not None
        self._encoder = encoder
        self._ingestor_factory = ingestor_factory
        self._lock = threading.RLock()
        self._live: OrderedDict[str, _Subject] = OrderedDict()
        # One ingestor per mode, kept: building one re-reads the whole shared artist cache.
        self._ingestors: dict[bool, Any] = {}
        self._ingest_lock = threading.Lock()
        self._live_tmp: Path | None = None
        # Stored users' parsed profiles and taste counts, keyed by the profile file's stat.
        self._tastes: OrderedDict[str, tuple[tuple | None, Profile, Any]] = OrderedDict()
        self._text_memo: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ collaborators
    @property
    def store(self):
        if self._store is None:
            from soundmates.store import get_store

            self._store = get_store(self.settings)
        return self._store

    def embedder(self, want_version: str | None = None):
        """The embedder of ``want_version`` (the index's model, so a query lands in the index's space),
        else the current one. Loaded once and kept until the index moves to another model."""
        with self._lock:
            if self._embedder_injected or (
                self._embedder is not None and (want_version is None or self._embedder.version == want_version)
            ):
                return self._embedder
            from soundmates.model.embedder import RAW_FEATURES_VERSION, RawFeatureEmbedder, get_embedder

            if want_version == RAW_FEATURES_VERSION:
                emb = RawFeatureEmbedder()
            else:
                try:
                    emb = get_embedder(self.settings, version=want_version)
                except Exception as e:  # noqa: BLE001 - that model is gone: use the current one, and say so later
                    log.warning("model %s of the index cannot be loaded (%s): using the current model", want_version, e)
                    emb = get_embedder(self.settings)
            self._embedder = emb
            return emb

    @property
    def encoder(self):
        if self._encoder is None:
            from soundmates.features.encoder import TextEncoder

            self._encoder = TextEncoder(self.settings)
        return self._encoder

    def _ingestor(self, *, store_results: bool):
        ing = self._ingestors.get(store_results)
        if ing is not None:
            return ing
        if self._ingestor_factory is not None:
            ing = self._ingestor_factory(self.settings)
        else:
            from soundmates.spotify.ingest import Ingestor

            ing = Ingestor(self.settings)
        if not store_results:
            # Without consent nothing personal is written: the profile and the user's raw pages go to a
            # private scratch directory, emptied after each request (the shared artist cache is public
            # catalogue data and stays warm).
            if self._live_tmp is None:
                self._live_tmp = Path(tempfile.mkdtemp(prefix="soundmates-live-"))
                weakref.finalize(self, shutil.rmtree, str(self._live_tmp), True)
            tmp = self._live_tmp
            ing.repo = ProfileRepository(tmp / "profiles")
            ing._user_dir = lambda uid, _tmp=tmp: _tmp / "users" / storage_key(uid)
        self._ingestors[store_results] = ing
        return ing

    def _forget_live_files(self, user_id: str) -> None:
        if self._live_tmp is not None:
            shutil.rmtree(self._live_tmp / "users" / storage_key(user_id), ignore_errors=True)
            ProfileRepository(self._live_tmp / "profiles").delete(user_id)

    # ------------------------------------------------------------------ references
    @staticmethod
    def resolve(ref: str) -> str:
        """The user id a reference points at; InvalidReference (with the accepted forms) otherwise."""
        from soundmates.spotify.refs import InvalidProfileRef, parse_profile_ref

        try:
            return parse_profile_ref(ref)
        except InvalidProfileRef as e:
            raise InvalidReference(str(ref), getattr(e, "why", str(e))) from None

    # ------------------------------------------------------------------ the query user
    def _embed_frame(self, frame, want_version: str | None) -> tuple[np.ndarray, str]:
        emb = self.embedder(want_version)
        # The asking user goes through the query tower (the index holds candidate-tower vectors).
        embed = getattr(emb, "embed_query", None) or emb.embed
        vec = np.asarray(embed(frame), dtype=np.float32)[0]
        return vec, emb.version

    def _towers_shared(self, model_version: str | None) -> bool:
        """True unless the index's model has separate query and candidate towers (registry metadata, no torch)."""
        if not model_version or self._embedder_injected:
            return True
        try:
            from soundmates.model.registry import ModelRegistry

            meta = ModelRegistry(self.settings.models_dir).meta(model_version)
        except Exception:  # noqa: BLE001 - raw features, or no registry entry: one space for both sides
            return True
        return bool((meta.get("config") or {}).get("shared_towers", True))

    def _stored_features(self, user_id: str):
        from soundmates.store import StoreError

        try:
            frame = self.store.read("user_features", keys=[user_id])
        except StoreError:
            return None
        if "view" in frame.columns:
            frame = frame[frame["view"] == "full"]
        return frame.reset_index(drop=True) if len(frame) else None

    def _featurize(self, profile: Profile):
        from soundmates.features.scaler import ScalerError
        from soundmates.features.taste import Rejected
        from soundmates.pipelines.features import featurize_profile

        try:
            frame, _ = featurize_profile(profile, self.encoder, self.settings)
        except Rejected as e:
            raise NotEnoughData(profile.user_id, e.reason) from None
        except ScalerError as e:
            raise NothingBuiltYet("feature scaler", "run 'soundmates features build' first") from e
        return frame

    def _ingest_live(self, user_id: str, *, store_results: bool, progress: Progress | None) -> Profile:
        from soundmates.spotify.errors import ApiRefused, MissingCredentials, SpotifyError, UserNotFound
        from soundmates.spotify.ingest import NoPublicPlaylists

        _say(progress, f"Fetching {user_id}'s public playlists from Spotify…")
        try:
            # One ingest at a time per Recommender: the ingestor's counters and caches are not thread-safe.
            with self._ingest_lock:
                ing = self._ingestor(store_results=store_results)
                try:
                    return ing.ingest_user(user_id, refresh=not store_results)
                finally:
                    if not store_results:
                        self._forget_live_files(user_id)
        except UserNotFound as e:
            raise UnknownUser(user_id, e.reason) from None
        except NoPublicPlaylists as e:
            raise NotEnoughData(user_id, e.reason) from None
        except ApiRefused as e:
            raise SpotifyRefused(user_id, e.reason) from None
        except MissingCredentials as e:
            raise RecommendError(f"cannot ask Spotify about {user_id!r}: {e.reason}") from None
        except SpotifyError as e:
            raise RecommendError(f"Spotify could not be read for {user_id!r}: {e.reason}") from None

    def _subject(self, user_id: str, *, consent: bool, progress: Progress | None, index_model: str | None) -> _Subject:
        with self._lock:
            cached = self._live.get(user_id)
        vec = self.index.vector(user_id)
        if vec is not None and self._towers_shared(index_model):
            _say(progress, f"Found {user_id} in the index")
            return _Subject(user_id, vec, self.profiles.load(user_id), True, index_model)
        if cached is not None and not consent and cached.model_version == index_model:
            return cached
        profile = self.profiles.load(user_id)
        known = profile is not None
        if profile is not None:
            frame = self._stored_features(user_id)
            if frame is None:
                _say(progress, "Computing taste features…")
                frame = self._featurize(profile)
        else:
            profile = self._ingest_live(user_id, store_results=consent, progress=progress)
            _say(progress, "Computing taste features…")
            frame = self._featurize(profile)
        _say(progress, "Embedding your taste…")
        vec, version = self._embed_frame(frame, index_model)
        subject = _Subject(user_id, vec, profile, known, version)
        if not known:
            with self._lock:
                self._live[user_id] = subject
                self._live.move_to_end(user_id)
                while len(self._live) > LIVE_CACHE:
                    self._live.popitem(last=False)
        return subject

    # ------------------------------------------------------------------ recommend
    def _stored_taste(self, user_id: str):
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

    def _text_vectors(self) -> Callable[[list[str]], Mapping[str, np.ndarray]] | None:
        """Cached text vectors only (the features stage encoded every genre and top artist): never loads a model."""
        try:
            enc = self.encoder
            cache, model_id = enc.cache, enc.model_id
        except Exception:  # no encoder configured: explanations fall back to genre overlap
            return None

        memo = self._text_memo

        def lookup(texts: list[str]) -> Mapping[str, np.ndarray]:
            out = {t: memo[t] for t in texts if t in memo}
            todo = [t for t in texts if t not in out]
            if todo:
                try:
                    found = cache.get_many(model_id, todo)
                except Exception:  # noqa: BLE001 - explanations fall back to genre overlap
                    log.debug("text cache unavailable", exc_info=True)
                    found = {}
                if len(memo) < TEXT_MEMO:
                    memo.update(found)
                out.update(found)
            return out

        return lookup

    def recommend(
        self,
        ref: str,
        k: int = 10,
        *,
        consent: bool = False,
        diversity: float = 0.0,
        progress: Progress | None = None,
    ) -> RecommendResult:
        """Top-k users closest to ``ref``'s taste (never ``ref`` themselves), with reasons.

        ``consent``: store an unknown user's profile and queue them for the pipeline (they
        become findable by others at once, via the fresh buffer). ``diversity`` in [0, 1]:
        0 = pure similarity order, higher = fewer near-copies in the list (MMR).
        ``progress(message)`` is called with a short text at each step.
        """
        from soundmates.index import IndexCorrupt, IndexNotBuilt
        from soundmates.recommend import explain as X

        if not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValueError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
        if not 0.0 <= float(diversity) <= 1.0:
            raise ValueError(f"diversity must be between 0 and 1, got {diversity!r}")
        user_id = self.resolve(ref)
        try:
            manifest = self.index.manifest()
        except IndexCorrupt as e:
            raise NothingBuiltYet("usable index", f"every built version failed its checksum ({e}); run 'soundmates index build'") from None
        if manifest is None and len(self.index.fresh) == 0:
            raise NothingBuiltYet()
        index_model = (manifest or {}).get("model_version")

        subject = self._subject(user_id, consent=consent, progress=progress, index_model=index_model)
        warnings: list[str] = []
        if subject.model_version and index_model and subject.model_version != index_model:
            warnings.append(
                f"your profile was embedded by model {subject.model_version}, the index was built with "
                f"{index_model}: matches may be off until 'soundmates index build' runs"
            )
        stored = False
        if consent and not subject.known:
            stored = self._store_consented(subject, ref)
        n_users = (manifest or {}).get("count", 0) + len(self.index.fresh)
        _say(progress, f"Searching {n_users:,} users…")
        want = k if diversity == 0 else min(MAX_K * 3, max(3 * k, k + 20))
        try:
            found = self.index.search(subject.vector, want, exclude={user_id})
        except IndexNotBuilt:
            raise NothingBuiltYet() from None
        except ValueError as e:  # dimension mismatch: the index was built by another model
            raise NothingBuiltYet("index for the current model", f"{e}; run 'soundmates index build'") from None
        warnings += found.warnings
        hits = found.hits
        if diversity > 0 and len(hits) > 1:
            vecs = []
            for h in hits:
                v = self.index.vector(h.user_id)
                vecs.append(v if v is not None else subject.vector)
            order = X.mmr_order([h.user_id for h in hits], [h.score for h in hits], np.vstack(vecs), k, float(diversity))
            hits = [hits[i] for i in order]
        hits = hits[:k]

        _say(progress, f"Explaining {len(hits)} matches…")
        you = self._stored_taste(user_id)[1] if subject.known else None
        if you is None and subject.profile is not None:
            you = X.taste_of(subject.profile)
        if you is not None:
            warnings += X.thin_profile_warnings(you)
        else:
            warnings.append("your stored profile is missing: matches come without reasons")
        text_vectors = self._text_vectors()
        matches: list[Match] = []
        missing_profiles = 0
        for h in hits:
            prof, them = self._stored_taste(h.user_id)
            m = Match(
                user_id=h.user_id,
                display_name=prof.display_name if prof else None,
                score=round(h.score, 4),
                percentile=self.index.percentile(h.score),
                profile_url=_profile_url(h.user_id),
                source=h.source,
            )
            if prof is None:
                missing_profiles += 1
            elif you is not None:
                m.shared_genres = X.shared_genres(you, them)
                m.shared_artists = X.shared_artists(you, them)
                m.shared_tracks = X.shared_tracks(you, them)
                m.closest_artists = X.closest_artists(you, them, text_vectors)
                m.era_overlap = X.era_overlap(you, them)
            matches.append(m)
        if missing_profiles:
            warnings.append(f"{missing_profiles} match(es) have no stored profile: shown without reasons")
        if not matches:
            warnings.append("no other users to match with yet")
        return RecommendResult(
            user_id=user_id,
            display_name=subject.profile.display_name if subject.profile else None,
            matches=matches,
            warnings=list(dict.fromkeys(warnings)),
            model_version=subject.model_version or index_model,
            index_version=found.version,
            known=subject.known,
            stored=stored,
        )

    def _store_consented(self, subject: _Subject, ref: str) -> bool:
        """Consent given for a live user: keep the profile, make them findable now, queue the pipeline."""
        from soundmates.store import inbox

        self.profiles.save(subject.profile)
        self.index.restore(subject.user_id)
        self.index.add_fresh(subject.user_id, subject.vector, subject.model_version)
        inbox.add_request(self.store, subject.user_id, ref, source="recommend")
        with self._lock:
            self._live.pop(subject.user_id, None)
        return True

    # ------------------------------------------------------------------ add / remove / inbox
    @staticmethod
    def _entry(e) -> InboxEntry:
        d = e.to_dict() if hasattr(e, "to_dict") else dict(e)
        return InboxEntry(**{k: (str(v) if v is not None and k in ("requested_at", "updated_at") else v) for k, v in d.items()
                             if k in InboxEntry.model_fields})

    def add(self, ref: str) -> InboxEntry:
        """Consent: queue the profile in the new-users inbox; the pipeline ingests and indexes it."""
        from soundmates.store import inbox

        user_id = self.resolve(ref)
        self.index.restore(user_id)  # asking to be added again lifts an earlier removal
        return self._entry(inbox.add_request(self.store, user_id, str(ref).strip(), source="dashboard"))

    def inbox_status(self, ref: str) -> InboxEntry | None:
        from soundmates.store import inbox

        entry = inbox.get(self.store, self.resolve(ref))
        return self._entry(entry) if entry is not None else None

    def remove(self, ref: str) -> dict:
        """Hide the user from every result at once (tombstone), then delete everything stored about them.

        Returns what was deleted. Every deletion is attempted even if one fails; a failure is raised
        afterwards (the tombstone already keeps them out of results).
        """
        user_id = self.resolve(ref)
        report: dict[str, Any] = {"user_id": user_id}
        errors: list[str] = []
        report["hidden_from_results"] = True
        self.index.remove(user_id)
        with self._lock:
            self._live.pop(user_id, None)
            self._tastes.pop(user_id, None)
        try:
            report["profile_deleted"] = self.profiles.delete(user_id)
        except OSError as e:
            errors.append(f"profile file: {e}")
        try:
            report["raw_responses_deleted"] = self._delete_raw(user_id)
        except OSError as e:
            errors.append(f"raw responses: {e}")
        try:
            from soundmates.spotify.connect import forget_account

            report["oauth_tokens_deleted"] = forget_account(self.settings, user_id)
        except OSError as e:
            errors.append(f"connected-account tokens: {e}")
        rows = 0
        groups: dict[str, int] = {}
        try:
            infos = self.store.groups()
        except Exception as e:  # noqa: BLE001 - reported below, the rest still runs
            infos = []
            errors.append(f"feature store: {e}")
        for g in infos:
            try:
                n = int(self.store.delete(g.name, [user_id], version=g.version) or 0)
            except Exception as e:  # noqa: BLE001
                errors.append(f"store group {g.name}: {e}")
                continue
            if n:
                groups[g.name] = n
                rows += n
        report["store_rows_deleted"] = rows
        report["store_groups"] = groups
        if errors:
            report["errors"] = errors
            raise RecommendError(
                f"{user_id!r} no longer appears in any result, but some stored data could not be deleted: "
                + "; ".join(errors)
            )
        return report

    def _delete_raw(self, user_id: str) -> bool:
        # The ingest stage keeps a user's raw pages in raw/users/<safe id>/ (spotify.ingest.Ingestor._user_dir).
        deleted = False
        for name in storage_names(user_id):  # the key, and a legacy name older files may have
            path = Path(self.settings.raw_dir) / "users" / name
            if path.exists():
                shutil.rmtree(path)
                deleted = True
        return deleted

    # ------------------------------------------------------------------ status, map, detail
    def pipeline_status(self) -> PipelineStatus:
        from soundmates.index import IndexCorrupt

        st = PipelineStatus()
        try:
            idx = self.index.status()
        except IndexCorrupt as e:
            idx = {}
            st.warnings.append(str(e))
        st.index_version = idx.get("version")
        st.index_size = int(idx.get("count") or 0)
        st.index_built_at = idx.get("built_at")
        st.index_age_s = idx.get("age_s")
        st.index_parameters = dict(idx.get("parameters") or {})
        st.fresh_buffer_size = int(idx.get("fresh") or 0)
        st.rebuild_due = bool(idx.get("rebuild_due"))
        st.tombstones = int(idx.get("tombstones") or 0)
        st.warnings += list(idx.get("warnings") or [])
        st.model_version = idx.get("model_version")
        try:
            infos = {g.name: g for g in self.store.groups()}
            st.users_stored = int(infos["user_profiles"].rows) if "user_profiles" in infos else len(self.profiles)
        except Exception as e:  # noqa: BLE001 - a status page shows what it can
            st.users_stored = len(self.profiles)
            st.warnings.append(f"feature store unavailable: {e}")
        try:
            from soundmates.store import inbox

            st.inbox_counts = inbox.counts(self.store)
        except Exception as e:  # noqa: BLE001
            st.warnings.append(f"inbox unavailable: {e}")
        model = self._model_info()
        st.model_version = model.get("version") or st.model_version
        st.model_metrics = model.get("metrics") or {}
        if model.get("version") and idx.get("model_version") and model["version"] != idx["model_version"]:
            st.warnings.append(
                f"the index was built with model {idx['model_version']}, the current model is {model['version']}: "
                "run 'soundmates index build'"
            )
            st.rebuild_due = True
        return st

    def _model_info(self) -> dict:
        """Current model version and its evaluation metrics, from the model registry (no torch import)."""
        try:
            from soundmates.model.registry import ModelRegistry

            reg = ModelRegistry(self.settings.models_dir)
            version = reg.current_version()
            if version is None:
                return {}
            return {"version": version, "metrics": dict(reg.meta(version).get("metrics") or {})}
        except Exception as e:  # noqa: BLE001 - a status page shows what it can
            log.warning("model registry unreadable: %s", e)
            return {}

    def _display_names(self, user_ids: list[str]) -> dict[str, str | None]:
        try:
            frame = self.store.read("user_profiles")
            names = dict(zip(frame["user_id"].astype(str), frame["display_name"]))
        except Exception:  # noqa: BLE001 - fall back to the profile files
            names = {}
        out = {}
        for u in user_ids:
            n = names.get(u)
            if n is None or (isinstance(n, float) and math.isnan(n)):
                n = None
            out[u] = n
        return out

    def user_map(self) -> MapData:
        """PCA 2-D projection of every user's embedding (at most MAP_MAX_USERS, evenly sampled)."""
        from soundmates.index import IndexCorrupt, IndexNotBuilt

        try:
            ids, vecs = self.index.all_vectors(limit=MAP_MAX_USERS)
            manifest = self.index.manifest() or {}
        except (IndexNotBuilt, IndexCorrupt):
            raise NothingBuiltYet() from None
        if not ids:
            raise NothingBuiltYet()
        if len(ids) < 3:
            xy = np.zeros((len(ids), 2))
            explained: list[float] = []
        else:
            from sklearn.decomposition import PCA

            pca = PCA(n_components=2, random_state=0)
            xy = pca.fit_transform(vecs)
            explained = [round(float(v), 4) for v in pca.explained_variance_ratio_]
        names = self._display_names(ids)
        return MapData(
            user_ids=ids,
            display_names=[names.get(u) for u in ids],
            x=[round(float(v), 5) for v in xy[:, 0]],
            y=[round(float(v), 5) for v in xy[:, 1]],
            explained_variance=explained,
            model_version=manifest.get("model_version"),
        )

    def _profile_and_vector(self, user_id: str) -> tuple[Profile | None, np.ndarray | None]:
        with self._lock:
            live = self._live.get(user_id)
        if live is not None:
            return live.profile, live.vector
        return self._stored_taste(user_id)[0], self.index.vector(user_id)

    def match_detail(self, user_id: str, other_id: str) -> MatchDetail:
        """Both sides' genre weights, release-year histograms, shared and closest artists of one match."""
        from soundmates.features import schema as S
        from soundmates.recommend import explain as X

        you_prof, you_vec = self._profile_and_vector(user_id)
        them_prof, them_vec = self._profile_and_vector(other_id)
        if you_prof is None:
            raise UnknownUser(user_id, "no stored or recently fetched profile")
        if them_prof is None:
            raise UnknownUser(other_id, "no stored profile")
        you, them = X.taste_of(you_prof), X.taste_of(them_prof)
        detail = MatchDetail(
            user_id=user_id,
            other_id=other_id,
            user_display_name=you_prof.display_name,
            other_display_name=them_prof.display_name,
            genre_overlap=X.genre_overlap(you, them),
            year_bins=list(S.YEAR_BINS),
            year_hist_user=[round(float(v), 4) for v in you.year_hist],
            year_hist_other=[round(float(v), 4) for v in them.year_hist],
            era_overlap=X.era_overlap(you, them),
            shared_artists=X.shared_artists(you, them, top=25),
            shared_tracks=X.shared_tracks(you, them, top=25),
            closest_artists=X.closest_artists(you, them, self._text_vectors(), top=10),
            warnings=X.thin_profile_warnings(you) + X.thin_profile_warnings(them, "their profile"),
        )
        if you_vec is not None and them_vec is not None and you_vec.shape == them_vec.shape:
            score = float(you_vec @ them_vec / (np.linalg.norm(you_vec) * np.linalg.norm(them_vec)))
            detail.score = round(score, 4)
            detail.percentile = self.index.percentile(score)
        return detail
