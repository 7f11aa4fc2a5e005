//! An interrupted `tessera build` leaves no index, and `--resume` finishes it into the same
//! bytes as a build that was never interrupted: the process is killed (SIGKILL, as a crash
//! would) once its checkpoint holds a chunk of described tiles — of a manifest's tiles, and
//! of a whole slide's.
#![cfg(feature = "cli")]

use crate::index_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use index_support::*;

/// A manifest of real LC25000 tiles (absolute paths) and one unreadable file, so a skipped
/// tile is replayed from the checkpoint too.
fn manifest(dir: &Path, count: usize) -> std::path::PathBuf {
    manifest_with_broken_tile(dir, read_manifest("lc25000-lung.csv").into_iter().take(count))
}

fn build(manifest: &Path, output: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .args(["build", "--views", "1", "--thumbnails"])
        .arg(manifest)
        .arg("-o")
        .arg(output)
        .args(extra);
    command
}

/// Runs `command` until its checkpoint holds a chunk, then kills it (as a crash would).
fn kill_after_first_chunk(command: &mut Command, checkpoint: &Path) {
    let mut child = command.stderr(std::process::Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    // Header (40 bytes), then records after each 256-tile chunk.
    while std::fs::metadata(checkpoint).map_or(0, |m| m.len()) <= 40 {
        assert!(started.elapsed() < Duration::from_secs(300), "no chunk was checkpointed");
        assert!(child.try_wait().unwrap().is_none(), "the build ended before it could be interrupted");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_killed_build_resumes_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = manifest(tmp.path(), 400);
    let whole = tmp.path().join("whole.tsi");
    let out = build(&manifest, &whole, &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!tmp.path().join("whole.tsi.checkpoint").exists(), "a finished build removes its checkpoint");

    let resumed = tmp.path().join("resumed.tsi");
    let checkpoint = tmp.path().join("resumed.tsi.checkpoint");
    kill_after_first_chunk(&mut build(&manifest, &resumed, &[]), &checkpoint);
    assert!(!resumed.exists(), "an interrupted build leaves no index");

    let out = build(&manifest, &resumed, &["--resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resuming: "), "{stderr}");
    assert!(stderr.contains("1 skipped"), "the unreadable tile is still counted: {stderr}");
    assert!(std::fs::read(&resumed).unwrap() == std::fs::read(&whole).unwrap(), "resumed index differs");
    assert!(!checkpoint.exists());

    // A checkpoint of another build is refused, not mixed in.
    let mut child = build(&manifest, &resumed, &["--descriptor", "vit"]).stderr(std::process::Stdio::null()).spawn().unwrap();
    while std::fs::metadata(&checkpoint).map_or(0, |m| m.len()) < 40 {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = build(&manifest, &resumed, &["--resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("other inputs or options"), "{stderr}");
}

/// A whole slide streams through the build a chunk at a time, so a kill midway leaves its
/// finished chunks in the checkpoint and the resumed build writes the uninterrupted one's
/// bytes. The slide (an 8,000-px pyramid of JPEG tiles repeating the CC0 CMU-1 region, made
/// by the library's writer as the slide benchmark's are) has a few hundred tissue tiles;
/// the colour histogram stands in for the model to keep the test short.
#[test]
fn a_killed_slide_build_resumes_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let source = load(&data_dir().join("slides/CMU-1-Small-Region.jpg"));
    let slide = tmp.path().join("repeated.tif");
    tessera::slide::tiff_writer::write_repeated_slide(&slide, &source, 8_000).unwrap();
    let slide_build = |output: &Path, extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        command.args(["build", "--descriptor", "hist", "--thumbnails", "-o"]).arg(output).arg(&slide).args(extra);
        command
    };
    let whole = tmp.path().join("whole.tsi");
    let out = slide_build(&whole, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let tiles: usize = stderr
        .lines()
        .find_map(|l| l.strip_suffix(" tiles with tissue")?.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no tile count in {stderr}"));
    assert!(tiles > 300, "the slide must span more than one 256-tile chunk: {tiles} tiles");

    let resumed = tmp.path().join("resumed.tsi");
    let checkpoint = tmp.path().join("resumed.tsi.checkpoint");
    kill_after_first_chunk(&mut slide_build(&resumed, &[]), &checkpoint);
    assert!(!resumed.exists(), "an interrupted build leaves no index");
    let out = slide_build(&resumed, &["--resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The kill may cut the chunk's records short: whatever was complete is replayed.
    assert!(stderr.contains("resuming: ") && !stderr.contains(&format!("resuming: {tiles} of")), "{stderr}");
    assert!(std::fs::read(&resumed).unwrap() == std::fs::read(&whole).unwrap(), "resumed slide index differs");
    assert!(!checkpoint.exists());
}
