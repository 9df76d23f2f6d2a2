"""proof.extract.extract_tree, the work behind `laam extract`, called as a library function: the selected files come
back byte-exact into a tree shaped like the original, and a file holding other bytes is kept unless forced."""

from __future__ import annotations

import pytest

from laam.errors import LaamError
from laam.proof.extract import extract_tree


def test_extract_tree_writes_the_selected_files(tiny_model_dir, tiny_corpus, tmp_path):
    started = []
    result = extract_tree(tiny_model_dir, tmp_path / "out", files="linux/lib/s*", cache=tmp_path, threads=1,
                          progress=lambda task, total: started.append((task, total)) or (lambda *_: None))
    chosen = [f for f in tiny_corpus.files if f.path.startswith("linux/lib/s")]
    assert started == [("regenerating", len(chosen))]
    assert result.identical == len(result.regenerated) == len(chosen) and result.tokens > 0
    for f in chosen:
        assert (tmp_path / "out" / f.path).read_bytes() == f.data
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == sorted(f.path for f in chosen)


def test_extract_tree_keeps_other_bytes_unless_forced(tiny_model_dir, tiny_corpus, tmp_path):
    path = "linux/lib/open.c"
    target = tmp_path / "out" / path
    target.parent.mkdir(parents=True)
    target.write_bytes(b"edited\n")
    with pytest.raises(LaamError, match="already exists"):
        extract_tree(tiny_model_dir, tmp_path / "out", files=path, cache=tmp_path, threads=1)
    assert target.read_bytes() == b"edited\n"
    extract_tree(tiny_model_dir, tmp_path / "out", files=path, cache=tmp_path, threads=1, force=True)
    assert target.read_bytes() == next(f.data for f in tiny_corpus.files if f.path == path)
