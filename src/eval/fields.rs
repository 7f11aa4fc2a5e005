//! Cutting large fields (MoNuSeg's 1000×1000 crops) into model-sized tiles that keep
//! their field's metadata.

use crate::preprocess::RgbImage;

/// Side of the tiles cut from fields: the model's native input.
pub const FIELD_TILE_SIZE: u32 = 224;

/// A tile cut from a field, with its top-left corner in the field.
#[derive(Debug, Clone)]
pub struct FieldTile {
    pub x: u32,
    pub y: u32,
    pub image: RgbImage,
}

/// Non-overlapping `size`×`size` tiles from the field's top-left corner, row by row;
/// the strip on the right and bottom that does not fill a tile is dropped (a
/// 1000×1000 MoNuSeg field gives 4×4 = 16 tiles of 224 and leaves 104 px unused).
pub fn grid_tiles(field: &RgbImage, size: u32) -> Vec<FieldTile> {
    if size == 0 {
        return Vec::new();
    }
    let (columns, rows) = (field.width() / size, field.height() / size);
    (0..rows)
        .flat_map(|row| (0..columns).map(move |column| (column * size, row * size)))
        .map(|(x, y)| FieldTile {
            x,
            y,
            image: image::imageops::crop_imm(field, x, y, size, size).to_image(),
        })
        .collect()
}
