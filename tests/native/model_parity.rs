//! tract vs onnxruntime on the committed int8 model, and int8 vs fp32, on real tiles.
//! References come from `models/export.py` (onnxruntime) in `tests/fixtures/reference/`.

use crate::common;

use common::{cosine, data, embedder, repo};
use tessera::model::{Embedder, ModelError, ModelManifest, ModelSource};
use tessera::preprocess::{self, RgbImage};

#[derive(serde::Deserialize)]
struct Reference {
    model_sha256: String,
    input_size: u32,
    tiles: Vec<String>,
    onnxruntime_int8: Vec<Vec<f32>>,
    onnxruntime_fp32: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let json = std::fs::read(repo().join("tests/fixtures/reference/embeddings.json")).unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// The exact input pixels the export script fed onnxruntime (N x size x size x 3, u8).
fn reference_pixels(size: u32) -> Vec<RgbImage> {
    let bytes = std::fs::read(repo().join("tests/fixtures/reference/pixels.npy")).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape()[1..], [u64::from(size), u64::from(size), 3]);
    let flat: Vec<u8> = npy.into_vec().unwrap();
    flat.chunks_exact((size * size * 3) as usize)
        .map(|c| RgbImage::from_raw(size, size, c.to_vec()).unwrap())
        .collect()
}

#[test]
fn reference_was_made_with_the_committed_model() {
    let r = reference();
    assert_eq!(r.model_sha256, embedder().manifest().sha256);
    assert_eq!(r.input_size, embedder().manifest().input.size);
}

/// Tests our runtime: same file, same pixels, tract vs onnxruntime.
#[test]
fn tract_matches_onnxruntime_on_the_int8_model() {
    let r = reference();
    let pixels = reference_pixels(r.input_size);
    assert_eq!(pixels.len(), r.tiles.len());
    for ((tile, px), expected) in r.tiles.iter().zip(&pixels).zip(&r.onnxruntime_int8) {
        let v = embedder().embed_square(px).unwrap();
        assert_eq!(v.len(), 384);
        let c = cosine(&v, expected);
        assert!(c >= 0.9999, "{tile}: cosine {c} < 0.9999");
    }
}

/// Tests the quantization: our int8 run vs the fp32 model in onnxruntime.
#[test]
fn int8_stays_close_to_fp32() {
    let r = reference();
    let pixels = reference_pixels(r.input_size);
    let cosines: Vec<f32> = pixels
        .iter()
        .zip(&r.onnxruntime_fp32)
        .map(|(px, fp32)| cosine(&embedder().embed_square(px).unwrap(), fp32))
        .collect();
    let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
    let min = cosines.iter().copied().fold(f32::INFINITY, f32::min);
    assert!(mean >= 0.999 && min >= 0.995, "int8 vs fp32: mean {mean}, min {min}");
}

/// The whole path a user takes: file bytes -> our decoder and resize -> tract. Differs from
/// the reference only by JPEG decoder and resampler rounding.
#[test]
fn embedding_from_files_matches_reference() {
    let r = reference();
    for (tile, expected) in r.tiles.iter().zip(&r.onnxruntime_int8) {
        let bytes = std::fs::read(data().join(tile)).unwrap();
        let img = preprocess::decode(&bytes, tile).unwrap();
        let v = embedder().embed(&img).unwrap();
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{tile}: not unit length ({norm})");
        let c = cosine(&v, expected);
        eprintln!("{tile}: file -> tract vs onnxruntime cosine {c:.6}");
        assert!(c >= 0.9995, "{tile}: cosine {c} < 0.9995");
    }
}

#[test]
fn rgba_pixels_embed_like_the_decoded_image() {
    let path = "lc25000-lung/lung_n/lungn100.jpeg";
    let bytes = std::fs::read(data().join(path)).unwrap();
    let img = preprocess::decode(&bytes, path).unwrap();
    let rgba: Vec<u8> = img.pixels().flat_map(|p| [p[0], p[1], p[2], 255]).collect();
    let from_rgba = preprocess::from_rgba(img.width(), img.height(), &rgba).unwrap();
    assert_eq!(embedder().embed(&img).unwrap(), embedder().embed(&from_rgba).unwrap());
}

/// The NNEF copy of the decluttered graph that the browser caches (src/model/decluttered.rs)
/// loads into the same model: every reference tile embeds bit for bit as from the ONNX file.
#[test]
fn the_decluttered_nnef_copy_embeds_exactly_like_the_onnx_model() {
    let (model, manifest) = Embedder::default_files();
    let manifest = ModelManifest::from_json(&std::fs::read(manifest).unwrap(), "manifest").unwrap();
    let bytes = std::fs::read(model).unwrap();
    let (from_onnx, decluttered) = Embedder::from_verified_bytes_keeping_decluttered(&bytes, manifest.clone()).unwrap();
    let nnef = decluttered.to_nnef().unwrap();
    assert_eq!(nnef, decluttered.to_nnef().unwrap(), "the same file every time (no clock in it)");
    let from_nnef = Embedder::from_decluttered_nnef(&nnef, manifest).unwrap();
    assert_eq!(from_onnx.load_times().source, ModelSource::Onnx);
    assert_eq!(from_nnef.load_times().source, ModelSource::DeclutteredNnef);
    assert_eq!(from_nnef.load_times().declutter_ms, 0.0);
    let r = reference();
    for (tile, px) in r.tiles.iter().zip(reference_pixels(r.input_size)) {
        assert_eq!(from_onnx.embed_square(&px).unwrap(), from_nnef.embed_square(&px).unwrap(), "{tile}");
    }
}

/// A copy made for another input size, or damaged in the cache, is a load error (the worker
/// then drops it and loads the ONNX file), never a panic.
#[test]
fn a_decluttered_copy_of_another_size_or_damaged_is_refused() {
    let (model, manifest_path) = Embedder::default_files();
    let manifest = ModelManifest::from_json(&std::fs::read(manifest_path).unwrap(), "manifest").unwrap();
    let (_, decluttered) = Embedder::from_verified_bytes_keeping_decluttered(&std::fs::read(model).unwrap(), manifest.clone()).unwrap();
    let nnef = decluttered.to_nnef().unwrap();
    let mut other_size = manifest.clone();
    other_size.input.size = 224;
    let err = Embedder::from_decluttered_nnef(&nnef, other_size).unwrap_err();
    assert!(matches!(err, ModelError::Load { .. }), "{err}");
    assert!(err.to_string().contains("not the manifest's [1, 3, 224, 224]"), "{err}");
    for damaged in [&nnef[..nnef.len() / 2], &nnef[..1000], &[][..], &b"not a tar at all"[..]] {
        let err = Embedder::from_decluttered_nnef(damaged, manifest.clone()).unwrap_err();
        assert!(matches!(err, ModelError::Load { .. }), "{} bytes: {err}", damaged.len());
        // An error tract returns, not a panic caught here: the browser cannot catch one.
        assert!(!err.to_string().contains("panicked"), "{err}");
    }
}

/// The cache key's tract version (decluttered::FORMAT) is the tract that writes the file:
/// after a tract upgrade, browsers must not read copies the old one wrote.
#[test]
fn the_decluttered_format_names_the_tract_in_cargo_lock() {
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"tract-nnef\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")?.strip_suffix('"')))
        .expect("tract-nnef in Cargo.lock");
    assert_eq!(tessera::model::decluttered::FORMAT, format!("tract-{version}-nnef"));
}
