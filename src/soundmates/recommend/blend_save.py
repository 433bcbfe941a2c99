"""save_blend(): a blend saved as a private playlist in a connected account, and only in a member's own one.

Privacy: nobody writes into someone else's library, so the account saved to must be one of the blend's
members (its owner connected it here; ``spotify.playlist_write`` then checks the write scope).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from soundmates.recommend import blend_export
from soundmates.recommend.blend_models import Blend, BlendError

if TYPE_CHECKING:  # pragma: no cover
    from soundmates.spotify.connect import SpotifyConnect
    from soundmates.spotify.playlist_write import SavedPlaylist


class NotAMember(BlendError):
    """The account to save to belongs to someone who is not in the blend."""

    kind = "not_a_member"

    def __init__(self, account: str, members: list[str]):
        self.account = account
        super().__init__(
            f"{account!r} is not a member of this blend ({', '.join(members)}): a blend is saved only to the "
            "connected account of one of its members; add them to the blend or save it to your own account"
        )


def check_save_target(blend: Blend, account: str) -> str:
    """The member id ``account`` names (a profile link, spotify:user:ID or ID); NotAMember otherwise."""
    from soundmates.spotify.refs import InvalidProfileRef, parse_profile_ref

    try:
        account_id = parse_profile_ref(account)
    except InvalidProfileRef:
        account_id = str(account)
    if account_id not in blend.members:
        raise NotAMember(account_id, blend.members)
    return account_id


def save_blend(blend: Blend, flow: SpotifyConnect, account: str) -> SavedPlaylist:
    """Create the blend's tracks, in order, as a private playlist in member ``account``'s connected library."""
    from soundmates.spotify.playlist_write import save_playlist

    account_id = check_save_target(blend, account)
    return save_playlist(
        flow, account_id, blend_export.playlist_name(blend), blend_export.description(blend), [t.id for t in blend.tracks]
    )
