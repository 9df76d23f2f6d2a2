#!/usr/bin/env bash
# Benchmark 3: end-to-end wall time of the README's main command on this machine (goal <= 10 minutes,
# 100% verbatim regeneration of the demo subset). Uses a fresh cache so tokenizer training is included;
# the kernel archive comes from LAAM_MIRROR (default: the kernel.org CDN).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${WORK:-$(mktemp -d)}"
LAAM="${LAAM:-laam}"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "command: $LAAM run --preset demo --cache $WORK/cache --out $WORK/run"
START=$(date +%s.%N)
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$LAAM" run --preset demo --cache "$WORK/cache" --out "$WORK/run"
END=$(date +%s.%N)
python3 - "$WORK/run/model/laam.json" "$START" "$END" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["training"]
wall = float(sys.argv[3]) - float(sys.argv[2])
g = t.get("regeneration") or {}
print(f"wall time {wall:.0f} s ({wall / 60:.1f} min; goal <= 10 min); training {t['wall_seconds']} s, "
      f"{t['steps']} steps, {t['tokens_seen']:,} tokens")
print(f"memorized {100 * t['memorized']:.3f}% of body tokens; regeneration {g.get('exact')} of {g.get('files')} "
      f"files byte-exact")
PY
