"""Pipeline: what is stored and built, the inbox, and recent Airflow runs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from soundmates.config import get_settings
from soundmates.orchestration import airflow_api
from soundmates.recommend.models import RecommendError
from streamlit_app import charts, inbox_view, ui

st.title("Pipeline")

rec = ui.recommender()
if rec is None:
    st.stop()

try:
    status = rec.pipeline_status()
except RecommendError as exc:
    ui.show_error(exc)
    st.stop()

for warning in status.warnings:
    st.warning(warning)

users_col, model_col, index_col, fresh_col = st.columns(4)
users_col.metric("Users stored", f"{status.users_stored:,}")
model_col.metric("Model", status.model_version or "none")
index_col.metric("Index", f"{status.index_size:,} users", help=f"version {status.index_version or 'none'}")
fresh_col.metric("Fresh buffer", f"{status.fresh_buffer_size:,}", help="Users added since the last index build.")

st.subheader("Index")
st.markdown(
    f"- version `{status.index_version or 'none'}`, built {ui.when_text(status.index_built_at)} "
    f"({ui.age_text(status.index_age_s)} ago)\n"
    f"- {status.index_size:,} users indexed, {status.fresh_buffer_size:,} in the fresh buffer, "
    f"{status.tombstones:,} removed since the build\n"
    + ("- **a rebuild is due** (fresh buffer over its threshold)\n" if status.rebuild_due else "")
)
if status.index_parameters:
    st.caption("Parameters: " + ", ".join(f"{k}={v}" for k, v in status.index_parameters.items()))
if status.index_version is None:
    st.info(f"No index built yet. {ui.BUILD_HINT}", icon=":material/construction:")

st.subheader("Model")
served = status.embedder
evaluation = status.evaluation
if served is not None:
    st.markdown(
        f"Matches are served by **{served.name}** (version `{served.version}`)."
        + (f" {evaluation.reason}." if evaluation is not None and evaluation.reason else "")
    )
if evaluation is not None and evaluation.served_base:
    st.caption(
        f"Its query side is tuned on match feedback; the candidate side (what the index holds) is "
        f"{evaluation.served_base}'s (`{evaluation.served_base_version}`), evaluated below under that name."
    )
if evaluation is not None and evaluation.methods:
    methods = {name: s.metrics for name, s in evaluation.methods.items()}
    served_method = evaluation.served_base or evaluation.served
    try:
        figure = charts.evaluation_figure(methods, served_method, ci95={name: s.ci95 for name, s in evaluation.methods.items()})
    except ValueError:
        figure = None  # none of the taste metrics recorded: the table below still shows what was
    if figure is not None:
        if evaluation.run:  # name the run that produced the figures, on the chart itself
            figure.update_layout(title=f"{figure.layout.title.text} · run {evaluation.run}")
        st.plotly_chart(figure, key="evaluation_chart", width="stretch")
    shown = [m for m in charts.TASTE_METRICS if any(m in v for v in methods.values())] or sorted(
        {m for v in methods.values() for m in v}
    )
    rows = [
        {
            "method": name + (" (served)" if name == served_method else ""),
            **{m: ui.with_interval(methods[name].get(m), evaluation.methods[name].ci95.get(m)) for m in shown},
        }
        for name in sorted(methods, key=lambda n: (n != served_method, n))
    ]
    st.dataframe(pd.DataFrame(rows, columns=["method", *shown]), hide_index=True, width="stretch", key="evaluation_table")
    st.caption(ui.evaluation_caption(evaluation))
else:
    st.caption(
        "No evaluation recorded"
        + (
            " for this model: run 'soundmates evaluate'."
            if status.model_version
            else ": no model trained yet (the index uses raw features)."
        )
    )

feedback = getattr(status, "feedback", None)
if feedback:
    st.subheader("Match feedback")
    up_col, down_col, voters_col, share_col = st.columns(4)
    up_col.metric("Up votes", f"{feedback['up']:,}")
    down_col.metric("Down votes", f"{feedback['down']:,}")
    voters_col.metric("Voters", f"{feedback['voters']:,}")
    share = feedback.get("up_share_served@10")
    share_col.metric(
        "Up share, served top 10",
        "–" if share is None else f"{share:.0%}",
        help="Among the votes on matches still in their voter's top 10 today, the share that are up.",
    )
    st.caption(f"{feedback['served_votes']:,} votes are on matches served now.")

st.subheader("New-users inbox")
counts = status.inbox_counts
p_col, r_col, d_col, f_col = st.columns(4)
p_col.metric("Waiting", counts.get("pending", 0))
r_col.metric("Processing", counts.get("processing", 0))
d_col.metric("Done", counts.get("done", 0))
f_col.metric("Failed", counts.get("failed", 0))
for label, status_name in (("Waiting requests", "pending"), ("Failed requests, with the reason", "failed")):
    if counts.get(status_name, 0):
        requests = inbox_view.inbox_requests(rec, status_name)
        with st.expander(f"{label} ({counts[status_name]})", expanded=status_name == "failed"):
            if not requests:
                st.caption("This store cannot list the requests.")
                continue
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "user": e.user_id,
                            "ref": e.ref,
                            "reason": e.reason,
                            "source": e.source,
                            "updated": ui.when_text(e.updated_at),
                        }
                        for e in requests
                    ],
                    columns=["user", "ref", "reason", "source", "updated"],
                ),
                hide_index=True,
                width="stretch",
                key=f"inbox_{status_name}",
            )

st.subheader("Recent DAG runs")
airflow_url = get_settings().airflow_url


@st.cache_data(ttl=30, show_spinner=False)
def _recent_runs(url: str) -> list[airflow_api.DagRun]:
    # A short cache: reruns of this page (any click) must not hit Airflow each time; failures are not cached.
    return airflow_api.recent_dag_runs(url)


try:
    runs = _recent_runs(airflow_url)
except airflow_api.AirflowUnavailable as exc:
    st.info(
        f"No DAG runs to show: {exc}\n\nStart it with `make run`, or point `SOUNDMATES_AIRFLOW_URL` at your Airflow.",
        icon=":material/cloud_off:",
    )
else:
    if not runs:
        st.caption(f"Airflow at {airflow_url} has no DAG runs yet.")
    else:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "DAG": r.dag_id,
                        "run": r.run_id,
                        "state": r.state,
                        "type": r.run_type,
                        "run after": r.run_after,
                        "duration (s)": r.duration_s,
                    }
                    for r in runs
                ]
            ),
            hide_index=True,
            width="stretch",
        )
        st.caption(f"From {airflow_url}")
