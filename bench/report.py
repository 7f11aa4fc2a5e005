#!/usr/bin/env python3
"""Writes the benchmark report (REPORT.md and PNG plots) from bench/results/*.json.

Generated, never hand-edited: every figure comes from a results file, every headline is a
ratio of two figures measured in the same run, and a missing or skipped benchmark says so.

  bench/report.py --results bench/results --out bench/REPORT.md
"""

import argparse
import json
import os
import platform
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

GFLOP_PER_TILE_112 = 1.45  # the shipped 6-block ViT-S/14 at 112 px (models/vit-s14-int8.json)


def load(results: Path, name: str):
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def provenance(d) -> str:
    p = (d or {}).get("provenance")
    if not p:
        return "no provenance recorded (written before results carried it: re-run `bench/run`)"
    commit = (p.get("git_commit") or "")[:10]
    version = f"tessera {p['tessera']} " if p.get("tessera") else ""
    return f"`{p['command']}` on {p['date']}, {p['machine']}, {version}({commit})"


def cpu_peak_gflops():
    """Cores × f32 SIMD lanes × 2 (FMA) × clock, from /proc/cpuinfo; None when unknown."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, "unknown CPU"
    mhz = [float(m) for m in re.findall(r"cpu MHz\s*:\s*([0-9.]+)", info)]
    flags = set(re.search(r"flags\s*:\s*(.*)", info).group(1).split()) if "flags" in info else set()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    fma = 2 if "fma" in flags else 1
    cores = os.cpu_count() or 1
    if not mhz:
        return None, "no clock in /proc/cpuinfo"
    clock = max(mhz) / 1000
    peak = cores * lanes * fma * clock
    return peak, f"{cores} cores × {lanes} f32 lanes × {fma} (FMA) × {clock:.2f} GHz = {peak:.0f} GFLOP/s"


def begin(md: list, title: str, d, missing: str) -> bool:
    """Starts a section; without its results file the section says it was skipped."""
    md.append(f"## {title}\n")
    if not d:
        md.append(f"Skipped: {missing}.\n")
    return bool(d)


def table_head(md: list, align: str, titles: list):
    """A Markdown table's header row and its alignment row (`l` or `r` per column)."""
    md.append("| " + " | ".join(titles) + " |")
    md.append("|" + "".join("---:|" if a == "r" else "---|" for a in align))


def bar(path: Path, labels, values, ylabel, title):
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh(labels, values, color="#4056c8")
    ax.set_xlabel(ylabel)
    ax.set_title(title)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.1f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def embed_section(d, plots: Path, md: list, peak):
    if not begin(md, "Embedding, native (tract vs onnxruntime)", d, "no `embed-native.json`"):
        return
    md.append(f"Source: {provenance(d)}. {d.get('tiles')} tiles at {d.get('input_size')} px; {d.get('notes', '')}.\n")
    table_head(md, "lrrrrrr", ["model", "tract 1 thread ms/tile", "onnxruntime 1 thread", "tract / onnxruntime", "tract all threads", "onnxruntime all threads", "tract GFLOP/s (1 thread)"])
    labels, values = [], []
    for r in d["results"]:
        t, o = r["tract"], r.get("onnxruntime") or {}
        gflops = GFLOP_PER_TILE_112 / (t["single_thread_median_ms"] / 1000)
        ratio = r.get("tract_over_onnxruntime_single_thread")
        fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731 (a run without onnxruntime)
        md.append(
            f"| {r['model']} | {t['single_thread_median_ms']:.1f} | {fmt(o.get('single_thread_median_ms'), '.1f')} | "
            f"{fmt(ratio, '.2f')} | {t['all_threads_ms_per_tile']:.1f} | {fmt(o.get('all_threads_median_ms'), '.1f')} | {gflops:.1f} |"
        )
        labels += [f"tract {r['model']} 1t", f"onnxruntime {r['model']} 1t"]
        values += [t["single_thread_median_ms"], o.get("single_thread_median_ms") or 0]
    if peak[0]:
        best = max(GFLOP_PER_TILE_112 / (r["tract"]["single_thread_median_ms"] / 1000) for r in d["results"])
        per_core = peak[0] / (os.cpu_count() or 1)
        md.append(f"\nOne core's peak: {per_core:.0f} GFLOP/s ({peak[1]}); tract reaches {best:.1f} GFLOP/s on one thread, {100 * best / per_core:.0f}% of it.")
    bar(plots / "embed-native.png", labels, values, "ms per tile (median, 1 thread)", "Embedding latency")
    md.append("\n![embedding latency](plots/embed-native.png)\n")
    loads = [r for r in d["results"] if r.get("load")]
    if loads:
        md.append("Loading the model with tract (one run per phase, ms): from the shipped ONNX, and from the NNEF copy of its "
                  "decluttered graph that the browser caches after its first load (src/model/decluttered.rs; written and read "
                  "back in the same run, its embedding of a tile compared with the ONNX one's).\n")
        table_head(md, "lrrrrrrrrrr", ["model", "ONNX parse", "declutter", "optimize", "ONNX total", "NNEF read", "NNEF optimize", "NNEF total", "ONNX MB", "NNEF MB", "embedding max diff"])
        for r in loads:
            o, n = r["load"]["onnx"], r["load"]["nnef"]
            # Results written before the cache existed name the NNEF phases read_ms / optimize_plan_ms.
            read, opt = n.get("parse_ms", n.get("read_ms", 0)), n.get("optimize_ms", n.get("optimize_plan_ms", 0))
            md.append(f"| {r['model']} | {o['parse_ms']:.0f} | {o['declutter_ms']:.0f} | {o['optimize_ms'] + o.get('plan_ms', 0):.0f} | "
                      f"{o['total_ms']:.0f} | {read:.0f} | {opt:.0f} | {n['total_ms']:.0f} | {o['bytes'] / 1e6:.1f} | "
                      f"{n['bytes'] / 1e6:.1f} | {n['max_abs_output_diff']:.1e} |")
        md.append("")


