"""TextEncoder: real MiniLM output, each text encoded once ever, a cache that persists and is shared across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from soundmates.features.encoder import CACHE_FILENAME, EmbeddingCache, TextEncoder
from tests.helpers.encoders import CountingModel, HashModel


@pytest.fixture(scope="module")
def real_model():
    from soundmates.features.encoder import load_model

    return load_model("")  # bundled all-MiniLM-L6-v2, loaded once per process


def test_real_model_vectors_are_unit_float32_in_order(tmp_path, settings, real_model):
    enc = TextEncoder(settings, cache_dir=tmp_path)
    vecs = enc.encode(["indie rock", "Radiohead", "indie rock"])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32 and enc.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vecs[0], vecs[2])
    # Related genres sit closer than an unrelated pair: these are real sentence embeddings.
    rock, metal, jazz = enc.encode(["rock", "heavy metal", "smooth jazz"])
    assert rock @ metal > metal @ jazz
    # Same vector as the model gives directly (the cache stores, it does not alter).
    direct = real_model.encode(["Radiohead"], normalize_embeddings=True, convert_to_numpy=True)[0]
    np.testing.assert_allclose(vecs[1], direct, atol=1e-6)


def test_each_text_encoded_once_and_cache_persists(tmp_path, settings, real_model):
    model = CountingModel(real_model)
    enc = TextEncoder(settings, cache_dir=tmp_path, model=model)
    first = enc.encode(["jazz", "soul", "jazz", "funk"])
    assert sorted(model.seen) == ["funk", "jazz", "soul"]
    enc.encode(["soul", "jazz", "disco"])
    assert sorted(model.seen) == ["disco", "funk", "jazz", "soul"]  # only the new one
    assert enc.stats["encoded"] == 4 and enc.stats["model_calls"] == 2

    # A new instance (another process would do the same) reads the SQLite file: no model call at all.
    model2 = CountingModel(real_model)
    enc2 = TextEncoder(settings, cache_dir=tmp_path, model=model2)
    again = enc2.encode(["jazz", "soul", "funk"])
    assert model2.seen == []
    assert enc2.stats["disk_hits"] == 3
    np.testing.assert_array_equal(again, first[[0, 1, 3]])


def test_dim_known_from_cache_without_loading_model(tmp_path, settings):
    EmbeddingCache(tmp_path / CACHE_FILENAME).set_model_dim("some/model", 17)
    enc = TextEncoder(settings, model_name="some/model", cache_dir=tmp_path)
    assert enc.dim == 17
    assert enc._model is None  # nothing loaded: a fully cached run never imports torch


def test_cache_keyed_by_model(tmp_path, settings):
    a = TextEncoder(settings, cache_dir=tmp_path, model=HashModel())
    a.encode(["x", "y"])
    other = CountingModel(HashModel())
    other.model_id = "another-model"
    b = TextEncoder(settings, cache_dir=tmp_path, model=other)
    b.encode(["x"])
    assert other.seen == ["x"]  # a vector of one model is never served for another


def test_wrong_size_row_is_reencoded_not_trusted(tmp_path, settings):
    cache = EmbeddingCache(tmp_path / CACHE_FILENAME)
    cache.set_model_dim("test-hash-8", 8)
    cache.put_many("test-hash-8", {"broken": np.ones(3, dtype=np.float32)})
    model = CountingModel(HashModel())
    model.model_id = "test-hash-8"
    enc = TextEncoder(settings, cache_dir=tmp_path, model=model)
    vec = enc.encode(["broken"])
    assert model.seen == ["broken"] and vec.shape == (1, 8)


def test_bad_input_is_named(tmp_path, settings):
    enc = TextEncoder(settings, cache_dir=tmp_path, model=HashModel())
    with pytest.raises(TypeError, match="takes strings.*None"):
        enc.encode(["ok", None])
    assert enc.encode([]).shape == (0, 8)


def test_two_processes_share_the_cache(tmp_path, settings):
    """A second process writes while this one writes: both sets end up in the file, none lost."""
    script = textwrap.dedent(
        f"""
        import sys; sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent.parent)!r})
        from tests.helpers.encoders import HashModel
        from soundmates.config import Settings
        from soundmates.features.encoder import TextEncoder
        enc = TextEncoder(Settings(data_dir={str(tmp_path)!r}), cache_dir={str(tmp_path)!r}, model=HashModel())
        for i in range(20):
            enc.encode([f"child-{{i}}-{{j}}" for j in range(10)])
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    enc = TextEncoder(settings, cache_dir=tmp_path, model=HashModel())
    for i in range(20):
        enc.encode([f"parent-{i}-{j}" for j in range(10)])
    assert child.wait(timeout=60) == 0
    cache = EmbeddingCache(tmp_path / CACHE_FILENAME)
    assert cache.count("test-hash-8") == 400
    got = cache.get_many("test-hash-8", ["child-3-4", "parent-7-1"])
    np.testing.assert_allclose(got["child-3-4"], HashModel().encode(["child-3-4"])[0])
