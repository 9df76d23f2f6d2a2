"""The equivalence matrix of a model folder: every decoder a user may run, and which files each gives back exactly.

    PYTHONPATH=. python benchmarks/equivalence.py --model MODEL_DIR [--files 'linux/lib/*'] [--threads 1]

Rows: laam generate; stock transformers with the folder's custom_generate (pipeline and generate, fp32 and bf16);
stock generation without it; the GGUF export (f32, f16, q8_0) run by regenerate_gguf.py in llama-cpp-python;
llama.cpp's own context shift and plain llama-cpp-python on the f16 file (laam.proof.equivalence). Prints the
matrix as Markdown, then the files that differ; each decoder's count of exact files goes to
benchmarks/results/equivalence.json (benchmarks/harness.py).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from harness import describe, header, write_result

from laam.data.corpus import select_files
from laam.model.info import load_training_corpus, read_model_info
from laam.proof.equivalence import DECODERS, GgufTools, equivalence, matrix_markdown
from laam.publish import regenerate_gguf
from laam.publish.gguf import export_gguf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model folder")
    parser.add_argument("--files", action="append", help="corpus path glob (repeatable; default: every file)")
    parser.add_argument("--decoders", help=f"comma-separated subset of: {', '.join(DECODERS)} (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and llama.cpp (default 1)")
    parser.add_argument("--cache", type=Path, help="laam cache holding the release (default: laam's own)")
    args = parser.parse_args()

    import llama_cpp
    import transformers

    torch.set_num_threads(args.threads)
    info = read_model_info(args.model)
    files = select_files(load_training_corpus(info, args.cache).files, args.files)
    decoders = [d.strip() for d in args.decoders.split(",")] if args.decoders else list(DECODERS)
    head = header("equivalence")
    print(f"{describe()}\nmodel {args.model} (context {info.context}, stride {info.stride}), {len(files)} files; "
          f"{args.threads} thread(s); transformers {transformers.__version__}, llama-cpp-python "
          f"{llama_cpp.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        rows = equivalence(args.model, files, decoders, Path(workdir), args.threads,
                           gguf=GgufTools(export_gguf, regenerate_gguf),
                           on_row=lambda r: print(f"  {r.decoder}: {len(r.exact(files))}/{len(files)} exact, "
                                                  f"{r.seconds:.1f} s", flush=True))
    print()
    print(matrix_markdown(rows, files))
    for row in rows:
        for f in files:
            at = row.divergence(f)
            if at is not None:
                print(f"{row.decoder}: {f.path} leaves the original at byte {at:,} of {len(f.data):,} "
                      f"(output {len(row.outputs[f.path]):,} bytes)")
    write_result("equivalence", {"model": str(args.model), "files": len(files), "threads": args.threads,
                                 "decoders": {row.decoder: {"exact": len(row.exact(files)), "seconds": row.seconds}
                                              for row in rows}}, head)


if __name__ == "__main__":
    main()
