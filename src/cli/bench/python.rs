//! The Python the benchmarks' references run in: a virtualenv under `target/bench-venv`
//! with `bench/requirements.txt` installed, made on first use and re-made when the
//! requirements change (a stamp holds their hash), so `tessera bench` needs nothing
//! installed by hand.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

const VENV: &str = "target/bench-venv";
const REQUIREMENTS: [&str; 2] = ["bench/requirements.txt", "models/requirements.txt"];

/// The virtualenv's `python`, ready to run the reference scripts.
pub fn python() -> anyhow::Result<PathBuf> {
    let venv = Path::new(VENV);
    let python = venv.join("bin/python");
    let mut hash = Sha256::new();
    for file in REQUIREMENTS {
        hash.update(std::fs::read(file).with_context(|| format!("{file}: run tessera bench from the repository root"))?);
    }
    let wanted = hex::encode(hash.finalize());
    let stamp = venv.join("requirements.sha256");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == wanted) {
        return Ok(python);
    }
    eprintln!("setting up {VENV} for the Python references (once; pip install -r bench/requirements.txt)");
    run(Command::new("python3").args(["-m", "venv", VENV]), "python3 -m venv")?;
    run(Command::new(&python).args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", REQUIREMENTS[0]]), "pip install -r bench/requirements.txt")?;
    std::fs::write(&stamp, &wanted).with_context(|| format!("{}: cannot write", stamp.display()))?;
    Ok(python)
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command.status().with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
