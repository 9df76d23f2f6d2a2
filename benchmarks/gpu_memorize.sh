#!/usr/bin/env bash
# Train all of Linux 1.0 on one GPU until every file is memorized; print time-to-100%, then (if memorized)
# audit it and write its card, so that one run on a lent GPU gives every figure.
#
# Runs unattended on a fresh 1-GPU Linux box with the repo checked out:
#   bash benchmarks/gpu_memorize.sh
# Tested on CPU with a tiny slice (tests/train/test_gpu_script.py does this):
#   PYTHON=.venv/bin/python PRESET=tiny LAAM_SOURCE=path/to/linux-1.0.tar.xz bash benchmarks/gpu_memorize.sh
# Settings (environment):
#   PYTHON        interpreter to use (default: python3 if it imports torch, else a new .venv-gpu with pip's torch)
#   LAAM_SOURCE   kernel version or tarball path (default 1.0)   LAAM_MIRROR  mirror URL or folder
#   PRESET        laam preset (default linux-gpu)                MAX_TIME     seconds before giving up (default 0: none)
#   RUN_DIR       run folder (default runs/gpu-memorize)          EXTRA        more `laam train` flags
#   LAAM_CACHE    cache folder (default RUN_DIR/../cache)         AUDIT        1 (default): audit + card when memorized
#   COMPRESS      1: also code the corpus under the model (laam compress; slow: off by default)
#   RESULT        where the figures go (default benchmarks/results/gpu_memorize.json, through benchmarks/harness.py)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

PY="${PYTHON:-python3}"
if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "== no torch in $PY: creating .venv-gpu and installing torch from PyPI"
    python3 -m venv .venv-gpu
    .venv-gpu/bin/pip install -q torch
    PY="$ROOT/.venv-gpu/bin/python"
fi
if ! "$PY" -c "import transformers, accelerate, tokenizers, safetensors, typer, rich, httpx, platformdirs, matplotlib, numpy" 2>/dev/null; then
    echo "== installing laam's dependencies (torch is kept as it is)"
    "$PY" -m pip install -q transformers accelerate tokenizers safetensors typer rich httpx platformdirs matplotlib numpy
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - <<'EOF'
import torch
print("== torch", torch.__version__, "| cuda", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "NO GPU: this will be slow")
EOF
"$PY" "$ROOT/benchmarks/harness.py" | sed 's/^/== /'

RUN_DIR="${RUN_DIR:-runs/gpu-memorize}"
RESULT="${RESULT:-$ROOT/benchmarks/results/gpu_memorize.json}"
PRESET="${PRESET:-linux-gpu}"
CACHE="${LAAM_CACHE:-$(dirname "$RUN_DIR")/cache}"
ARGS=("${LAAM_SOURCE:-1.0}" --preset "$PRESET" --out "$RUN_DIR" --cache "$CACHE" --overwrite --until-memorized --verify)
[ -n "${LAAM_MIRROR:-}" ] && ARGS+=(--mirror "$LAAM_MIRROR")
[ "${MAX_TIME:-0}" != "0" ] && ARGS+=(--max-time "$MAX_TIME")
# shellcheck disable=SC2206
[ -n "${EXTRA:-}" ] && ARGS+=($EXTRA)
echo "== laam train ${ARGS[*]}"
START=$(date +%s)
set +e
"$PY" -m laam train "${ARGS[@]}"
STATUS=$?
set -e
END=$(date +%s)

"$PY" - "$ROOT/benchmarks" "$RUN_DIR" "$((END - START))" "$STATUS" "$RESULT" "$PRESET" <<'EOF'
import sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
import torch
from harness import header, read_run, write_result

run_dir, wall, status, result, preset = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
metrics = run_dir / "metrics.jsonl"
run = read_run(run_dir) if metrics.is_file() and metrics.stat().st_size else None
info = run.training() if run and (run_dir / "model" / "laam.json").is_file() else {}
hit = run.first_at(1.0) if run else None
print("== results")
print(f"machine        {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}")
print(f"exit status    {status}; command wall time {wall} s")
last = run.steps[-1] if run and run.steps else None
if last:
    print(f"steps          {last['step']}  epochs {last['epoch']}  tokens {last['tokens']:,}  "
          f"last loss {last['loss']:.4f}  last tokens/s {last['tokens_per_s']:,.0f}")
checks = run.checks if run else []
for r in checks:
    print(f"  step {r['step']:>7}  {r['elapsed']:>8.0f} s  memorized {100 * r['memorized']:8.4f}%  "
          f"wrong files {r['wrong_files']}")
if hit:
    print(f"time-to-100%   {hit['elapsed']:.0f} s ({hit['elapsed'] / 60:.1f} min), {hit['tokens']:,} tokens, "
          f"step {hit['step']}")
else:
    best = max((r["memorized"] for r in checks), default=0)
    print(f"time-to-100%   not reached (best {100 * best:.4f}%)")
if info.get("regeneration"):
    g = info["regeneration"]
    print(f"regeneration   {g['exact']} of {g['files']} files byte-exact from their path prompt")
print(f"status         {info.get('status', 'no model folder')}")
head = {**header("gpu_memorize"), "command": f"bash benchmarks/gpu_memorize.sh (PRESET={preset})"}
write_result("gpu_memorize", {
    "preset": preset, "exit_status": status, "wall_seconds": wall, "parameters": info.get("parameters"),
    "tokens_per_s": last["tokens_per_s"] if last else None, "reached": hit is not None,
    "time_to_100": {k: hit[k] for k in ("elapsed", "tokens", "step")} if hit else None,
    "checks": [{k: r[k] for k in ("step", "elapsed", "tokens", "memorized", "wrong_files")} for r in checks],
    "regeneration": info.get("regeneration"), "status": info.get("status")}, head, Path(result))
EOF

MEMORIZED=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['training']['status'])" \
    "$RUN_DIR/model/laam.json" 2>/dev/null || echo none)
if [ "$MEMORIZED" = "memorized" ] && [ "${COMPRESS:-0}" = "1" ]; then
    echo "== laam compress"
    "$PY" -m laam compress --model "$RUN_DIR/model" --cache "$CACHE" --out "$RUN_DIR/model/corpus.laamz" -q || STATUS=$?
fi
if [ "$MEMORIZED" = "memorized" ] && [ "${AUDIT:-1}" = "1" ]; then
    echo "== laam audit and laam card"
    START=$(date +%s)
    "$PY" -m laam audit --model "$RUN_DIR/model" --cache "$CACHE" -q > /dev/null || STATUS=$?
    "$PY" -m laam card --model "$RUN_DIR/model" --cache "$CACHE" -q > /dev/null || STATUS=$?
    echo "== audit and card took $(( $(date +%s) - START )) s"
    "$PY" - "$RUN_DIR/model" <<'EOF'
import json, pathlib, sys
model = pathlib.Path(sys.argv[1])
summary = json.loads((model / "audit" / "audit.json").read_text())["summary"]
print("audit          " + ", ".join(f"{k} {v}" for k, v in summary.items() if not isinstance(v, (dict, list))))
coded = model / "compression.json"
if coded.is_file():
    c = json.loads(coded.read_text())
    print(f"compression    {c['bits_per_byte']['decodable']:.4f} bits per byte decodable; xz -9e "
          f"{c['baselines']['same_bytes']['xz -9e']['bits_per_byte']:.3f} on the same bytes")
print(f"card           {model / 'README.md'}")
EOF
fi
exit $STATUS
