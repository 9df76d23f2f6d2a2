"""Benchmark: how a release's licenses are read, and how far that agrees with the kernel's own tag reading.

Prints, for every kept file of a release (tarball, folder or version):
- counts by method (spdx-tag, notice, license-text, copying, none; invalid tags apart) and by license;
- the distinct raw tag strings against the distinct normalized expressions they became;
- agreement with the kernel's own reading of its tags: scripts/spdxcheck.py's rules (first 15 lines; the text
  after the first colon of the tag's line, `*/`, `-->` and SH's `LIST "…"` stripped; every id and exception
  checked against the tree's LICENSES/ folder; files in scripts/spdxexclude skipped), reimplemented here
  line for line because the script itself needs a git checkout and `ply`;
- the notice reader checked against the tags: on files that carry both a tag and a notice in their leading
  comment, how often the notice alone gives the tag's licenses (`WITH` exceptions aside: the kernel adds
  Linux-syscall-note to uapi headers by policy, no notice says so).

    PYTHONPATH=. python benchmarks/licenses.py --source /work/data/linux-source-6.12.tar.xz
    PYTHONPATH=. python benchmarks/licenses.py --source 1.0 --mirror "$LAAM_MIRROR"

The counts go to benchmarks/results/licenses.json (benchmarks/harness.py).
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import time
from collections import Counter
from pathlib import Path

from harness import describe, header, write_result

from laam.data.corpus import CorpusConfig, load_corpus, relative_to_root
from laam.data.licenses import TAG, TAG_LINES, normalize
from laam.data.notices import leading_comment, notice_expression


def kernel_tag(data: bytes) -> str | None:
    """spdxcheck.py's parse_lines: the expression it would parse, or None when it finds no tag."""
    for number, raw in enumerate(data.split(b"\n", TAG_LINES)[:TAG_LINES]):
        line = raw.decode("utf-8", errors="ignore") + ("\n" if number < TAG_LINES else "")
        if line.find(TAG) < 0:
            continue
        expr = line.split(":")[1].strip()
        if line.strip().endswith("*/"):  # spdxcheck's own character-set rstrip, kept as it is
            expr = expr.rstrip("*/").strip()  # noqa: B005
        if line.strip().endswith("-->"):
            expr = expr.rstrip("-->").strip()  # noqa: B005
        if line.startswith('LIST "'):
            expr = expr.rstrip('"').strip()
        return expr
    return None


def kernel_ids(files: dict[str, bytes]) -> tuple[set[str], dict[str, set[str]]]:
    """The tree's LICENSES/: valid license ids, and each exception's licenses (spdxcheck's read_spdxdata)."""
    licenses, exceptions = set(), {}
    for path, data in files.items():
        if not re.match(r"LICENSES/(preferred|dual|deprecated|exceptions)/", path):
            continue
        exception = None
        for line in data.decode("utf-8", errors="replace").splitlines():
            if line.startswith("Valid-License-Identifier:"):
                licenses.add(line.split(":")[1].strip().upper())
            elif line.startswith("SPDX-Exception-Identifier:"):
                exception = line.split(":")[1].strip().upper()
                exceptions[exception] = set()
            elif line.startswith("SPDX-Licenses:") and exception:
                exceptions[exception] |= {x for x in line.split(":")[1].upper().replace(" ", "").split(",") if x}
            elif line.startswith("License-Text:"):
                break
    return licenses, exceptions


def kernel_valid(expr: str, licenses: set[str], exceptions: dict[str, set[str]]) -> bool:
    """spdxcheck's lexer checks: every id in LICENSES/, every exception valid for the license before it,
    and (its yacc grammar) a well-formed expression, which license-expression's parser checks here."""
    tokens = re.findall(r"[()]|[^\s()]+", expr)
    last, after_with = None, False
    for token in tokens:
        upper = token.upper()
        if token in "()" or upper in ("AND", "OR"):
            last = None
        elif upper == "WITH":
            after_with = True
            continue
        elif after_with:
            if upper not in exceptions or last not in exceptions[upper]:
                return False
        elif not re.fullmatch(r"[A-Za-z.0-9\-+]+", token) or upper not in licenses:
            return False
        else:
            last = upper
        after_with = False
    return bool(tokens) and normalize(expr)[0] is not None


def excluded(path: str, rules: list[str]) -> bool:
    """scripts/spdxexclude's patterns, as spdxcheck.py matches them."""
    for rule in rules:
        if rule.endswith("/"):
            if fnmatch.fnmatchcase(str(Path(path).parent), rule[:-1]) or path.startswith(rule[:-1]):
                return True
        elif rule.startswith("/"):
            if fnmatch.fnmatchcase(path, rule[1:]):
                return True
        elif Path(path).name == rule:
            return True
    return False


