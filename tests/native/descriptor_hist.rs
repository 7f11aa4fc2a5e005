//! The colour histogram and ViT/histogram fusion: exact values on hand-made images and
//! vectors, the stored descriptor name, and a real LC25000 tile.

use tessera::descriptor::{colour_histogram, fuse, DescriptorError, DescriptorKind, HIST_DIM};
use tessera::preprocess::{self, RgbImage};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn bin(r: u8, g: u8, b: u8) -> usize {
    usize::from(r / 32) * 64 + usize::from(g / 32) * 8 + usize::from(b / 32)
}

/// A deterministic, irregular vector (no RNG crate needed).
fn wavy(len: usize, seed: f32) -> Vec<f32> {
    (0..len)
        .map(|i| ((i as f32 + 1.0) * seed).sin() + 0.3 * ((i as f32) * seed * 0.37).cos())
        .collect()
}

#[test]
fn one_colour_fills_one_bin() {
    let img = RgbImage::from_pixel(5, 7, image::Rgb([200, 100, 31]));
    let hist = colour_histogram(&img).unwrap();
    assert_eq!(hist.len(), HIST_DIM);
    assert_eq!(hist[bin(200, 100, 31)], 1.0);
    assert_eq!(hist.iter().filter(|&&x| x != 0.0).count(), 1);
}

#[test]
fn bins_hold_square_roots_of_pixel_fractions() {
    // 1 pixel of one colour, 3 of another: fractions 1/4 and 3/4.
    let mut img = RgbImage::from_pixel(2, 2, image::Rgb([255, 255, 255]));
    img.put_pixel(0, 0, image::Rgb([0, 32, 64]));
    let hist = colour_histogram(&img).unwrap();
    assert!((hist[bin(0, 32, 64)] - 0.5).abs() < 1e-6);
    assert!((hist[bin(255, 255, 255)] - 0.75f32.sqrt()).abs() < 1e-6);
    assert!((dot(&hist, &hist) - 1.0).abs() < 1e-6);
    // Bin edges: 31 and 32 fall in different bins.
    assert_ne!(bin(31, 0, 0), bin(32, 0, 0));
    let mut edge = RgbImage::from_pixel(2, 1, image::Rgb([31, 0, 0]));
    edge.put_pixel(1, 0, image::Rgb([32, 0, 0]));
    let hist = colour_histogram(&edge).unwrap();
    assert!((hist[bin(31, 0, 0)] - 0.5f32.sqrt()).abs() < 1e-6);
    assert!((hist[bin(32, 0, 0)] - 0.5f32.sqrt()).abs() < 1e-6);
}

#[test]
fn empty_image_is_refused() {
    assert_eq!(
        colour_histogram(&RgbImage::new(0, 3)),
        Err(DescriptorError::EmptyImage {
            width: 0,
            height: 3
        })
    );
}

#[test]
fn fused_cosine_is_the_weighted_sum_of_part_cosines() {
    let (vit_a, vit_b) = (wavy(384, 0.7), wavy(384, 1.3));
    let (hist_a, hist_b) = (
        wavy(HIST_DIM, 0.2)
            .iter()
            .map(|x| x.abs())
            .collect::<Vec<_>>(),
        wavy(HIST_DIM, 0.9),
    );
    let cos = |a: &[f32], b: &[f32]| dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt());
    for weight in [0.0, 0.3, 0.5, 1.0] {
        let a = fuse(&vit_a, &hist_a, weight).unwrap();
        let b = fuse(&vit_b, &hist_b, weight).unwrap();
        assert_eq!(a.len(), 384 + HIST_DIM);
        assert!(
            (dot(&a, &a) - 1.0).abs() < 1e-5,
            "fused vectors are unit length"
        );
        let expected = (1.0 - weight) * cos(&vit_a, &vit_b) + weight * cos(&hist_a, &hist_b);
        assert!(
            (dot(&a, &b) - expected).abs() < 1e-5,
            "weight {weight}: {} vs {expected}",
            dot(&a, &b)
        );
    }
}

#[test]
fn fusion_checks_its_inputs() {
    let (vit, hist) = (wavy(384, 0.5), wavy(HIST_DIM, 0.5));
    assert_eq!(
        fuse(&vit, &hist, 1.5),
        Err(DescriptorError::WeightOutOfRange { weight: 1.5 })
    );
    assert!(matches!(
        fuse(&vit, &hist, f32::NAN),
        Err(DescriptorError::WeightOutOfRange { .. })
    ));
    assert_eq!(
        fuse(&vit, &hist[..10], 0.3),
        Err(DescriptorError::WrongLength {
            part: "hist",
            found: 10,
            expected: HIST_DIM
        })
    );
    assert_eq!(
        fuse(&vec![0.0; 384], &hist, 0.3),
        Err(DescriptorError::DegenerateNorm { part: "vit" })
    );
}

#[test]
fn kind_names_round_trip_through_text_and_json() {
    let kinds = [
        DescriptorKind::Vit,
        DescriptorKind::Hist,
        DescriptorKind::Fused { weight: 0.3 },
    ];
    for kind in kinds {
        assert_eq!(kind.to_string().parse::<DescriptorKind>().unwrap(), kind);
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(serde_json::from_str::<DescriptorKind>(&json).unwrap(), kind);
    }
    assert_eq!(
        serde_json::to_string(&kinds[2]).unwrap(),
        r#"{"kind":"fused","weight":0.3}"#
    );
    assert_eq!(
        serde_json::to_string(&kinds[0]).unwrap(),
        r#"{"kind":"vit"}"#
    );
    assert_eq!(kinds[2].dim(384), 384 + HIST_DIM);
    for bad in ["fused", "fused:2", "fused:x", "colour", ""] {
        assert!(
            bad.parse::<DescriptorKind>().is_err(),
            "{bad:?} should not parse"
        );
    }
}

#[test]
fn compose_builds_each_kind_from_its_parts() {
    let (vit, hist) = (wavy(384, 0.5), wavy(HIST_DIM, 0.8));
    assert_eq!(DescriptorKind::Vit.compose(&vit, &[]).unwrap().len(), 384);
    assert_eq!(
        DescriptorKind::Hist.compose(&[], &hist).unwrap().len(),
        HIST_DIM
    );
    assert_eq!(
        DescriptorKind::Fused { weight: 0.3 }
            .compose(&vit, &hist)
            .unwrap(),
        fuse(&vit, &hist, 0.3).unwrap()
    );
}

#[test]
fn real_tile_histogram_is_a_unit_vector_concentrated_on_stain_colours() {
    let path = format!("{DATA}/lc25000-lung/lung_aca/lungaca2495.jpeg");
    let bytes = std::fs::read(&path).unwrap();
    let tile = preprocess::decode(&bytes, &path).unwrap();
    let hist = colour_histogram(&tile).unwrap();
    assert!((dot(&hist, &hist) - 1.0).abs() < 1e-5);
    // H&E is pink and purple: a few dozen of the 512 colour bins hold nearly everything.
    let mut mass: Vec<f32> = hist.iter().map(|x| x * x).collect();
    mass.sort_by(|a, b| b.total_cmp(a));
    assert!(mass[..40].iter().sum::<f32>() > 0.95);
}
