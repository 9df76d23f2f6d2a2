"""The model as a compressor of its own corpus: coder (range coding under the model), container (the .laamz
file), baselines (gzip/xz/zstd), run (`laam compress` end to end and compression.json)."""
