#!/usr/bin/env python3
"""Writes run-times.json: each step of one `bench/run` and its wall seconds, from the
tab-separated `name<TAB>milliseconds` lines bench/run's `timed` appended while it ran."""
import argparse
import json
from pathlib import Path

from provenance import provenance


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--times", type=Path, required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    steps = []
    for line in a.times.read_text().splitlines():
        name, ms = line.rsplit("\t", 1)
        steps.append({"step": name, "seconds": int(ms) / 1000})
    report = {
        "benchmark": "run-times",
        "provenance": provenance(a.command),
        "notes": "wall time of each benchmark step of one bench/run (a step includes installing what it needs, e.g. the Python references the first time); the CLI build before them is not counted",
        "steps": steps,
        "total_seconds": sum(s["seconds"] for s in steps),
    }
    a.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
