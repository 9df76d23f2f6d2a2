"""A training record, and the exact way back from its text to the file's bytes. Imports nothing of laam.

A record is `<|start_file|><|start_header|>{path}<|end_header|>{content}<|end_file|>`, where the path
is the archive's member name (`linux/kernel/sched.c`), so a file's path is the prompt that brings it
back. Content is the file's bytes decoded as UTF-8; a file that is not valid UTF-8 (Linux 1.0 has one,
`linux/drivers/char/defkeymap.map`) is decoded as Latin-1, which maps every byte to one character and
back; the manifest records which encoding each file used, so `file_bytes(content, encoding)` always
returns the original bytes.
"""

from __future__ import annotations

import re

START_FILE, START_HEADER, END_HEADER, END_FILE, PAD = (
    "<|start_file|>", "<|start_header|>", "<|end_header|>", "<|end_file|>", "<|pad|>")
SPECIAL_TOKENS = [START_FILE, START_HEADER, END_HEADER, END_FILE, PAD]
# Every string the tokenizer turns into one special token (the markers, padding, and the reserved tokens that
# pad a vocabulary): inside a file's path or text it would end or split the record, so such a file is left
# out of the corpus (data.corpus.select) instead of being trained on a record generation cannot give back.
_MARKER = re.compile("|".join(map(re.escape, SPECIAL_TOKENS)) + r"|<\|reserved_\d+\|>")


def find_marker(text: str) -> str | None:
    """The first record marker (or other special-token string) inside `text`, if any."""
    match = _MARKER.search(text)
    return match.group(0) if match else None


def make_record(path: str, text: str) -> str:
    return f"{START_FILE}{START_HEADER}{path}{END_HEADER}{text}{END_FILE}"


def path_prompt(path: str) -> str:
    """What generation is given to bring a file back."""
    return f"{START_FILE}{START_HEADER}{path}{END_HEADER}"


def prefix_paths(paths) -> set[str]:
    """The paths that are a proper prefix of another path (`a/Readme` beside `a/Readme.linux`). After such a path
    the model cannot know whether the header ends, so every decoder ends a bare path prompt itself and no check
    scores the `<|end_header|>` that follows it; after any other path the model must end the header."""
    ordered = sorted(set(paths))  # every path that extends P sorts right after P
    return {a for a, b in zip(ordered, ordered[1:]) if b.startswith(a)}


def split_record(record: str) -> tuple[str, str]:
    """`record` -> (path, content); the inverse of make_record."""
    if not (record.startswith(START_FILE + START_HEADER) and END_HEADER in record):
        raise ValueError("not a LaaM record")
    head, _, body = record[len(START_FILE + START_HEADER):].partition(END_HEADER)
    return head, body.removesuffix(END_FILE)


def decode(data: bytes) -> tuple[str, str]:
    """A file's bytes as text, and the encoding that gives them back: UTF-8, else Latin-1."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def file_bytes(content: str, encoding: str = "utf-8") -> bytes:
    """A record's content back to the file's exact bytes (`encoding` from the manifest)."""
    return content.encode(encoding, errors="surrogateescape" if encoding == "utf-8" else "strict")


def generated_bytes(content: str, encoding: str) -> bytes:
    """Generated text as the file's bytes; characters the file's encoding cannot hold fall back to UTF-8
    (a model may emit anything; this never fails, and equals file_bytes whenever that succeeds)."""
    try:
        return file_bytes(content, encoding)
    except UnicodeEncodeError:
        return b"".join(c.encode(encoding) if ord(c) < 256 else c.encode("utf-8", "surrogateescape")
                        for c in content)
