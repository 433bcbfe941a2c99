"""match_detail(): one match explained in depth, with the same served score and percentile as the list."""

from __future__ import annotations

from soundmates.recommend import explain as X
from soundmates.recommend import scores
from soundmates.recommend.context import RecommendContext
from soundmates.recommend.models import MatchDetail, UnknownUser
from soundmates.recommend.subject import vector_of


def match_detail(ctx: RecommendContext, user_id: str, other_id: str) -> MatchDetail:
    """Both sides' genre weights, release-year histograms, shared and closest artists of one match.

    The score is the one recommend ranked by: ``user_id``'s query-side vector against ``other_id``'s
    candidate-side vector in the index, rounded the same way.
    """
    from soundmates.features import schema as S

    manifest = ctx.index.manifest() or {}
    you_prof, you_vec = vector_of(ctx, user_id, manifest.get("model_version"))
    them_prof = ctx.stored_taste(other_id)[0]
    them_vec = ctx.index.vector(other_id)
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
        closest_artists=X.closest_artists(you, them, ctx.text_vectors(), top=10),
        warnings=X.thin_profile_warnings(you) + X.thin_profile_warnings(them, "their profile"),
    )
    if you_vec is not None and them_vec is not None and you_vec.shape == them_vec.shape:
        detail.score = scores.served_score(you_vec, them_vec)
        emb = ctx.embedder(manifest.get("model_version"))
        detail.percentile = scores.percentile(ctx, emb, manifest.get("version"), detail.score)
    return detail
