"""Consent and deletion: add a profile, store a consenting live user, remove everything kept about someone.

Removal is sticky. ``remove`` tombstones the user in the index at once (no vector indexed from data
read before the removal is served again, across rebuilds) and deletes every stored trace. Nobody brings
a removed profile back by asking: ``add`` and ``recommend(consent=True)`` refuse it, unless the owner
proved who they are (Connect with Spotify) or an operator passes ``restore_removed=True``
(``soundmates add REF --restore-removed``). Either way the profile is fetched afresh and becomes
findable only once the pipeline has turned that new data into a vector.
"""

from __future__ import annotations

import logging
from datetime import UTC
from typing import Any

from soundmates.recommend.context import RecommendContext
from soundmates.recommend.models import InboxEntry, RecommendError, RemovedByOwner
from soundmates.recommend.subject import Subject, candidate_vector

log = logging.getLogger("soundmates.recommend")

REMOVED_NOT_STORED = (
    "{user_id} was removed from Soundmates: matched for you, but not stored. Its owner can come back "
    "through 'Connect with Spotify'"
)


def _entry(e) -> InboxEntry:
    d = e.to_dict() if hasattr(e, "to_dict") else dict(e)
    return InboxEntry(
        **{
            k: (str(v) if v is not None and k in ("requested_at", "updated_at") else v)
            for k, v in d.items()
            if k in InboxEntry.model_fields
        }
    )


def _removed_at(ctx: RecommendContext, user_id: str) -> str | None:
    """When ``user_id`` was removed (ISO time) for the message; None when the index does not say."""
    from datetime import datetime

    try:
        tomb = ctx.index.tombstones.records().get(user_id)  # {user_id: Tomb(removed_at=epoch s, ...)}
        when = getattr(tomb, "removed_at", None)
        return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds") if when else None
    except Exception:  # noqa: BLE001 - only for the message
        return None


def store_consented(ctx: RecommendContext, subject: Subject, ref: str, warnings: list[str]) -> bool:
    """Consent given for a live user: keep the profile, make them findable now, queue the pipeline.

    The fresh buffer gets the candidate side of the served embedder (what the index holds for everyone).
    A removed profile is not stored on anyone's say-so (returns False, with a warning).
    """
    from soundmates.store import inbox

    if ctx.index.is_removed(subject.user_id):
        warnings.append(REMOVED_NOT_STORED.format(user_id=subject.user_id))
        return False
    # Only a subject fetched live comes here (not known), and subject_for always gives it its profile.
    assert subject.profile is not None
    from soundmates.model.embedder import candidate_version

    vector = candidate_vector(ctx, subject)
    ctx.profiles.save(subject.profile)
    # recorded with the version of that candidate side (a feedback-tuned embedder's is its base's: the index's)
    space = candidate_version(ctx.embedder(subject.model_version)) if subject.model_version else None
    ctx.index.add_fresh(subject.user_id, vector, space)
    inbox.add_request(ctx.store, subject.user_id, ref, source="recommend")
    with ctx.lock:
        ctx.live.pop(subject.user_id, None)
    return True


def add(ctx: RecommendContext, ref: str, *, restore_removed: bool = False) -> InboxEntry:
    """Consent: queue the profile in the new-users inbox; the pipeline ingests and indexes it.

    A removed profile is refused (RemovedByOwner) unless ``restore_removed``: the owner proved who they
    are (Connect with Spotify) or an operator asked explicitly. Nothing here lifts the removal: the
    index serves the user again only from the vector the pipeline makes of newly fetched data.
    """
    from soundmates.store import inbox

    user_id = ctx.resolve(ref)
    if ctx.index.is_removed(user_id):
        if not restore_removed:
            raise RemovedByOwner(user_id, _removed_at(ctx, user_id))
        log.warning("restoring removed profile %s on request (fetched afresh by the pipeline)", user_id)
    source = "restore" if restore_removed else "dashboard"
    return _entry(inbox.add_request(ctx.store, user_id, str(ref).strip(), source=source))


def inbox_status(ctx: RecommendContext, ref: str) -> InboxEntry | None:
    from soundmates.store import inbox

    entry = inbox.get(ctx.store, ctx.resolve(ref))
    return _entry(entry) if entry is not None else None


