"""Training step speed: eager or torch.compile, float32 or bf16 autocast, against the machine's GEMM speed.

One process measures, interleaved round by round so that a change of load hits every side alike:
- the machine's GEMM speed in float32 and bf16 at the model's own matmul shape (tokens x hidden x intermediate);
- one full training step (model + fused head/loss + backward + AdamW) of a preset's shape, for each side:
  eager fp32, eager bf16 autocast, compiled fp32, compiled bf16 autocast (compiling is timed apart);
- the step's model FLOPs (matmuls of the layers, attention, the head on scored positions; forward + backward),
  so each side's speed is also a fraction of the fp32 and bf16 GEMM speed measured in the same run.

Windows are random token ids shaped as laam.windows gives them (context tokens, the last `stride` scored), so
the step does what a training step does; memorization is not measured here.

    PYTHONPATH=. python benchmarks/step_speed.py --preset linux-cpu --rounds 5 --json benchmarks/results/step_speed.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from harness import describe, header, write_result

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("eager-fp32", "eager-bf16", "compile-fp32", "compile-bf16")


def gemm_flops(m: int, k: int, n: int, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """FLOP/s of (m x k) @ (k x n) in `dtype`, repeated for about `seconds`."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * m * k * n * count / (time.perf_counter() - start)


def step_flops(config, batch: int, scored: int) -> float:
    """Matmul FLOPs of one training step (forward + backward = 3x forward)."""
    d, ff, layers, ctx = config.hidden_size, config.intermediate_size, config.num_layers, config.context
    kv = d * config.num_kv_heads // config.num_heads
    per_token = layers * (2 * d * (2 * d + 2 * kv) + 2 * 3 * d * ff + 2 * 2 * ctx * d)
    return 3 * (batch * ctx * per_token + batch * scored * 2 * d * config.vocab_size)


def make_step(model_config, batch: int, compile_: bool, bf16: bool, seed: int = 0):
    from laam.model.config import build_model
    from laam.train.batches import IGNORE
    from laam.train.loss import WindowLoss

    special = {"<|pad|>": 0, "<|start_file|>": 1, "<|start_header|>": 2, "<|end_header|>": 3, "<|end_file|>": 4}
    model = build_model(model_config, special, seed=seed)
    loss_module = WindowLoss(model)
    if compile_:
        loss_module = torch.compile(loss_module)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, model_config.vocab_size, (batch, model_config.context), generator=generator)
    labels = ids.roll(-1, dims=1)
    labels[:, : model_config.context - model_config.stride] = IGNORE

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_module(ids, labels) / labels.ne(IGNORE).sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="linux-cpu", help="laam preset whose model shape and batch are timed")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each times every side for --steps steps")
    parser.add_argument("--steps", type=int, default=5, help="steps per side per round")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all usable CPUs)")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated subset of {', '.join(SIDES)}")
    parser.add_argument("--json", type=Path, help="write the figures here (default: results/step_speed.json)")
    args = parser.parse_args()

    from laam.model.config import ModelConfig
    from laam.model.presets import recipe
    from laam.train.config import TrainConfig
    from laam.train.threads import available_cpus

    threads = args.threads or available_cpus()
    torch.set_num_threads(threads)
    merged = recipe(args.preset)
    model_config, train_config = ModelConfig(**merged["model"]), TrainConfig(**merged["train"])
    batch = train_config.batch_size
    head = header("step_speed")
    print(describe())
    print(f"{args.preset}: hidden {model_config.hidden_size}, {model_config.num_layers} layers, context "
          f"{model_config.context}, batch {batch}; {threads} thread(s)")
    tokens = batch * model_config.context
    m, k, n = tokens, model_config.hidden_size, model_config.intermediate_size
    flops = step_flops(model_config, batch, model_config.stride)

    sides = [s for s in args.sides.split(",") if s]
    steps, compile_seconds = {}, {}
    for side in sides:
        start = time.perf_counter()
        steps[side] = make_step(model_config, batch, side.startswith("compile"), side.endswith("bf16"))
        for _ in range(3):  # warm-up (and, compiled, the compilation itself)
            steps[side]()
        compile_seconds[side] = time.perf_counter() - start
    times = {side: [] for side in sides}
    gemm = {"fp32": [], "bf16": []}
    for r in range(args.rounds):
        gemm["fp32"].append(gemm_flops(m, k, n, torch.float32, 0.5))
        gemm["bf16"].append(gemm_flops(m, k, n, torch.bfloat16, 0.5))
        for side in sides:
            for _ in range(args.steps):
                start = time.perf_counter()
                steps[side]()
                times[side].append(time.perf_counter() - start)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{s} {1e3 * statistics.median(times[s]):.1f} ms"
                                                           for s in sides), flush=True)
    gemm_speed = {dtype: statistics.median(v) for dtype, v in gemm.items()}
    print(f"GEMM {m}x{k}x{n}: fp32 {gemm_speed['fp32'] / 1e9:.0f} GFLOP/s, bf16 {gemm_speed['bf16'] / 1e9:.0f} "
          f"GFLOP/s; one step is {flops / 1e9:.2f} GFLOP of matmuls")
    baseline = statistics.median(times[sides[0]])
    rows = []
    for side in sides:
        seconds = statistics.median(times[side])
        row = {"side": side, "step_ms": 1e3 * seconds, "tokens_per_s": tokens / seconds,
               "speedup": baseline / seconds, "gflops": flops / seconds / 1e9,
               "of_fp32_gemm": flops / seconds / gemm_speed["fp32"],
               "of_bf16_gemm": flops / seconds / gemm_speed["bf16"],
               "warmup_s": compile_seconds[side]}
        rows.append(row)
        print(f"{side:13s} {row['step_ms']:7.1f} ms/step  {row['tokens_per_s']:8.0f} tokens/s  {row['speedup']:.2f}x "
              f"{sides[0]}  {row['gflops']:6.1f} GFLOP/s = {100 * row['of_fp32_gemm']:.0f}% of fp32 GEMM, "
              f"{100 * row['of_bf16_gemm']:.0f}% of bf16 GEMM  (warm-up {row['warmup_s']:.0f} s)")
    write_result("step_speed", {"threads": threads, "preset": args.preset, "gemm_shape": [m, k, n],
                                "gemm_flops": gemm_speed, "step_flops": flops, "sides": rows}, head, args.json)


if __name__ == "__main__":
    main()
