"""Licenses on a tree the test builds: SPDX tags in every comment style the kernel uses, normalized by an SPDX
library; notices in the leading comment only; invalid tags recorded as such; COPYING for the rest."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from laam.data.corpus import CorpusConfig, load_corpus
from laam.data.licenses import combine, normalize, read_tag, satisfied_by
from laam.publish.openness import OPEN_LICENSES, is_open

GPL2_TEXT = b"""\t\t    GNU GENERAL PUBLIC LICENSE
\t\t       Version 2, June 1991

 Copyright (C) 1989, 1991 Free Software Foundation, Inc.
"""

GPL2_PLUS = b"""/*
 * This program is free software; you can redistribute it and/or modify
 * it under the terms of the GNU General Public License as published by
 * the Free Software Foundation; either version 2 of the License, or
 * (at your option) any later version.
 */
int x;
"""
LGPL21_PLUS = b"""/*
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Lesser General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 *
 * You should have received a copy of the GNU Lesser General Public
 * License along with this library; if not, see <http://www.gnu.org/licenses/>.
 */
"""
GPL2_ONLY = b"""# This program is free software; you can redistribute it and/or modify it
# under the terms of the GNU General Public License version 2 as published
# by the Free Software Foundation.
all:
"""
DUAL_BSD_GPL = b"""/*
 * Copyright (c) 2005 Example Corp.
 *
 * Redistribution and use in source and binary forms, with or without
 * modification, are permitted provided that the following conditions
 * are met:
 * 1. Redistributions of source code must retain the above copyright
 *    notice, this list of conditions and the following disclaimer.
 * 2. Redistributions in binary form must reproduce the above copyright
 *    notice, this list of conditions and the following disclaimer in the
 *    documentation and/or other materials provided with the distribution.
 * 3. Neither the name of the copyright holder nor the names of its
 *    contributors may be used to endorse or promote products derived from
 *    this software without specific prior written permission.
 *
 * Alternatively, this software may be distributed under the terms of the
 * GNU General Public License ("GPL") version 2 as published by the Free
 * Software Foundation.
 */
"""
MIT = b"""// Copyright 2016 Example
//
// Permission is hereby granted, free of charge, to any person obtaining a copy
// of this software and associated documentation files (the "Software"), to deal
// in the Software without restriction.
"""
NO_VERSION = b"""/* This software may be used and distributed according to the terms
   of the GNU Public License, incorporated herein by reference. */
"""
DOC_WITH_SAMPLE = b"""Writing a driver
================

Start every file with a license notice, for example::

    /*
     * This program is free software; you can redistribute it and/or modify
     * it under the terms of the GNU General Public License as published by
     * the Free Software Foundation; either version 2 of the License, or
     * (at your option) any later version.
     */
"""
NOTICE_AFTER_CODE = b"""#include <linux/x.h>

/*
 * This program is free software; you can redistribute it and/or modify
 * it under the terms of the GNU General Public License as published by
 * the Free Software Foundation; either version 2 of the License, or
 * (at your option) any later version.
 */
