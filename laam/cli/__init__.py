"""The `laam` command: one module per command group, parsing and printing only (the work is in the stages).

Importing this package registers every command on `laam.cli.app.app`; `main` runs it.
"""

from __future__ import annotations

import importlib
import sys

from laam.cli.app import app
from laam.errors import Interrupted, LaamError
from laam.progress import console

# in pipeline order, which is the order `laam --help` lists them in
COMMAND_MODULES = ("corpus", "tokenizer", "train", "generate", "audit", "compress", "publish")
for _name in COMMAND_MODULES:
    importlib.import_module(f"laam.cli.{_name}")


def main() -> None:
    try:
        app()
    except LaamError as error:
        console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except Interrupted as stop:
        console.print(f"[yellow]interrupted:[/] {stop}", highlight=False)
        sys.exit(130)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
