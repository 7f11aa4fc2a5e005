#!/usr/bin/env python3
"""Writes ray-build.json: the distributed build (examples/ray/build.sh: shards on a local
Ray instance, then `tessera merge`) with 1 and 2 workers, against one `tessera build`
process on 1 and on all threads, on the same LC25000 tiles and options. Each merged file is
compared byte for byte with the one-thread single build's. Times include starting Ray and the merge.

    python3 bench/ray_build.py                      # all 2,959 tiles, 4 shards, 1 and 2 workers
    python3 bench/ray_build.py --every 40 --out …   # a quick run on 74 tiles
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from provenance import provenance

ROOT = Path(__file__).resolve().parent.parent
TESSERA = ROOT / "target/release/tessera"


def run_timed(command, threads: int, log: Path) -> float:
    """Runs `command` with rayon limited to `threads` threads; its output goes to `log`."""
    env = {**os.environ, "RAYON_NUM_THREADS": str(threads)}
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed ({done.returncode}); see {log}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--every", type=int, default=1, help="every N-th tile of lc25000-lung.csv")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="local Ray worker counts")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/ray-build.json")
    a = ap.parse_args()
    if a.every < 1 or a.shards < 1 or any(w < 1 for w in a.workers):
        sys.exit("--every, --shards and --workers must be at least 1")
    if not os.access(TESSERA, os.X_OK):
        sys.exit(f"{TESSERA}: build it first (cargo build --release --bin tessera)")
    data = (ROOT / "../shared/data").resolve()
    work = ROOT / "target/bench-ray"
    work.mkdir(parents=True, exist_ok=True)
    rows = (data / "lc25000-lung.csv").read_text().splitlines()[1:]
    manifest = work / "manifest.csv"
    manifest.write_text("path,label,group\n" + "".join(
        f"{data / r.split(',')[0]},{r.split(',')[1]},{r.split(',')[2]}\n" for r in rows[::a.every]))
    tiles = len(rows[::a.every])
    options = ["--views", "1", "--thumbnails"]
    cores = os.cpu_count() or 1
    results = []
    reference = None
    for threads in sorted({1, cores}):
        single = work / f"single-{threads}.tsi"
        seconds = run_timed([TESSERA, "build", manifest, "-o", single, *options], threads, work / f"single-{threads}.log")
        reference = reference or single.read_bytes()
        same = single.read_bytes() == reference
        results.append({"build": "one tessera build process", "workers": None, "threads": threads, "seconds": seconds,
                        "identical_to_single": same})
        print(f"single process, {threads} thread(s): {seconds:.1f} s", flush=True)
        if not same:
            sys.exit(f"{single} differs from the one-thread build")
    # Ray's virtualenv is installed on first use: before the clock starts.
    subprocess.run([ROOT / "examples/ray/build.sh", "--help"], stdout=subprocess.DEVNULL, check=True)
    for workers in a.workers:
        merged = work / f"ray-{workers}.tsi"
        command = [ROOT / "examples/ray/build.sh", "--shards", str(a.shards), "--num-cpus", str(workers),
                   "-o", merged, manifest, "--", *options]
        seconds = run_timed(command, workers, work / f"ray-{workers}.log")
        same = merged.read_bytes() == reference
        results.append({"build": f"{a.shards} shards on local Ray, then merge", "workers": workers, "threads": workers,
                        "seconds": seconds, "identical_to_single": same})
        print(f"ray, {workers} worker(s): {seconds:.1f} s, merged file {'identical to' if same else 'DIFFERS from'} the single build", flush=True)
        if not same:
            sys.exit(f"{merged} differs from the single-process build")
    baseline = results[0]["seconds"]
    for r in results:
        r["speedup_vs_single_1_thread"] = baseline / r["seconds"]
    tessera_version = subprocess.run([TESSERA, "--version"], capture_output=True, text=True).stdout.split()[-1]
    ray_version = subprocess.run([ROOT / "target/ray-venv/bin/python", "-c", "import ray; print(ray.__version__)"],
                                 capture_output=True, text=True).stdout.strip()
    report = {
        "benchmark": "ray-build",
        "provenance": provenance("python3 bench/ray_build.py " + " ".join(sys.argv[1:]), tessera=tessera_version, ray=ray_version),
        "data": f"{tiles} LC25000 tiles (every {a.every}-th row of lc25000-lung.csv), build options {' '.join(options)}",
        "notes": "wall seconds from start to the index file; a Ray row includes starting the local instance, every shard "
                 "(each on one thread) and the merge (on the workers' thread count); threads are set by RAYON_NUM_THREADS",
        "rows": results,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
