//! "Search this slide": the tissue tiles of an image already in memory (the slide region a
//! viewer shows), on a grid at the tile side the viewer's magnification gives. Their
//! descriptors (`TileDescriber`) are scored against a query by
//! [`crate::search::score_descriptors`]; this module only says where the tiles are.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::tissue::TissueMask;

/// Mask pixels across one tile: enough resolution for its tissue fraction, few enough
/// that the mask of a whole region costs little next to one embedding.
const MASK_PIXELS_PER_TILE: u32 = 8;
/// The smallest tile side worth describing (the model sees 112 px).
pub const MIN_SIDE: u32 = 16;

/// One grid tile: its top-left corner and side in the image's pixels, and its tissue share.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScanTile {
    pub x: u32,
    pub y: u32,
    pub side: u32,
    pub tissue: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("tile side {side} px does not fit a {width}×{height} image (at least {MIN_SIDE} px, at most the shorter side)")]
    BadSide { side: u32, width: u32, height: u32 },
    #[error("minimum tissue share {0} is not in 0..=1")]
    BadTissue(f32),
}

impl crate::error::Kinded for ScanError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Input
    }
}

/// The full `side`-px grid tiles of `image` (from its top-left corner, raster order) whose
/// tissue share (the saturation mask of [`TissueMask`]) is at least `min_tissue`.
pub fn plan(image: &RgbImage, side: u32, min_tissue: f32) -> Result<Vec<ScanTile>, ScanError> {
    let (width, height) = image.dimensions();
    if side < MIN_SIDE || side > width.min(height) {
        return Err(ScanError::BadSide { side, width, height });
    }
    if !(0.0..=1.0).contains(&min_tissue) {
        return Err(ScanError::BadTissue(min_tissue));
    }
    let factor = (side / MASK_PIXELS_PER_TILE).max(1);
    let thumbnail = image::imageops::resize(image, (width / factor).max(1), (height / factor).max(1), image::imageops::FilterType::Triangle);
    let mask = TissueMask::from_thumbnail(&thumbnail, f64::from(width) / f64::from(thumbnail.width()));
    let mut tiles = Vec::new();
    for row in 0..height / side {
        for col in 0..width / side {
            let (x, y) = (col * side, row * side);
            let tissue = mask.fraction(x, y, side);
            if tissue >= min_tissue {
                tiles.push(ScanTile { x, y, side, tissue });
            }
        }
    }
    Ok(tiles)
}

/// The pixels of `tile` (which [`plan`] made for this image).
pub fn crop(image: &RgbImage, tile: &ScanTile) -> RgbImage {
    image::imageops::crop_imm(image, tile.x, tile.y, tile.side, tile.side).to_image()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Left half glass (near white), right half stained: only right-half tiles are kept.
    #[test]
    fn keeps_the_tissue_and_refuses_bad_sides() {
        let image = RgbImage::from_fn(256, 128, |x, y| {
            if x < 128 {
                image::Rgb([242, 242, 240])
            } else {
                image::Rgb([200 - (y % 30) as u8, 90 + (x % 20) as u8, 170])
            }
        });
        let tiles = plan(&image, 64, 0.5).unwrap();
        assert_eq!(tiles.iter().map(|t| (t.x, t.y)).collect::<Vec<_>>(), [(128, 0), (192, 0), (128, 64), (192, 64)]);
        assert!(tiles.iter().all(|t| t.tissue > 0.9));
        assert_eq!(crop(&image, &tiles[0]).dimensions(), (64, 64));
        assert!(plan(&image, 8, 0.5).unwrap_err().to_string().contains("tile side 8"));
        assert!(plan(&image, 200, 0.5).is_err());
        assert!(plan(&image, 64, 1.5).is_err());
    }
}
