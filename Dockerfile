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
# The same pins as `make setup` (requirements.txt) and the same torch rule: torch==2.13.0, the CPU
# build, from TORCH_INDEX (the Makefile's variable of the same name; empty there = the machine's pip
# configuration). Only the runtime dependencies and the [hopsworks] extra go in: test tools stay out.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY --chown=airflow:0 requirements.txt pyproject.toml README.md /opt/soundmates/
COPY --chown=airflow:0 src /opt/soundmates/src
COPY --chown=airflow:0 streamlit_app /opt/soundmates/streamlit_app
# the model's defaults (one YAML, read at run time; the installed package is not beside it)
COPY --chown=airflow:0 configs /opt/soundmates/configs
# apache-airflow stays pinned to the image's own version (the official image's advice).
RUN pip install --no-cache-dir ${TORCH_INDEX:+--extra-index-url ${TORCH_INDEX}} \
        -c /opt/soundmates/requirements.txt "apache-airflow==3.1.8" "/opt/soundmates[hopsworks]"

# The shipped catalogue's artist and genre names encoded once, in the image (soundmates.features.catalogue_seed).
ENV SOUNDMATES_ENCODER_SEED=/opt/soundmates/catalogue_embeddings.sqlite
RUN python -m soundmates.features.catalogue_seed --path "$SOUNDMATES_ENCODER_SEED"
ENV SOUNDMATES_DATA_DIR=/opt/soundmates/var
ENV SOUNDMATES_CONFIG_DIR=/opt/soundmates/configs
WORKDIR /opt/airflow
