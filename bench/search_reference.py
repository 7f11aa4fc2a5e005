#!/usr/bin/env python3
"""Reference numbers for `tessera bench search`: faiss (IndexFlatIP, IndexHNSWFlat) and
hnswlib on the same vectors, queries and ground truth that the Rust side wrote.

Called by `tessera bench search` (not by hand, though it can be):

    python3 bench/search_reference.py --base base.npy --queries queries.npy \
        --truth truth.npy --k 10 --ef 64,128

Prints one JSON object: {"rows": [...]} with, per system and beam width, the build
time, serialized size, single-thread p50/p99 query latency and recall@k against the
exact float32 ground truth. Builds use `--threads` threads, queries one, like tessera's
build and search, so the numbers compare like with like.

Setup: pip install faiss-cpu hnswlib numpy
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

import numpy as np


def latency_and_recall(search_one, queries, truth, k):
    """Times each query alone (batch of 1) and scores recall@k against `truth`."""
    times, found = [], 0
    for i, q in enumerate(queries):
        q = q[None, :]
        t0 = time.perf_counter()
        ids = search_one(q)
        times.append(time.perf_counter() - t0)
        found += len(set(int(x) for x in ids[:k]) & set(int(x) for x in truth[i, :k]))
    ms = np.array(times) * 1000.0
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), found / (len(queries) * k)


def row(system, variant, n, build_s, size, p50, p99, recall, **extra):
    return dict(system=system, variant=variant, tiles=n, build_s=build_s, file_bytes=size,
                bytes_per_tile=size / n, p50_ms=p50, p99_ms=p99, recall_at_k=recall, **extra)


@contextlib.contextmanager
def build_threads(threads):
    """faiss builds on `threads` threads inside, and searches on one after."""
    import faiss

    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(1)


def run_faiss_flat(base, queries, truth, k, efs, threads):
    import faiss

    n, d = base.shape
    t0 = time.perf_counter()
    with build_threads(threads):
        flat = faiss.IndexFlatIP(d)
        flat.add(base)
    build = time.perf_counter() - t0
    size = len(faiss.serialize_index(flat))
    p50, p99, rec = latency_and_recall(lambda q: flat.search(q, k)[1][0], queries, truth, k)
    return [row("faiss", "IndexFlatIP (exact, f32)", n, build, size, p50, p99, rec, version=faiss.__version__)]


def run_faiss_hnsw(base, queries, truth, k, efs, threads):
    import faiss

    n, d = base.shape
    rows = []
    t0 = time.perf_counter()
    with build_threads(threads):
        hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 100
        hnsw.add(base)
    build = time.perf_counter() - t0
    size = len(faiss.serialize_index(hnsw))
    for ef in efs:
        hnsw.hnsw.efSearch = max(ef, k)
        p50, p99, rec = latency_and_recall(lambda q: hnsw.search(q, k)[1][0], queries, truth, k)
        rows.append(row("faiss", f"IndexHNSWFlat M=32 efC=100 ef={ef} (f32)", n, build, size, p50, p99, rec,
                        version=faiss.__version__))
    return rows


def run_faiss_ivfpq(base, queries, truth, k, efs, threads):
    """IVF with product quantization, what faiss offers for large collections in little
    memory: a PCA rotation (all dims kept), √n lists, 48 sub-quantizers of 8 bits (48 bytes
    per vector, 8 dims each for 384), trained on up to 64 vectors per list; nprobe 8 and 32.
    In L2: the vectors are unit length, so L2 ranks them as inner product does, and the
    residuals to L2 centroids are what PQ codes well (built for inner product, the vectors'
    shared mean direction left it at recall@10 0.10 at 1M tiles); the rotation gives the
    high-variance directions sub-quantizers of their own, about as OPQ would, which takes
    minutes to train where this takes seconds. `np`: no polysemous training (index_factory
    does it for L2; it only serves Hamming filtering, which these searches do not use, and
    made the build at 10k tiles take 70 s instead of 7)."""
    import faiss

    n, d = base.shape
    nlist = max(1, int(round(n ** 0.5)))
    m = 48 if d % 48 == 0 else next(x for x in (32, 24, 16, 8, 4, 2, 1) if d % x == 0)
    factory = f"PCAR{d},IVF{nlist},PQ{m}np"
    t0 = time.perf_counter()
    with build_threads(threads):
        index = faiss.index_factory(d, factory, faiss.METRIC_L2)
        train = base[np.random.default_rng(0).choice(n, size=min(n, max(64 * nlist, 256 * 40)), replace=False)]
        index.train(train)
        index.add(base)
    build = time.perf_counter() - t0
    size = len(faiss.serialize_index(index))
    ivf = faiss.extract_index_ivf(index)
    rows = []
    for nprobe in (8, 32):
        ivf.nprobe = min(nprobe, nlist)
        p50, p99, rec = latency_and_recall(lambda q: index.search(q, k)[1][0], queries, truth, k)
        rows.append(row("faiss", f"{factory} (IVF-PQ, L2) nprobe={nprobe}", n, build, size, p50, p99, rec,
                        version=faiss.__version__))
    return rows


def run_hnswlib(base, queries, truth, k, efs, threads):
    import hnswlib

    n, d = base.shape
    t0 = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=d)
    index.init_index(max_elements=n, ef_construction=100, M=16, random_seed=100)
    index.add_items(base, np.arange(n), num_threads=threads)
    build = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "hnswlib.bin")
        index.save_index(path)
        size = os.path.getsize(path)
    rows = []
    for ef in efs:
        index.set_ef(max(ef, k))
        p50, p99, rec = latency_and_recall(lambda q: index.knn_query(q, k=k, num_threads=1)[0][0], queries, truth, k)
        rows.append(row("hnswlib", f"M=16 efC=100 ef={ef} (f32)", n, build, size, p50, p99, rec))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", default="64,128")
    ap.add_argument("--threads", type=int, default=1, help="threads for the builds (queries use one)")
    ap.add_argument("--systems", default="faiss-flat,faiss-hnsw,faiss-ivfpq,hnswlib",
                    help="comma separated subset of faiss-flat, faiss-hnsw, faiss-ivfpq, hnswlib")
    args = ap.parse_args()
    base = np.ascontiguousarray(np.load(args.base), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(args.queries), dtype=np.float32)
    truth = np.load(args.truth)
    efs = [int(x) for x in args.ef.split(",") if x]
    rows = []
    systems = set(args.systems.split(","))
    runners = [("faiss-flat", run_faiss_flat), ("faiss-hnsw", run_faiss_hnsw), ("faiss-ivfpq", run_faiss_ivfpq),
               ("hnswlib", run_hnswlib)]
    for name, runner in runners:
        if name not in systems:
            continue
        try:
            rows += runner(base, queries, truth, args.k, efs, args.threads)
        except ImportError as e:
            print(f"search_reference: {name} not installed ({e}); pip install faiss-cpu hnswlib", file=sys.stderr)
    json.dump({"rows": rows}, sys.stdout)


if __name__ == "__main__":
    main()
