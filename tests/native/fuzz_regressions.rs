//! Inputs the fuzz targets (`fuzz/`, `scripts/fuzz.sh`) or the reliability review found
//! mishandled, fed to the same library call as the target: each must now give a clear
//! error, never a panic, a hang or a huge allocation. See `docs/reliability.md`.

use std::path::Path;

use tessera::descriptor::DescriptorKind;
use tessera::index::{BuildOptions, Index, IndexBuilder, ModelRef, Quantization};
use tessera::model::{sha256_hex, Embedder, ModelError, ModelManifest};

/// One tile, `[0.6, 0.8]`, stored at `quantization`.
fn two_dim_index(quantization: Quantization) -> Vec<u8> {
    let model = ModelRef { id: "regression".into(), sha256: "0".repeat(64), dim: 2, descriptor: DescriptorKind::Hist, views: 1 };
    let mut builder = IndexBuilder::new(model, BuildOptions { quantization, ..BuildOptions::default() }).unwrap();
    builder.add(&[0.6, 0.8], vec![("slide".into(), "a".into())], None).unwrap();
    builder.build().unwrap().to_bytes()
}

/// The byte range of section `tag`, from the section table (tag, u64 offset, u64 length).
fn section(file: &[u8], tag: &[u8; 4]) -> std::ops::Range<usize> {
    let at = file.windows(4).rposition(|w| w == tag).expect("section in the table");
    let number = |i: usize| u64::from_le_bytes(file[i..i + 8].try_into().unwrap()) as usize;
    let (offset, len) = (number(at + 4), number(at + 12));
    offset..offset + len
}

fn fix_checksum(file: &mut [u8]) {
    let body = file.len() - 4;
    let crc = crc32fast::hash(&file[..body]);
    file[body..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn non_finite_stored_vectors_are_refused() {
    let cases: [(Quantization, &[u8]); 4] = [
        (Quantization::F32, &f32::NAN.to_le_bytes()),
        (Quantization::F32, &f32::INFINITY.to_le_bytes()),
        (Quantization::F16, &half::f16::NAN.to_le_bytes()),
        (Quantization::F16, &half::f16::NEG_INFINITY.to_le_bytes()),
    ];
    for (quantization, value) in cases {
        let mut file = two_dim_index(quantization);
        let vecs = section(&file, b"VECS");
        // The second value of the only vector.
        let at = vecs.start + value.len();
        file[at..at + value.len()].copy_from_slice(value);
        fix_checksum(&mut file);
        let err = Index::from_bytes(&file, None).expect_err("a non-finite vector is refused").to_string();
        assert_eq!(
            err,
            format!("index section VECS, offset {}: vector value is not finite (NaN or infinity)", value.len()),
            "{quantization:?}"
        );
    }
}

#[test]
fn int8_parameters_that_decode_to_infinity_are_refused() {
    let mut file = two_dim_index(Quantization::Int8);
    // QPAR holds the per-dimension minimum, then the scale: 3e38 · 255 overflows f32.
    let qpar = section(&file, b"QPAR");
    let scale = qpar.start + 8;
    file[scale..scale + 4].copy_from_slice(&3e38f32.to_le_bytes());
    fix_checksum(&mut file);
    let err = Index::from_bytes(&file, None).expect_err("an overflowing scale is refused").to_string();
    assert_eq!(err, "index is inconsistent: int8 parameters are not finite");
}

/// The repository's manifest as fuzz/model_bytes uses it: `model`'s hash, a 28-px input.
fn manifest_for(model: &[u8]) -> ModelManifest {
    let json = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/vit-s14-int8.json")).unwrap();
    let mut manifest = ModelManifest::from_json(&json, "vit-s14-int8.json").unwrap();
    (manifest.sha256, manifest.input.size, manifest.output.dim) = (sha256_hex(model), 28, 8);
    manifest
}

#[test]
fn a_graph_that_makes_tract_panic_is_a_load_error() {
    // fuzz/model_bytes, first minute: the tiny seed with ReduceMean's `axes` re-tagged as
    // packed ints, which reads as axes [64, 3] on a rank-4 input; tract-hir unwraps
    // "Illegal combination of values for rank and axis: 4 and 64".
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/model_bytes/seed-tiny.onnx");
    let mut model = std::fs::read(seed).unwrap();
    assert_eq!((&model[40..44], model[44]), (&b"axes"[..], 0x40), "the seed's ReduceMean attribute");
    model[44] = 0x42;
    let err = Embedder::from_bytes(&model, manifest_for(&model)).expect_err("the graph does not load");
    assert!(matches!(err, ModelError::Load { .. }), "{err}");
    assert!(err.to_string().contains("tract panicked on the graph"), "{err}");
}

#[test]
fn a_graph_without_outputs_is_a_load_error() {
    // fuzz/model_bytes, second run: a graph whose only output is gone made `embed` index
    // an empty output list. Here the seed's output is re-tagged as a value_info entry.
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/model_bytes/seed-tiny.onnx");
    let mut model = std::fs::read(seed).unwrap();
    assert_eq!(&model[252..265], b"\x62\x1b\x0a\x09embedding", "the seed's graph output");
    model[252] = 0x6a;
    let err = Embedder::from_bytes(&model, manifest_for(&model)).expect_err("the graph does not load");
    assert!(err.to_string().contains("the graph has no output"), "{err}");
}

/// fuzz/model_bytes's smoke in the test command: the fuzz build there leaves tract out
/// (half its time), so the model reader is exercised here instead, by seeded mutations of
/// the target's seed (bit flips, interesting bytes, deletions, insertions, truncations, 1-4
/// per case; not coverage-guided: `scripts/fuzz.sh model_bytes SECONDS` is). Every case
/// loads or is refused, and a graph that loads runs, with an error or a vector: no panic.
#[test]
fn mutations_of_the_model_seed_load_or_fail_cleanly() {
    use rand::{Rng, SeedableRng};
    let seed = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/model_bytes/seed-tiny.onnx")).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x7e55e4a);
    let tile = tessera::preprocess::RgbImage::new(28, 28);
    let (mut loaded, cases) = (0, 20_000);
    for _ in 0..cases {
        let mut model = seed.clone();
        for _ in 0..rng.gen_range(1..=4) {
            let at = rng.gen_range(0..model.len());
            match rng.gen_range(0..5) {
                0 => model[at] ^= 1 << rng.gen_range(0..8),
                1 => model[at] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x40][rng.gen_range(0..6)],
                2 if model.len() > 1 => drop(model.remove(at)),
                3 => model.insert(at, rng.gen()),
                _ => model.truncate(at.max(1)),
            }
        }
        if let Ok(embedder) = Embedder::from_bytes(&model, manifest_for(&model)) {
            loaded += 1;
            let _ = embedder.embed_square(&tile);
        }
    }
    println!("{loaded} of {cases} mutants loaded");
    // Not all refused at the first byte: some mutants still reach tract's graph building.
    assert!(loaded > 0, "none of {cases} mutants of the seed loaded: the smoke no longer reaches tract");
}
