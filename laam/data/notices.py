"""License notices in a file's leading comment, read as an SPDX expression (laam.data.licenses normalizes it).

Hand-written: the maintained SPDX libraries parse expressions, not prose; the tools that do read prose
(ScanCode) match thousands of license texts and take minutes per tree, while a kernel's untagged files
carry a handful of boilerplates. Recognized, in the file's leading comment only (the comment block(s) at
the top, after an optional shebang, XML declaration or include guard; a license file such as LICENSE.SRC is read whole):

- GPL and LGPL with their version and "or (at your option) any later version" (`GPL-2.0-or-later`),
  "version 2" alone (`GPL-2.0-only`), or no version at all (`GPL-1.0-or-later`, as GPL section 9 reads
  it and as the kernel's own tags read those same notices; a notice that sends the reader to COPYING
  for the terms gets COPYING's GPL-2.0-only);
- BSD (2-, 3-, 4-clause, the one-paragraph 4.3BSD-Tahoe text), OpenIB, MIT, X11, ISC, Apache-2.0,
  MPL-1.1, CDDL-1.0, public domain;
- several of them: `A OR B` when the notice offers a choice ("dual licensed", "alternatively", "either
  license", …), else `A AND B`.
"""

from __future__ import annotations

import re

# Line comments, tried in this order after leading blanks; `#` lines that are C preprocessor directives
# are code, not comments.
_LINE_MARKERS = ("//", "#", ";", "--", "%", "!", "@", "|", "dnl ", "rem ")
_BLOCKS = (("/*", "*/"), ("<!--", "-->"), ("{#", "#}"))
_DIRECTIVE = re.compile(r"#\s*(?:include|define|undef|if|ifdef|ifndef|elif|else|endif|error|pragma|line|"
                        r"warning|import)\b")
_GUARD = re.compile(r"#\s*(?:ifndef|define|if !defined)\b")
_LICENSE_FILE = re.compile(r"^(?:copying|licen[cs]e)(?:[._-].*)?$", re.IGNORECASE)
_DECORATION = re.compile(r"^\s*(?:/\*+|\*+/?|//+|#+|;+|--+|%+|!+|@+|\|+|\.\.|<!--|\{#|dnl\b|rem\b)?")
_TRAILER = re.compile(r"(?:\*+/|-->|#\})\s*$")


def _strip(line: str) -> str:
    return _TRAILER.sub("", _DECORATION.sub("", line, count=1)).strip()


def _block(lines: list[str], i: int, opening: str, closing: str) -> tuple[list[str], int]:
    """The lines of a block comment opened on line i, and the index after it."""
    text = []
    first = lines[i].lstrip()[len(opening):]
    if closing in first:
        return [first.split(closing, 1)[0]], i + 1
    text.append(first)
    for j in range(i + 1, len(lines)):
        if closing in lines[j]:
            text.append(lines[j].split(closing, 1)[0])
            return text, j + 1
        text.append(lines[j])
    return text, len(lines)


def _rst_comment(lines: list[str], i: int) -> tuple[list[str], int]:
    """An reStructuredText comment: the `..` line and the indented lines under it."""
    text, j = [lines[i].lstrip()[2:]], i + 1
    while j < len(lines) and (not lines[j].strip() or lines[j][:1] in " \t"):
        text.append(lines[j])
        j += 1
    return text, j


def leading_comment(data: bytes, path: str = "") -> str:
    """The text of a file's leading comment block(s), decoration stripped; a license file's whole text."""
    text = data.decode("utf-8", errors="replace")
    if _LICENSE_FILE.match(path.rsplit("/", 1)[-1]):
        return text
    lines = text.splitlines()
    i, out = 0, []
    if lines and (lines[0].startswith("#!") or lines[0].startswith("<?xml")):
        i = 1
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped or (not out and _GUARD.match(stripped)):  # blank, or a header's include guard
            i += 1
            continue
        opening = next(((o, c) for o, c in _BLOCKS if stripped.startswith(o)), None)
        if opening:
            block, i = _block(lines, i, *opening)
            out += block
            continue
        if stripped.startswith(".."):
            block, i = _rst_comment(lines, i)
            out += block
            continue
        if stripped.startswith(_LINE_MARKERS) and not _DIRECTIVE.match(stripped):
            out.append(stripped)
            i += 1
            continue
        break
    # a tag is read by the tag rules (laam.data.licenses), never as prose
    return "\n".join(_strip(line) for line in out if "SPDX-License-Identifier" not in line)


def _words(comment: str) -> str:
    """Lower case, one space between words, `licence` spelled `license`."""
    return " ".join(comment.lower().replace("licence", "license").split())


_GPL = re.compile(r"(?<!lesser )(?<!library )(?<!affero )(?:gnu )?general public license|\bgnu public license|"
                  r"\bgnu gpl\b|"
                  r"\bgpl(?=\b|v\d|\d)")
_LGPL = re.compile(r"\bgnu (?:lesser|library) general public license|\b(?:lesser|library) general public "
                   r"license|\blgpl(?=\b|v\d|\d)")