"""

# path: (content, license, method, raw)
TREE = {
    "COPYING": (GPL2_TEXT, "GPL-2.0-only", "license-text", "GNU GENERAL PUBLIC LICENSE Version 2, June 1991"),
    "tags/slashes.c": (b"// SPDX-License-Identifier: GPL-2.0\nint a;\n", "GPL-2.0-only", "spdx-tag", "GPL-2.0"),
    "tags/block.h": (b"/* SPDX-License-Identifier: GPL-2.0+ WITH Linux-syscall-note */\n",
                     "GPL-2.0-or-later WITH Linux-syscall-note", "spdx-tag", "GPL-2.0+ WITH Linux-syscall-note"),
    "tags/hash.sh": (b"#!/bin/sh\n# SPDX-License-Identifier: (GPL-2.0)\n", "GPL-2.0-only", "spdx-tag", "(GPL-2.0)"),
    "tags/doc.rst": (b".. SPDX-License-Identifier: gpl-2.0 or mit\n\nTitle\n", "GPL-2.0-only OR MIT", "spdx-tag",
                     "gpl-2.0 or mit"),
    "tags/page.svg": (b"<?xml version='1.0'?>\n<!-- SPDX-License-Identifier: GPL-2.0 OR GFDL-1.1-no-invariants-or-"
                      b"later -->\n", "GPL-2.0-only OR GFDL-1.1-no-invariants-or-later", "spdx-tag",
                      "GPL-2.0 OR GFDL-1.1-no-invariants-or-later"),
    "tags/template.j2": (b"{# SPDX-License-Identifier: GPL-2.0 #}\n{{ x }}\n", "GPL-2.0-only", "spdx-tag", "GPL-2.0"),
    "tags/keys.asn1": (b"-- SPDX-License-Identifier: BSD-3-Clause\n", "BSD-3-Clause", "spdx-tag", "BSD-3-Clause"),
    "tags/preamble.sty": (b"%\n% SPDX-License-Identifier: GPL-2.0\n", "GPL-2.0-only", "spdx-tag", "GPL-2.0"),
    "tags/boot.txt": (b'LIST "SPDX-License-Identifier: GPL-2.0"\n', "GPL-2.0-only", "spdx-tag", "GPL-2.0"),
    "tags/arm.S": (b"@ SPDX-License-Identifier: GPL-2.0\n", "GPL-2.0-only", "spdx-tag", "GPL-2.0"),
    "tags/sh.S": (b"! SPDX-License-Identifier: GPL-2.0-or-later\n", "GPL-2.0-or-later", "spdx-tag",
                  "GPL-2.0-or-later"),
    "tags/and.c": (b"// SPDX-License-Identifier: GPL-2.0 and (mit or BSD-2-Clause)\n",
                   "GPL-2.0-only AND (MIT OR BSD-2-Clause)", "spdx-tag", "GPL-2.0 and (mit or BSD-2-Clause)"),
    "tags/invalid.c": (b"// SPDX-License-Identifier: GPL-2.0 / MIT\n", "NOASSERTION", "spdx-tag", "GPL-2.0 / MIT"),
    "tags/unknown.c": (b"// SPDX-License-Identifier: GPLv2\n", "NOASSERTION", "spdx-tag", "GPLv2"),
    # the kernel reads tags on the first 15 lines only: line 16 is not this file's tag
    "tags/late.c": (b"\n" * 15 + b"// SPDX-License-Identifier: MIT\n", "GPL-2.0-only", "copying", None),
    "notices/gpl2plus.c": (GPL2_PLUS, "GPL-2.0-or-later", "notice", "GPL-2.0-or-later"),
    "notices/lgpl21plus.c": (LGPL21_PLUS, "LGPL-2.1-or-later", "notice", "LGPL-2.1-or-later"),
    "notices/Makefile": (GPL2_ONLY, "GPL-2.0-only", "notice", "GPL-2.0-only"),
    "notices/dual.c": (DUAL_BSD_GPL, "BSD-3-Clause OR GPL-2.0-only", "notice", "BSD-3-Clause OR GPL-2.0-only"),
    "notices/mit.c": (MIT, "MIT", "notice", "MIT"),
    "notices/noversion.c": (NO_VERSION, "GPL-1.0-or-later", "notice", "GPL-1.0-or-later"),
    # a code sample in a document's body, and a notice after code, are not the file's leading comment
    "notices/howto.rst": (DOC_WITH_SAMPLE, "GPL-2.0-only", "copying", None),
    "notices/late.c": (NOTICE_AFTER_CODE, "GPL-2.0-only", "copying", None),
    "plain.c": (b"int plain;\n", "GPL-2.0-only", "copying", None),
}


def _tarball(path, top="linux-6.12"):
    with tarfile.open(path, "w:gz") as tar:
        for name, (data, *_) in TREE.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def licensed(tmp_path_factory):
    path = _tarball(tmp_path_factory.mktemp("licenses") / "linux-6.12.tar.gz")
    return load_corpus(CorpusConfig(source=str(path)), progress=False)


@pytest.mark.parametrize("name", list(TREE))
def test_each_case_is_read_and_normalized(licensed, name):
    _, license_, method, raw = TREE[name]
    row = next(r for r in licensed.manifest if r["path"] == f"linux-6.12/{name}")
    assert (row["license"], row["license_method"], row["license_raw"]) == (license_, method, raw)
    if method == "copying":
        assert row["license_evidence"] == "linux-6.12/COPYING"


def test_invalid_tags_are_recorded_with_the_parsers_reason(licensed):
    rows = {r["path"]: r for r in licensed.manifest}
    assert "Invalid license key" in rows["linux-6.12/tags/invalid.c"]["license_error"]
    assert "unknown license id(s): GPLv2" == rows["linux-6.12/tags/unknown.c"]["license_error"]
    assert all(r["license_error"] is None for r in rows.values() if r["license"] != "NOASSERTION")
    assert licensed.license_methods()["spdx-tag (invalid)"] == 2


def test_manifest_and_summary_carry_raw_normalized_and_method(licensed, tmp_path):
    folder = licensed.write_manifest(tmp_path)
    row = json.loads(next(line for line in (folder / "manifest.jsonl").read_text().splitlines()
                          if '"linux-6.12/tags/doc.rst"' in line))
    assert {k: row[k] for k in ("license", "license_raw", "license_method", "license_evidence")} == {
        "license": "GPL-2.0-only OR MIT", "license_raw": "gpl-2.0 or mit", "license_method": "spdx-tag",
        "license_evidence": "line 1"}
    summary = json.loads((folder / "corpus.json").read_text())
    assert summary["licenses"]["NOASSERTION"] == 2 and summary["license_methods"]["notice"] == 6


def test_kernel_tag_rules():
    assert read_tag(b"/* SPDX-License-Identifier: MIT */\n") == ("MIT", 1)
    assert read_tag(b"x\n" * 14 + b"// SPDX-License-Identifier: MIT\n") == ("MIT", 15)
    assert read_tag(b"x\n" * 15 + b"// SPDX-License-Identifier: MIT\n") is None
    assert normalize("GPL-2.0") == ("GPL-2.0-only", None) and normalize("GPL-2.0+")[0] == "GPL-2.0-or-later"
    assert normalize("LicenseRef-public-domain OR gpl-2.0")[0] == "LicenseRef-public-domain OR GPL-2.0-only"
    assert normalize("GPL-2.0 OR")[0] is None


def test_expressions_downstream():
    assert is_open("GPL-2.0-only WITH Linux-syscall-note OR MIT") and is_open("GPL-2.0-only AND MIT")
    assert not is_open("GPL-2.0-only AND NOASSERTION") and not is_open("NOASSERTION") and not is_open(None)
    assert satisfied_by("BSD-4.3TAHOE OR GPL-2.0-only", {"GPL-2.0-only"}) and "BSD-4-Clause" in OPEN_LICENSES
    assert combine(["GPL-2.0-only", "GPL-2.0-only OR MIT", "GPL-2.0-only"]) == "GPL-2.0-only AND (GPL-2.0-only OR MIT)"
