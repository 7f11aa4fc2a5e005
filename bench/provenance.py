"""The provenance block of a results file written by a Python benchmark: the same fields as
the CLI's `Provenance::now` (src/cli/mod.rs), which the other bench/results files carry."""
import datetime
import os
import subprocess
from pathlib import Path


def machine() -> str:
    model = next(
        (l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")),
        "unknown CPU",
    )
    return f"{model}, {os.cpu_count()} threads available"


def provenance(command: str, **versions) -> dict:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "git_commit": commit,
        **versions,
    }
