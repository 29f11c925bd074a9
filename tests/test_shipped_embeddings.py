"""The vectors shipped with the package (`memory.shipped_vectors`): built from today's inputs, equal to what the
model computes, read before the disk cache and the model, and enough for a first start to compute none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from threadline.core.settings import Settings
from threadline.memory.embedding_cache import EMBEDDING_MODEL, EmbeddingCache, vector_key
from threadline.memory.embeddings import LocalMiniLMEmbeddings, make_embeddings
from threadline.memory.shipped_vectors import SHIPPED_DIR, ShippedGroup, ShippedVectors, model_fingerprint
from threadline.product.shipped_embeddings import BUILD_COMMAND, stale_groups, startup_texts

SAMPLE = 12
"""Texts per group encoded afresh (the whole set takes a minute; the input digests cover every text)."""


@pytest.fixture(scope="module")
def groups() -> dict[str, list[str]]:
    return startup_texts()


def test_the_shipped_vectors_are_built_from_the_current_inputs(groups: dict[str, list[str]]) -> None:
    stale = stale_groups(groups)
    assert not stale, (
        "shipped vectors out of date: "
        + "; ".join(f"{n} ({why})" for n, why in stale.items())
        + (f". Rebuild them with `{BUILD_COMMAND}` and commit memory/data/embeddings/.")
    )
    assert sorted(p.stem for p in SHIPPED_DIR.glob("*.npz")) == sorted(groups)


def test_the_shipped_vectors_equal_a_fresh_computation(groups: dict[str, list[str]], embeddings: Any) -> None:
    for name, texts in groups.items():
        shipped = ShippedGroup.read(SHIPPED_DIR / f"{name}.npz")
        assert shipped.vectors.dtype == np.float32 and shipped.vectors.shape == (len(texts), 384)
        assert [bytes(k) for k in shipped.keys] == [vector_key(EMBEDDING_MODEL, t) for t in texts]
        rows = np.unique(np.linspace(0, len(texts) - 1, SAMPLE).astype(int))
        fresh = embeddings.compute([texts[i] for i in rows])
        np.testing.assert_allclose(shipped.vectors[rows], fresh, rtol=0, atol=1e-5, err_msg=name)


def _group(path: Path, vectors: dict[str, list[float]], **fingerprint: Any) -> ShippedGroup:
    keys = np.frombuffer(b"".join(vector_key(EMBEDDING_MODEL, t) for t in vectors), dtype=np.uint8).reshape(-1, 32)
    meta = {"model": EMBEDDING_MODEL, "fingerprint": model_fingerprint() | fingerprint}
    return ShippedGroup(path, meta, keys, np.asarray(list(vectors.values()), dtype=np.float32))


def test_shipped_vectors_come_before_the_disk_cache_and_the_model(embeddings: Any, tmp_path: Path) -> None:
    marker = [0.5] * 384  # no model returns this: it can only come from the shipped file
    shipped = ShippedVectors([_group(tmp_path / "g.npz", {"a shipped text": marker})])
    local = LocalMiniLMEmbeddings(cache_path=tmp_path / "cache.sqlite", shipped=shipped)

    vectors = local.embed_documents(["a shipped text", "a text nobody shipped"])

    assert vectors[0] == marker
    assert vectors[1] == embeddings.compute(["a text nobody shipped"])[0].tolist()
    assert local.computed == 1
    disk = EmbeddingCache(tmp_path / "cache.sqlite", EMBEDDING_MODEL)
    assert list(disk.get_many(["a shipped text", "a text nobody shipped"])) == ["a text nobody shipped"]
    disk.close()


def test_shipped_files_of_other_weights_are_not_used(tmp_path: Path) -> None:
    _group(tmp_path / "ours.npz", {"same weights": [0.1] * 384}).write()
    _group(tmp_path / "theirs.npz", {"other weights": [0.2] * 384}, weights_bytes=1).write()
    _group(tmp_path / "older.npz", {"older package": [0.3] * 384}, version="0.0.1").write()

    loaded = ShippedVectors.load(tmp_path)

    assert list(loaded.get_many(["same weights", "other weights", "older package"])) == ["same weights"]


def test_a_model_that_cannot_be_identified_uses_no_shipped_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Weights under another file name (a repackaged model): the vectors are computed, start-up does not fail."""
    from threadline.memory import shipped_vectors

    _group(tmp_path / "ours.npz", {"same weights": [0.1] * 384}).write()
    monkeypatch.setattr(shipped_vectors, "WEIGHTS_FILE", "pytorch_model.bin")

    loaded = ShippedVectors.load(tmp_path)

    assert loaded.get_many(["same weights"]) == {}
    assert "cannot be identified" in caplog.text


@pytest.mark.slow
def test_a_first_start_on_the_demo_computes_no_vector(tmp_path: Path) -> None:
    from threadline.product.services import open_services

    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    services = open_services(settings)
    try:
        assert services.demo_report is not None and services.index.size > 0
        local = make_embeddings(settings)
        assert isinstance(local, LocalMiniLMEmbeddings)
        assert local.computed == 0, f"start-up computed {local.computed} vectors; rebuild with `{BUILD_COMMAND}`"
    finally:
        services.close()
