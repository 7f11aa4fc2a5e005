//! `tessera bench search --vectors`: a file's vectors measured beside the generator at the
//! same count and dim (no Python references: `--no-reference`), and a file of the wrong
//! shape refused with a message that names it.

use std::path::Path;
use std::process::{Command, Output};

use npyz::WriterBuilder;

fn write_npy(path: &Path, shape: &[u64], values: impl Iterator<Item = f32>) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = npyz::WriteOptions::<f32>::new().default_dtype().shape(shape).writer(file).begin_nd().unwrap();
    writer.extend(values).unwrap();
    writer.finish().unwrap();
}

fn bench_search(vectors: &Path, output: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["bench", "search", "--no-reference", "--queries", "20", "--variants", "f16,int8", "--small-variants", "", "--vectors"])
        .arg(vectors)
        .arg("--output")
        .arg(output)
        .output()
        .unwrap()
}

#[test]
fn real_vectors_are_measured_beside_the_generator() {
    let dir = tempfile::tempdir().unwrap();
    let (vectors, output) = (dir.path().join("v.npy"), dir.path().join("out.json"));
    // 300 × 16 deterministic, not unit length (the bench normalizes them).
    write_npy(&vectors, &[300, 16], (0..300 * 16).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) + 0.1));
    let out = bench_search(&vectors, &output);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();
    assert_eq!(report["benchmark"], "search-vectors");
    assert_eq!(report["dim"], 16);
    assert_eq!(report["queries"], 20);
    let rows = report["rows"].as_array().unwrap();
    for data in ["vectors", "synthetic"] {
        let of: Vec<_> = rows.iter().filter(|r| r["data"] == data).collect();
        assert!(of.iter().any(|r| r["variant"] == "f16 exact scan"), "{data}: {of:?}");
        assert!(of.iter().all(|r| r["tiles"] == 280), "{data}: every 15th of 300 rows is a query: {of:?}");
    }
}

#[test]
fn a_file_of_the_wrong_shape_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (vectors, output) = (dir.path().join("flat.npy"), dir.path().join("out.json"));
    write_npy(&vectors, &[4800], (0..4800).map(|i| i as f32));
    let out = bench_search(&vectors, &output);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("flat.npy") && stderr.contains("expected N × dim"), "{stderr}");
    assert!(!output.exists());
}
