"""LaaM — Linux as a Model.

The pipeline, one module a stage:
    fetch.py      get a kernel release archive, byte-exact and checksum-verified
    corpus.py     read it safely, filter it, wrap files as training records, write the manifest
    licenses.py   which license each file carries (SPDX tags, headers, the tree's COPYING)
    tokenizer.py  byte-level BPE of an exact vocabulary size that round-trips every record
    cli.py        the `laam` command
"""

__version__ = "0.1.0"


class LaamError(Exception):
    """A problem the user can fix; the CLI prints it as one line, without a traceback."""
