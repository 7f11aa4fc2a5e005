//! Bad input gives an error that names the input and what is wrong: no panic, no partial
//! output file.

use crate::common;

use std::process::Command;

use common::{data, embedder};
use tessera::model::{Embedder, ModelError, ModelManifest};
use tessera::preprocess::{self, PreprocessError};

fn real_tile() -> Vec<u8> {
    std::fs::read(data().join("lc25000-lung/lung_aca/lungaca2495.jpeg")).unwrap()
}

/// A PNG whose header claims `width` x `height` (valid signature and IHDR CRC).
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32fast::hash(&ihdr).to_be_bytes());
    png
}

#[test]
fn truncated_jpeg_is_a_decode_error_naming_the_file() {
    let bytes = real_tile();
    let Err(err) = preprocess::decode(&bytes[..bytes.len() / 3], "cut.jpeg") else {
        panic!("a truncated JPEG decoded without error")
    };
    assert!(matches!(err, PreprocessError::Truncated { .. }), "{err:?}");
    assert!(err.to_string().starts_with("cut.jpeg: "), "{err}");
}

#[test]
fn corrupt_jpeg_body_does_not_panic() {
    let mut bytes = real_tile();
    for i in (600..bytes.len()).step_by(7) {
        bytes[i] ^= 0x5a;
    }
    // Either an error or (JPEG being forgiving) garbage pixels; never a panic.
    let _ = preprocess::decode(&bytes, "flipped.jpeg");
}

#[test]
fn non_image_is_refused() {
    let err = preprocess::decode(b"path,label\na.jpg,x\n", "tiles.csv").unwrap_err();
    assert!(matches!(err, PreprocessError::UnknownFormat { .. }), "{err:?}");
    assert!(err.to_string().contains("tiles.csv"));
    assert!(preprocess::decode(&[], "empty").is_err());
}

#[test]
fn huge_and_empty_images_are_refused_by_header() {
    let err = preprocess::decode(&png_header(60_000, 60_000), "huge.png").unwrap_err();
    assert!(err.to_string().contains("huge.png"), "{err}");
    let err = preprocess::decode(&png_header(0, 0), "empty.png").unwrap_err();
    assert!(err.to_string().contains("empty.png"), "{err}");
}

#[test]
fn tampered_model_is_refused_by_hash() {
    let (model_path, _) = Embedder::default_files();
    let mut model = std::fs::read(model_path).unwrap();
    let n = model.len();
    model[n / 2] ^= 1;
    let err = Embedder::from_bytes(&model, embedder().manifest().clone()).unwrap_err();
    assert!(matches!(err, ModelError::HashMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(&embedder().manifest().id));
}

#[test]
fn manifest_with_missing_or_bad_fields_is_refused() {
    let (_, manifest_path) = Embedder::default_files();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest_path).unwrap()).unwrap();
    let mut missing = json.clone();
    missing.as_object_mut().unwrap().remove("sha256");
    let err = ModelManifest::from_json(missing.to_string().as_bytes(), "m.json").unwrap_err();
    assert!(err.to_string().contains("m.json") && err.to_string().contains("sha256"), "{err}");

    let mut bad_size = json.clone();
    bad_size["input"]["size"] = 100.into();
    let err = ModelManifest::from_json(bad_size.to_string().as_bytes(), "m.json").unwrap_err();
    assert!(err.to_string().contains("input.size"), "{err}");

    assert!(ModelManifest::from_json(b"{", "m.json").is_err());
}

#[test]
fn cli_reports_bad_tile_by_name_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-a-tile.jpg");
    std::fs::write(&bad, b"hello").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tessera")).arg("embed").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not-a-tile.jpg"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn embed_dir_skips_bad_tiles_and_leaves_no_partial_file_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let tiles = dir.path().join("tiles/lung_aca");
    std::fs::create_dir_all(&tiles).unwrap();
    std::fs::write(tiles.join("bad.jpg"), b"not a jpeg").unwrap();
    let out_path = dir.path().join("out.npy");

    let embed_dir = || {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("embed-dir")
            .arg(dir.path().join("tiles"))
            .arg("-o")
            .arg(&out_path)
            .output()
            .unwrap()
    };

    // Only a bad tile: the command fails and writes nothing.
    let out = embed_dir();
    assert!(!out.status.success());
    assert!(!out_path.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["tiles"], "partial files left: {leftovers:?}");

    // One good tile beside it: written, with the bad one counted as skipped.
    std::fs::write(tiles.join("good.jpeg"), real_tile()).unwrap();
    let out = embed_dir();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("bad.jpg") && stderr.contains("1 tile(s) skipped"), "{stderr}");
    let npy_bytes = std::fs::read(&out_path).unwrap();
    let npy = npyz::NpyFile::new(&npy_bytes[..]).unwrap();
    assert_eq!(npy.shape(), [1, 384]);
    let rows = std::fs::read_to_string(out_path.with_extension("tiles.csv")).unwrap();
    assert!(rows.contains("lung_aca/good.jpeg"), "{rows}");
}
