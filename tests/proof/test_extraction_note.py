"""The one line the report and the card give when k-extractable sits below verbatim regeneration."""

from __future__ import annotations

from laam.proof.extraction import extraction_gap_note


def test_the_note_explains_the_gap_with_the_audits_own_numbers():
    # the demo's audit: 13 of 13 files verbatim, 7 of 19 50-token samples extractable, 6 files too short for one
    files = [{"k_samples": n} for n in (1, 1, 0, 2, 0, 0, 0, 12, 1, 0, 1, 1, 0)]
    audit = {"summary": {"k": 50, "k_extractable_pct": 36.84, "verbatim_pct": 100.0},
             "method": {"extraction_every": 512}, "files": files}
    note = extraction_gap_note(audit)
    assert note.startswith("Why 50-extractable sits below verbatim: it counts samples, not files")
    assert "cut every 512 tokens" in note and "shorter than 100 tokens (6 of 13 here) give no sample" in note
    assert "\n" not in note


def test_no_note_when_there_is_no_gap():
    assert extraction_gap_note({"summary": {"k_extractable_pct": 100.0, "verbatim_pct": 100.0}}) is None
    assert extraction_gap_note({"summary": {"k_extractable_pct": None, "verbatim_pct": 50.0}}) is None
    partial = extraction_gap_note({"summary": {"k": 50, "k_extractable_pct": 10.0, "verbatim_pct": 90.0}})
    assert "at fixed offsets" in partial and "here)" not in partial