def gpu_section(d, plots: Path, md: list):
    if not begin(md, "Embedding, GPU (wgpu vs tract)", d, "no `gpu.json`"):
        return
    md.append(f"Source: {provenance(d)}. Adapter: {d['adapter']}; {d['tiles']} tiles at {d['input_size']} px, "
              f"{d['gflop_per_tile']:.2f} GFLOP per tile; {d.get('notes', '')}\n")
    table_head(md, "lrrrrr", ["backend", "batch", "ms/tile", "tiles/s", "GFLOP/s", "runs"])
    labels, values = [], []
    for r in d["results"]:
        batch = r["batch"] if r["batch"] is not None else "-"
        md.append(f"| {r['backend']} | {batch} | {r['ms_per_tile']:.1f} | {r['tiles_per_s']:.1f} | {r['gflop_per_s']:.1f} | {r['runs']} |")
        labels.append(f"{r['backend'].split(' (')[0]} {'b' + str(batch) if r['batch'] else ''}".strip())
        values.append(r["ms_per_tile"])
    md.append("")
    for s in d["speedup"]:
        md.append(f"- batch {s['batch']}: wgpu at {s['over_tract_1_thread']:.2f}× tract on one thread")
    bar(plots / "gpu.png", labels, values, "ms per tile", "GPU (wgpu) vs tract")
    md.append("\n![gpu vs tract](plots/gpu.png)\n")


def search_section(d, plots: Path, md: list):
    if not begin(md, "Search (tessera vs faiss and hnswlib)", d, "no `search.json`"):
        return
    md.append(f"Source: {provenance(d)}. {d.get('data', '')}; {d.get('recall', '')}.\n")
    rows = d["rows"]
    table_head(md, "llrrrrrr", ["system", "variant", "tiles", "build s", "bytes/tile", "p50 ms", "p99 ms", "recall@10"])
    for r in rows:
        md.append(
            f"| {r['system']} | {r['variant']} | {r['tiles']} | {r.get('build_s', 0):.1f} | {r.get('bytes_per_tile', 0):.0f} | "
            f"{r.get('p50_ms', 0):.3f} | {r.get('p99_ms', 0):.3f} | {r.get('recall_at_k', 0):.4f} |"
        )
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 6))
    series = {}
    for r in rows:
        series.setdefault(f"{r['system']} {r['variant']}", []).append((r["tiles"], r.get("p50_ms", 0), r.get("recall_at_k", 0)))
    for name, pts in series.items():
        pts.sort()
        a.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        b.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=name)
    for ax, label in ((a, "p50 latency, ms"), (b, "recall@10")):
        ax.set_xscale("log")
        ax.set_xlabel("index size (tiles)")
        ax.set_ylabel(label)
    a.set_yscale("log")
    handles, names = a.get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=2, fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0.32, 1, 1))
    fig.savefig(plots / "search.png", dpi=110)
    plt.close(fig)
    md.append("\n![search latency and recall vs size](plots/search.png)\n")


