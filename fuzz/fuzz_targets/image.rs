//! Tile pixels: encoded images (JPEG/PNG/WebP, as dropped on the page or read by the CLI)
//! and raw canvas RGBA with any width and height, then every step a query tile goes
//! through before the model (crop, resize, normalize, colour histogram, thumbnail).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::descriptor::colour_histogram;
use tessera::index::make_thumbnail;
use tessera::preprocess::{decode, from_rgba, normalize_chw, square_resize, Normalization, RgbImage};

/// Largest image the target decodes. The reader admits up to `MAX_SIDE` a side at a cost
/// linear in the pixels (6144² from a 1 kB JPEG: 0.85 s natively, over the 10 s timeout
/// under ASan): bigger ones are the same code run longer, not a hang.
const MAX_PIXELS: u64 = 1 << 22;

fuzz_target!(|data: &[u8]| {
    let declared = image::ImageReader::new(std::io::Cursor::new(data)).with_guessed_format().ok().and_then(|r| r.into_dimensions().ok());
    if declared.is_some_and(|(w, h)| u64::from(w) * u64::from(h) > MAX_PIXELS) {
        return;
    }
    if let Ok(image) = decode(data, "fuzz input") {
        exercise(&image);
    }
    // The same bytes as a canvas: a u16 width and height, then the pixels.
    if let [w0, w1, h0, h1, pixels @ ..] = data {
        let (width, height) = (u16::from_le_bytes([*w0, *w1]), u16::from_le_bytes([*h0, *h1]));
        if let Ok(image) = from_rgba(width.into(), height.into(), pixels) {
            exercise(&image);
        }
    }
});

fn exercise(image: &RgbImage) {
    let square = square_resize(image, 14);
    let norm = Normalization { scale: 1.0 / 255.0, mean: [0.5; 3], std: [0.25; 3] };
    assert_eq!(normalize_chw(&square, &norm).len(), 3 * 14 * 14);
    let _ = colour_histogram(image);
    let _ = make_thumbnail(image, 16);
}
