"""Process the new-users inbox: pending requests become findable users.

``process_inbox`` is what the ``soundmates_new_users`` DAG runs after its sensor
fires (and what a test or the CLI may call directly):

    pending requests -> ingest -> features (upserted into the store)
    -> embed with the candidate side of the index's model -> the index's fresh buffer

The model is the one the served index was built with (normally the served embedder): a vector of
another model would not be comparable with the index's, so a user added between a promotion and the
next ``index build`` would not be findable (or, of another dimension, not storable). The next build
embeds everyone, these users included, with the newly served model.

Every request ends ``done`` or ``failed`` with its reason; one bad user never
fails the others. A failure of a whole stage (the store or the encoder down)
puts the batch back to ``pending`` and re-raises, so Airflow's retry picks the
same requests up again and nothing is lost. Rerunning is safe: ingest resumes,
feature upserts and ``add_fresh`` are keyed by user id.
"""

from __future__ import annotations

import inspect
import logging
import time
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)

# A claim older than this belongs to a run that died (runs take minutes, not hours).
STALE_CLAIM = timedelta(hours=1)


def _field(entry: Any, name: str) -> Any:
    return entry.get(name) if isinstance(entry, dict) else getattr(entry, name, None)


def _ingest_failures(summary: Any) -> dict[str, str]:
    """``{ref: reason}`` from an ``IngestSummary`` (object or dict)."""
    failed = _field(summary, "failed") or []
    out: dict[str, str] = {}
    for item in failed:
        ref = _field(item, "ref")
        if ref is not None:
            out[str(ref)] = str(_field(item, "reason") or "ingest failed")
    return out


def _rebuild_due(index: Any) -> bool:
    return bool(index.rebuild_due())


def process_inbox(settings=None, limit: int | None = None) -> dict[str, Any]:
    """Process up to ``limit`` pending inbox requests; returns a summary.

    Keys: ``processed``, ``done`` (user ids), ``failed`` (``[{"user_id", "ref", "reason"}]``),
    ``model_version``, ``fresh_buffer``, ``rebuild_due``.
    """
    from soundmates.config import get_settings
    from soundmates.index import UserIndex
    from soundmates.store import get_store, inbox

    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    settings = settings or get_settings()
    store = get_store(settings)
    index = UserIndex(settings)

    requeued = _requeue_stale(store, inbox)
    entries = inbox.claim(store, limit=limit)  # atomic: two runs never get the same request
    summary: dict[str, Any] = {"processed": 0, "done": [], "failed": [], "requeued": requeued, "model_version": None}
    if not entries:
        summary.update(fresh_buffer=_fresh_size(index), rebuild_due=_rebuild_due(index))
        return summary

    by_user = {e.user_id: e.ref or e.user_id for e in entries}
    user_ids = list(by_user)
    log.info("processing %d new-user request(s)", len(user_ids))

    failed: dict[str, str] = {}
    deferred: list[str] = []  # rate-limited by Spotify: back to pending for a later run, not failed
    read_at = time.time()  # the data of this batch is read from now on (a removal before this is honoured)
    try:
        ok = _ingest_and_featurize(settings, by_user, failed, deferred)
        embedder = _index_embedder(settings, index)
        summary["model_version"] = embedder.version
        summary["embedder"] = getattr(embedder, "name", None) or embedder.version
        if ok:
            _index_new_vectors(store, index, inbox, embedder, ok, failed, read_at)
    except Exception:
        # A stage failed as a whole: hand the requests back untouched for the task's retry.
        log.exception("new-users batch failed as a whole; requests go back to pending")
        inbox.mark_many(store, user_ids, inbox.PENDING)
        raise
    _finish(store, inbox, by_user, failed, deferred, summary)
    summary["fresh_buffer"] = _fresh_size(index)
    summary["rebuild_due"] = _rebuild_due(index)
    log.info("new users: %d done, %d failed, rebuild due: %s", len(summary["done"]), len(failed), summary["rebuild_due"])
    return summary


def _index_embedder(settings: Any, index: Any) -> Any:
    """The embedder of the model the served index was built with; the served embedder when there is no
    index yet, or when that model cannot be loaded any more (then the vectors wait for the next build)."""
    from soundmates.index import IndexCorrupt, IndexNotBuilt
    from soundmates.model import embedder as model_embedder

    served = model_embedder.get_embedder(settings)
    try:
        version = (index.manifest() or {}).get("model_version")
    except (IndexNotBuilt, IndexCorrupt):
        version = None
    if not version or version in (served.version, model_embedder.candidate_version(served)):
        return served
    if version == model_embedder.RAW_FEATURES_VERSION:
        return model_embedder.RawFeatureEmbedder()
    try:
        return model_embedder.get_embedder(settings, version=version)
    except Exception as e:  # noqa: BLE001 - that model is gone: served vectors, findable after the next build
        log.warning(
            "model %s of the index cannot be loaded (%s): new users embedded by the served model "
            "become findable after 'soundmates index build'",
            version,
            e,
        )
        return served


