"""`threadline eval …`: evaluation suites and labelled sets."""

from __future__ import annotations

import typer

eval_app = typer.Typer(help="Evaluation suites and labelled sets.", no_args_is_help=True)
