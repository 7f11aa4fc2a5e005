#!/usr/bin/env python3
"""onnxruntime side of `tessera bench embed`: the same tiles, the same model files.

Prints one JSON object on stdout: per-tile latency (median, ms) for each model and thread
count. Also writes the fp32 model that tract is compared with, if it is missing (it is
derived from the pip wheel, not committed: 45 MB).

  python3 bench/embed_reference.py --tiles a.jpeg b.jpeg ... --int8 models/vit-s14-int8.onnx \
      --fp32-out target/models/vit-s14-fp32.onnx
"""

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))
import export  # noqa: E402  (the model export script: same cut, same preprocessing)


def ensure_fp32(path: Path, manifest: dict) -> dict:
    """The fp32 twin of the int8 model (same block and pooling), with its own manifest."""
    if not path.exists():
        model = export.cut_and_pool(onnx.load(export.source_model_path()), manifest["block"], manifest["pooling"])
        export.save(model, path)
    fp32 = dict(manifest, id=manifest["id"].replace("int8", "fp32"), file=path.name,
                sha256=hashlib.sha256(path.read_bytes()).hexdigest(), quantization="none")
    path.with_suffix(".json").write_text(json.dumps(fp32, indent=2))
    return fp32


def median_ms(sess, inputs) -> float:
    name = sess.get_inputs()[0].name
    sess.run(None, {name: inputs[0][None]})  # warm-up
    times = []
    for x in inputs:
        t = time.perf_counter()
        sess.run(None, {name: x[None]})
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiles", nargs="+", required=True)
    ap.add_argument("--int8", type=Path, required=True)
    ap.add_argument("--fp32-out", type=Path, required=True)
    args = ap.parse_args()
    manifest = json.loads(args.int8.with_suffix(".json").read_text())
    ensure_fp32(args.fp32_out, manifest)
    size = manifest["input"]["size"]
    pixels = np.stack([export.to_pixels(Image.open(t).convert("RGB"), size) for t in args.tiles])
    inputs = export.normalize(pixels)
    result = {"onnxruntime": ort.__version__, "tiles": len(inputs), "input_size": size, "median_ms": {}}
    for kind, path in (("int8", args.int8), ("fp32", args.fp32_out)):
        for threads in (1, os.cpu_count()):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            result["median_ms"][f"{kind}/{threads}"] = median_ms(sess, inputs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