# a version written right after the name: GPLv2, GPL-2.0, GPL v2, "(GPL) version 2", ", version 2"
_VERSION_NEXT = re.compile(r"^\s*(?:\(\"?l?gpl\"?\))?[\s,\-]*(?:v|version\s*)?(\d)(?:\.(\d))?(?![\d])")
_VERSION_IN = re.compile(r"\bversion (\d)(?:\.(\d))?(?!\d)")  # further on in the sentence
_VERSION_BEFORE = re.compile(r"\bversion (\d)(?:\.(\d))? of (?:the )?$")
_LATER = re.compile(r"^\+|^[^.]{0,80}?(?:\bany later\b|\bor later\b|\bor newer\b|\band later\b|\bor any later\b)")
_VERSIONS = {"GPL": ("1.0", "2.0", "3.0"), "LGPL": ("2.0", "2.1", "3.0")}
_ONLY = re.compile(r"^[^.]{0,40}?\bonly\b")
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_COPYING = re.compile(r"\bcopying\b")
_DUAL = re.compile(r"\bdual[- ]?licen|\bdual (?:bsd|mit|gpl|mpl)|\bdual-(?:bsd|mit|gpl)|\balternatively\b|"
                   r"\bchoice of (?:one of )?(?:the )?(?:two|following|either)|\beither license\b|"
                   r"\bat your (?:option|choice),? (?:under|either|be licensed|you may)|\byou may (?:choose|elect)|"
                   r"\bor,? at your (?:option|choice),? (?:the|under)|\bunder either\b|\bterms of either\b|"
                   r"\bor,? when distributed separately\b|\blicensed under (?:the )?[\w.+-]+ licen[sc]e,? or\b")


def _version(words: str, match: re.Match) -> tuple[str, str, str] | None:
    """(major, minor, what follows) of the version a GPL/LGPL mention states, or None."""
    after = words[match.end():match.end() + 240]
    end = _SENTENCE_END.search(after)
    sentence = after[:end.start()] if end else after
    found = _VERSION_NEXT.match(sentence) or _VERSION_BEFORE.search(words[max(0, match.start() - 40):match.start()])
    if found is None:
        found = _VERSION_IN.search(sentence)
    if found is None:
        return None
    rest = sentence[found.end():] if found.re is not _VERSION_BEFORE else after
    return found.group(1), found.group(2) or "0", rest


def _gnu_reading(words: str, pattern: re.Pattern, family: str) -> tuple[int, str | None] | None:
    """(position, SPDX id) from the first GPL/LGPL mention that states a version; the id is None when no
    mention does. None when the family is not mentioned."""
    first = None
    for match in pattern.finditer(words):
        first = first if first is not None else match.start()
        version = _version(words, match)
        if version is None:
            continue
        major, minor, rest = version
        if f"{major}.{minor}" not in _VERSIONS[family]:  # "based on SHARP GPL 2.4 sources": a kernel version
            continue
        later = bool(_LATER.match(rest)) and not _ONLY.match(rest)
        return first, f"{family}-{major}.{minor}-{'or-later' if later else 'only'}"
    return None if first is None else (first, None)


def _bsd(words: str) -> tuple[int, str] | None:
    at = words.find("redistribution and use in source and binary forms")
    if at < 0:
        return None
    body = words[at:at + 3000]
    if "this paragraph are duplicated in all such forms" in body:
        return at, "BSD-4.3TAHOE"
    if "openib.org bsd license" in words:
        return at, "Linux-OpenIB"
    if "all advertising materials mentioning features" in body:
        return at, "BSD-4-Clause"
    if re.search(r"neither the name|may not be used to endorse|names? of (?:the )?\w+(?: \w+)? may not", body):
        return at, "BSD-3-Clause"
    return at, "BSD-2-Clause"


_OTHERS = [  # (phrase, SPDX id)
    ("permission is hereby granted, free of charge, to any person obtaining a copy", "MIT"),
    ("the mit license", "MIT"),
    ("x11 license", "X11"),
    ("permission to use, copy, modify, and/or distribute this software for any purpose", "ISC"),
    ("permission to use, copy, modify, and distribute this software for any purpose with or without fee", "ISC"),
    ("licensed under the apache license, version 2.0", "Apache-2.0"),
    ("mozilla public license version 1.1", "MPL-1.1"),
    ("common development and distribution license", "CDDL-1.0"),
    ("placed in the public domain", "LicenseRef-public-domain"),
    ("released into the public domain", "LicenseRef-public-domain"),
    ("is in the public domain", "LicenseRef-public-domain"),
]


def notice_expression(comment: str) -> str | None:
    """An SPDX expression (current ids) for the licenses a leading comment grants, or None."""
    words = _words(comment)
    if not words:
        return None
    found = []
    lgpl, gpl = _gnu_reading(words, _LGPL, "LGPL"), _gnu_reading(words, _GPL, "GPL")
    if lgpl:  # LGPL 2.0 section 13: no version named, any version may be chosen
        found.append((lgpl[0], lgpl[1] or "LGPL-2.0-or-later"))
    if gpl and (gpl[1] or not lgpl):  # an LGPL notice's "copy of the GNU GPL" is not a second license
        found.append((gpl[0], gpl[1] or ("GPL-2.0-only" if _COPYING.search(words) else "GPL-1.0-or-later")))
    bsd = _bsd(words)
    if bsd:
        found.append(bsd)
    for phrase, spdx in _OTHERS:
        at = words.find(phrase)
        if at >= 0:
            found.append((at, "X11" if spdx == "MIT" and ("x consortium" in words or "x11" in words) else spdx))
    ids = []
    for _, spdx in sorted(found):
        if spdx not in ids:
            ids.append(spdx)
    if not ids:
        return None
    return (" OR " if len(ids) > 1 and _DUAL.search(words) else " AND ").join(ids)
