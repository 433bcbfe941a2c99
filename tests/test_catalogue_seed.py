"""The catalogue seed: shipped names encoded once at setup, read-only behind each data dir's cache, never required."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest

from soundmates.config import Settings
from soundmates.features import catalogue_seed
from soundmates.features.encoder import TextEncoder, load_model, open_seed

SEEDED = ["indie rock", "Radiohead", "bossa nova", "Björk"]


@pytest.fixture(scope="module")
def seed_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("seed") / "catalogue_embeddings.sqlite"
    mp = pytest.MonkeyPatch()
    mp.setattr(catalogue_seed, "catalogue_texts", lambda: list(SEEDED))
    try:
        done = catalogue_seed.build(path, settings=Settings(encoder_seed="off"))
    finally:
        mp.undo()
    assert done["encoded"] == len(SEEDED) and path.is_file()
    return path


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_seeded_names_are_read_without_loading_the_model(tmp_path, seed_path):
    before = _digest(seed_path)
    enc = TextEncoder(Settings(data_dir=tmp_path, encoder_seed=str(seed_path)))
    vecs = enc.lookup(SEEDED)
    assert enc.stats["seed_hits"] == len(SEEDED) and enc.stats["encoded"] == 0
    assert enc._model is None  # nothing loaded: the first run over catalogue names never imports torch
    direct = load_model("").encode(SEEDED, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(np.stack([vecs[t] for t in SEEDED]), direct, atol=1e-6)
    assert enc.dim == 384
    assert _digest(seed_path) == before


def test_a_name_outside_the_catalogue_is_encoded_into_the_data_dir_cache_not_the_seed(tmp_path, seed_path):
    before = _digest(seed_path)
    settings = Settings(data_dir=tmp_path, encoder_seed=str(seed_path))
    enc = TextEncoder(settings)
    enc.lookup(["indie rock", "a band nobody has heard of"])
    assert enc.stats["seed_hits"] == 1 and enc.stats["encoded"] == 1
    again = TextEncoder(settings)
    again.lookup(["a band nobody has heard of"])
    assert again.stats["disk_hits"] == 1 and again.stats["encoded"] == 0
    assert _digest(seed_path) == before


def test_a_complete_seed_is_kept_on_the_next_setup(seed_path, monkeypatch):
    before = _digest(seed_path)
    monkeypatch.setattr(catalogue_seed, "catalogue_texts", lambda: list(SEEDED))
    done = catalogue_seed.build(seed_path, settings=Settings(encoder_seed="off"))
    assert done["encoded"] == 0 and _digest(seed_path) == before


def test_an_unreadable_seed_is_dropped_with_a_warning_and_names_are_encoded(tmp_path, caplog):
    bad = tmp_path / "seed.sqlite"
    bad.write_bytes(b"not a database" * 100)
    enc = TextEncoder(Settings(data_dir=tmp_path / "data", encoder_seed=str(bad)))
    with caplog.at_level(logging.WARNING, logger="soundmates.features.encoder"):
        vecs = enc.lookup(["indie rock"])
    assert enc.stats["encoded"] == 1 and vecs["indie rock"].shape == (384,)
    assert "ignoring the catalogue embeddings" in caplog.text and enc.seed is None


def test_seed_setting_off_or_missing_file_means_no_seed(tmp_path):
    assert open_seed("off") is None
    assert open_seed(str(tmp_path / "absent.sqlite")) is None


def test_the_catalogue_covers_the_shipped_artists_and_genres():
    from soundmates.catalog_data import artists
    from soundmates.world.catalog import genres

    texts = set(catalogue_seed.catalogue_texts())
    assert set(artists().names) <= texts and set(genres().names) <= texts
    assert "Radiohead" in texts and "indie rock" in texts


def test_an_unreadable_seed_file_is_written_again_by_setup(tmp_path, monkeypatch):
    path = tmp_path / "catalogue_embeddings.sqlite"
    path.write_bytes(b"garbage" * 1000)
    monkeypatch.setattr(catalogue_seed, "catalogue_texts", lambda: ["indie rock"])
    done = catalogue_seed.build(path, settings=Settings(encoder_seed="off"))
    assert done["encoded"] == 1
    enc = TextEncoder(Settings(data_dir=tmp_path / "data", encoder_seed=str(path)))
    enc.lookup(["indie rock"])
    assert enc.stats["seed_hits"] == 1
