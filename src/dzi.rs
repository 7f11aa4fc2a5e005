//! Deep Zoom (DZI) pyramids: what OpenSeadragon and most slide portals read. Level `L` of
//! an image `W × H` is `⌈W / 2^(max−L)⌉ × ⌈H / 2^(max−L)⌉` with `max = ⌈log₂ max(W, H)⌉`,
//! cut into `tile_size` squares that overlap their neighbours by `overlap` pixels; tile
//! `(col, row)` of level `L` is `{name}_files/L/col_row.jpg`, described by `{name}.dzi`.
//!
//! The demo page and the widget's deep-zoom helper (`www/deepzoom.js`) read a pyramid
//! made here from the demo slide, so a click is cut from full-resolution tiles, not from
//! the pixels the viewer drew on screen.

use image::imageops::FilterType;
use image::{ImageEncoder, RgbImage};

/// How tiles are cut and encoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DziOptions {
    pub tile_size: u32,
    pub overlap: u32,
    /// JPEG quality, 1–100.
    pub quality: u8,
}

impl Default for DziOptions {
    /// 254 + 2·1 = 256-px tiles, as Microsoft's and libvips' defaults.
    fn default() -> Self {
        DziOptions { tile_size: 254, overlap: 1, quality: 90 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DziError {
    #[error("dzi: {what}")]
    BadOptions { what: String },
    #[error("dzi: the image is empty ({width} × {height})")]
    EmptyImage { width: u32, height: u32 },
    #[error("dzi: cannot encode tile {col}_{row} of level {level}: {source}")]
    Encode { level: u32, col: u32, row: u32, source: image::ImageError },
}

impl DziError {
    /// Stable kind for callers that branch on the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            DziError::BadOptions { .. } | DziError::EmptyImage { .. } => "input",
            DziError::Encode { .. } => "encode",
        }
    }
}

/// The highest level: the one at full resolution.
pub fn max_level(width: u32, height: u32) -> u32 {
    let side = width.max(height).max(1);
    u32::BITS - (side - 1).leading_zeros()
}

/// Size of `level` of a `width × height` image.
pub fn level_size(width: u32, height: u32, level: u32) -> (u32, u32) {
    let shift = max_level(width, height).saturating_sub(level);
    (width.div_ceil(1 << shift).max(1), height.div_ceil(1 << shift).max(1))
}

/// The `.dzi` descriptor.
pub fn descriptor(width: u32, height: u32, options: &DziOptions) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Image xmlns=\"http://schemas.microsoft.com/deepzoom/2008\" \
         Format=\"jpg\" Overlap=\"{}\" TileSize=\"{}\">\n  <Size Width=\"{width}\" Height=\"{height}\"/>\n</Image>\n",
        options.overlap, options.tile_size
    )
}

/// Tiles written, for the caller's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DziSummary {
    pub levels: u32,
    pub tiles: usize,
    pub bytes: u64,
}

/// Cuts `image` into every level's tiles and hands each, JPEG-encoded, to `sink(level,
/// col, row, bytes)`, full resolution first; each level is halved from the one above
/// (Lanczos), as viewers expect.
pub fn pyramid<E>(
    image: &RgbImage,
    options: &DziOptions,
    mut sink: impl FnMut(u32, u32, u32, &[u8]) -> Result<(), E>,
) -> Result<Result<DziSummary, E>, DziError> {
    if options.tile_size == 0 || options.tile_size > 8192 || options.overlap >= options.tile_size || !(1..=100).contains(&options.quality) {
        return Err(DziError::BadOptions { what: format!("tile size {} (1–8192), overlap {} (below the tile size), quality {} (1–100)", options.tile_size, options.overlap, options.quality) });
    }
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 {
        return Err(DziError::EmptyImage { width, height });
    }
    let top = max_level(width, height);
    let mut summary = DziSummary { levels: top + 1, tiles: 0, bytes: 0 };
    let mut current = image.clone();
    for level in (0..=top).rev() {
        let (w, h) = level_size(width, height, level);
        if current.dimensions() != (w, h) {
            current = image::imageops::resize(&current, w, h, FilterType::Lanczos3);
        }
        let (ts, ov) = (options.tile_size, options.overlap);
        for row in 0..h.div_ceil(ts) {
            for col in 0..w.div_ceil(ts) {
                let x0 = (col * ts).saturating_sub(ov);
                let y0 = (row * ts).saturating_sub(ov);
                let x1 = ((col + 1) * ts + ov).min(w);
                let y1 = ((row + 1) * ts + ov).min(h);
                let tile = image::imageops::crop_imm(&current, x0, y0, x1 - x0, y1 - y0).to_image();
                let mut bytes = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, options.quality)
                    .write_image(tile.as_raw(), tile.width(), tile.height(), image::ExtendedColorType::Rgb8)
                    .map_err(|source| DziError::Encode { level, col, row, source })?;
                if let Err(e) = sink(level, col, row, &bytes) {
                    return Ok(Err(e));
                }
                summary.tiles += 1;
                summary.bytes += bytes.len() as u64;
            }
        }
    }
    Ok(Ok(summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_halve_down_to_one_pixel() {
        assert_eq!(max_level(1, 1), 0);
        assert_eq!(max_level(2, 1), 1);
        assert_eq!(max_level(1000, 700), 10);
        assert_eq!(max_level(1024, 3), 10);
        assert_eq!(level_size(1000, 700, 10), (1000, 700));
        assert_eq!(level_size(1000, 700, 9), (500, 350));
        assert_eq!(level_size(1000, 700, 1), (2, 2));
        assert_eq!(level_size(1000, 700, 0), (1, 1));
    }
}