def graph_section(d, md: list):
    if not begin(md, "HNSW graph build: instant-distance vs the batched build (`tessera bench graph`)", d, "no `graph-build.json`"):
        return
    md.append(f"Source: {provenance(d)}. {d.get('data', '')}; {d.get('recall', '')}. The speed-up is against "
              "instant-distance on one thread in the same run; the file's SHA-256 shows whether the thread count changed it.\n")
    efs = sorted({ef for r in d["rows"] for ef in r["recall_at_k"]}, key=lambda e: int(e.split("=")[1]))
    table_head(md, "rlrrr" + "r" * len(efs) + "rl", ["tiles", "construction", "threads", "build s", "speed-up",
                                                     *(f"recall@{d['k']} {ef}" for ef in efs), "layer-0 neighbours", "file SHA-256"])
    for r in d["rows"]:
        speedup = r.get("speedup_vs_instant_distance_1_thread")
        md.append(f"| {r['tiles']} | {r['construction']} | {r['threads']} | {r['build_s']:.1f} | "
                  f"{'-' if speedup is None else f'{speedup:.2f}×'} | "
                  + " | ".join(f"{r['recall_at_k'].get(ef, 0):.4f}" for ef in efs)
                  + f" | {r['graph_mean_degree']:.1f} | `{r['sha256'][:12]}` |")
    md.append("")


def ray_build_section(d, md: list):
    if not begin(md, "Distributed build: shards on Ray, then merge (`bench/ray_build.py`)", d, "no `ray-build.json`"):
        return
    md.append(f"Source: {provenance(d)}; Ray {d['provenance'].get('ray')}. {d.get('data', '')}; {d.get('notes', '')}.\n")
    table_head(md, "lrrrrl", ["build", "workers", "threads", "seconds", "speed-up vs one process on 1 thread", "file = one-thread single build"])
    for r in d["rows"]:
        md.append(f"| {r['build']} | {r['workers'] or '-'} | {r['threads']} | {r['seconds']:.1f} | "
                  f"{r['speedup_vs_single_1_thread']:.2f}× | {'yes' if r['identical_to_single'] else 'NO'} |")
    md.append("")


def partitioned_section(d, plots: Path, md: list):
    if not begin(md, "Partitioned index over HTTP Range (`tessera bench partitioned`)", d, "no `partitioned.json`"):
        return
    md.append(f"Source: {provenance(d)}. {d.get('data', '')}; {d.get('served', '')}; latency: {d.get('latency', '')}; {d.get('recall', '')}.\n")
    table_head(md, "rlrrrrrrrrr", ["tiles", "encoding", "partitions", "nprobe", "file MB", "directory kB", "fetched kB/query", "fetched / file", "p50 ms", "p99 ms", "recall@10"])
    rows = d["rows"]
    for r in rows:
        md.append(
            f"| {r['tiles']} | {r['quantization']} | {r['partitions']} | {r['nprobe']} | {r['file_bytes'] / 1e6:.1f} | "
            f"{r['directory_bytes'] / 1e3:.0f} | {r['bytes_per_query'] / 1e3:.0f} | {r['bytes_per_query'] / r['file_bytes']:.4f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['recall_at_k']:.4f} |"
        )
    for s in d.get("skipped", []):
        md.append(f"\nSkipped: {s['tiles']} tiles ({s['why']}).")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    series = {}
    for r in rows:
        series.setdefault(f"{r['tiles']} tiles {r['quantization']}", []).append((r["bytes_per_query"] / 1e6, r["recall_at_k"]))
    for name, pts in series.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("MB fetched per query (nprobe 4 … 32)")
    ax.set_ylabel("recall@10")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(plots / "partitioned.png", dpi=110)
    plt.close(fig)
    md.append("\n![bytes per query against recall](plots/partitioned.png)\n")


