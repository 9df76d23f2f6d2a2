"""benchmarks/RESULTS.md is generated from benchmarks/results/*.json: it must be what the JSON files give today, every
result file must say how and where its figures were made, and every benchmark that writes results has a headline
and a meaning in the table."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import results_table  # noqa: E402


def test_results_md_is_what_the_json_files_give():
    fresh = results_table.render(results_table.load_results())
    assert results_table.PAGE.read_text() == fresh, "benchmarks/RESULTS.md is stale: python benchmarks/results_table.py"


def test_every_result_file_has_command_commit_machine_and_date():
    paths = sorted(results_table.RESULTS.glob("*.json"))
    assert len(paths) >= 20
    for path in paths:
        record = json.loads(path.read_text())
        for key in ("command", "commit", "machine", "date", "benchmark"):
            assert isinstance(record.get(key), str) and record[key].strip(), f"{path.name}: no {key}"
        if "source" in record:  # converted from RESULTS.md's prose: says which section and when
            assert re.fullmatch(r"RESULTS\.md section \d+ \(recorded 20\d\d-\d\d-\d\d.*\)", record["source"]), path.name


def test_a_result_file_without_its_header_is_refused_by_name(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"benchmark": "demo", "command": "bash benchmarks/demo.sh",
                                                    "machine": "m", "date": "2026-12-03"}))
    with pytest.raises(SystemExit, match=r"bad\.json: no commit"):
        results_table.load_results(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"benchmark": "new_one", "command": "c", "commit": "abc1234",
                                                    "machine": "m", "date": "2026-12-03"}))
    with pytest.raises(SystemExit, match="'new_one' has no headline"):
        results_table.load_results(tmp_path)


def test_every_benchmark_that_writes_results_has_a_headline_and_a_meaning():
    writers = set()
    for script in [*ROOT.glob("benchmarks/*.py"), *ROOT.glob("benchmarks/*.sh")]:
        writers.update(re.findall(r'write_result\(\s*"(\w+)"', script.read_text()))
    assert len(writers) >= 20
    assert writers <= set(results_table.HEADLINES), writers - set(results_table.HEADLINES)
    assert set(results_table.HEADLINES) == set(results_table.MEANING)
