"""The corpus: byte-exact records, filters and manifests on the synthetic release (tests/kernel_tree.py); member
counts, notices and statistics of the real Linux 1.0; unsafe archives."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from laam.data.corpus import CorpusConfig, corpus_stats, load_corpus, select_files
from laam.data.records import file_bytes, make_record, path_prompt, split_record
from laam.errors import LaamError


def _tar_members(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}


def test_every_file_comes_back_byte_for_byte(release):
    """The synthetic release read from its .tar.xz and its .tar.gz: every member kept, each record splits back
    into its path and exact bytes, the Latin-1 file included, and a path that is a prefix of another
    (drivers/sound/Readme, Readme.linux) stays a file of its own."""
    for archive in (release.tarball, release.gz):
        corpus = load_corpus(CorpusConfig(source=str(archive)), progress=False)
        assert corpus.name == "linux-1.0" and corpus.members == len(release.files)
        assert [f.path for f in corpus.files] == sorted(release.files)
        for f in corpus.files:
            path, content = split_record(f.record)
            assert path == f.path and file_bytes(content, f.encoding) == release.files[f.path] == f.data
        assert [f.path for f in corpus.files if f.encoding != "utf-8"] == ["linux/drivers/char/defkeymap.map"]
    readme = load_corpus(CorpusConfig(source=str(release.tarball), include=("drivers/sound/Readme",)), progress=False)
    assert [f.path for f in readme.files] == ["linux/drivers/sound/Readme"]


def test_manifest_licenses_of_the_synthetic_release(release, tmp_path):
    """COPYING is read as the GPL-2.0's text and lends GPL-2.0-only to the files below it; a leading-comment
    notice with "or (at your option) any later version" reads as GPL-2.0-or-later."""
    corpus = load_corpus(CorpusConfig(source=str(release.tarball)), progress=False)
    folder = corpus.write_manifest(tmp_path)
    rows = {r["path"]: r for r in map(json.loads, (folder / "manifest.jsonl").read_text().splitlines())}
    assert set(rows) == set(release.files)
    assert rows["linux/COPYING"]["license_method"] == "license-text"
    assert (rows["linux/net/inet/tcp.c"]["license"], rows["linux/net/inet/tcp.c"]["license_method"]) == (
        "GPL-2.0-or-later", "notice")
    inherited = {r["license"] for path, r in rows.items() if r["license_method"] == "copying"}
    assert inherited == {"GPL-2.0-only"}
    assert all(r["sha256"] == hashlib.sha256(release.files[path]).hexdigest() for path, r in rows.items())


def test_linux_1_0_counts_and_exact_bytes(linux_corpus, linux_tarball):
    assert linux_corpus.name == "linux-1.0"
    assert linux_corpus.members == 561
    assert len(linux_corpus.files) == 561  # the default filter keeps every text file of 1.0
    assert sum(len(f.data) for f in linux_corpus.files) == 4_719_743
    originals = _tar_members(linux_tarball)
    for f in linux_corpus.files:
        path, content = split_record(f.record)
        assert path == f.path and path.startswith("linux/")
        assert file_bytes(content, f.encoding) == originals[f.path]


def test_the_one_non_utf8_file_comes_back_exactly(linux_corpus):
    latin = [f for f in linux_corpus.files if f.encoding != "utf-8"]
    assert [f.path for f in latin] == ["linux/drivers/char/defkeymap.map"]
    (keymap,) = latin
    with pytest.raises(UnicodeDecodeError):
        keymap.data.decode("utf-8")
    assert file_bytes(split_record(keymap.record)[1], "latin-1") == keymap.data


def test_original_filter_keeps_the_506_files(linux_tarball):
    corpus = load_corpus(CorpusConfig(source=str(linux_tarball), filter="original"), progress=False)
    assert len(corpus.files) == 506
    kinds = {}
    for f in corpus.files:
        kinds[f.path.rsplit(".", 1)[-1]] = kinds.get(f.path.rsplit(".", 1)[-1], 0) + 1
    assert (kinds["c"], kinds["h"], kinds["S"]) == (282, 205, 19)
    excluded = [row for row in corpus.manifest if not row["included"]]
    assert len(excluded) == 55 and all("original LaaM filter" in row["reason"] for row in excluded)


def test_include_exclude_and_size(tarball):
    config = CorpusConfig(source=str(tarball), include=("linux/lib/",), exclude=("*malloc*",))
    corpus = load_corpus(config, progress=False)
    assert len(corpus.files) == 12 and all(f.path.startswith("linux/lib/") for f in corpus.files)
    small = load_corpus(CorpusConfig(source=str(tarball), include=("linux/lib/*.c",), max_file_size=180),
                        progress=False)
    assert {f.path for f in small.files} == {"linux/lib/close.c", "linux/lib/dup.c", "linux/lib/errno.c",
                                             "linux/lib/setsid.c"}


def test_empty_selection_is_an_error(tarball):
    with pytest.raises(LaamError, match="no files left after filters"):
        load_corpus(CorpusConfig(source=str(tarball), include=("linux/nothing-here/",)), progress=False)


def test_record_format():
    record = make_record("linux/a.c", "int x;\n")
    assert record == "<|start_file|><|start_header|>linux/a.c<|end_header|>int x;\n<|end_file|>"
    assert record.startswith(path_prompt("linux/a.c"))
    assert split_record(record) == ("linux/a.c", "int x;\n")


def test_manifest_rows_and_licenses(linux_corpus, linux_tarball, tmp_path):
    folder = linux_corpus.write_manifest(tmp_path)
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 561
    by_path = {r["path"]: r for r in rows}
    sched = by_path["linux/kernel/sched.c"]
    data = next(f.data for f in linux_corpus.files if f.path == "linux/kernel/sched.c")
    assert sched["sha256"] == hashlib.sha256(data).hexdigest() and sched["size"] == len(data)
    assert sched["license"] == "GPL-2.0-only" and sched["license_evidence"] == "linux/COPYING"
    assert by_path["linux/drivers/char/defkeymap.map"]["encoding"] == "latin-1"
    # The sound driver ships its own COPYING: a BSD licence, not the kernel's GPL.
    assert by_path["linux/drivers/sound/dmabuf.c"]["license"] == "BSD-2-Clause"
    summary = json.loads((folder / "corpus.json").read_text())
    assert summary["source_sha256"] == hashlib.sha256(linux_tarball.read_bytes()).hexdigest()
    assert summary["members"] == 561 and summary["included"] == 561
    # README's figures (why each differs from the pre-SPDX-library reading is explained there)
    assert summary["licenses"] == {"GPL-2.0-only": 433, "GPL-2.0-or-later": 55, "BSD-2-Clause": 48,
                                   "GPL-1.0-or-later": 22, "BSD-4.3TAHOE": 2, "LGPL-2.0-or-later": 1}
    assert summary["license_methods"] == {"copying": 444, "notice": 116, "license-text": 1}


def test_linux_1_0_notices_read_as_the_kernel_later_tagged_them(linux_corpus):
    """Each reading below is the one the kernel's own SPDX tags later gave the same notice (net/ipv4/tcp.c:
    GPL-2.0-or-later; Becker's ne.c, wd.c, 8390.h: GPL-1.0+), or the SPDX list's text (BSD-4.3TAHOE)."""
    rows = {r["path"]: r for r in linux_corpus.manifest}
    expected = {
        "linux/net/inet/tcp.c": "GPL-2.0-or-later",  # "either version 2 of the License, or(at your option) any later"
        "linux/drivers/scsi/aha152x.c": "GPL-2.0-or-later",  # the same, broken by " * " between lines
        "linux/drivers/net/ne.c": "GPL-1.0-or-later",  # "the GNU Public License, incorporated herein by reference"
        "linux/drivers/net/slhc.c": "BSD-4.3TAHOE",  # "...and this paragraph are duplicated in all such forms..."
        "linux/include/linux/mc146818rtc.h": "LGPL-2.0-or-later",  # "GNU Library General Public License, Version
        # 2 or later"
        "linux/zBoot/gzip.h": "GPL-2.0-only",  # "the GNU General Public License, see the file COPYING"
        "linux/drivers/net/README.DLINK": "GPL-2.0-only",  # its GPL-2+ paragraph is in the body: COPYING decides
    }
    assert {path: rows[path]["license"] for path in expected} == expected
    assert rows["linux/net/inet/tcp.c"]["license_method"] == "notice"
    assert rows["linux/net/inet/tcp.c"]["license_evidence"] == "leading comment"
    assert rows["linux/drivers/net/README.DLINK"]["license_method"] == "copying"
    assert rows["linux/COPYING"]["license_method"] == "license-text"


def test_stats_per_directory(linux_corpus):
    stats = corpus_stats(linux_corpus)
    assert stats["total"] == {"files": 561, "bytes": 4_719_743, "lines": 176_250}
    assert stats["linux/kernel/"]["files"] == 23
    assert sum(row["files"] for key, row in stats.items() if key != "total") == 561


def _add(tar, name, data=b"", **kind):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in kind.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def test_unsafe_members_are_skipped_and_reported(tmp_path):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "linux/ok.c", b"int ok;\n")
        _add(tar, "linux/link", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        _add(tar, "linux/hard", type=tarfile.LNKTYPE, linkname="linux/ok.c")
        _add(tar, "linux/../../evil.c", b"evil\n")
        _add(tar, "/abs.c", b"evil\n")
        _add(tar, "linux/tty0", type=tarfile.CHRTYPE, devmajor=4, devminor=0)
    corpus = load_corpus(CorpusConfig(source=str(path)), progress=False)
    assert [f.path for f in corpus.files] == ["linux/ok.c"]
    reasons = dict(corpus.skipped)
    assert set(reasons) == {"linux/link", "linux/hard", "linux/../../evil.c", "/abs.c", "linux/tty0"}
    assert "symlink" in reasons["linux/link"] and "hardlink" in reasons["linux/hard"]
    assert "unsafe path" in reasons["linux/../../evil.c"] and "unsafe path" in reasons["/abs.c"]
    assert "device" in reasons["linux/tty0"]
    assert not (tmp_path.parent / "evil.c").exists() and not list(tmp_path.glob("*.c"))


def test_corrupt_and_truncated_archives(tarball, tmp_path):
    truncated = tmp_path / "linux-1.0.tar.xz"
    truncated.write_bytes(tarball.read_bytes()[: tarball.stat().st_size // 2])
    with pytest.raises(LaamError, match="corrupt or truncated"):
        load_corpus(CorpusConfig(source=str(truncated)), progress=False)
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is not an archive" * 100)
    with pytest.raises(LaamError, match="corrupt or truncated"):
        load_corpus(CorpusConfig(source=str(garbage)), progress=False)


def test_unpacked_folder_source(tmp_path):
    root = tmp_path / "linux"
    (root / "kernel").mkdir(parents=True)
    (root / "kernel" / "a.c").write_bytes(b"int a;\n")
    (root / "README").write_bytes(b"caf\xe9\n")  # Latin-1, not UTF-8
    (root / "kernel" / "loop").symlink_to("/etc")
    corpus = load_corpus(CorpusConfig(source=str(root)), progress=False)
    assert [(f.path, f.encoding) for f in corpus.files] == [("linux/README", "latin-1"), ("linux/kernel/a.c", "utf-8")]
    assert corpus.skipped == [("linux/kernel/loop", "symlink, not a regular file")]
    assert file_bytes(corpus.files[0].text, "latin-1") == b"caf\xe9\n"


# --- any release: root-relative selection, path order --------------------------------------------------

MODERN_TREE = {"lib/lzo/lzo1x_compress.c": b"int lzo;\n", "lib/string.c": b"int s;\n", "lib/malloc.c": b"int m;\n",
               "kernel/sched/core.c": b"int core;\n", "Makefile": b"all:\n", "COPYING": b"GPL\n"}


def _modern_tarball(path, top, names=None):
    """A tarball whose members come in an order that is not path order, as release tarballs' often do."""
    names = names or sorted(MODERN_TREE, reverse=True)
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            _add(tar, f"{top}/{name}", MODERN_TREE[name])
    return path


