"""Options every command shares, and settings built from them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from threadline.core.settings import Settings, load_settings

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Overrides THREADLINE_DATA_DIR.", show_default=False)]
DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="Overrides THREADLINE_DATABASE_URL.", show_default=False)
]


def settings_from(data_dir: Path | None = None, database_url: str | None = None, **extra: object) -> Settings:
    """Settings from the environment with the command line's overrides on top."""
    overrides: dict[str, object] = {k: v for k, v in extra.items() if v is not None}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    return load_settings(**overrides)
