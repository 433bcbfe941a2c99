"""Settings for every stage, read from ``SOUNDMATES_*`` environment variables.

One place decides where state lives and which Spotify endpoint is used, so the
CLI, the DAGs, the dashboard and the tests all agree.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# src/soundmates/config.py -> repo root (editable install); state defaults to <repo>/var.
REPO_ROOT = Path(__file__).resolve().parents[2]
SPOTIFY_API_URL = "https://api.spotify.com/v1/"
SPOTIFY_TOKEN_URL = "https://accounts.spotify.com/api/token"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOUNDMATES_", extra="ignore")

    data_dir: Path = Field(default=REPO_ROOT / "var", description="All state: raw responses, profiles, stores, models, indexes.")
    # s3://bucket/prefix: the feature store's tables, the model registry and the index versions live there
    # (shared by hosts; AWS_* variables say how to connect); empty = everything under data_dir.
    data_url: str = ""

    # Spotify endpoint: the real API by default; the local server by configuration only.
    spotify_api_url: str = SPOTIFY_API_URL
    spotify_token_url: str = SPOTIFY_TOKEN_URL
    # OAuth (Connect with Spotify): empty = the token URL's host with /authorize (accounts.spotify.com/authorize).
    spotify_auth_url: str = ""
    spotify_timeout_s: float = 10.0  # connecting to the API or the token endpoint
    spotify_deadline_s: float = 30.0  # one Spotify call, connect + headers + whole body (redirects included)
    spotify_max_response_bytes: int = 16 * 1024 * 1024  # a bigger answer is refused (a page is ~0.1-0.3 MB)
    spotify_max_retries: int = 5
    spotify_retry_after_cap_s: float = 30.0  # never wait longer than this on one Retry-After
    spotify_backoff_s: float = 0.2
    spotify_market: str | None = None
    ingest_workers: int = 6  # users fetched at once by one ingest run (SOUNDMATES_INGEST_WORKERS; 1 = one by one)

    # Features
    encoder_model: str = Field(default="", description="SentenceTransformer path or name; empty = bundled all-MiniLM-L6-v2.")
    # Read-only embeddings of the shipped catalogue's artist and genre names, written by `make setup`
    # (soundmates.features.catalogue_seed): empty = its place beside the installed package; "off" = none.
    encoder_seed: str = ""
    top_n_artists: int = 10

    # Genre sources for artists named in data exports (off unless configured; no key needed for MusicBrainz)
    musicbrainz_url: str = ""  # e.g. https://musicbrainz.org/ws/2
    lastfm_api_key: SecretStr | None = None

    # Feature store
    store_backend: Literal["embedded", "hopsworks"] = "embedded"

    # Index
    fresh_buffer_threshold: int = 1000
    index_poll_s: float = 1.0  # with data_url: a reader re-reads the object store's CURRENT at most this often

    # Dashboard / Airflow
    airflow_url: str = "http://127.0.0.1:8080"
    dashboard_url: str = "http://127.0.0.1:8501"

    @field_validator("data_url")
    @classmethod
    def _object_store_url(cls, v: str) -> str:
        from soundmates.objstore import check_url

        return check_url(v) if v.strip() else ""

    @field_validator("spotify_api_url")
    @classmethod
    def _trailing_slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"

    # --- derived paths -------------------------------------------------------
    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def profiles_dir(self) -> Path:
        return self.data_dir / "profiles"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def remote_cache_dir(self) -> Path:
        """This host's copies of object-store files (model and index versions, one folder per version)."""
        return self.cache_dir / "objstore"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def world_dir(self) -> Path:
        return self.data_dir / "world"


class SpotifyCredentials(BaseSettings):
    """Read from spotipy's own variable names; never logged (SecretStr)."""

    model_config = SettingsConfigDict(env_prefix="SPOTIPY_", extra="ignore")
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")


class HopsworksSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOPSWORKS_", extra="ignore")
    api_key: SecretStr | None = None
    host: str | None = None
    project: str | None = None

    @property
    def configured(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value())


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests change env vars between cases)."""
    get_settings.cache_clear()