@pytest.mark.parametrize("top", ["linux", "linux-6.12", "linux-source-6.12"])
def test_presets_select_the_same_files_whatever_the_top_folder(tmp_path, top):
    from laam.model.presets import recipe

    path = _modern_tarball(tmp_path / f"{top}.tar.gz", top)
    for preset, expected in (("demo", {"lib/lzo/lzo1x_compress.c", "lib/string.c", "lib/malloc.c"}),
                             ("tiny", {"lib/lzo/lzo1x_compress.c", "lib/string.c"}),
                             ("demo-kernel", {"kernel/sched/core.c"})):
        plan = recipe(preset)["corpus"]
        corpus = load_corpus(CorpusConfig(source=str(path), include=tuple(plan["include"]),
                                          exclude=tuple(plan.get("exclude", ()))), progress=False)
        assert corpus.root == top
        assert {f.path for f in corpus.files} == {f"{top}/{name}" for name in expected}, preset


def test_older_spellings_and_the_top_folder_itself_still_select(tmp_path):
    path = _modern_tarball(tmp_path / "linux-6.12.tar.gz", "linux-6.12")
    for spelling in ("lib/lzo/", "linux/lib/lzo/", "linux-6.12/lib/lzo/", "*/lzo/*.c", "lib/lzo/*.c"):
        corpus = load_corpus(CorpusConfig(source=str(path), include=(spelling,)), progress=False)
        assert [f.path for f in corpus.files] == ["linux-6.12/lib/lzo/lzo1x_compress.c"], spelling
    corpus = load_corpus(CorpusConfig(source=str(path)), progress=False)
    assert [f.path for f in select_files(corpus.files, ["kernel/sched/"])] == ["linux-6.12/kernel/sched/core.c"]
    with pytest.raises(LaamError, match=r"paths look like COPYING, relative to the tree's top folder linux-6.12/"):
        select_files(corpus.files, ["mm/"])


