"""The built wheel installs one namespace: `threadline`, with every package and its data under it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    "agents",
    "analytics",
    "api",
    "bench",
    "channels",
    "cli",
    "core",
    "demo",
    "evals",
    "graphs",
    "memory",
    "tools",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # a stale build/lib would put removed modules in the wheel
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        cwd=ROOT,
        timeout=300,
    )
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    return next(out.glob("threadline-*.whl"))


def test_the_folders_stay_at_the_repository_root() -> None:
    for name in PACKAGES:
        assert (ROOT / name / "__init__.py").is_file()
        assert (ROOT / "threadline" / name).resolve() == (ROOT / name).resolve()


@pytest.mark.slow
def test_the_wheel_holds_only_the_threadline_namespace(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"threadline"}
    for name in PACKAGES:
        assert f"threadline/{name}/__init__.py" in names
    for data in [
        "threadline/demo/data/tau_retail/orders.json",
        "threadline/api/templates/console.html",
        "threadline/memory/migrations/script.py.mako",
        "threadline/memory/data/embeddings/intents-bitext.npz",
        "threadline/evals/suites/order_status.yaml",
    ]:
        assert data in names


@pytest.mark.slow
def test_the_installed_wheel_imports_as_threadline(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        timeout=300,
    )
    assert sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin") == [
        "threadline"
    ]
    probe = "import threadline.graphs, threadline.api.app, threadline.cli.main as m; print(m.__file__)"
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert Path(done.stdout.strip()).is_relative_to(site)


def test_the_product_and_the_customer_commands_import_no_web_framework() -> None:
    probe = (
        "import sys, threadline.product.services, threadline.cli.main, threadline.cli.customer_commands, "
        "threadline.evals.product; print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip() == "[]"