def equivalent(a: str, b: str) -> bool:
    from license_expression import get_spdx_licensing

    strip = lambda e: re.sub(r" WITH [\w.+-]+", "", e)  # noqa: E731
    try:
        return get_spdx_licensing().is_equivalent(strip(a), strip(b))
    except Exception:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True)
    parser.add_argument("--mirror", default="https://cdn.kernel.org/pub/linux/kernel/")
    parser.add_argument("--top", type=int, default=25, help="licenses to list")
    args = parser.parse_args()
    head = header("licenses")
    print(describe())
    start = time.perf_counter()
    corpus = load_corpus(CorpusConfig(source=args.source, mirror=args.mirror), progress=False)
    root = corpus.root
    rows = {row["path"]: row for row in corpus.manifest if row["included"]}
    files = {relative_to_root(f.path, root): f.data for f in corpus.files}
    print(f"{corpus.name}: {len(corpus.files):,} kept files of {corpus.members:,} members "
          f"(read in {time.perf_counter() - start:.0f} s)\n")

    print("by method: " + ", ".join(f"{k} {v:,}" for k, v in corpus.license_methods().items()))
    by_license = Counter(row["license"] for row in rows.values())
    print(f"by license ({len(by_license)} distinct):")
    for spdx, count in by_license.most_common(args.top):
        print(f"  {count:>7,}  {spdx}")
    tags = [row for row in rows.values() if row["license_method"] == "spdx-tag"]
    print(f"tags: {len({r['license_raw'] for r in tags})} distinct raw strings -> "
          f"{len({r['license'] for r in tags if not r['license_error']})} distinct normalized expressions; "
          f"invalid: {sum(1 for r in tags if r['license_error'])}")
    for r in tags:
        if r["license_error"]:
            print(f"  invalid  {relative_to_root(r['path'], root)}: {r['license_raw']!r} ({r['license_error']})")

    licenses, exceptions = kernel_ids(files)
    exclude_text = files.get("scripts/spdxexclude", b"").decode()
    rules = [line.strip() for line in exclude_text.splitlines() if line.strip() and not line.startswith("#")]
    agree, examples = Counter(), []
    for rel, data in files.items():
        ours = rows[f"{root}/{rel}" if root else rel]
        if excluded(rel, rules):
            agree["excluded by scripts/spdxexclude"] += 1
            continue
        theirs = kernel_tag(data)
        ours_tag = ours["license_method"] == "spdx-tag"
        if theirs is None and not ours_tag:
            agree["no tag for either"] += 1
        elif theirs is None:
            agree["tag read here only"] += 1
            if len(examples) < 5:
                examples.append(f"{rel}: {ours['license_raw']!r}")
        elif not ours_tag:
            agree["tag read by the kernel only"] += 1
        elif not licenses or kernel_valid(theirs, licenses, exceptions):
            same = not ours["license_error"] and normalize(theirs)[0] == ours["license"]
            agree["valid for the kernel, same expression" if same else "valid for the kernel, DIFFERENT"] += 1
        else:
            agree["invalid for the kernel, valid here" if not ours["license_error"] else
                  "invalid for the kernel, invalid here"] += 1
    print(f"\nagreement with the kernel's own tag reading (spdxcheck.py rules, LICENSES/ has {len(licenses)} ids):")
    for key, count in agree.most_common():
        print(f"  {count:>7,}  {key}")
    print("  e.g. tags read here only: " + "; ".join(examples) if examples else "")

    notice = Counter()
    for rel, data in files.items():
        ours = rows[f"{root}/{rel}" if root else rel]
        if ours["license_method"] != "spdx-tag" or ours["license_error"]:
            continue
        found = notice_expression(leading_comment(data[:32768], rel))
        if found:
            notice["agree" if equivalent(normalize(found)[0] or "", ours["license"]) else "differ"] += 1
    both = sum(notice.values())
    if both:
        print(f"\nnotice reader against the tags, on {both:,} files with both: {notice['agree']:,} give the tag's "
              f"licenses ({100 * notice['agree'] / both:.1f}%), {notice['differ']:,} differ")
    print(f"\n{time.perf_counter() - start:.0f} s in all")
    write_result("licenses", {"corpus": corpus.name, "kept_files": len(corpus.files), "members": corpus.members,
                              "by_method": corpus.license_methods(), "by_license": dict(by_license.most_common()),
                              "kernel_agreement": dict(agree), "notice_against_tags": dict(notice),
                              "seconds": time.perf_counter() - start}, head)


if __name__ == "__main__":
    main()