def test_tarball_and_unpacked_folder_give_the_same_corpus(tmp_path):
    tarball = _modern_tarball(tmp_path / "linux-6.12.tar.gz", "linux-6.12")
    shuffled = _modern_tarball(tmp_path / "again.tar.gz", "linux-6.12",
                               ["lib/string.c", "COPYING", "kernel/sched/core.c", "lib/lzo/lzo1x_compress.c",
                                "Makefile", "lib/malloc.c"])
    folder = tmp_path / "unpacked"
    for name, data in MODERN_TREE.items():
        (folder / "linux-6.12" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "linux-6.12" / name).write_bytes(data)
    corpora = [load_corpus(CorpusConfig(source=str(source)), progress=False)
               for source in (tarball, shuffled, folder / "linux-6.12")]
    paths = [f.path for f in corpora[0].files]
    assert paths == sorted(paths) and paths[0] == "linux-6.12/COPYING"
    for corpus in corpora[1:]:
        assert [f.path for f in corpus.files] == paths
        assert [r["path"] for r in corpus.manifest] == [r["path"] for r in corpora[0].manifest]
        assert corpus.fingerprint() == corpora[0].fingerprint()
    assert len({c.fingerprint() for c in corpora}) == 1
    assert list(corpora[0].records())[0].startswith("<|start_file|><|start_header|>linux-6.12/COPYING")


def test_only_kept_files_stay_in_memory_while_members_stream():
    """A subset of a big tree holds its own bytes, not the tree's: 64 members of 512 KB stream through select()
    one at a time, and only the one kept stays (tracemalloc's peak stays far below the 32 MB that went by)."""
    import tracemalloc

    from laam.data.archive import Member
    from laam.data.corpus import select

    def members():
        yield Member("linux-6.12", "dir")
        for i in range(64):
            yield Member(f"linux-6.12/drivers/d{i:02}.c", "file", b"/* x */\n" + bytes([65 + i % 26]) * (512 << 10))
        yield Member("linux-6.12/lib/lzo/lzo.c", "file", b"int lzo;\n")

    tracemalloc.start()
    try:
        files, rows, _ = select(members(), CorpusConfig(include=("lib/lzo/",)))
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [f.path for f in files] == ["linux-6.12/lib/lzo/lzo.c"] and len(rows) == 65
    assert peak < 8 << 20 and current < 2 << 20, (peak, current)