def _delete_ingested(ctx: RecommendContext, user_id: str, report: dict, errors: list[str]) -> None:
    """The ingest stage deletes what it keeps (raw pages, profile); the OAuth client its tokens."""
    from soundmates.spotify.ingest import delete_user_data

    try:
        done = delete_user_data(user_id, ctx.settings)
        report["profile_deleted"] = bool(done.get("profile"))
        report["raw_responses_deleted"] = bool(done.get("raw"))
    except Exception as e:  # noqa: BLE001 - reported below, the rest still runs
        errors.append(f"profile and raw responses: {e}")
    if ctx.profiles.exists(user_id):  # a profile another source (an export) stored
        try:
            report["profile_deleted"] = ctx.profiles.delete(user_id) or report.get("profile_deleted", False)
        except OSError as e:
            errors.append(f"profile file: {e}")
    try:
        from soundmates.spotify.connect import forget_account

        report["oauth_tokens_deleted"] = forget_account(ctx.settings, user_id)
    except OSError as e:
        errors.append(f"connected-account tokens: {e}")


def _delete_store_rows(ctx: RecommendContext, user_id: str, report: dict, errors: list[str]) -> None:
    rows, groups = 0, {}
    try:
        infos = ctx.store.groups()
    except Exception as e:  # noqa: BLE001 - reported below, the rest still runs
        infos = []
        errors.append(f"feature store: {e}")
    for g in infos:
        try:
            n = int(ctx.store.delete(g.name, [user_id], version=g.version) or 0)
        except Exception as e:  # noqa: BLE001
            errors.append(f"store group {g.name}: {e}")
            continue
        if n:
            groups[g.name] = n
            rows += n
    report["store_rows_deleted"] = rows
    report["store_groups"] = groups


def _delete_inbox_request(ctx: RecommendContext, user_id: str, report: dict, errors: list[str]) -> None:
    """The inbox deletes the user's request (waiting, running or served) through its own API."""
    from soundmates.store import inbox

    report["inbox_request_deleted"] = False
    try:
        report["inbox_request_deleted"] = inbox.delete(ctx.store, [user_id]) > 0
    except Exception as e:  # noqa: BLE001 - reported with the rest, every other deletion still runs
        errors.append(f"new-users inbox: {e}")


def _delete_feedback(ctx: RecommendContext, user_id: str, report: dict, errors: list[str]) -> None:
    """Every match vote given by or about the user (the feedback store's own API)."""
    from soundmates.recommend import feedback

    report["feedback_deleted"] = 0
    try:
        report["feedback_deleted"] = feedback.delete_user(ctx, user_id)
    except Exception as e:  # noqa: BLE001 - reported with the rest, every other deletion still runs
        errors.append(f"match feedback: {e}")


def remove(ctx: RecommendContext, ref: str) -> dict[str, Any]:
    """Hide the user from every result at once (tombstone), then delete everything stored about them.

    Returns what was deleted. Every deletion is attempted even if one fails; a failure is raised
    afterwards (the tombstone already keeps them out of results).
    """
    user_id = ctx.resolve(ref)
    report: dict[str, Any] = {"user_id": user_id, "hidden_from_results": True}
    errors: list[str] = []
    try:
        ctx.index.remove(user_id)
    except Exception as e:  # noqa: BLE001 - the index refused to record it: still delete the data, then say so
        report["hidden_from_results"] = False
        errors.append(f"index removal record: {e}")
    ctx.forget(user_id)
    report["profile_deleted"] = report["raw_responses_deleted"] = False
    _delete_ingested(ctx, user_id, report, errors)
    _delete_store_rows(ctx, user_id, report, errors)
    _delete_inbox_request(ctx, user_id, report, errors)
    _delete_feedback(ctx, user_id, report, errors)
    if errors:
        report["errors"] = errors
        head = (
            f"{user_id!r} no longer appears in any result, but some stored data could not be deleted: "
            if report["hidden_from_results"]
            else f"{user_id!r} could not be fully removed: "
        )
        raise RecommendError(head + "; ".join(errors))
    return report
