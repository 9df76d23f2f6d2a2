"""The HTML pages' renderer (proof.pages): values are escaped by the engine, the marked views escape what they mark,
and the foreign audit's page shows a model id holding markup as text. The audit report's own tests, on a real
audit, are in test_audit_cli.py."""

from __future__ import annotations

from laam.figures import significant
from laam.proof.foreign_report import render
from laam.proof.pages import figure, marked


def test_marked_escapes_the_text_and_marks_the_spans():
    html = marked(b"if (a<b) x = '&';", [(4, 7), (13, 16)], "utf-8")
    assert html == "if (<mark>a&lt;b</mark>) x = <mark>&#39;&amp;&#39;</mark>;"


def test_figure_says_when_a_figure_is_missing():
    assert (figure(None), figure(12.345), figure(0.5, 3, "")) == ("–", "12.3%", "0.500")
    assert (figure(99.96), figure(0.99996, 3, "")) == ("99.9%", "0.999")  # rounded down, never up to 100
    assert [significant(p) for p in (0.99996, 1.23456e-30, None)] == ["0.9999", "1.234e-30", "n/a"]


def test_the_foreign_report_shows_a_model_id_with_markup_as_text():
    """The model id comes from the command line (a Hub id or a folder): the title and heading quote it escaped."""
    summary = {"files": 1, "caught_files": 0, "exact": 0, "prompts": 2, "exact_rate": 0.0, "longest_span": 0,
               "gpl2_traced_bytes": 0}
    audit = {"model": "<script>alert(1)</script>", "summary": summary, "corpus": {"name": "linux-1.0 & more"},
             "document_format": "file text", "context": 512, "settings": {}, "licenses": {}, "files": [],
             "method": {"exact": "a <b>greedy</b> continuation equals the suffix"}}
    page = render(audit, [], [])
    assert "<script" not in page and "<b>greedy" not in page
    assert "<title>extraction audit of &lt;script&gt;alert(1)&lt;/script&gt;</title>" in page
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>" in page and "linux-1.0 &amp; more" in page
    assert "a &lt;b&gt;greedy&lt;/b&gt; continuation" in page


def test_the_foreign_report_floors_its_rates_never_up_to_100():
    """The foreign page prints shares of 1 through laam.figures: 0.99996 is 99.9%, and 0.29 (whose float product
    with 100 is 28.999…) is 29.0%."""
    from laam.figures import share_pct

    assert [share_pct(x, 1, "–") for x in (0.99996, 0.29, 1.0, None)] == ["99.9%", "29.0%", "100.0%", "–"]
    summary = {"files": 1, "caught_files": 1, "exact": 24999, "prompts": 25000, "exact_rate": 0.99996,
               "longest_span": 9, "gpl2_traced_bytes": 9}
    setting = {"prefix": 32, "suffix": 32, "samples": 25000, "exact": 24999, "exact_rate": 0.99996,
               "memorization_score": 0.29, "files_extracted": 1, "longest_span": 9}
    audit = {"model": "m", "summary": summary, "corpus": {"name": "linux-1.0"}, "document_format": "file text",
             "context": 512, "settings": {"p32": setting}, "licenses": {}, "files": [], "method": {}}
    page = render(audit, [], [])
    assert "(99.9%)" in page and "<td>99.9%</td>" in page and "<td>29.0%</td>" in page
    assert "100.0%" not in page and "28.9%" not in page
