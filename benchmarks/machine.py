"""The machine a benchmark ran on, in one line: every figure in RESULTS.md carries it.

CPU model (lscpu's "Model name"), the instruction sets that change CPU training speed (AVX2/FMA, AVX-512,
AMX: bf16 is emulated without AVX512-BF16/AMX), the CPUs this process may use, the load average when
the benchmark started, and torch's version and GPU if any.
"""

from __future__ import annotations

import os
import platform
import subprocess

FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    model, flags = platform.processor() or "unknown CPU", []
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            model = value.strip()
        elif key.strip() == "Flags":
            present = set(value.split())
            flags = [f for f in FLAGS if f in present]
    return model, flags


def describe() -> str:
    import torch

    model, flags = cpu_model_and_flags()
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    gpu = f"; GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"machine: {model} ({', '.join(flags) or 'no AVX2/AVX-512/AMX'}), {cpus} CPUs usable, load average "
            f"{load} at start; torch {torch.__version__}{gpu}")


if __name__ == "__main__":
    print(describe())
