"""Features stage, end to end: canonical profiles -> taste features -> feature store.

``build_features`` is what ``soundmates features build``, the Airflow task and
the new-users pipeline call. It is incremental: a user is recomputed only when
``profile.content_hash()`` differs from the ``profile_hash`` stored in
``user_profiles`` (written last, so it means "everything of this user is
stored"). One bad user is reported in ``rejected``, never fails the batch.

The ``combined`` vector is standardised with a scaler fitted on every stored
user's full view. It is refitted (and then every user recomputed, so all rows
share one scaler) only when none exists, when the encoder changed, or with
``force``; otherwise new users are scaled with the persisted one, exactly like
``featurize_profile`` does at serving time.

Speed: unchanged users are skipped without loading their profile when the file's fingerprint
matches the one recorded last time (``features/fingerprints.py``) and the store still holds that
hash (only ``user_id, profile_hash`` are read from ``user_profiles``). Changed users are written in
batches of ``BATCH_USERS`` (Arrow end to end, one commit per group and batch). A refit featurizes in
batches too but writes everyone at the end in one commit per group (``features_write.RefitBatches``),
so no crash can leave rows scaled by a scaler that was never saved.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from soundmates.config import Settings, get_settings
from soundmates.features import schema as S
from soundmates.pipelines.features_write import RefitBatches, arrow_table, drop_stale_halves
from soundmates.profiles import AnyProfile, Profile, ProfileRepository


def _log(msg: str) -> None:
    print(f"features: {msg}", file=sys.stderr, flush=True)


def _feature_frame(rows: list[dict]) -> pd.DataFrame:
    cols = S.USER_FEATURES_KEYS + S.FEATURE_COLUMNS
    if not rows:
        return S.USER_FEATURES_SCHEMA.empty_table().to_pandas()
    return pd.DataFrame([{c: r[c] for c in cols} for r in rows], columns=cols)


def _profile_frame(rows: list[dict]) -> pd.DataFrame:
    cols = S.USER_PROFILES_KEYS + S.PROFILE_COLUMNS
    if not rows:
        return S.USER_PROFILES_SCHEMA.empty_table().to_pandas()
    return pd.DataFrame(rows, columns=cols)


BATCH_USERS = 2000
# Rejections that depend on more than the file (a bug, a failing encoder) are retried next run.
_TRANSIENT_REJECTIONS = ("feature computation failed", "could not read the profile")


def _stored_hashes(store, keys: list[str] | None) -> dict[str, str]:
    """``user_id -> profile_hash`` of ``user_profiles``: two columns, not the whole table."""
    if hasattr(store, "read_arrow"):
        t = store.read_arrow(S.USER_PROFILES, columns=["user_id", "profile_hash"])
        ids, hashes = t.column("user_id").to_pylist(), t.column("profile_hash").to_pylist()
        wanted = None if keys is None else set(keys)
        return {u: h for u, h in zip(ids, hashes) if wanted is None or u in wanted}
    stored = store.read(S.USER_PROFILES, keys=keys)
    return dict(zip(stored["user_id"], stored["profile_hash"])) if len(stored) else {}


def _load_profiles(repo: ProfileRepository, user_ids: Iterable[str], rejected: list[dict]) -> list[AnyProfile]:
    """Profiles read for featurizing (``load_record``: msgspec when it accepts the file, pydantic's verdict else)."""
    profiles: list[AnyProfile] = []
    for uid in user_ids:
        try:
            prof = repo.load_record(uid)
        except Exception as exc:  # noqa: BLE001 - a corrupt file is one rejected user, not a failed build
            rejected.append({"user_id": uid, "reason": f"unreadable profile file {repo.path(uid)}: {str(exc).splitlines()[0]}"})
            continue
        if prof is None and uid in repo.quarantined:
            rejected.append(
                {"user_id": uid, "reason": f"unreadable profile file, moved to {repo.quarantined[uid]} (ingest it again)"}
            )
            continue
        if prof is None:
            rejected.append({"user_id": uid, "reason": f"no profile stored for this user in {repo.root} (ingest it first)"})
            continue
        profiles.append(prof)
    return profiles


def build_features(
    settings: Settings | None = None,
    user_ids: list[str] | None = None,
    force: bool = False,
    *,
    encoder=None,
    seed: int = 0,
    batch_users: int = BATCH_USERS,
) -> dict:
    """Compute and store features for changed users; see the module docstring.

    Returns ``{"users", "rejected", "updated", "unchanged", "data_version", ...}``:
    ``users`` = users (of those considered) that have features stored,
    ``rejected`` = ``[{"user_id", "reason"}]``.
    """
    with _gc_paused():
        return _build(settings, user_ids, force, encoder, seed, batch_users)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the duration (back on after, as it was).

    A batch holds a million small objects (every profile's items, tracks and artists) and allocates
    as many again: the collector's full passes re-scanned all of them ~10 times per 1,000 users, over
    half the CPU of reading them. Nothing here makes reference cycles; the memory is freed as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _build(settings: Settings | None, user_ids: list[str] | None, force: bool, encoder, seed: int, batch_users: int) -> dict:
    # One function on purpose: the order of these steps (fingerprints, hashes, batches, records) is the contract.
    from soundmates.features.encoder import TextEncoder
    from soundmates.features.fingerprints import FILENAME, ProfileFingerprints, fingerprint
    from soundmates.features.scaler import scaler_dir
    from soundmates.store import get_store

    t0 = time.perf_counter()
    settings = settings or get_settings()
    repo = ProfileRepository(settings.profiles_dir)
    store = get_store(settings)
    encoder = encoder or TextEncoder(settings)
    stats_before = dict(encoder.stats)

    scaler, refit = _scaler_or_refit(settings, encoder, force)
    considered = _considered(repo, user_ids, refit)
    seen = ProfileFingerprints(
        scaler_dir(settings) / FILENAME, {"encoder": encoder.model_id, "top_n": settings.top_n_artists, "seed": seed}
    )
    stored_hash = _stored_hashes(store, None if user_ids is None or refit else considered) if considered else {}
    fps = {uid: fingerprint(repo.path(uid)) for uid in considered}  # before loading: see fingerprints.py
    rejected: list[dict] = []
    unchanged: list[str] = []
    to_load = _unknown_users(considered, refit, seen, fps, stored_hash, rejected, unchanged)
    _log(
        f"{len(considered)} user(s) considered, {len(to_load)} to read"
        + (f" ({len(considered) - len(to_load)} skipped by file fingerprint)" if len(to_load) < len(considered) else "")
        + (", refitting the scaler" if refit and to_load else "")
    )
    # Read, hash and compute batch by batch: holding every changed profile at once took 23 GB for 99,000
    # users (bench_population, killed by the OOM killer). A refit stores its batches together at the end.
    refit_batches = RefitBatches(settings, encoder, seed) if refit else None
    computed: set[str] = set()
    no_views = 0
    for start in range(0, len(to_load), max(1, batch_users)):
        profiles = _load_profiles(repo, to_load[start : start + max(1, batch_users)], rejected)
        hashes = {p.user_id: p.content_hash() for p in profiles}  # once per user: it serialises the whole profile
        part = _changed(profiles, hashes, refit, stored_hash, seen, fps, unchanged)
        del profiles
        if not part:
            continue
        if refit_batches is not None:
            out = refit_batches.add(part, hashes)
        else:
            out = _build_batch(settings, store, encoder, part, hashes, stored_hash, scaler, seed)
        computed |= out["computed"]
        no_views += out["no_views"]
        rejected += out["rejected"]
        _remember_batch(seen, fps, hashes, part, out)
    if refit_batches is not None:
        scaler = refit_batches.store(store, stored_hash) or scaler
    if considered:
        _save_fingerprints(seen)
    return _summary(t0, store, encoder, stats_before, scaler, refit, computed, unchanged, rejected, stored_hash, no_views)


def _scaler_or_refit(settings: Settings, encoder, force: bool):
    """``(persisted scaler or None, refit?)``: refit when forced, when none is readable, or the encoder changed."""
    from soundmates.features.scaler import ScalerError, load_scaler

    try:
        scaler = load_scaler(settings)
    except ScalerError as exc:
        _log(f"{exc}; refitting")
        scaler = None
    refit = force or scaler is None or not scaler.matches(encoder.model_id, encoder.dim, S.combined_dim(encoder.dim))
    return scaler, refit


def _considered(repo: ProfileRepository, user_ids: list[str] | None, refit: bool) -> list[str]:
    """The users this build looks at: those asked for, or everyone stored (always everyone on a refit)."""
    # A refit changes every user's combined vector, so everyone is recomputed with the new scaler.
    considered = repo.user_ids() if (user_ids is None or refit) else list(dict.fromkeys(user_ids))
    if user_ids is not None and refit:
        considered = list(dict.fromkeys([*considered, *user_ids]))
    if user_ids is not None and len(user_ids) == 0:
        considered = []  # asked for nobody (e.g. an empty inbox batch): do nothing, even without a scaler
    return considered


def _unknown_users(considered, refit: bool, seen, fps, stored_hash, rejected: list[dict], unchanged: list[str]) -> list[str]:
    """The users whose profile must be loaded (everyone on a refit); those the fingerprints vouch for go to
    ``unchanged`` or (rejected last time for the same file) to ``rejected``."""
    to_load = []
    for uid in considered:
        known = None if refit else seen.known(uid, fps[uid], stored_hash.get(uid))
        if known is None:
            to_load.append(uid)
        elif "rejected" in known:
            rejected.append({"user_id": uid, "reason": known["rejected"]})
        else:
            unchanged.append(uid)
    return to_load


def _changed(profiles: list[AnyProfile], hashes, refit: bool, stored_hash, seen, fps, unchanged: list[str]) -> list[AnyProfile]:
    """The loaded profiles to compute (all on a refit); the others go to ``unchanged`` with their fingerprint recorded."""
    todo = [p for p in profiles if refit or stored_hash.get(p.user_id) != hashes[p.user_id]]
    todo_ids = {p.user_id for p in todo}
    for p in profiles:
        if p.user_id not in todo_ids:
            unchanged.append(p.user_id)
            seen.record(p.user_id, fps[p.user_id], content_hash=hashes[p.user_id])
    return todo


def _remember_batch(seen, fps, hashes, part: list[AnyProfile], out: dict) -> None:
    """Record the fingerprints of a stored batch: computed users, and rejections that only depend on the file."""
    for p in part:
        if p.user_id in out["computed"]:
            seen.record(p.user_id, fps[p.user_id], content_hash=hashes[p.user_id])
    for r in out["rejected"]:
        if not r["reason"].startswith(_TRANSIENT_REJECTIONS):
            seen.record(r["user_id"], fps.get(r["user_id"]), rejected=r["reason"])


def _save_fingerprints(seen) -> None:
    """Save the file fingerprints of this run; a failure is only logged."""
    try:
        seen.save()
    except OSError as exc:  # only a cache: the next run loads everyone
        _log(f"could not save {seen.path}: {exc}")


def _build_batch(settings, store, encoder, part, hashes, stored_hash, scaler, seed) -> dict:
    """Featurize, scale (persisted scaler) and store one batch of users: one commit per group."""
    from soundmates.features.taste import featurize_profiles

    batch = featurize_profiles(part, encoder, top_n=settings.top_n_artists, views=True, seed=seed, hashes=hashes)
    rows = batch.feature_rows
    if rows:
        for r, vec in zip(rows, scaler.transform(np.stack([r["combined"] for r in rows]))):
            r["combined"] = vec
        drop_stale_halves(store, [u for u in batch.no_views if u in stored_hash])
        store.upsert_arrow(S.USER_FEATURES, arrow_table(rows, S.USER_FEATURES_SCHEMA))
        store.upsert_arrow(S.USER_PROFILES, arrow_table(batch.profile_rows, S.USER_PROFILES_SCHEMA))
    return {"computed": {r["user_id"] for r in rows}, "no_views": len(batch.no_views), "rejected": batch.rejected}


def _summary(t0, store, encoder, stats_before, scaler, refit, computed, unchanged, rejected, stored_hash, no_views) -> dict:
    rejected_ids = {r["user_id"] for r in rejected}
    for r in rejected:
        if r["user_id"] in stored_hash:
            r["reason"] += " (features stored earlier are kept)"
    summary = {
        "users": len(computed) + len([u for u in unchanged if u not in rejected_ids]),
        "rejected": rejected,
        "updated": len(computed),
        "unchanged": len(unchanged),
        "without_views": no_views,
        "refit_scaler": bool(refit and computed),
        "scaler_version": scaler.version if scaler is not None else None,
        # dim only when already known: an empty build must not load the model just to print it.
        "encoder": {
            "model": encoder.model_id,
            "dim": encoder.dim if computed else (scaler.encoder_dim if scaler is not None else None),
            **{k: v - stats_before.get(k, 0) for k, v in encoder.stats.items()},
        },
        "data_version": store.data_version(S.USER_FEATURES),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    _log(f"{summary['updated']} updated, {summary['unchanged']} unchanged, {len(rejected)} rejected in {summary['seconds']} s")
    return summary


def featurize_profile(profile: Profile, encoder=None, settings: Settings | None = None) -> tuple[pd.DataFrame, dict]:
    """Features of one profile for serving (an unknown user at recommend time); stores nothing.

    Returns a ``user_features``-shaped frame with the ``full`` row (``combined``
    scaled with the persisted scaler) and the ``user_profiles`` row. Raises
    :class:`soundmates.features.taste.Rejected` when nothing is usable and
    :class:`soundmates.features.scaler.ScalerError` when no scaler was fitted yet.
    """
    from soundmates.features.encoder import TextEncoder
    from soundmates.features.scaler import ScalerError, load_scaler, scaler_path
    from soundmates.features.taste import Rejected, featurize_profiles

    settings = settings or get_settings()
    scaler = load_scaler(settings)
    if scaler is None:
        raise ScalerError(f"no feature scaler at {scaler_path(settings)}: run `soundmates features build` first")
    encoder = encoder or TextEncoder(settings)
    batch = featurize_profiles([profile], encoder, top_n=settings.top_n_artists, views=False)
    if batch.rejected:
        raise Rejected(profile.user_id, batch.rejected[0]["reason"])
    row = batch.feature_rows[0]
    row["combined"] = scaler.transform(row["combined"])[0]
    return _feature_frame([row]), batch.profile_rows[0]
