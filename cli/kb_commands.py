"""`threadline kb …`: the knowledge base from the command line."""

from __future__ import annotations

import typer

kb_app = typer.Typer(help="The knowledge base: ingest, search, list, retire.", no_args_is_help=True)
