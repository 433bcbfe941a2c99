# Soundmates on Airflow's official image: the project and its pinned requirements built in,
# DAGs and plugins mounted by docker-compose.yaml (so editing a DAG needs no rebuild).
#   docker compose build        (or: docker build -t soundmates-airflow:3.1.8 .)
FROM apache/airflow:3.1.8-python3.11

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential curl \
 && apt-get autoremove -yqq --purge && apt-get clean && rm -rf /var/lib/apt/lists/*
# Group 0 writable, like /opt/airflow: compose runs as ${AIRFLOW_UID}:0.
RUN mkdir -p /opt/soundmates/var && chown -R airflow:0 /opt/soundmates && chmod -R g+rwX /opt/soundmates

USER airflow
WORKDIR /opt/soundmates
COPY --chown=airflow:0 requirements.txt /opt/soundmates/requirements.txt
# apache-airflow stays pinned to the image's own version (the official image's advice);
# the CPU index keeps torch from pulling a multi-GB CUDA build.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu \
        "apache-airflow==3.1.8" -r /opt/soundmates/requirements.txt
COPY --chown=airflow:0 pyproject.toml README.md /opt/soundmates/
COPY --chown=airflow:0 src /opt/soundmates/src
COPY --chown=airflow:0 streamlit_app /opt/soundmates/streamlit_app
RUN pip install --no-cache-dir --no-deps /opt/soundmates

ENV SOUNDMATES_DATA_DIR=/opt/soundmates/var
WORKDIR /opt/airflow
