#!/usr/bin/env bash
# Benchmark demo: end-to-end wall time of the README's main command on this machine (goal <= 10 minutes,
# 100% verbatim regeneration of the demo subset). Uses a fresh cache so tokenizer training is included;
# the kernel archive comes from LAAM_MIRROR (default: the kernel.org CDN). The figures go to
# benchmarks/results/demo.json (benchmarks/harness.py).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${WORK:-$(mktemp -d)}"
LAAM="${LAAM:-laam}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
python3 "$ROOT/benchmarks/harness.py"
echo "command: $LAAM run --preset demo --cache $WORK/cache --out $WORK/run"
START=$(date +%s.%N)
"$LAAM" run --preset demo --cache "$WORK/cache" --out "$WORK/run"
END=$(date +%s.%N)
python3 - "$ROOT/benchmarks" "$WORK/run/model/laam.json" "$START" "$END" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
from harness import header, write_result

t = json.load(open(sys.argv[2]))["training"]
wall = float(sys.argv[4]) - float(sys.argv[3])
g = t.get("regeneration") or {}
print(f"wall time {wall:.0f} s ({wall / 60:.1f} min; goal <= 10 min); training {t['wall_seconds']} s, "
      f"{t['steps']} steps, {t['tokens_seen']:,} tokens")
print(f"memorized {100 * t['memorized']:.3f}% of body tokens; regeneration {g.get('exact')} of {g.get('files')} "
      f"files byte-exact")
head = {**header("demo"), "command": "bash benchmarks/demo.sh"}  # the machine as the summary starts
write_result("demo", {"wall_seconds": wall, "training_seconds": t["wall_seconds"], "steps": t["steps"],
                      "tokens": t["tokens_seen"], "memorized": t["memorized"], "exact_files": g.get("exact"),
                      "files": g.get("files")}, head)
PY
