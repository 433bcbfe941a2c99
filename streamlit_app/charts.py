"""Plotly figures for the dashboard: plain data in, a figure out (no Streamlit, no model).

Kept apart from the pages so the figures can be checked without running an app.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

YOU_COLOUR = "#1DB954"  # Spotify green: "you" is the same colour on every chart
THEM_COLOUR = "#7B61FF"
OTHERS_COLOUR = "rgba(110,110,135,0.55)"
MAX_GENRES = 15  # more bars than this stop being readable; the rest are the smallest shares
_LAYOUT = dict(
    margin=dict(l=10, r=10, t=40, b=10),
    # Below the plot: at the top right the legend would sit under plotly's toolbar.
    legend=dict(orientation="h", yanchor="top", y=-0.08, xanchor="left", x=0),
    template="plotly_white",
)


def genre_overlap_figure(
    genres: Sequence[str],
    your_weights: Sequence[float],
    their_weights: Sequence[float],
    *,
    you: str = "You",
    them: str = "Them",
) -> go.Figure:
    """Mirrored horizontal bars: your share of each genre to the left, theirs to the right."""
    if not (len(genres) == len(your_weights) == len(their_weights)):
        raise ValueError(
            f"genre_overlap_figure: {len(genres)} genres but {len(your_weights)} and "
            f"{len(their_weights)} weights; every genre needs one weight per side"
        )
    # The MAX_GENRES largest by combined weight, largest on top (plotly draws the first category at the bottom).
    order = sorted(range(len(genres)), key=lambda i: your_weights[i] + their_weights[i])[-MAX_GENRES:]
    names = [genres[i] for i in order]
    fig = go.Figure()
    fig.add_bar(
        y=names,
        x=[-your_weights[i] for i in order],
        orientation="h",
        name=you,
        marker_color=YOU_COLOUR,
        customdata=[your_weights[i] for i in order],
        hovertemplate="%{y}: %{customdata:.0%}<extra>" + you + "</extra>",
    )
    fig.add_bar(
        y=names,
        x=[their_weights[i] for i in order],
        orientation="h",
        name=them,
        marker_color=THEM_COLOUR,
        hovertemplate="%{y}: %{x:.0%}<extra>" + them + "</extra>",
    )
    top = max([*your_weights, *their_weights, 0.01])
    ticks = [-top, -top / 2, 0, top / 2, top]
    fig.update_layout(
        title="Genre overlap (share of each profile)",
        barmode="overlay",
        bargap=0.25,
        height=max(240, 26 * len(names) + 110),
        xaxis=dict(tickvals=ticks, ticktext=[f"{abs(t):.0%}" for t in ticks], zeroline=True),
        **_LAYOUT,
    )
    return fig


def era_overlap_figure(
    bin_labels: Sequence[str],
    yours: Sequence[float],
    theirs: Sequence[float],
    *,
    you: str = "You",
    them: str = "Them",
) -> go.Figure:
    """Release-year distributions of both profiles on one axis, as filled areas."""
    if not (len(bin_labels) == len(yours) == len(theirs)):
        raise ValueError(f"era_overlap_figure: {len(bin_labels)} year bins but {len(yours)} and {len(theirs)} values")
    fig = go.Figure()
    fig.add_scatter(
        x=list(bin_labels), y=list(yours), name=you, mode="lines", fill="tozeroy", line=dict(color=YOU_COLOUR, shape="spline")
    )
    fig.add_scatter(
        x=list(bin_labels), y=list(theirs), name=them, mode="lines", fill="tozeroy", line=dict(color=THEM_COLOUR, shape="spline")
    )
    fig.update_layout(title="Era overlap (release years)", height=280, yaxis=dict(tickformat=".0%"), **_LAYOUT)
    return fig


def closest_artists_figure(names: Sequence[str], similarities: Sequence[float], *, them: str = "them") -> go.Figure:
    """Their artists ranked by how close each is to your taste."""
    if len(names) != len(similarities):
        raise ValueError(f"closest_artists_figure: {len(names)} artists but {len(similarities)} similarities")
    order = sorted(range(len(names)), key=lambda i: similarities[i])
    fig = go.Figure(
        go.Bar(
            y=[names[i] for i in order],
            x=[similarities[i] for i in order],
            orientation="h",
            marker_color=THEM_COLOUR,
            hovertemplate="%{y}: %{x:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Artists of {them} closest to your taste",
        height=max(200, 28 * len(names) + 80),
        xaxis=dict(title="similarity to your taste"),
        **_LAYOUT,
    )
    return fig


def user_map_figure(
    user_ids: Sequence[str],
    names: Sequence[str | None],
    x: Sequence[float],
    y: Sequence[float],
    *,
    you: str | None = None,
    matches: Sequence[str] = (),
) -> go.Figure:
    """Everyone as a faint dot; your matches and you drawn on top so they stay visible."""
    if not (len(user_ids) == len(names) == len(x) == len(y)):
        raise ValueError(f"user_map_figure: {len(user_ids)} ids, {len(names)} names, {len(x)} x and {len(y)} y; all must match")
    match_set = set(matches)
    groups: dict[str, list[int]] = {"everyone": [], "your matches": [], "you": []}
    for i, uid in enumerate(user_ids):
        key = "you" if uid == you else "your matches" if uid in match_set else "everyone"
        groups[key].append(i)
    style = {
        "everyone": dict(color=OTHERS_COLOUR, size=8, symbol="circle"),
        "your matches": dict(color=THEM_COLOUR, size=12, symbol="circle", line=dict(width=1, color="white")),
        "you": dict(color=YOU_COLOUR, size=20, symbol="star", line=dict(width=1, color="black")),
    }
    fig = go.Figure()
    for label, idx in groups.items():
        if not idx:  # an empty trace would still show up in the legend
            continue
        fig.add_scattergl(
            x=[x[i] for i in idx],
            y=[y[i] for i in idx],
            mode="markers",
            name=label,
            marker=style[label],
            text=[names[i] or user_ids[i] for i in idx],
            customdata=[user_ids[i] for i in idx],
            hovertemplate="%{text}<br><sub>%{customdata}</sub><extra>" + label + "</extra>",
        )
    fig.update_layout(
        title="Everyone on Soundmates, by taste (nearby = similar)",
        height=560,
        xaxis=dict(showticklabels=False, title=None, zeroline=False),
        yaxis=dict(showticklabels=False, title=None, zeroline=False, scaleanchor="x"),
        **_LAYOUT,
    )
    return fig


# The product's taste metrics (issue 15 protocol), in the order the chart shows them; others are left out.
TASTE_METRICS = ("taste_ndcg@10", "taste_precision@10", "neighbour_recall@20", "friends@10", "recall@10")


def evaluation_figure(
    methods: dict[str, dict[str, float]],
    served: str | None,
    *,
    ci95: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    metrics: Sequence[str] = TASTE_METRICS,
) -> go.Figure:
    """Grouped bars, one group per taste metric, one bar per method (the served one in green, first),
    with the bootstrap 95% interval as error bars where the evaluation has one."""
    shown = [m for m in metrics if any(m in v for v in methods.values())]
    if not shown:
        raise ValueError(f"evaluation_figure: none of the metrics {list(metrics)} is in the evaluation")
    order = sorted(methods, key=lambda name: (name != served, name))
    fig = go.Figure()
    for name in order:
        values = methods[name]
        lo_hi = (ci95 or {}).get(name, {})
        ys = [values.get(m) for m in shown]
        err = dict(
            type="data",
            symmetric=False,
            array=[(lo_hi[m][1] - values[m]) if m in lo_hi and m in values else 0 for m in shown],
            arrayminus=[(values[m] - lo_hi[m][0]) if m in lo_hi and m in values else 0 for m in shown],
            visible=bool(lo_hi),
        )
        is_served = name == served
        fig.add_bar(
            x=list(shown),
            y=ys,
            name=f"{name} (served)" if is_served else name,
            error_y=err,
            marker_color=YOU_COLOUR if is_served else None,
            marker_line=dict(width=2 if is_served else 0, color="#0b5d2a"),
            hovertemplate="%{x}: %{y:.3f}<extra>" + name + "</extra>",
        )
    fig.update_layout(
        title="Served method vs baselines (held-out users; higher is better)",
        barmode="group",
        yaxis=dict(title="score", rangemode="tozero"),
        height=380,
        **_LAYOUT,
    )
    return fig
