"""Plotly figures of the taste map (by genre family, with region labels) and of your taste: data in, figure out."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from streamlit_app.charts import _LAYOUT, THEM_COLOUR, YOU_COLOUR

# One colour per genre family (soundmates.features.families.FAMILIES); "other" stays grey.
FAMILY_COLOURS = {
    "metal": "#4d4d4d",
    "punk": "#e45756",
    "hip hop": "#f58518",
    "electronic": "#4c78a8",
    "jazz": "#b279a2",
    "classical": "#9d755d",
    "r&b / soul": "#ff9da6",
    "latin": "#eeca3b",
    "reggae": "#54a24b",
    "country / folk": "#88d27a",
    "blues": "#2a6f97",
    "rock": "#d62728",
    "pop": "#72b7b2",
    "other": "rgba(150,150,160,0.6)",
}
LABEL_SHARE = 0.03  # a family gets a region label when it holds at least this share of the points


def _median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2]


def taste_map_figure(
    user_ids: Sequence[str],
    names: Sequence[str | None],
    x: Sequence[float],
    y: Sequence[float],
    families: Sequence[str],
    *,
    you: str | None = None,
    matches: Sequence[str] = (),
) -> go.Figure:
    """Everyone coloured by dominant genre family, each large family labelled at its centre; you and your matches on top."""
    if not (len(user_ids) == len(names) == len(x) == len(y) == len(families)):
        raise ValueError("taste_map_figure: ids, names, x, y and families must have one entry per user")
    fig = go.Figure()
    _add_families(fig, user_ids, names, x, y, families)
    _add_you_and_matches(fig, user_ids, names, x, y, you=you, matches=set(matches))
    fig.update_layout(
        title="Everyone on Soundmates, by taste (nearby = similar), coloured by main genre family",
        height=620,
        xaxis=dict(showticklabels=False, title=None, zeroline=False, showgrid=False),
        yaxis=dict(showticklabels=False, title=None, zeroline=False, showgrid=False, scaleanchor="x"),
        **_LAYOUT,
    )
    return fig


def _add_families(
    fig: go.Figure,
    user_ids: Sequence[str],
    names: Sequence[str | None],
    x: Sequence[float],
    y: Sequence[float],
    families: Sequence[str],
) -> None:
    """One trace per genre family (largest first); a family with enough points gets a label at its median."""
    by_family: dict[str, list[int]] = {}
    for i, fam in enumerate(families):
        by_family.setdefault(fam, []).append(i)
    for fam, idx in sorted(by_family.items(), key=lambda kv: -len(kv[1])):
        fig.add_scattergl(
            x=[x[i] for i in idx],
            y=[y[i] for i in idx],
            mode="markers",
            name=fam,
            marker=dict(color=FAMILY_COLOURS.get(fam, FAMILY_COLOURS["other"]), size=6, opacity=0.65),
            text=[names[i] or user_ids[i] for i in idx],
            hovertemplate="%{text}<extra>" + fam + "</extra>",
        )
        if fam != "other" and len(idx) >= max(3, LABEL_SHARE * len(user_ids)):
            fig.add_annotation(
                x=_median([x[i] for i in idx]),
                y=_median([y[i] for i in idx]),
                text=f"<b>{fam}</b>",
                showarrow=False,
                font=dict(size=13, color="#222"),
                bgcolor="rgba(255,255,255,0.7)",
            )


def _add_you_and_matches(
    fig: go.Figure,
    user_ids: Sequence[str],
    names: Sequence[str | None],
    x: Sequence[float],
    y: Sequence[float],
    *,
    you: str | None,
    matches: set[str],
) -> None:
    """Your matches, then you, drawn on top of everyone (each trace only when someone is in it)."""
    for label, chosen, style in (
        (
            "your matches",
            [i for i, u in enumerate(user_ids) if u in matches],
            dict(color=THEM_COLOUR, size=13, symbol="circle"),
        ),
        ("you", [i for i, u in enumerate(user_ids) if u == you], dict(color=YOU_COLOUR, size=22, symbol="star")),
    ):
        if chosen:
            fig.add_scattergl(
                x=[x[i] for i in chosen],
                y=[y[i] for i in chosen],
                mode="markers",
                name=label,
                marker={**style, "line": dict(width=1.5, color="black")},
                text=[names[i] or user_ids[i] for i in chosen],
                hovertemplate="%{text}<extra>" + label + "</extra>",
            )


def shares_figure(title: str, labels: Sequence[str], shares: Sequence[float], *, colour: str = YOU_COLOUR) -> go.Figure:
    """Horizontal bars of shares (largest on top), e.g. your top genres."""
    if len(labels) != len(shares):
        raise ValueError(f"shares_figure: {len(labels)} labels but {len(shares)} shares")
    fig = go.Figure(
        go.Bar(
            y=list(labels)[::-1],
            x=list(shares)[::-1],
            orientation="h",
            marker_color=colour,
            hovertemplate="%{y}: %{x:.0%}<extra></extra>",
        )
    )
    fig.update_layout(title=title, height=max(220, 26 * len(labels) + 90), xaxis=dict(tickformat=".0%"), **_LAYOUT)
    return fig


def eras_figure(bins: Sequence[str], shares: Sequence[float]) -> go.Figure:
    """Your tracks by release decade."""
    fig = go.Figure(go.Bar(x=list(bins), y=list(shares), marker_color=YOU_COLOUR, hovertemplate="%{x}: %{y:.0%}<extra></extra>"))
    fig.update_layout(title="Your eras (release years of your tracks)", height=280, yaxis=dict(tickformat=".0%"), **_LAYOUT)
    return fig