def web_section(d, plots: Path, md: list, peak):
    if not begin(md, "In the browser (headless Chromium)", d, "no `web.json` (run `bench/web.sh`)"):
        return
    if "embedding" not in d:
        md.append("Skipped: `web.json` predates the per-thread layout (re-run `bench/web.sh`).\n")
        return
    md.append(f"Source: {provenance(d)}; {d.get('browser')}, {d.get('cpus')} CPUs ({d.get('cpu')}). "
              f"onnxruntime-web {d['provenance'].get('onnxruntime_web')} (WASM backend) runs in the same page at the same thread count.\n")
    if peak[0]:
        lanes = int(re.search(r"× (\d+) f32 lanes", peak[1]).group(1))
        wasm_peak = peak[0] * 4 / lanes
        md.append(f"Machine peak {peak[0]:.0f} GFLOP/s ({peak[1]}, one FMA unit per core); WASM SIMD128 has 4 f32 lanes, "
                  f"so its peak is {wasm_peak / (os.cpu_count() or 1):.0f} GFLOP/s per core and FMA unit, twice that on cores "
                  "with two FMA units (most server x86 cores); WASM has no FMA instruction without relaxed SIMD.\n")
    table_head(md, "rlrrrrr", ["threads", "Tessera build", "Tessera ms per view (median)", "GFLOP/s", "onnxruntime-web ms (median)", "GFLOP/s", "Tessera speed-up"])
    labels, values = [], []
    for e in d["embedding"]:
        t, o = e["tessera"], e["onnxruntime_web"]
        md.append(f"| {e['threads']} | {t['runtime']['build']} | {t['embed_ms_per_view']:.1f} | {t['gflops_per_s']:.1f} | "
                  f"{o['run_ms']['median']:.1f} | {o['gflops_per_s']:.1f} | {e['speedup_over_onnxruntime_web']:.2f}× |")
        labels += [f"Tessera {e['threads']}t", f"onnxruntime-web {e['threads']}t"]
        values += [t["embed_ms_per_view"], o["run_ms"]["median"]]
    views = d["embedding"][0]["tessera"]["views"]
    md.append(f"\nPer view: a query descriptor is {views} ViT runs (the tile's rotations) plus the colour histogram and "
              "the adapter; the figure divides the whole descriptor's time by the views, so it slightly over-counts Tessera.")
    sc = d.get("thread_scaling", {})
    md.append(f"The second thread: Tessera ×{sc.get('tessera')}, onnxruntime-web ×{sc.get('onnxruntime_web')}.\n")
    table_head(md, "lrrlll", ["build", "time to first result, cold ms", "warm ms", "warm: page ready + click to result (of it embedding)",
                             "warm engine load ms (wasm / data / engine)", "in `new Engine`: model (parse / declutter / optimize) / index"])
    for name, ttfr in d.get("time_to_first_result", {}).items():
        w = ttfr["warm"]
        parts = " / ".join(f"{w['engine_load'].get(k, 0):.0f}" for k in ("wasm_ms", "data_ms", "engine_ms"))
        ph = w.get("engine_phases", {})
        model = ph.get("model", {})
        steps = " / ".join(f"{model.get(k, 0):.0f}" for k in ("parse_ms", "declutter_ms", "optimize_ms"))
        click = w.get("click_to_result", {})
        md.append(f"| {w['runtime']['build']}, {w['runtime']['threads']} thread(s) | {ttfr['cold']['first_result_ms']:.0f} | {w['first_result_ms']:.0f} | "
                  f"{w['ready_ms']:.0f} + {w.get('click_to_result_ms', 0):.0f} ({click.get('embed_ms', 0):.0f}) | {parts} | "
                  f"{ph.get('model_ms', 0):.0f} from {model.get('source', 'onnx')} ({steps}) / {ph.get('index_ms', 0):.0f} |")
    md.append("\nMeasured in the page from its navigation start: until it says it is ready, plus from the click on the slide to "
              "the first result card (what a user who clicks at once waits); embedding: the query tile's description in the worker. "
              "wasm: compiling the module (and starting the thread pool); data: reading model and index from the "
              "cache or the network and hashing them; engine: `new Engine`, whose model part is tract's parse, decluttering (which "
              "also folds the int8 weights into f32) and optimisation of the graph; a second visit reads the graph as the first one's "
              "worker cached it, decluttered (decluttered-nnef), unless the cache was empty.\n")
    g = d.get("webgpu")
    if g and not g.get("skipped"):
        md.append(f"WebGPU ({g['runtime']['embedding']}): {g['embed_ms']['median']:.0f} ms per descriptor, {g['embed_ms_per_view']:.0f} ms per view, "
                  f"×{g['over_wasm_1_thread']} the one-thread WASM time in this run. Without a GPU the adapter is SwiftShader, a GPU "
                  "emulated on the CPU: this row shows the path runs in the browser, not how fast a GPU is.\n")
    elif g:
        md.append(f"WebGPU: skipped ({g['skipped']}).\n")
    for sc in d.get("slide_scan", []):
        md.append(f"Search this slide, {sc['runtime']['build']} on {sc['threads']} thread(s): {sc['tiles']} tissue tiles of {sc['side_px']} px "
                  f"in {sc['ms'] / 1000:.1f} s ({sc['tiles_per_s']} tiles/s, 4 views each); re-scoring them for a new query {sc['score_ms']} ms.")
    sizes = ", ".join(f"{k} {v['gzip_bytes'] / 1048576:.2f} MB" for k, v in d.get("wasm", {}).items())
    md.append(f"\n`.wasm` gzipped (-9): {sizes}.")
    bar(plots / "web.png", labels, values, "ms per ViT run (median)", "Embedding in the browser")
    md.append("\n![browser embedding](plots/web.png)\n")


