"""`irralctl prepare ...`: build a prepared dataset directory from raw files."""

from __future__ import annotations

import typer

app = typer.Typer(help="Build a prepared dataset (manifests, tokenisers, image store, labels) from raw files.", no_args_is_help=True)
