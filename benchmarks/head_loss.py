"""LM head + cross entropy, forward and backward, for one training step's rows: the plain way (all logits
materialized, as HF's LlamaForCausalLM does), torch's fused `linear_cross_entropy` with its automatic chunk size,
and with laam's CPU chunk size (laam.train.cpu_loss_chunk). Prints the best of --repeats for each, side by side.

    PYTHONPATH=. python benchmarks/head_loss.py --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch
from harness import describe, header, write_result

from laam.train.loss import cpu_loss_chunk, head_loss


def best_ms(fn, hidden, weight, targets, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        hidden.grad = weight.grad = None
        start = time.perf_counter()
        loss = fn(hidden, weight, targets)
        loss.backward()
        times.append(time.perf_counter() - start)
    return 1000 * min(times), loss.item()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4096, help="scored tokens in the step (8 x 512 by default)")
    parser.add_argument("--shape", action="append", default=None, metavar="VOCABxHIDDEN",
                        help="head shapes (default: 32768x64, the original 5M model; 2048x128, the demo model)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    head = header("head_loss")
    print(describe())
    print(f"{args.rows} rows, {args.threads} thread(s), best of {args.repeats}, forward + backward")
    figures = {"rows": args.rows, "threads": args.threads, "repeats": args.repeats, "shapes": {}}
    for shape in args.shape or ["32768x64", "2048x128"]:
        vocab, width = (int(x) for x in shape.split("x"))
        torch.manual_seed(0)
        hidden = torch.randn(args.rows, width, requires_grad=True)
        weight = (torch.randn(vocab, width) * 0.02).requires_grad_()
        targets = torch.randint(0, vocab, (args.rows,))
        sides = {
            "plain logits + cross_entropy": lambda h, w, y: torch.nn.functional.cross_entropy(h @ w.T, y,
                                                                                              reduction="sum"),
            "linear_cross_entropy, torch's chunk": lambda h, w, y: torch.nn.functional.linear_cross_entropy(
                h, w, y, reduction="sum", options=torch.nn.LinearCrossEntropyOptions()),
            f"linear_cross_entropy, laam's chunk ({cpu_loss_chunk(vocab)} rows)": head_loss,
        }
        results = {name: best_ms(fn, hidden, weight, targets, args.repeats) for name, fn in sides.items()}
        ours = results[list(sides)[-1]][0]
        for name, (ms, loss) in results.items():
            print(f"vocab {vocab:>6} hidden {width:>4}  {name:<46} {ms:8.0f} ms  loss {loss:.3f}  "
                  f"laam {ms / ours:.2f}x faster")
        figures["shapes"][shape] = {name: {"ms": ms, "loss": loss} for name, (ms, loss) in results.items()}
    write_result("head_loss", figures, head)


if __name__ == "__main__":
    main()