def wasm_variants_section(d, md: list):
    if not begin(md, "The .wasm: LTO and wasm-opt (`bench/wasm-variants.sh`)", d, "no `wasm-variants.json`"):
        return
    md.append(f"Source: {provenance(d)}; {d['provenance'].get('browser')}, binaryen {d['provenance'].get('binaryen')}. {d['engine']}.\n")
    table_head(md, "lrrrrr", ["variant", "gzip -9 MiB", "size / shipped", "ms per view", "time / shipped", "cosine to shipped (min)"])
    for r in d["rows"]:
        md.append(f"| {r['variant']} | {r['gzip_bytes'] / 1048576:.2f} | {r['size_over_first']} | {r['embed_ms_per_view']:.1f} | "
                  f"{r['time_over_first']} | {r['min_cosine_to_first']:.6f} |")
    md.append("\nTimes of a few per cent apart are within this benchmark's run-to-run noise (24 tiles, 2 passes).\n")


def slide_section(d, md: list):
    if not begin(md, "Whole-slide builds (`tessera bench slide`)", d, "no `slide-build.json`"):
        return
    md.append(f"Source: {provenance(d)}. {d.get('notes', '')}; {d.get('views')} view(s), {d.get('threads')} threads.\n")
    table_head(md, "rrrrrrr", ["level-0 side", "tiles", "slide MB", "build s", "tiles/s", "peak RSS MB", "while embedding MB"])
    for r in d["results"]:
        side = f"{r['level0_side']} (max {r['max_tiles']} tiles)" if r.get("max_tiles") else r["level0_side"]
        md.append(f"| {side} | {r['tiles']} | {r['slide_mb']:.0f} | {r['build_s']:.1f} | {r['tiles_per_s']:.1f} | "
                  f"{r.get('peak_rss_mb') or '-'} | {r.get('embedding_peak_rss_mb') or '-'} |")
    growth = d.get("peak_memory_growth")
    if d.get("peak_memory_growth_skipped"):
        md.append(f"\nGrowth per tile not measured: {d['peak_memory_growth_skipped']}.\n")
    if growth:
        md.append(f"\nOn the {growth['level0_side']}-px slide, peak memory grows by {growth['kb_per_tile']:.1f} kB per tile; "
                  f"at that rate {growth['extrapolated_tiles']:,} tiles (a large 40× slide) peak at {growth['extrapolated_peak_mb']:.0f} MB "
                  "(plus what a larger area adds: the tissue mask; the reader's chunk cache is capped at 256 MB).\n")


