"""Options shared by several commands, declared once, and the console used to render results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=False)
err_console = Console(stderr=True)

OutDir = Annotated[Path, typer.Option("--out", "-o", help="Output directory (created; must not exist unless --overwrite).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output, only once the new one is complete.")]
Workers = Annotated[int, typer.Option("--workers", "-j", min=0, help="Worker processes (0 = all CPU cores).")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed (integer).")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N. auto picks a GPU when one is present.")]
