"""Genre families: a Spotify micro-genre ("southern hip hop", "nu metal") to one of a dozen broad families.

Keyword rules, first match wins; the order puts the more specific words first ("metal" before
"rock", "hip hop" before "pop"), so "alternative metal" is metal and "pop rap" is hip hop.
A user's dominant family is the one holding the largest share of their genre weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

OTHER = "other"
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("metal", ("metal", "grindcore", "deathcore", "djent")),
    ("punk", ("punk", "hardcore", "emo", "screamo", "grunge")),
    ("hip hop", ("hip hop", "rap", "trap", "drill", "grime", "crunk")),
    ("electronic", ("edm", "house", "techno", "trance", "electro", "dubstep", "drum and bass", "dnb", "ambient", "idm")),
    ("electronic", ("electronic", "synth", "disco", "big beat", "breakbeat", "downtempo", "chillwave", "indietronica")),
    ("jazz", ("jazz", "bebop", "swing", "big band", "bossa nova")),
    ("classical", ("classical", "orchestra", "baroque", "opera", "romantic era", "choral", "early music", "soundtrack")),
    ("r&b / soul", ("r&b", "soul", "funk", "motown", "quiet storm", "urban contemporary", "new jack swing", "gospel")),
    ("latin", ("latin", "reggaeton", "salsa", "bachata", "cumbia", "banda", "norteno", "grupera", "mexican", "tropical")),
    ("reggae", ("reggae", "dancehall", "ska", "dub")),
    ("country / folk", ("country", "folk", "bluegrass", "americana", "stomp and holler", "singer-songwriter", "roots")),
    ("blues", ("blues",)),
    ("rock", ("rock", "indie", "alternative", "new wave", "shoegaze", "britpop", "mellow gold", "garage")),
    ("pop", ("pop", "adult standards", "show tunes", "hollywood", "movie tunes", "lounge", "easy listening", "cabaret")),
)
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(name for name, _ in _RULES)) + (OTHER,)


def genre_family(genre: str) -> str:
    """The broad family of one genre name; ``other`` when no rule matches."""
    g = str(genre).casefold()
    for family, words in _RULES:
        if any(w in g for w in words):
            return family
    return OTHER


def family_shares(genres: Iterable[str], weights: Iterable[float]) -> dict[str, float]:
    """Share of the genre weight in each family (summing to 1), largest first; ``{}`` without genres."""
    totals: dict[str, float] = {}
    for g, w in zip(genres, weights):
        w = float(w)
        if math.isfinite(w) and w > 0:
            fam = genre_family(g)
            totals[fam] = totals.get(fam, 0.0) + w
    whole = sum(totals.values())
    if whole <= 0:
        return {}
    return {f: v / whole for f, v in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))}


def dominant_family(genres: Sequence[str], weights: Sequence[float]) -> str:
    """The family with the largest share of the genre weight; ``other`` without genres."""
    shares = family_shares(genres, weights)
    return next(iter(shares), OTHER)


def genre_entropy(weights: Iterable[float]) -> float:
    """Shannon entropy (bits) of a genre-weight distribution: 0 = one genre, higher = more varied."""
    w = [float(x) for x in weights if math.isfinite(float(x)) and float(x) > 0]
    total = sum(w)
    if total <= 0:
        return 0.0
    return float(-sum((x / total) * math.log2(x / total) for x in w))
