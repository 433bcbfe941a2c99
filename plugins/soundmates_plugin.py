"""Airflow 3 plugin: links from the Airflow UI to the Soundmates dashboard, and a few macros.

Airflow 3 plugins carry UI extensions, macros, listeners and timetables, not
operators or sensors: the new-users sensor and its trigger live in the installed
package (``soundmates.orchestration``), where the triggerer can import them.

External views without ``url_route`` are plain links (opened beside Airflow),
so the Streamlit app needs no iframe permissions and no login is bypassed.
"""

from __future__ import annotations

import os

from airflow.plugins_manager import AirflowPlugin


def _dashboard_url() -> str:
    # Same variable the Settings read; not importing soundmates.config keeps plugin loading light.
    return os.environ.get("SOUNDMATES_DASHBOARD_URL", "http://127.0.0.1:8501").rstrip("/")


def soundmates_data_dir() -> str:
    """Macro ``{{ macros.soundmates.soundmates_data_dir() }}``: where this deployment keeps its state."""
    from soundmates.config import get_settings

    return str(get_settings().data_dir)


def soundmates_dashboard_url() -> str:
    """Macro ``{{ macros.soundmates.soundmates_dashboard_url() }}``."""
    return _dashboard_url()


class SoundmatesPlugin(AirflowPlugin):
    name = "soundmates"
    macros = [soundmates_data_dir, soundmates_dashboard_url]
    external_views = [
        {
            "name": "Soundmates dashboard",
            "href": _dashboard_url(),
            "destination": "nav",
            "category": "Soundmates",
        },
        {
            "name": "Pipeline status (dashboard)",
            "href": _dashboard_url() + "/?page=pipeline",
            "destination": "dag",
            "category": "Soundmates",
        },
    ]
