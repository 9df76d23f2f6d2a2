"""Regenerate files from a LaaM model in GGUF with llama-cpp-python, under the window the model was trained with.

    pip install llama-cpp-python
    python regenerate_gguf.py MODEL.gguf linux/lib/ctype.c             # the file, to standard output
    python regenerate_gguf.py MODEL.gguf linux/lib/*.c --out regenerated  # files into regenerated/linux/lib/…

A LaaM model reads at most `context` tokens (the GGUF's `laam.context`). Past that, the token at position
p is predicted from tokens [context_start(p), p): when the window is full, the oldest `stride` tokens
(`laam.stride`) are dropped and the rest is evaluated again from scratch, as in training. llama.cpp
alone cannot do this: `Llama(...)(prompt)` stops at the context, and llama.cpp's context shift keeps the
keys and values the remaining tokens got while they still saw the dropped ones (only re-rotating their
positions), which is not the computation the model was trained on, so a long file can leave its text.

This script needs llama-cpp-python and the Python standard library only (`laam export gguf` writes it
beside the .gguf; its source is laam/publish/regenerate_gguf.py). Greedy decoding: the argmax of each
next-token distribution, until <|end_file|>. A file that was not UTF-8 (LaaM's manifest says `latin-1`) is
written in its own encoding, as the GGUF's `laam.encodings` records it, so its bytes are the original's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def context_start(position: int, context: int, stride: int) -> int:
    """First token the model sees when predicting the token at `position` (laam.windows.WindowPolicy)."""
    if position <= context:
        return 0
    return ((position - context - 1) // stride + 1) * stride


def load(gguf_path: str, threads: int | None = None):
    """(Llama, context, stride): the model with room for one window, and its window from the metadata."""
    from llama_cpp import Llama

    probe = Llama(model_path=gguf_path, vocab_only=True, verbose=False)
    try:
        context, stride = int(probe.metadata["laam.context"]), int(probe.metadata["laam.stride"])
    except KeyError:
        sys.exit(f"{gguf_path} has no laam.context / laam.stride metadata: not written by `laam export gguf`")
    encodings = json.loads(probe.metadata.get("laam.encodings") or "{}")
    llm = Llama(model_path=gguf_path, n_ctx=context, n_batch=context, n_ubatch=context, logits_all=True,
                n_threads=threads, verbose=False)
    llm.laam_encodings = encodings  # path -> encoding of the files that are not UTF-8
    return llm, context, stride


def continue_tokens(llm, prompt: list[int], context: int, stride: int, max_new_tokens: int = 1 << 20) -> list[int]:
    """Greedy new tokens after `prompt`: one window evaluated from scratch at each slide, one token at a time
    (llama.cpp's KV cache) while the window holds; ends with <|end_file|> unless max_new_tokens cut it."""
    stop = llm.token_eos()
    tokens, generated, start = list(prompt), [], -1
    while len(generated) < max_new_tokens:
        window_start = context_start(len(tokens), context, stride)
        if window_start != start:  # the first window, or the window slid: forget it and read the new one
            start = window_start
            llm.reset()
            llm.eval(tokens[start:])
        else:
            llm.eval(tokens[-1:])
        token = int(llm.scores[llm.n_tokens - 1].argmax())
        tokens.append(token)
        generated.append(token)
        if token == stop:
            break
    return generated


def regenerate(llm, path: str, context: int, stride: int) -> bytes:
    """The bytes the model gives back for the file at `path` (its path is the prompt)."""
    prompt = llm.tokenize(f"<|start_file|><|start_header|>{path}<|end_header|>".encode(), add_bos=False,
                          special=True)
    data = llm.detokenize(continue_tokens(llm, prompt, context, stride))  # control tokens (<|end_file|>) print nothing
    encoding = getattr(llm, "laam_encodings", {}).get(path, "utf-8")
    if encoding == "utf-8":
        return data
    try:  # the model's text is the file decoded with its encoding: write it back the same way
        return data.decode("utf-8").encode(encoding)
    except UnicodeError:  # text the encoding cannot hold (a file the model did not memorize): the bytes as they came
        return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf", help="the model, a .gguf written by `laam export gguf`")
    parser.add_argument("paths", nargs="+", help="file paths as the model knows them, e.g. linux/lib/ctype.c")
    parser.add_argument("--out", type=Path, help="write each file under this folder (default: one file, to stdout)")
    parser.add_argument("--threads", type=int, help="CPU threads for llama.cpp (default: its choice)")
    args = parser.parse_args(argv)
    if args.out is None and len(args.paths) > 1:
        parser.error("several paths need --out DIR")
    unsafe = [p for p in args.paths if Path(p).is_absolute() or ".." in Path(p).parts]
    if unsafe:
        parser.error(f"paths must be relative, without '..': {unsafe[0]}")
    llm, context, stride = load(args.gguf, args.threads)
    for path in args.paths:
        data = regenerate(llm, path, context, stride)
        if args.out is None:
            sys.stdout.buffer.write(data)
        else:
            target = args.out / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            print(f"{path}: {len(data):,} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
