#!/usr/bin/env python3
"""Writes run-times.json: each step of one `bench/run` and its wall seconds, from the
tab-separated `name<TAB>milliseconds` lines bench/run's `timed` appended while it ran, and
what the run's profile left out (`what<TAB>why` lines from its `skipped`)."""
import argparse
import json
from pathlib import Path

from provenance import provenance


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--times", type=Path, required=True)
    ap.add_argument("--skipped", type=Path, required=True)
    ap.add_argument("--started", required=True, help="when the run began (UTC, ISO 8601)")
    ap.add_argument("--command", required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    steps = []
    for line in a.times.read_text().splitlines():
        name, ms = line.rsplit("\t", 1)
        steps.append({"step": name, "seconds": int(ms) / 1000})
    skipped = [dict(zip(("what", "why"), line.split("\t", 1))) for line in a.skipped.read_text().splitlines()]
    report = {
        "benchmark": "run-times",
        "provenance": provenance(a.command),
        "notes": "wall time of each step of one bench/run, from its start to the report: the CLI build, then each benchmark (which includes installing and building what it needs the first time: the Python references, the WebAssembly builds and npm packages in bench/web.sh)",
        "started": a.started,
        "steps": steps,
        "skipped": skipped,
        "total_seconds": sum(s["seconds"] for s in steps),
    }
    a.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
