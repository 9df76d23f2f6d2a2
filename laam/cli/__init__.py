"""The `laam` command: one module per command group, parsing and printing only (the work is in the stages).

Importing this package registers every command on `laam.cli.app.app`; `main` runs it.
"""

from __future__ import annotations

import importlib
import os
import sys

from laam.cli.app import app
from laam.errors import Interrupted, LaamError
from laam.progress import console

# in pipeline order, which is the order `laam --help` lists them in
COMMAND_MODULES = ("corpus", "tokenizer", "train", "run", "generate", "audit", "compress", "publish", "ship")
for _name in COMMAND_MODULES:
    importlib.import_module(f"laam.cli.{_name}")


def _os_problem(error: OSError) -> str:
    """An OSError as one line naming its path(s): `PATH: No space left on device`."""
    paths = " -> ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
    return f"{paths}: {error.strerror or error}" if paths else str(error.strerror or error)


def main() -> None:
    """Run the app; a LaamError is its one line. File-system faults (disk full, read-only, not a folder) and files
    that are not the text they should be, where no stage named them, are one line too; `--debug` or LAAM_DEBUG=1
    shows their traceback. Any other exception is a bug and keeps its traceback."""
    try:
        app()
    except LaamError as error:
        console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (OSError, UnicodeDecodeError) as error:
        if os.environ.get("LAAM_DEBUG") == "1":
            raise
        problem = _os_problem(error) if isinstance(error, OSError) else f"a file is not UTF-8 text ({error})"
        console.print(f"[red]error:[/] {problem} (--debug shows where)", highlight=False, soft_wrap=True)
        sys.exit(2)
    except Interrupted as stop:
        console.print(f"[yellow]interrupted:[/] {stop}", highlight=False)
        sys.exit(130)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
