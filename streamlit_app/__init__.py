"""The Soundmates dashboard (Streamlit). Entry: ``streamlit run streamlit_app/app.py``.

Pages call only :mod:`soundmates.recommend`; this package holds presentation
(charts, cards) and the read-only Airflow REST client for the pipeline page.
"""
