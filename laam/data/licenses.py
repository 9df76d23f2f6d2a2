"""Which license each file of a kernel tree carries, as a normalized SPDX expression, and how we know.

Order of evidence, first found wins:
1. `spdx-tag`: the file's own `SPDX-License-Identifier:` tag, read by the kernel's own rules
   (scripts/spdxcheck.py: the first line carrying the tag within the file's first 15 lines, the comment
   closer after it stripped), in any comment style the kernel uses (`//`, `/* */`, `#`, `..`, `<!-- -->`,
   `{# #}`, `--`, `%`, `@`, `!`, `LIST "…"`).
2. `notice`: a license notice in the file's leading comment (never further down: a code sample in a
   document's body is not the document's license): the GPL/LGPL boilerplates with their version and
   "or (at your option) any later version", BSD, MIT and dual-license headers.
3. `copying`: the nearest COPYING above the file (the kernel's top-level one: GPL-2.0-only; Linux 1.0's
   sound driver ships its own BSD one).
Expressions are parsed and normalized by `license-expression` (a maintained SPDX library, as used by
ScanCode and cyclonedx-python-lib) to current SPDX ids: `GPL-2.0` -> `GPL-2.0-only`, `GPL-2.0+` ->
`GPL-2.0-or-later`, operators upper-cased, `WITH` exceptions kept. A tag that does not parse is recorded
as invalid with its raw text and the parser's message, and the file's license is NOASSERTION: never
silently replaced by a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from laam.data.notices import leading_comment, notice_expression

NOASSERTION = "NOASSERTION"
TAG = "SPDX-License-Identifier:"
TAG_LINES = 15  # scripts/spdxcheck.py --maxlines default: a tag further down is not the file's tag
# Comment closers that may follow the expression on the tag's line (spdxcheck strips `*/` and `-->`,
# and the `"` of SH boot scripts' `LIST "…"`; Jinja templates close with `#}`).
_CLOSERS = ("*/", "-->", "#}", '"')
_LEADING_BYTES = 32768  # the leading comment is looked for in this much of the file
# The ids under which a file may be used as GPL-2.0 code (an "or later" from version 1 includes version 2).
GPL2 = frozenset({"GPL-2.0-only", "GPL-2.0-or-later", "GPL-1.0-or-later"})


@dataclass(frozen=True)
class LicenseReading:
    """One file's license and the evidence for it, as the manifest records it."""

    expression: str  # normalized SPDX expression, or NOASSERTION
    method: str  # spdx-tag, notice, license-text (a COPYING that is the GPL), copying, or none
    evidence: str  # where: "line 1", "leading comment", the COPYING's path, or "none"
    raw: str | None = None  # the text as found: the tag's expression, or the notice's license words
    error: str | None = None  # why `raw` is not a valid SPDX expression (the expression is then NOASSERTION)

    def manifest_fields(self) -> dict:
        return {"license": self.expression, "license_method": self.method, "license_evidence": self.evidence,
                "license_raw": self.raw, "license_error": self.error}


def no_license() -> dict:
    """The manifest's license fields for a member that is not a regular file."""
    return {"license": None, "license_method": None, "license_evidence": None, "license_raw": None,
            "license_error": None}


@cache
def _licensing():
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


@cache
def normalize(raw: str) -> tuple[str | None, str | None]:
    """(normalized SPDX expression, None) or (None, why it is not one). `LicenseRef-…` ids are valid SPDX."""
    from license_expression import ExpressionError

    licensing = _licensing()
    try:
        parsed = licensing.parse(raw, strict=True)
    except ExpressionError as error:
        return None, str(error)
    if parsed is None:
        return None, "empty expression"
    unknown = [key for key in licensing.unknown_license_keys(parsed) if not key.startswith("LicenseRef-")]
    if unknown:
        return None, f"unknown license id(s): {', '.join(unknown)}"
    return str(parsed), None


def read_tag(data: bytes) -> tuple[str, int] | None:
    """(the tag's raw expression, line number) by spdxcheck's rules, or None when the file has no tag."""
    for number, line in enumerate(data[:_LEADING_BYTES].split(b"\n", TAG_LINES)[:TAG_LINES], start=1):
        at = line.find(TAG.encode())
        if at < 0:
            continue
        expression = line[at + len(TAG):].decode("utf-8", errors="replace").strip()
        stripped = True
        while stripped:
            stripped = False
            for closer in _CLOSERS:
                if expression.endswith(closer):
                    expression, stripped = expression[:-len(closer)].rstrip(), True
        return expression, number
    return None


