"""Profile references: every real form, odd legacy ids, and malformed input rejected with a useful message."""

from __future__ import annotations

import re

import pytest

from soundmates.spotify.refs import InvalidProfileRef, parse_profile_ref, profile_url, quote_user_id

NEW_ID = "31l77y2al5lnn7mxfrmd4bpfhqke"[:25]

VALID = [
    # (reference, expected user id)
    (f"https://open.spotify.com/user/{NEW_ID}", NEW_ID),
    (f"https://open.spotify.com/user/{NEW_ID}?si=4f1d2c3b5a6e7f80", NEW_ID),
    (f"https://open.spotify.com/user/{NEW_ID}/", NEW_ID),
    (f"https://open.spotify.com/user/{NEW_ID}/?si=abc&utm_source=copy-link", NEW_ID),
    (f"https://open.spotify.com/intl-pt-br/user/{NEW_ID}", NEW_ID),
    (f"https://open.spotify.com/intl-de/user/{NEW_ID}?si=x", NEW_ID),
    (f"https://open.spotify.com/intl-zh-Hant/user/{NEW_ID}", NEW_ID),
    (f"http://open.spotify.com/user/{NEW_ID}", NEW_ID),
    (f"open.spotify.com/user/{NEW_ID}", NEW_ID),
    (f"HTTPS://OPEN.SPOTIFY.COM/user/{NEW_ID}", NEW_ID),
    (f"spotify:user:{NEW_ID}", NEW_ID),
    (NEW_ID, NEW_ID),
    (f"  {NEW_ID}\n", NEW_ID),  # pasted with surrounding whitespace
    ("1234567890", "1234567890"),
    ("https://open.spotify.com/user/1234567890", "1234567890"),
    # legacy usernames: . _ # + and non-ASCII
    ("john.smith", "john.smith"),
    ("dj_kool", "dj_kool"),
    ("rock+roll", "rock+roll"),
    ("music#1", "music#1"),
    ("https://open.spotify.com/user/music%231", "music#1"),
    ("https://open.spotify.com/user/rock%2Broll?si=1", "rock+roll"),
    ("https://open.spotify.com/user/rock+roll", "rock+roll"),
    ("spotify:user:music%231", "music#1"),
    ("müller", "müller"),
    ("https://open.spotify.com/user/m%C3%BCller", "müller"),
    ("https://open.spotify.com/intl-ja/user/%E3%81%95%E3%81%8F%E3%82%89_1z", "さくら_1z"),
    ("spotify:user:zoë.k", "zoë.k"),
    ("Ölfan_3", "Ölfan_3"),
    ("a-b", "a-b"),
]

MALFORMED = [
    "",
    "   ",
    "https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M",
    "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC",
    "https://open.spotify.com/artist/0OdUWJ0sBjDrqHygGUXeCF",
    "https://open.spotify.com/album/4aawyAB9vmqN3uQ7FjRGTy",
    f"https://open.spotify.com/user/{NEW_ID}/playlist/37i9dQZF1DXcBWIGoYBM5M",
    "https://open.spotify.com/user/",
    "https://open.spotify.com/",
    "https://open.spotify.com/intl-pt-br/",
    f"https://example.com/user/{NEW_ID}",
    f"https://open.spotify.com.evil.example/user/{NEW_ID}",
    f"https://open.spotify.com:8443/user/{NEW_ID}",
    f"ftp://open.spotify.com/user/{NEW_ID}",
    f"https://open.spotify.com/intl_pt/user/{NEW_ID}",
    "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M",
    "spotify:track:4uLU6hMCjMI75M1A2tKUQC",
    "spotify:user:",
    f"spotify:user:{NEW_ID}:playlist:37i9dQZF1DXcBWIGoYBM5M",
    "spotify:artist",
    "john smith",
    "john\tsmith",
    "john\x00smith",
    "john\x1bsmith",
    "john/smith",
    "a" * 65,
    "x" * 2000,
    "john@example.com",
    "who?",
    "..",
    "https://open.spotify.com/user/..",
    "https://open.spotify.com/user/%2F%2F",
    "https://open.spotify.com/user/%FF%FE",
    "https://open.spotify.com/user/a%20b",
    "user:abc",
    "<script>",
    None,
    12345,
]


@pytest.mark.parametrize(("ref", "expected"), VALID)
def test_every_reference_form_gives_the_user_id(ref, expected):
    assert parse_profile_ref(ref) == expected


def test_there_are_at_least_twenty_malformed_cases():
    assert len(MALFORMED) >= 20


@pytest.mark.parametrize("ref", MALFORMED)
def test_malformed_references_are_rejected_with_what_was_given_and_the_accepted_forms(ref):
    with pytest.raises(InvalidProfileRef) as info:
        parse_profile_ref(ref)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "not a Spotify profile reference" in msg
    assert "spotify:user:ID" in msg and "open.spotify.com/user/ID" in msg
    shown = repr(ref) if not isinstance(ref, str) or len(ref) <= 80 else repr(ref[:77] + "...")
    assert shown in msg


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M", "link to a playlist"),
        ("spotify:track:4uLU6hMCjMI75M1A2tKUQC", "URI of a track"),
        ("john smith", "whitespace"),
        ("a" * 65, "at most 64"),
        (f"https://example.com/user/{NEW_ID}", "not open.spotify.com"),
        ("john\x00smith", "control character U+0000"),
    ],
)
def test_the_message_says_what_is_wrong(ref, why):
    with pytest.raises(InvalidProfileRef, match=re.escape(why)):
        parse_profile_ref(ref)


@pytest.mark.parametrize("user_id", ["music#1", "rock+roll", "müller", "john.smith", "さくら_1z", NEW_ID, "1234567890"])
def test_profile_url_round_trips_and_request_paths_are_encoded(user_id):
    assert parse_profile_ref(profile_url(user_id)) == user_id
    segment = quote_user_id(user_id)
    assert "/" not in segment and "#" not in segment and "+" not in segment and segment.isascii()
