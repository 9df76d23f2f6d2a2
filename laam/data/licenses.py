"""Which license each file of a kernel tree carries, as an SPDX id.

Order of evidence: the file's own `SPDX-License-Identifier:` tag (kernels since 4.14), then a
license notice in its header, then the tree's top-level COPYING. Linux 1.0 has no SPDX tags
and few notices, so most of its files inherit COPYING: GPL-2.0-only, per the kernel's own
reading of it (Linus Torvalds' note atop COPYING from 2.4 on says "version 2 only").
"""

from __future__ import annotations

import re

_SPDX_TAG = re.compile(rb"SPDX-License-Identifier:\s*([A-Za-z0-9.+\-() ]+?)\s*(?:\*/|-->|$)", re.MULTILINE)
_HEADER_BYTES = 8192

# (pattern over the header, lowercased and with whitespace collapsed; SPDX id). First match wins.
_NOTICES = [
    (r"gnu (?:library|lesser) general public license.*?version 2(?:\.\d)?,? or \(at your option\) any later",
     "LGPL-2.0-or-later"),
    (r"gnu general public license.*?version 2,? or \(at your option\) any later", "GPL-2.0-or-later"),
    (r"gnu general public license.*?either version 1,? or \(at your option\) any later", "GPL-1.0-or-later"),
    (r"gnu general public license,? version 2\b", "GPL-2.0-only"),
    (r"gnu (?:general )?public license", "GPL-2.0-only"),  # a bare "GNU GPL": the kernel's own terms
    (r"redistribution and use in source and binary forms.*all advertising materials", "BSD-4-Clause"),
    (r"redistribution and use in source and binary forms.*(?:neither the name|name of the author may not)",
     "BSD-3-Clause"),
    (r"redistribution and use in source and binary forms", "BSD-2-Clause"),
    (r"placed in the public domain|is in the public domain", "LicenseRef-public-domain"),
]


def spdx_from_text(data: bytes) -> tuple[str | None, str | None]:
    """(SPDX id, how it was found) from a file's own text, or (None, None)."""
    tag = _SPDX_TAG.search(data[:_HEADER_BYTES])
    if tag:
        return tag.group(1).decode("ascii").strip(), "spdx-tag"
    header = " ".join(data[:_HEADER_BYTES].decode("latin-1").lower().split())
    for pattern, spdx in _NOTICES:
        if re.search(pattern, header):
            return spdx, "header"
    return None, None


def copying_license(copying: bytes) -> str:
    """The license a COPYING file grants to its directory: the GPL's own text, or a notice."""
    text = " ".join(copying.decode("latin-1").split())
    if "GNU GENERAL PUBLIC LICENSE" in text and "Version 2, June 1991" in text:
        return "GPL-2.0-only"
    return spdx_from_text(copying)[0] or "NOASSERTION"


def license_of(path: str, data: bytes, copying_by_dir: dict[str, str]) -> tuple[str, str]:
    """(SPDX id, evidence) for one file: its own text, else the nearest COPYING above it."""
    spdx, evidence = spdx_from_text(data)
    if spdx:
        return spdx, evidence
    directory = path.rsplit("/", 1)[0] if "/" in path else ""
    while True:
        if directory in copying_by_dir:
            return copying_by_dir[directory], f"{directory}/COPYING" if directory else "COPYING"
        if not directory:
            return "NOASSERTION", "none"
        directory = directory.rsplit("/", 1)[0] if "/" in directory else ""
