"""The one exception type the user sees: the CLI prints it as one line, without a traceback."""


class LaamError(Exception):
    """A problem the user can fix (bad input, missing file, wrong setting)."""


class Interrupted(Exception):
    """Training stopped by a signal after saving a checkpoint; `--resume` continues it (the CLI exits 130)."""
