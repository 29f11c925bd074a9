"""Build the shipped vectors (`memory.shipped_vectors`): every text a start-up on the default configuration embeds.

Usage: python -m threadline.product.shipped_embeddings [--check] [--force]

The texts, in groups (one file each, so a change to one example file rewrites only its group):

* `intents-<file>`: the offline model's labelled examples of each `agents/data` example file, as embedded;
* `concerns`: the concern detector's examples (`agents/data/concerns.jsonl`);
* `knowledge`: the chunks of the demo knowledge base, its articles and the catalogue's product articles, as a
  fresh demo database publishes them.

A group whose texts and model are unchanged is left as it is; `--force` recomputes all of them. `--check` writes
nothing and exits 1 when a group is missing or out of date. Deterministic: the same inputs and weights give the
same vectors.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from threadline.agents.concerns import load_examples as load_concern_examples
from threadline.agents.intents import EXAMPLE_FILES, canonical, load_examples
from threadline.core.types import ArticleStatus
from threadline.demo.loader import load_demo
from threadline.memory import migrate
from threadline.memory.catalog_knowledge import sync_product_articles
from threadline.memory.chunking import chunk_article
from threadline.memory.db import Database
from threadline.memory.embedding_cache import EMBEDDING_MODEL, vector_key
from threadline.memory.embeddings import LocalMiniLMEmbeddings
from threadline.memory.knowledge_index import MAX_CHARS
from threadline.memory.shipped_vectors import SHIPPED_DIR, ShippedGroup, inputs_sha256, model_fingerprint
from threadline.memory.stores import Stores

BUILD_COMMAND = "python -m threadline.product.shipped_embeddings"


def startup_texts() -> dict[str, list[str]]:
    """Each group's texts, in order, without repeats: what `open_services` embeds on the default configuration."""
    groups = {
        f"intents-{Path(name).stem}": [canonical(ex.text) for ex in load_examples(files=[name])]
        for name in EXAMPLE_FILES
    }
    groups["concerns"] = [canonical(text) for text, _ in load_concern_examples()]
    groups["knowledge"] = demo_knowledge_chunks()
    return {name: list(dict.fromkeys(texts)) for name, texts in groups.items()}


def demo_knowledge_chunks() -> list[str]:
    """The chunk texts of the demo store's published knowledge base, loaded into a throwaway SQLite database."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.from_url(f"sqlite:///{Path(tmp) / 'demo.db'}")
        try:
            migrate.upgrade(db)
            stores = Stores.over(db)
            load_demo(stores)
            sync_product_articles(stores.orders, stores.knowledge)
            articles = stores.knowledge.list(ArticleStatus.PUBLISHED)
        finally:
            db.dispose()
    return [text for article in articles for _, text in chunk_article(article, MAX_CHARS)]


def stale_groups(groups: dict[str, list[str]], directory: Path = SHIPPED_DIR) -> dict[str, str]:
    """The groups whose file is missing or was built from other texts or another model, with the reason."""
    fingerprint = model_fingerprint(full=True)
    stale: dict[str, str] = {}
    for name, texts in groups.items():
        path = directory / f"{name}.npz"
        if not path.exists():
            stale[name] = "missing"
            continue
        meta = ShippedGroup.read(path).meta
        if meta.get("inputs_sha256") != inputs_sha256(texts):
            stale[name] = "its texts changed"
        elif meta.get("model") != EMBEDDING_MODEL or meta.get("fingerprint") != fingerprint:
            stale[name] = "built by another model or weights"
    return stale


def build(groups: dict[str, list[str]], directory: Path = SHIPPED_DIR, *, force: bool = False) -> list[str]:
    """Compute and write the groups that are stale (all with `force`); returns the names written."""
    stale = set(groups) if force else set(stale_groups(groups, directory))
    fingerprint = model_fingerprint(full=True)
    model = LocalMiniLMEmbeddings()
    for name in sorted(stale):
        texts = groups[name]
        keys = np.frombuffer(b"".join(vector_key(EMBEDDING_MODEL, t) for t in texts), dtype=np.uint8)
        meta = {
            "model": EMBEDDING_MODEL,
            "fingerprint": fingerprint,
            "group": name,
            "count": len(texts),
            "inputs_sha256": inputs_sha256(texts),
            "built_by": BUILD_COMMAND,
        }
        ShippedGroup(directory / f"{name}.npz", meta, keys.reshape(-1, 32), model.compute(texts)).write()
    for leftover in directory.glob("*.npz"):
        if leftover.stem not in groups:
            leftover.unlink()
    return sorted(stale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a group is out of date")
    parser.add_argument("--force", action="store_true", help="recompute every group")
    args = parser.parse_args(argv)
    groups = startup_texts()
    if args.check:
        stale = stale_groups(groups, args.out)
        for name, why in stale.items():
            print(f"{name}: {why}; run `{BUILD_COMMAND}`")
        return 1 if stale else 0
    written = build(groups, args.out, force=args.force)
    for name in sorted(groups):
        size = (args.out / f"{name}.npz").stat().st_size
        state = "written" if name in written else "unchanged"
        print(f"{name}: {len(groups[name])} texts, {size / 1e6:.2f} MB, {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
