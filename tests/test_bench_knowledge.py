"""The knowledge benchmark runs end to end on a small size and reports well-formed numbers (never timings)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from rich.console import Console

from threadline.bench.knowledge import QUICK_SIZES, render, run


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value >= 0


@pytest.mark.slow
def test_quick_run_reports_every_figure() -> None:
    result = run(quick=True)

    assert json.loads(json.dumps(result)) == result
    assert set(result["sizes"]) == {str(size) for size in QUICK_SIZES}
    for row in result["sizes"].values():
        raw, index = row["faiss"], row["index"]
        for kind in ("exact", "hnsw"):
            for key in ("build_s", "p50_ms", "p99_ms", "p50_ms_1thread", "p99_ms_1thread"):
                assert _finite(raw[kind][key]), (kind, key)
        assert 0.0 <= raw["hnsw_recall@10"] <= 1.0
        assert index["chunks"] > 0 and index["approximate"] is False
        for key in ("build_s", "update_1_article_s"):
            assert _finite(index[key]), key
        for kind in ("search_short", "search_long"):
            assert _finite(index[kind]["p50_ms"]) and _finite(index[kind]["p99_ms"])
            assert index[kind]["p50_ms"] <= index[kind]["p99_ms"]
    Console(width=200, file=None).print(render(result))
