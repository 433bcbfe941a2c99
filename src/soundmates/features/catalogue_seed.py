"""The catalogue seed: every shipped artist and genre name encoded once, at setup, into a read-only embedding file.

``make setup`` runs ``python -m soundmates.features.catalogue_seed``. The names are those of
``soundmates/data`` (~27.6k artists, ~6.3k genres), which the local world and the export importer
draw from; encoding them takes ~85 s on 2 cores, once per environment instead of in every fresh
data directory's first feature run. A text outside the catalogue is still encoded on first use
and kept in the data directory's own cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

from soundmates.atomic import commit_file
from soundmates.catalog_data import artists, read_gz_csv
from soundmates.config import Settings
from soundmates.features.encoder import CACHE_FILENAME, EmbeddingCache, TextEncoder, default_seed_path, resolve_model


def catalogue_texts() -> list[str]:
    """Every artist name and genre name the shipped data holds, each once, in a stable order."""
    table = artists()
    genres = {g for gs in table.genres for g in gs} | {r["genre"] for r in read_gz_csv("everynoise_genres.csv.gz")}
    return sorted(set(table.names) | genres)


def build(path: Path, *, settings: Settings | None = None) -> dict:
    """Write the seed at ``path`` (aside, then renamed); a seed already complete for the model is kept as it is."""
    settings = settings or Settings()
    model_id = resolve_model(settings.encoder_model)[0]
    texts = catalogue_texts()
    if path.is_file():
        held = EmbeddingCache(path, readonly=True)
        try:
            if held.count(model_id) >= len(texts):
                return {"path": str(path), "texts": len(texts), "encoded": 0, "seconds": 0.0}
        except sqlite3.Error:
            pass  # not a readable seed: written again below
        finally:
            held.close()
    t0 = time.perf_counter()
    work = path.parent / f".{path.name}.{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    try:
        encoder = TextEncoder(settings.model_copy(update={"encoder_seed": "off"}), cache_dir=work)
        encoder.lookup(texts)
        encoder.cache.close()  # the last connection closed: SQLite folds the WAL into the file
        commit_file(work / CACHE_FILENAME, path)  # same file system: the work folder sits beside ``path``
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"path": str(path), "texts": len(texts), "encoded": encoder.stats["encoded"], "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m soundmates.features.catalogue_seed", description=__doc__.split("\n")[0])
    ap.add_argument("--path", type=Path, default=None, help=f"where to write it (default {default_seed_path()})")
    args = ap.parse_args(argv)
    path = args.path or default_seed_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    done = build(path)
    print(
        f"catalogue embeddings: {done['texts']:,} names at {done['path']} ({done['encoded']:,} encoded in {done['seconds']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