def _ingest_and_featurize(settings: Any, by_user: dict[str, str], failed: dict[str, str], deferred: list[str]) -> list[str]:
    """Ingest the requested refs and build their features; returns the users that got through both.

    Users ingest deferred (Spotify's rate limit) are appended to ``deferred``: neither failed nor done."""
    from soundmates.pipelines import build_features, ingest_users

    ingest = ingest_users(list(by_user.values()), settings=settings, progress=False)
    # Refs ingest skipped are users already stored (a repeated request): they go on to features.
    ref_failures = _ingest_failures(ingest)
    for uid, ref in by_user.items():
        if ref in ref_failures:
            failed[uid] = ref_failures[ref]
    deferred_refs = {str(_field(d, "ref")) for d in _field(ingest, "deferred") or []}
    deferred.extend(uid for uid, ref in by_user.items() if ref in deferred_refs and uid not in failed)
    ok = [uid for uid in by_user if uid not in failed and uid not in deferred]
    if ok:
        feats = build_features(settings=settings, user_ids=ok) or {}
        for item in feats.get("rejected") or []:
            uid = str(_field(item, "user_id"))
            if uid in by_user and uid not in failed:
                failed[uid] = str(_field(item, "reason") or "features rejected")
    return [uid for uid in ok if uid not in failed]


def _finish(
    store: Any, inbox: Any, by_user: dict[str, str], failed: dict[str, str], deferred: list[str], summary: dict[str, Any]
) -> None:
    """Mark each request done, failed (with the reason) or pending again (deferred); fill the summary."""
    user_ids = list(by_user)
    done = [uid for uid in user_ids if uid not in failed and uid not in deferred]
    # A request deleted meanwhile (its user removed) has nothing left to mark.
    still = {uid for uid in user_ids if inbox.get(store, uid) is not None}
    inbox.mark_many(store, [uid for uid in done if uid in still], inbox.DONE)
    if deferred:
        inbox.mark_many(store, [uid for uid in deferred if uid in still], inbox.PENDING)
        summary["deferred"] = deferred
    for uid, reason in failed.items():
        if uid in still:
            inbox.mark(store, uid, inbox.FAILED, reason=reason)
        summary["failed"].append({"user_id": uid, "ref": by_user[uid], "reason": reason})
    summary["done"] = done
    summary["processed"] = len(user_ids)


def _index_new_vectors(
    store: Any, index: Any, inbox: Any, embedder: Any, ok: list[str], failed: dict[str, str], read_at: float
) -> None:
    """Embed the users' stored features with the served embedder's candidate side into the fresh buffer.

    A user removed while this batch ran (their request deleted with the rest of their data) is left
    out: their vector was made from data read before the removal. The index is told when the data was
    read (``read_at``), where it can check that itself.
    """
    from soundmates.model.embedder import candidate_version

    dated = "read_at" in inspect.signature(index.add_fresh).parameters
    space = candidate_version(embedder)  # the index's version of this candidate side (a tuned one's base)
    frame = store.read("user_features", keys=ok)
    if "view" in frame.columns:
        frame = frame[frame["view"] == "full"]
    frame = frame.drop_duplicates("user_id", keep="last").reset_index(drop=True)
    have = set(frame["user_id"].astype(str))
    for uid in ok:
        if uid not in have:
            failed[uid] = "no features were stored for this user (nothing usable in the profile)"
    if not len(frame):
        return
    vectors = embedder.embed(frame)  # the candidate side: what the index holds for everyone
    for uid, vector in zip(frame["user_id"].astype(str), vectors):
        if index.is_removed(uid) and inbox.get(store, uid) is None:
            failed[uid] = "removed while this batch ran: not indexed"
            continue
        try:
            added = (
                index.add_fresh(uid, vector, model_version=space, read_at=read_at)
                if dated
                else index.add_fresh(uid, vector, model_version=space)
            )
        except ValueError as exc:  # e.g. a NaN vector: this user only
            failed[uid] = f"could not add to the index: {exc}"
            continue
        if added is False:
            failed[uid] = "removed while this batch ran: not indexed"


def _requeue_stale(store: Any, inbox: Any) -> list[str]:
    """Requests left ``processing`` by a run that died (killed worker) go back to ``pending``.

    The DAG runs one batch at a time, so a request still claimed after
    ``STALE_CLAIM`` cannot belong to a live run.
    """
    ids = inbox.requeue_stale(store, STALE_CLAIM)  # one transaction: a claim in between is not undone
    if ids:
        log.warning("requeued %d request(s) left processing by a dead run: %s", len(ids), ids[:10])
    return ids


def _fresh_size(index: Any) -> int:
    return int(index.status().get("fresh") or 0)