def web_memory_section(d, md: list):
    if not begin(md, "Memory over many calls in one page (`bench/web-memory.sh`)", d, "no `web-memory.json`"):
        return
    md.append(f"Source: {provenance(d)}. {d.get('notes', '')}.\n")
    table_head(md, "lrrrr", ["phase", "calls", "engine (WASM) growth MB", "page JS heap growth MB", "worker JS growth MB"])
    mb = lambda b: "-" if b is None else f"{b / 1048576:.2f}"
    for phase, s in d["summary"].items():
        md.append(f"| {phase} | {s['calls']:,} | {mb(s['wasm_growth_bytes'])} | {mb(s['page_heap_growth_bytes'])} | {mb(s['worker_heap_growth_bytes'])} |")
    first = d["samples"][0]
    md.append(f"\nAt the start: engine {mb(first['wasm_bytes'])} MB, page heap {mb(first['page_heap_bytes'])} MB, "
              f"worker {mb(first['worker_heap_bytes'])} MB; {d['search_ms_each']:.2f} ms per search, {d['embed_ms_each']:.0f} ms per embed "
              "(page round trips).\n")


def eval_section(d, md: list):
    if not begin(md, "Retrieval quality (`tessera eval`)", d, "no `eval.json`"):
        return
    md.append(f"Source: {provenance(d)}. Full tables and the leak-free protocol: docs/eval.md.\n")
    table_head(md, "lllr", ["dataset", "protocol", "descriptor", "P@5"])
    for r in d["results"]:
        if r["report"]["protocol"] == "all_others":
            continue
        md.append(f"| {r['dataset']} | {r['report']['protocol']} | {r['descriptor']} | {r['report']['overall']['p_at_5']:.3f} |")


def run_times_section(d, md: list):
    if not begin(md, "Where the run's time goes (`bench/run`)", d, "no `run-times.json` (written by `bench/run` since it times its steps)"):
        return
    md.append(f"Source: {provenance(d)}. {d.get('notes', '')}.\n")
    table_head(md, "lrr", ["step", "seconds", "share"])
    total = d["total_seconds"] or 1
    for s in d["steps"]:
        md.append(f"| {s['step']} | {s['seconds']:.1f} | {s['seconds'] / total:.0%} |")
    md.append(f"| **all steps** | **{d['total_seconds']:.0f}** ({d['total_seconds'] / 60:.1f} min) | |\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=Path("bench/results"))
    ap.add_argument("--out", type=Path, default=Path("bench/REPORT.md"))
    args = ap.parse_args()
    plots = args.out.parent / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    peak = cpu_peak_gflops()
    md = [
        "# Tessera benchmark report",
        "",
        "Generated by `bench/report.py` from `bench/results/*.json` (written by `bench/run`); do not edit by hand.",
        f"Report written on {platform.node() or 'this machine'} ({peak[1]}).",
        "",
        "Absolute times differ between machines (by ×3 between two of ours): read the ratios, each",
        "measured with its peer in the same run.",
        "",
    ]
    embed_section(load(args.results, "embed-native"), plots, md, peak)
    gpu_section(load(args.results, "gpu"), plots, md)
    search_section(load(args.results, "search"), plots, md)
    graph_section(load(args.results, "graph-build"), md)
    partitioned_section(load(args.results, "partitioned"), plots, md)
    ray_build_section(load(args.results, "ray-build"), md)
    web_section(load(args.results, "web"), plots, md, peak)
    wasm_variants_section(load(args.results, "wasm-variants"), md)
    slide_section(load(args.results, "slide-build"), md)
    web_memory_section(load(args.results, "web-memory"), md)
    eval_section(load(args.results, "eval"), md)
    run_times_section(load(args.results, "run-times"), md)
    md.append("\n## Skipped\n\nonnxruntime-web's WebGPU backend; WebGPU on a hardware GPU (none on these machines: the browser's "
              "adapter is SwiftShader); Tessera and onnxruntime-web beyond 2 threads (the benchmark runs 1 and 2).\n")
    args.out.write_text("\n".join(md) + "\n")
    print(f"wrote {args.out} and {plots}/")


if __name__ == "__main__":
    main()
