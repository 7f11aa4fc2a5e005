//! Small JPEG thumbnails stored in the index, so hits can be shown without the tiles.

use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;

use super::IndexError;

/// JPEG quality of stored thumbnails: at 64 px tissue texture stays legible around 2–3 kB.
const QUALITY: u8 = 80;

/// Scales `tile` to fit in `side × side` pixels (keeping its aspect) and encodes it as JPEG.
pub fn make_thumbnail(tile: &RgbImage, side: u32) -> Result<Vec<u8>, IndexError> {
    if tile.width() == 0 || tile.height() == 0 || side == 0 {
        return Err(IndexError::Thumbnail(format!(
            "cannot make a {side} px thumbnail of a {}×{} image",
            tile.width(),
            tile.height()
        )));
    }
    let scale = side as f32 / tile.width().max(tile.height()) as f32;
    let (w, h) = if scale < 1.0 {
        (((tile.width() as f32 * scale).round() as u32).max(1), ((tile.height() as f32 * scale).round() as u32).max(1))
    } else {
        (tile.width(), tile.height())
    };
    let small = image::imageops::thumbnail(tile, w, h);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(&small)
        .map_err(|e| IndexError::Thumbnail(e.to_string()))?;
    Ok(out)
}
