"""ShipML: the router. Page config, state, navigation and the sidebar; pages do the rest."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import datasets, deploy, jobs, registry
from core.monitoring import alerts
from core.samples import ensure_demo_project
from pages.common import current_dataset, engine, md, select_dataset, settings, workflow

# A file of our own, not a Material icon: Streamlit makes an icon's favicon a Google Fonts link,
# so a machine without internet access would show the tab with none.
FAVICON = Path(__file__).parent / ".streamlit" / "favicon.png"
st.set_page_config(page_title="ShipML", page_icon=str(FAVICON), layout="wide")


STALE_SAVE_S = 15 * 60  # a model save takes seconds; a PENDING row this old was interrupted


@st.cache_resource
def _startup(db_url: str) -> None:
    """Once per process and store: sample data for a fresh install, and tidy-up after a crash."""
    ensure_demo_project(engine(), settings=settings())
    registry.mark_stale_pending(engine(), STALE_SAVE_S, settings=settings())
    jobs.reap_dead_jobs(engine())
    deploy.restore_local_deployments(engine(), settings=settings())  # services stopped by a reboot


_startup(settings().db_url)

PAGES = {
    "Data": [
        st.Page("pages/upload.py", title="Upload & profile", icon=":material/upload_file:", default=True),
        st.Page("pages/clean.py", title="Clean", icon=":material/cleaning_services:"),
        st.Page("pages/features.py", title="Features", icon=":material/tune:"),
    ],
    "Model": [
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
        st.Page("pages/models.py", title="Models", icon=":material/inventory_2:"),
        st.Page("pages/deploy.py", title="Deploy", icon=":material/rocket_launch:"),
        st.Page("pages/monitor.py", title="Monitor", icon=":material/monitoring:"),
    ],
}


def sidebar() -> None:
    state = workflow()
    dataset = current_dataset()
    with st.sidebar:
        st.markdown("### :material/rocket_launch: ShipML")
        st.caption(f"Project: **{md(state.project)}**")
        if firing := alerts.firing(engine()):
            st.warning(f"{len(firing)} alert(s) firing — see **Monitor**", icon=":material/notifications_active:")
        if dataset is None:
            st.caption("No dataset loaded yet.")
            return
        st.caption(f"Dataset: **{md(dataset.name)}** · {dataset.rows:,} rows × {dataset.columns} columns")
        prep = datasets.get_preparation(engine(), dataset.id)
        steps = [
            ("Upload & profile", True),
            ("Target chosen", prep.target is not None),
            ("Clean", bool(prep.recipe.steps)),
            ("Features", prep.plan is not None),
            ("Trained", any(j.status == "DONE" for j in jobs.list_jobs(engine(), dataset_id=dataset.id))),
        ]
        st.markdown("\n".join(f"- {':material/check_circle:' if done else ':material/radio_button_unchecked:'} {name}" for name, done in steps))
        if st.button("Close dataset", icon=":material/close:"):
            select_dataset(None)
            st.rerun()


nav = st.navigation(PAGES)
sidebar()
nav.run()
