//! A build split into shards (`tessera build --shard K/N`) and joined by `tessera merge`
//! writes the very bytes a single `tessera build` of the same inputs and options writes —
//! adapter, thumbnails and skipped tiles included — and the merge refuses shards that do
//! not make up one build.
#![cfg(feature = "cli")]

use crate::index_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use index_support::*;

/// Real LC25000 tiles of every class (absolute paths) and one unreadable file.
fn manifest(dir: &Path) -> PathBuf {
    manifest_with_broken_tile(dir, read_manifest("lc25000-lung.csv").into_iter().step_by(50).take(45))
}

fn tessera(args: &[&str], paths: &[&Path]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command.args(args).args(paths);
    command.output().unwrap()
}

fn build(manifest: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["build", "--views", "1", "--thumbnails"];
    args.extend(extra);
    let out = tessera(&args, &[manifest, Path::new("-o"), output]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn merge(shards: &[&Path], output: &Path) -> Output {
    let mut paths = shards.to_vec();
    paths.extend([Path::new("-o"), output]);
    tessera(&["merge"], &paths)
}

#[test]
fn three_shards_merge_into_the_single_build_and_foreign_shards_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = manifest(tmp.path());
    let whole = tmp.path().join("whole.tsi");
    build(&manifest, &whole, &[]);

    let shards: Vec<PathBuf> = (1..=3).map(|k| tmp.path().join(format!("part-{k}.shard"))).collect();
    for (k, shard) in shards.iter().enumerate() {
        let spec = format!("{}/3", k + 1);
        let out = build(&manifest, shard, &["--shard", &spec]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("wrote shard {spec}")), "{stderr}");
    }
    // Given in any order.
    let merged = tmp.path().join("merged.tsi");
    let out = merge(&[&shards[2], &shards[0], &shards[1]], &merged);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("1 skipped"), "the unreadable tile is counted: {stderr}");
    assert!(std::fs::read(&merged).unwrap() == std::fs::read(&whole).unwrap(), "merged index differs from the single build");

    // A missing shard, a duplicate, a shard of another build, a damaged shard.
    let out = merge(&[&shards[0], &shards[2]], &merged);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("missing shard(s) 2/3"), "{out:?}");
    let out = merge(&[&shards[0], &shards[0], &shards[1], &shards[2]], &merged);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("are both shard 1/3"), "{out:?}");
    let other = tmp.path().join("other.shard");
    build(&manifest, &other, &["--shard", "2/3", "--descriptor", "hist"]);
    let out = merge(&[&shards[0], &other, &shards[2]], &merged);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("shards of different builds"), "{out:?}");
    let mut bytes = std::fs::read(&shards[1]).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    let damaged = tmp.path().join("damaged.shard");
    std::fs::write(&damaged, bytes).unwrap();
    let out = merge(&[&shards[0], &damaged, &shards[2]], &merged);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("checksum mismatch"), "{out:?}");
    let out = merge(&[&whole], &merged);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not a tessera build shard"), "{out:?}");
    let out = tessera(&["build", "--shard", "4/3"], &[&manifest, Path::new("-o"), &merged]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("expected K/N"), "{out:?}");
}