def tag_reading(data: bytes) -> LicenseReading | None:
    found = read_tag(data)
    if found is None:
        return None
    raw, line = found
    expression, error = normalize(raw)
    return LicenseReading(expression or NOASSERTION, "spdx-tag", f"line {line}", raw, error)


def notice_reading(data: bytes, path: str = "") -> LicenseReading | None:
    raw = notice_expression(leading_comment(data[:_LEADING_BYTES], path))
    if raw is None:
        return None
    expression, error = normalize(raw)
    return LicenseReading(expression or NOASSERTION, "notice", "leading comment", raw, error)


def spdx_from_text(data: bytes, path: str = "") -> LicenseReading | None:
    """A file's license from its own text (its tag, else its leading comment's notice), or None."""
    return tag_reading(data) or notice_reading(data, path)


def gpl2_text(data: bytes) -> bool:
    """Whether a file is the text of the GNU GPL version 2 itself (a COPYING file)."""
    text = " ".join(data[:4096].decode("latin-1").split())
    return "GNU GENERAL PUBLIC LICENSE" in text and "Version 2, June 1991" in text


def license_file_reading(data: bytes, path: str = "COPYING") -> LicenseReading:
    """A COPYING file's own license (which it also grants to its directory): its tag, else GPL-2.0-only when it
    is the GPL-2.0's text (the kernel's reading: "version 2 only" atop COPYING since 2.4), else its notice."""
    tag = tag_reading(data)
    if tag is not None:
        return tag
    if gpl2_text(data):
        return LicenseReading("GPL-2.0-only", "license-text", "the GPL-2.0 text", "GNU GENERAL PUBLIC LICENSE "
                              "Version 2, June 1991")
    return notice_reading(data, path) or LicenseReading(NOASSERTION, "none", "none")


def copying_license(copying: bytes) -> str:
    """The license a COPYING file grants to its directory."""
    return license_file_reading(copying).expression


def own_license(path: str, data: bytes) -> LicenseReading | None:
    """A file's license from its own text (a COPYING's from its text or the GPL it is), or None."""
    if path.rsplit("/", 1)[-1] == "COPYING":
        reading = license_file_reading(data, path)
        return None if reading.method == "none" else reading
    return spdx_from_text(data, path)


def inherited_license(path: str, copying_by_dir: dict[str, str]) -> LicenseReading:
    """The license of the nearest COPYING above a file (`copying_by_dir`: folder -> its COPYING's expression)."""
    directory = path.rsplit("/", 1)[0] if "/" in path else ""
    while True:
        if directory in copying_by_dir:
            return LicenseReading(copying_by_dir[directory], "copying", f"{directory}/COPYING" if directory
                                  else "COPYING")
        if not directory:
            return LicenseReading(NOASSERTION, "none", "none")
        directory = directory.rsplit("/", 1)[0] if "/" in directory else ""


def combine(expressions, relation: str = "AND") -> str:
    """Several files' (or sources') expressions as one, each distinct one once, compound ones parenthesized."""
    parts = []
    for expression in expressions:
        if expression and expression not in parts:
            parts.append(expression)
    if len(parts) == 1:
        return parts[0]
    return f" {relation} ".join(f"({p})" if " " in p and not p.startswith("(") else p for p in parts)


def satisfied_by(expression: str, accepted) -> bool:
    """Whether a file under `expression` may be used under licenses from `accepted` alone: every AND term,
    at least one OR alternative (`WITH` exceptions only add permissions)."""
    from license_expression import AND, OR, LicenseWithExceptionSymbol

    if not expression or normalize(expression)[0] is None:
        return False

    def ok(node) -> bool:
        if isinstance(node, AND):
            return all(ok(arg) for arg in node.args)
        if isinstance(node, OR):
            return any(ok(arg) for arg in node.args)
        if isinstance(node, LicenseWithExceptionSymbol):
            return node.license_symbol.key in accepted
        return node.key in accepted

    return ok(_licensing().parse(expression))

