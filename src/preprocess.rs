//! Tile pixels in, model input out: decode (JPEG/PNG/WebP) or take raw RGBA from a
//! canvas, centre-crop to a square, resize, normalize. The same code runs natively and in
//! WASM, so the browser and the CLI embed identical inputs.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

pub use image::RgbImage;

/// Largest accepted side. Tiles are a few hundred pixels; this still admits a large
/// region crop while refusing a 60,000 x 60,000 "image" by its header, before decoding.
pub const MAX_SIDE: u32 = 16_384;
/// Decoder allocation cap (a 16k x 16k RGBA8 image is 1 GiB; real inputs are far smaller).
const MAX_DECODE_BYTES: u64 = 512 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("{name}: not a recognised image (expected JPEG, PNG or WebP)")]
    UnknownFormat { name: String },
    #[error("{name}: cannot decode image: {source}")]
    Decode { name: String, source: image::ImageError },
    #[error("{name}: image is {width}x{height}; sides must be 1..={max} px")]
    BadSize { name: String, width: u32, height: u32, max: u32 },
    #[error("{name}: JPEG data is truncated (no end-of-image marker)")]
    Truncated { name: String },
    #[error("RGBA buffer for {width}x{height} must be {expected} bytes, got {actual}")]
    RgbaLength { width: u32, height: u32, expected: u64, actual: usize },
}

/// Bounds on what a decoder may produce, checked from the header before any pixel is
/// decoded, then enforced on its allocations.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_side: u32,
    pub max_bytes: u64,
}

/// Limits for a tile (or a region crop a user drops on the page).
pub const TILE_LIMITS: DecodeLimits = DecodeLimits { max_side: MAX_SIDE, max_bytes: MAX_DECODE_BYTES };

fn check_size(name: &str, width: u32, height: u32, max: u32) -> Result<(), PreprocessError> {
    if width == 0 || height == 0 || width > max || height > max {
        return Err(PreprocessError::BadSize { name: name.into(), width, height, max });
    }
    Ok(())
}

/// Decodes an encoded tile. `name` only labels errors (a file name, "dropped file", ...).
pub fn decode(bytes: &[u8], name: &str) -> Result<RgbImage, PreprocessError> {
    decode_within(bytes, name, TILE_LIMITS)
}

/// Decodes an encoded image (JPEG, PNG, WebP) within `limits`: a tile, or a whole-image
/// slide region. The size is checked from the header before any pixel is decoded.
pub fn decode_within(bytes: &[u8], name: &str, limits: DecodeLimits) -> Result<RgbImage, PreprocessError> {
    let decode_err = |source| PreprocessError::Decode { name: name.into(), source };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| decode_err(image::ImageError::IoError(e)))?;
    match reader.format() {
        None => return Err(PreprocessError::UnknownFormat { name: name.into() }),
        // The JPEG decoder fills a cut-off scan with grey instead of failing, so a
        // half-downloaded tile would embed as a plausible but wrong vector. Inside
        // entropy-coded data 0xFF is always stuffed, so FF D9 only appears as a marker.
        Some(image::ImageFormat::Jpeg) if !bytes.windows(2).any(|w| w == [0xFF, 0xD9]) => {
            return Err(PreprocessError::Truncated { name: name.into() })
        }
        Some(_) => {}
    }
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_bytes);
    reader.limits(decoder_limits);
    let decoder = reader.into_decoder().map_err(decode_err)?;
    let (width, height) = decoder.dimensions();
    check_size(name, width, height, limits.max_side)?;
    // `from_decoder` does not reserve against `max_alloc` as `ImageReader::decode` does.
    if decoder.total_bytes() > limits.max_bytes {
        let kind = image::error::LimitErrorKind::InsufficientMemory;
        return Err(decode_err(image::ImageError::Limits(image::error::LimitError::from_kind(kind))));
    }
    let image = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    Ok(image.into_rgb8())
}

/// Wraps raw RGBA8 pixels (what a browser canvas's `getImageData` gives); alpha is dropped.
pub fn from_rgba(width: u32, height: u32, rgba: &[u8]) -> Result<RgbImage, PreprocessError> {
    check_size("RGBA pixels", width, height, MAX_SIDE)?;
    let expected = u64::from(width) * u64::from(height) * 4;
    if rgba.len() as u64 != expected {
        return Err(PreprocessError::RgbaLength { width, height, expected, actual: rgba.len() });
    }
    let rgb = rgba.chunks_exact(4).flat_map(|px| [px[0], px[1], px[2]]).collect();
    Ok(RgbImage::from_raw(width, height, rgb).expect("length checked above"))
}

/// Centre square crop, then a resize to `size` x `size` with an antialiased bilinear
/// (triangle) filter — what the export script's reference pixels use (PIL BILINEAR).
/// Cropping rather than squashing keeps nuclei round for non-square inputs.
pub fn square_resize(image: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let side = w.min(h);
    let cropped = image::imageops::crop_imm(image, (w - side) / 2, (h - side) / 2, side, side).to_image();
    if side == size {
        cropped
    } else {
        image::imageops::resize(&cropped, size, size, FilterType::Triangle)
    }
}

/// How pixel values become model input: `(v * scale - mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// Pixels of a square `size` x `size` tile to a planar (CHW) normalized f32 buffer.
pub fn normalize_chw(square: &RgbImage, norm: &Normalization) -> Vec<f32> {
    let plane = (square.width() * square.height()) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, px) in square.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(px[c]) * norm.scale - norm.mean[c]) / norm.std[c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgba_drops_alpha_and_checks_length() {
        let img = from_rgba(1, 2, &[1, 2, 3, 255, 4, 5, 6, 0]).unwrap();
        assert_eq!(img.as_raw(), &[1, 2, 3, 4, 5, 6]);
        assert!(matches!(from_rgba(2, 2, &[0; 8]), Err(PreprocessError::RgbaLength { .. })));
        assert!(matches!(from_rgba(0, 2, &[]), Err(PreprocessError::BadSize { .. })));
    }

    #[test]
    fn square_resize_crops_the_centre() {
        let mut img = RgbImage::new(30, 10);
        img.put_pixel(15, 5, image::Rgb([255, 0, 0]));
        let sq = square_resize(&img, 10);
        assert_eq!(sq.dimensions(), (10, 10));
        assert_eq!(sq.get_pixel(5, 5).0, [255, 0, 0]);
    }

    #[test]
    fn normalize_is_planar() {
        let img = RgbImage::from_raw(1, 1, vec![255, 0, 51]).unwrap();
        let norm = Normalization { scale: 1.0 / 255.0, mean: [0.0; 3], std: [1.0, 1.0, 0.5] };
        let out = normalize_chw(&img, &norm);
        for (got, want) in out.iter().zip([1.0, 0.0, 0.4]) {
            assert!((got - want).abs() < 1e-6, "{out:?}");
        }
    }
}
