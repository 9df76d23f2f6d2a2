"""The generate / extract / audit / trace commands end to end on the tiny memorized model, and the HTML report
rendered by headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from markupsafe import escape
from typer.testing import CliRunner

from laam.cli import app
from laam.figures import floored

runner = CliRunner()
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    import torch

    torch.set_num_threads(1)


def by_path(corpus, path):
    return next(f for f in corpus.files if f.path == path)


def test_generate_path_gives_exact_bytes(tiny_model_dir, tiny_corpus, tmp_path):
    original = by_path(tiny_corpus, "linux/lib/ctype.c").data
    result = invoke("generate", "--model", tiny_model_dir, "--path", "linux/lib/ctype.c", "--greedy",
                    "--cache", tmp_path, "--threads", 1)
    assert result.stdout_bytes == original
    streamed = invoke("generate", "--model", tiny_model_dir, "--path", "linux/lib/ctype.c", "--stream",
                      "--cache", tmp_path, "--threads", 1)
    assert streamed.stdout_bytes == original
    short = invoke("generate", "--model", tiny_model_dir, "--path", "linux/lib/ctype.c", "--max-new-tokens", 5,
                   "--cache", tmp_path, "--threads", 1)
    assert original.startswith(short.stdout_bytes) and 0 < len(short.stdout_bytes) < 40
    sampled = invoke("generate", "--model", tiny_model_dir, "--prompt", "<|start_file|><|start_header|>linux/",
                     "--temperature", 1.5, "--top-k", 20, "--top-p", 0.9, "--seed", 3, "--max-new-tokens", 30,
                     "--cache", tmp_path, "--threads", 1)
    assert sampled.stdout_bytes


def test_generate_rejects_bad_options(tiny_model_dir):
    from laam.errors import LaamError

    for args in ([], ["--path", "a", "--prompt", "b"], ["--path", "a", "--greedy", "--temperature", "1"]):
        result = runner.invoke(app, ["generate", "--model", str(tiny_model_dir), *args])
        assert isinstance(result.exception, LaamError)


def test_extract_rebuilds_the_tree(tiny_model_dir, tiny_corpus, tmp_path):
    result = invoke("extract", "--model", tiny_model_dir, "--out", tmp_path / "out", "--cache", tmp_path, "-q",
                    "--threads", 1)
    assert "12 identical" in result.stdout
    for f in tiny_corpus.files:
        assert (tmp_path / "out" / f.path).read_bytes() == f.data
    invoke("extract", "--model", tiny_model_dir, "--out", tmp_path / "some", "--files", "linux/lib/s*",
           "--cache", tmp_path, "-q", "--threads", 1)
    assert sorted(p.name for p in (tmp_path / "some" / "linux" / "lib").iterdir()) == ["setsid.c", "string.c"]


@pytest.fixture(scope="module")
def audited(tiny_model_dir, tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("audit")
    result = invoke("audit", "--model", tiny_model_dir, "--out", folder, "--cache", folder, "-q", "--threads", 1,
                    "--lm-examples", 200, "--export", "lm-extraction")
    return folder, result


def test_audit_command_writes_json_and_report(audited, tiny_model_dir):
    from laam.proof.margin import read_margins

    folder, result = audited
    audit = json.loads((folder / "audit.json").read_text())
    s = audit["summary"]
    assert {"files", "verbatim_files", "verbatim_pct", "bytes_reproduced_pct", "k_extractable_pct", "pythia_score",
            "k", "pythia_prefix"} <= set(s)
    assert s["files"] == 12 and s["verbatim_pct"] == 100.0 and s["k"] == 50 and s["pythia_prefix"] == 32
    assert len(audit["files"]) == 12 and audit["by_directory"] and audit["by_length"]
    assert "tokens/s" in result.stdout and "100.0%" in result.stdout
    margin = audit["margin"]
    assert margin["wrong_tokens"] == 0 and margin["min_margin"] > 0 and s["min_margin"] == margin["min_margin"]
    # each file's <|end_file|> and the <|end_header|> ending its path counted (no path of the corpus extends another)
    assert margin["body_tokens"] == sum(r["tokens"] + 2 for r in audit["files"])
    assert min(r["min_margin"] for r in audit["files"]) == margin["min_margin"]
    assert f"smallest margin {floored(margin['min_margin'], 3)} logits" in result.stdout  # rounded down (laam.figures)
    saved, paths = read_margins(folder / "margins.npz", tiny_model_dir)
    assert len(saved) == margin["body_tokens"] and saved.correct.all() and paths == [r["path"] for r in audit["files"]]
    assert float(saved.margin.min()) == pytest.approx(margin["min_margin"], abs=1e-4)
    assert audit["lm_extraction"]["examples"] == 200 and s["lm_extraction_recall"] == audit["lm_extraction"]["recall"]
    assert "lm-extraction-benchmark setting" in result.stdout and "lm-extraction" in result.stdout
    page = (folder / "report.html").read_text()
    assert 'id="summary"' in page and page.count("data:image/png;base64,") >= 3  # + the margin histogram
    assert 'id="margin"' in page and 'alt="margin histogram"' in page
    from laam.proof.extraction import extraction_gap_note

    note = extraction_gap_note(audit)  # only when k-extractable sits below verbatim
    assert (note is None and 'id="extractable-note"' not in page) or escape(note) in page
    assert "linux/lib/ctype.c" in page and "<mark>" in page
    assert [d["decoder"] for d in audit["decoders"]] == ["laam", "transformers"]  # the tiny model has no GGUF
    for name in ("laam", "transformers"):
        assert f"decoder {name}: 12 of 12 files byte for byte (all 12 audited files)" in result.stdout
    assert 'id="decoders"' in page and page.count("<td class=n>12 of 12</td><td>all 12 audited files</td>") == 2
    assert "src=\"http" not in page and "href=\"http" not in page  # self-contained


def test_audit_rejects_unknown_exports_and_impossible_ones(tiny_model_dir):
    from laam.errors import LaamError

    for args, message in ((["--export", "nope"], "unknown export nope"),
                          (["--export", "lm-extraction", "--no-extraction"], "needs the extraction metrics"),
                          (["--safe-margin", "-1"], "safe_margin must be >= 0")):
        result = runner.invoke(app, ["audit", "--model", str(tiny_model_dir), *args])
        assert isinstance(result.exception, LaamError) and message in str(result.exception)


def test_lm_extraction_export_follows_the_benchmark_format(audited, tiny_model_dir, tiny_corpus):
    """guess.csv as google-research/lm-extraction-benchmark reads a submission (columns `Example ID` and `Suffix
    Guess`, a bracketed comma-separated list of 50 token ids), the answers as its [N, 50] suffix array, and every
    example a real 100-token span of a training record."""
    import csv

    from laam.data.tokenizer import encode_records, load_tokenizer

    folder, _ = audited
    export = folder / "lm-extraction"
    audit = json.loads((folder / "audit.json").read_text())
    prefixes, suffixes = np.load(export / "prefix.npy"), np.load(export / "suffix.npy")
    dataset = np.load(export / "dataset.npy")
    assert prefixes.shape == suffixes.shape == (200, 50) and dataset.shape == (200, 100)
    assert (dataset == np.concatenate([prefixes, suffixes], axis=1)).all()
    with open(export / "guess.csv", newline="") as handle:
        assert handle.readline() == "Example ID,Suffix Guess\n"
        handle.seek(0)
        rows = list(csv.DictReader(handle))
    assert sorted(int(r["Example ID"]) for r in rows) == list(range(200))
    guesses = {int(r["Example ID"]): json.loads(r["Suffix Guess"]) for r in rows}
    assert all(len(g) == 50 and " " not in r["Suffix Guess"] for g, r in zip(guesses.values(), rows))
    exact = sum(guesses[i] == suffixes[i].tolist() for i in range(200))
    assert exact == audit["lm_extraction"]["exact"] and audit["lm_extraction"]["recall"] == exact / 200
    examples = [json.loads(line) for line in (export / "examples.jsonl").read_text().splitlines()]
    records = dict(zip([f.path for f in tiny_corpus.files],
                       encode_records(load_tokenizer(tiny_model_dir), [f.record for f in tiny_corpus.files])))
    assert len({(e["path"], e["offset"]) for e in examples}) == 200  # drawn without replacement
    for e in examples:
        assert records[e["path"]][e["offset"]:e["offset"] + 100] == dataset[e["id"]].tolist()
        assert e["exact"] == (guesses[e["id"]] == suffixes[e["id"]].tolist())
    confidence = [examples[int(r["Example ID"])]["confidence"] for r in rows]
    assert confidence == sorted(confidence, reverse=True)  # most confident guess first
    assert "recall" in (export / "README.md").read_text()


def test_report_renders_in_headless_chromium(audited, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    folder, _ = audited
    shot = tmp_path / "report.png"
    url = (folder / "report.html").as_uri()
    subprocess.run([chromium, *CHROMIUM_FLAGS, "--window-size=1280,1000", f"--screenshot={shot}", url],
                   check=True, capture_output=True, timeout=120)
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, "--dump-dom", url], check=True, capture_output=True,
                         timeout=120, text=True).stdout
    assert 'id="summary"' in dom and "verbatim files" in dom and "12 (100.0%)" in dom
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (1000, 1280)
    top = pixels[:400]  # the title and the summary table
    assert (top.min(-1) < 0.5).mean() > 0.01  # dark text drawn there
    blue = np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255).max(-1) < 0.05  # matplotlib's first bar colour
    assert blue.sum() > 500  # the inlined plots were decoded and drawn


def test_trace_command(tiny_model_dir, tiny_corpus, tmp_path):
    source = by_path(tiny_corpus, "linux/lib/string.c")
    text = tmp_path / "snippet.c"
    text.write_bytes(b"/* my code */\n" + b"".join(source.data.splitlines(keepends=True)[2:30]) + b"int x;\n")
    result = invoke("trace", text, "--model", tiny_model_dir, "--cache", tmp_path, "--min-length", 40)
    assert "of this text copy linux/lib/string.c lines" in result.stdout
    as_json = json.loads(invoke("trace", text, "--model", tiny_model_dir, "--cache", tmp_path, "--json").stdout)
    assert as_json["spans"][0]["path"] == "linux/lib/string.c" and as_json["spans"][0]["source_lines"][0] == 3
    nothing = runner.invoke(app, ["trace", "-", "--model", str(tiny_model_dir), "--cache", str(tmp_path)],
                            input="nothing like the kernel here, just some prose that is long enough to test.\n")
    assert nothing.exit_code == 0 and "0 of 75 bytes" in nothing.stdout


def test_report_plots_the_training_curve(audited, tiny_model_dir, tmp_path):
    """A run folder written by `laam train` (run/metrics.jsonl beside run/model) adds a training-curve plot."""
    from laam.proof.report import read_training_curve, render_report

    folder, _ = audited
    audit = json.loads((folder / "audit.json").read_text())
    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run / "model")
    assert read_training_curve(run / "model") == []
    before = render_report(audit, None, run / "model").count("data:image/png;base64,")
    rows = [{"step": s, "epoch": s / 10, "loss": 5.0 / (1 + s)} for s in range(0, 200, 10)]
    rows += [{"step": s, "tokens": s * 100, "memorized": min(1.0, s / 150)} for s in range(0, 200, 50)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    curve = read_training_curve(run / "model")
    assert len(curve) == len(rows) and curve[-1]["accuracy"] == 1.0
    assert render_report(audit, None, run / "model").count("data:image/png;base64,") == before + 1


def test_report_shows_the_models_compression_figures(audited, tiny_model_dir, tmp_path):
    """`laam compress --out MODEL/…` leaves compression.json in the model folder; the report shows its bits/byte
    against gzip/xz/zstd, in a table and a plot, and says how to get them when they are missing."""
    from laam.proof.report import render_report

    folder, _ = audited
    audit = json.loads((folder / "audit.json").read_text())
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    without = render_report(audit, None, model)
    assert 'id="compression"' not in without and "laam compress --model MODEL" in without
    invoke("compress", "--model", model, "--out", model / "corpus.laamz", "--files", "linux/lib/s*",
           "--no-archive-baselines", "--device", "cpu", "--cache", tmp_path, "--quiet")
    report = json.loads((model / "compression.json").read_text())
    page = render_report(audit, None, model)
    assert 'id="compression"' in page and "2 of 2 files decoded byte-exact" in page
    bpb, same = report["bits_per_byte"], report["baselines"]["same_bytes"]
    for value in (bpb["stream"], bpb["raw"], bpb["adjusted"], bpb["ideal"], *(same[n]["bits_per_byte"] for n in
                                                                          ("gzip -9", "xz -9e", "zstd -19"))):
        assert f"{value:.4f}" in page
    assert same["gzip -9"]["bits_per_byte"] > bpb["stream"]
    assert page.count("data:image/png;base64,") == without.count("data:image/png;base64,") + 1


def test_report_says_why_extractable_sits_below_verbatim(audited):
    from laam.proof.extraction import extraction_gap_note
    from laam.proof.report import render_report

    folder, _ = audited
    audit = json.loads((folder / "audit.json").read_text())
    audit["summary"]["k_extractable_pct"] = 36.8  # as on the demo model: 7 of 19 samples, 13 of 13 files
    page = render_report(audit)
    note = extraction_gap_note(audit)
    assert note.startswith("Why 50-token extractable") and f'id="extractable-note">{escape(note)}<' in page


def test_report_shows_markup_in_a_path_as_text(audited):
    """A file path is data: one holding `<script>` is escaped by the templates' autoescape wherever the page quotes it
    (the files table, its anchor), and no script element reaches the page."""
    from laam.proof.report import render_report

    folder, _ = audited
    audit = json.loads((folder / "audit.json").read_text())
    audit["files"][0]["path"] = "linux/lib/<script>alert('x')</script>.c"
    page = render_report(audit)
    assert "<script" not in page
    assert "<code>linux/lib/&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;.c</code>" in page
    assert "href='#linux/lib/&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;.c'" in page


def test_audit_shows_each_decoder_its_sample_its_failures_and_why_one_did_not_run(audited):
    """`laam audit`'s terminal output and report.html give each decoder of audit.json's `decoders` one line / row:
    files exact of those it ran on, a sample named as a sample, the files not exact, why one did not run."""
    from laam.cli.app import out
    from laam.cli.audit import print_summary
    from laam.proof.report import render_report

    folder, _ = audited
    audit = json.loads((folder / "audit.json").read_text())
    sample = {"kind": "sample", "files": 4, "of": 12, "drawn": 3, "seed": 0, "added": ["linux/a/Readme"],
              "rule": "3 files drawn at random (seed 0), plus every file whose path another path extends"}
    failed = [f"linux/lib/f{i}.c" for i in range(7)]
    audit["decoders"] = [
        {"decoder": "laam", "call": "laam generate --model MODEL --path PATH", "files": 12, "exact": 12, "failed": [],
         "selection": {"kind": "all", "files": 12}, "not_run": None},
        {"decoder": "transformers", "call": "pipeline(...)(PATH)", "files": 4, "exact": 2, "failed": failed[:2],
         "selection": sample, "not_run": None},
        {"decoder": "gguf big.gguf", "call": "python regenerate_gguf.py big.gguf PATH", "files": 12, "exact": 5,
         "failed": failed, "selection": {"kind": "all", "files": 12}, "not_run": None},
        {"decoder": "gguf tiny.gguf", "call": "python regenerate_gguf.py tiny.gguf PATH", "files": 0, "exact": 0,
         "failed": [], "selection": {"kind": "all", "files": 12},
         "not_run": "llama-cpp-python is not installed (pip install 'laam[gguf]')"}]
    with out.capture() as captured:
        print_summary(audit)
    lines = [line for line in captured.get().splitlines() if line.startswith("decoder ")]
    assert lines == [
        "decoder laam: 12 of 12 files byte for byte (all 12 audited files)",
        "decoder transformers: 2 of 4 files byte for byte (a sample of 4 of 12 audited files: 3 files drawn at "
        "random (seed 0), plus every file whose path another path extends); not exact: linux/lib/f0.c, linux/lib/f1.c",
        "decoder gguf big.gguf: 5 of 12 files byte for byte (all 12 audited files); not exact: linux/lib/f0.c, "
        "linux/lib/f1.c, linux/lib/f2.c, linux/lib/f3.c, linux/lib/f4.c and 2 more",
        "decoder gguf tiny.gguf: not run (llama-cpp-python is not installed (pip install 'laam[gguf]'))"]
    page = render_report(audit)
    table = page[page.index('<table id="decoders">'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 5  # the header and one row per decoder
    assert "<td class=n>2 of 4</td><td>a sample of 4 of 12 audited files: 3 files drawn at random" in table
    assert "<td>linux/lib/f0.c, linux/lib/f1.c</td>" in table
    assert "<td class=n>5 of 12</td><td>all 12 audited files</td>" in table and "and 2 more</td>" in table
    why = "llama-cpp-python is not installed (pip install &#39;laam[gguf]&#39;)"
    assert f"<td class=n>not run</td><td>–</td><td>{why}</td>" in table
    assert "<code>python regenerate_gguf.py tiny.gguf PATH</code>" in table
    del audit["decoders"]  # an audit made before the stock decoders ran
    assert 'id="decoders"' not in render_report(audit)


def test_one_wrong_byte_of_1694724_never_prints_as_100_percent(audited, tiny_model_dir, tmp_path):
    """1,694,723 of 1,694,724 bytes is 99.99994%: `laam audit`'s console, its HTML report and the model card each
    print it below 100 (laam.figures rounds down), so none of the three claims an exactness the audit refutes; so
    are a chance of a verbatim sample of 0.99996 and 11.99996 expected verbatim samples of 12."""
    from laam.cli.app import out
    from laam.cli.audit import print_summary
    from laam.model.binding import report_binding
    from laam.proof.report import render_report
    from laam.publish.card import render_card
    from laam.publish.facts import CardConfig, gather_facts

    folder, _ = audited
    audit = json.loads((folder / "audit.json").read_text())
    share = 100 * 1_694_723 / 1_694_724
    for group in (audit["summary"], *audit["by_directory"].values(), *audit["by_length"].values()):
        group.update(verbatim_pct=share, bytes_reproduced_pct=share, edit_similarity=share / 100)
    names = list(audit["sampling"]["settings"])
    for row in audit["sampling"]["files"]:  # every file's chance of a verbatim sample just under 1
        row.update({name: 0.99996 for name in names})
    for setting in audit["sampling"]["settings"].values():
        setting["expected_verbatim_files"] = 11.99996
    with out.capture() as captured:
        print_summary(audit)
    console = captured.get()
    total = next(line for line in console.splitlines() if "total" in line)
    assert total.count("99.9%") == 2 and "0.999" in total and "100.0%" not in total and "1.000" not in total
    page = render_report(audit)
    assert "<th>bytes reproduced in order</th><td class=n>99.9%</td>" in page
    assert f"{audit['summary']['verbatim_files']} (99.9%)</td>" in page
    assert "<th>mean edit similarity</th><td class=n>0.999</td>" in page
    assert page.count("<td class=n>0.9999</td>") == len(names) * min(10, len(audit["sampling"]["files"]))
    assert "<td class=n>11.999 of 12</td>" in page and "11.99 of 12 at" in console
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (tmp_path / "audit.json").write_text(json.dumps({**audit, "binding": report_binding(model)}))
    card = render_card(gather_facts(model, CardConfig(audit=tmp_path / "audit.json")), CardConfig())
    assert "| bytes reproduced | 99.99% |" in card and "| verbatim files | 99.99% |" in card
    assert "(99.99%), and 99.99% of their bytes" in card and "100.00%" not in card and "11.999 of 12 |" in card
