"""Plotly figures of a blend: the pairwise match matrix as a heatmap (plain data in, a figure out)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go


def compatibility_figure(names: Sequence[str], matrix: Sequence[Sequence[float]]) -> go.Figure:
    """Row i, column j: the match score member i sees for member j (recommend's score; the diagonal is blank)."""
    n = len(names)
    if len(matrix) != n or any(len(row) != n for row in matrix):
        raise ValueError(f"compatibility_figure: {n} names need an {n}×{n} matrix, got rows of {[len(r) for r in matrix]}")
    # The diagonal (1.0 by convention) says nothing and would stretch the colour scale: left blank.
    z = [[None if i == j else float(matrix[i][j]) for j in range(n)] for i in range(n)]
    text = [["" if i == j else f"{matrix[i][j]:.2f}" for j in range(n)] for i in range(n)]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(names),
            y=list(names),
            text=text,
            texttemplate="%{text}",
            colorscale="Greens",
            colorbar=dict(title="score"),
            hovertemplate="%{y} → %{x}: %{z:.2f}<extra></extra>",
            hoverongaps=False,
        )
    )
    fig.update_layout(
        title=dict(text="How well you all match"),
        xaxis=dict(title="as a match for", side="bottom"),
        yaxis=dict(title="seen by", autorange="reversed"),
        margin=dict(l=10, r=10, t=40, b=10),
        template="plotly_white",
        height=max(260, 60 * n + 120),
    )
    return fig
