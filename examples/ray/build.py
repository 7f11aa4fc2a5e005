#!/usr/bin/env python3
"""Builds one Tessera index on a Ray cluster: N shards in parallel, then one merge.

Each shard is a Ray task that runs `tessera build INPUTS… --shard K/N` (the same
binary and arguments on every worker), retried on failure; a retried shard resumes from
its checkpoint. When all N are written, `tessera merge` joins them into the index a
single `tessera build INPUTS… [OPTIONS]` would write, byte for byte.

    python examples/ray/build.py --shards 8 -o slides.tsi slides/*.svs -- --thumbnails

Everything after `--` goes to `tessera build` unchanged. On a real cluster, start Ray
there (`ray start --head` / `ray start --address …`), pass `--address auto`, and put the
inputs, the tessera binary and `--work-dir` on storage every node sees at the same paths
(NFS, a mounted bucket). Without `--address` a local Ray instance is started with
`--num-cpus` workers.
"""

import argparse
import os
import subprocess
import sys
import time

import ray


def parse_args(argv):
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="manifests, tile folders or slides, as for tessera build")
    parser.add_argument("-o", "--output", required=True, help="the index file to write")
    parser.add_argument("--shards", type=int, required=True, help="number of shards (tasks)")
    parser.add_argument("--tessera", default="target/release/tessera", help="the tessera binary (same path on every node)")
    parser.add_argument("--work-dir", help="where shards go (default: OUTPUT.shards/)")
    parser.add_argument("--address", help="Ray cluster address (e.g. auto); default: start a local instance")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local instance")
    parser.add_argument("--cpus-per-shard", type=float, default=1, help="CPUs Ray reserves per shard task")
    parser.add_argument("--retries", type=int, default=2, help="attempts after a shard's first failure")
    parser.add_argument("--fail-once", type=int, action="append", default=[], metavar="K",
                        help="testing: shard K fails on its first attempt (to exercise retries)")
    args = parser.parse_args(argv[:split])
    args.build_options = argv[split + 1:]
    if args.shards < 1:
        parser.error("--shards must be at least 1")
    return args


@ray.remote
def build_shard(tessera, inputs, options, shard_path, k, n, fail_once, threads):
    """One `tessera build --shard K/N` on `threads` threads (the CPUs Ray reserved for it,
    so shards side by side do not oversubscribe a node); resumes from its checkpoint when
    retried."""
    marker = shard_path + ".attempted"
    first_attempt = not os.path.exists(marker)
    open(marker, "w").close()
    if fail_once and first_attempt:
        raise RuntimeError(f"shard {k}/{n}: failing its first attempt (--fail-once)")
    command = [tessera, "build", *inputs, "-o", shard_path, "--shard", f"{k}/{n}", *options]
    if os.path.exists(shard_path + ".checkpoint"):
        command.append("--resume")
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "RAYON_NUM_THREADS": str(threads)})
    if done.returncode != 0:
        raise RuntimeError(f"shard {k}/{n}: {' '.join(command)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    os.remove(marker)
    return k, shard_path, time.monotonic() - started, done.stderr.strip().splitlines()[-1:]


def main(argv):
    args = parse_args(argv)
    tessera = os.path.abspath(args.tessera)
    if not os.access(tessera, os.X_OK):
        sys.exit(f"{tessera}: no tessera binary (cargo build --release, or pass --tessera)")
    work = os.path.abspath(args.work_dir or args.output + ".shards")
    os.makedirs(work, exist_ok=True)
    inputs = [os.path.abspath(p) for p in args.inputs]
    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    n = args.shards
    paths = {k: os.path.join(work, f"shard-{k:05d}-of-{n:05d}.shard") for k in range(1, n + 1)}
    task = build_shard.options(num_cpus=args.cpus_per_shard, max_retries=args.retries, retry_exceptions=True)
    threads = max(1, int(args.cpus_per_shard))
    pending = [task.remote(tessera, inputs, args.build_options, paths[k], k, n, k in args.fail_once, threads)
               for k in range(1, n + 1)]
    started = time.monotonic()
    done = 0
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        try:
            k, _, seconds, last = ray.get(ready[0])
        except ray.exceptions.RayTaskError as e:
            sys.exit(f"a shard failed after {args.retries + 1} attempts: {e}")
        done += 1
        print(f"[{done}/{n}] shard {k}/{n} in {seconds:.1f} s: {' '.join(last)}", flush=True)
    ray.shutdown()
    print(f"all {n} shards in {time.monotonic() - started:.1f} s; merging", flush=True)
    merge = subprocess.run([tessera, "merge", *paths.values(), "-o", args.output])
    if merge.returncode != 0:
        sys.exit(f"tessera merge failed ({merge.returncode}); the shards stay in {work}")
    for path in paths.values():
        os.remove(path)
    os.rmdir(work)


if __name__ == "__main__":
    main(sys.argv[1:])
