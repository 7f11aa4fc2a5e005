//! The shared data as evaluation sets: LC25000 lung tiles as they are, MoNuSeg fields cut
//! into model-sized tiles that keep their field's slide, case, site and organ.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use tessera::eval::fields::{grid_tiles, FIELD_TILE_SIZE};
use tessera::eval::{Protocol, TileMeta};
use tessera::preprocess::RgbImage;

use crate::cli::tiles::{list_tiles, read_tile, TileSource};

/// One evaluation tile: a file, or pixels cut from a field (held in memory: MoNuSeg's
/// 480 tiles are 72 MB, and cutting them once saves decoding each field 16 times).
pub enum EvalTile {
    File(PathBuf),
    Cut {
        field: PathBuf,
        x: u32,
        y: u32,
        pixels: RgbImage,
    },
}

impl EvalTile {
    pub fn name(&self) -> String {
        match self {
            EvalTile::File(path) => path.display().to_string(),
            EvalTile::Cut { field, x, y, .. } => format!("{} at ({x}, {y})", field.display()),
        }
    }

    pub fn load(&self) -> anyhow::Result<RgbImage> {
        match self {
            EvalTile::File(path) => read_tile(path),
            EvalTile::Cut { pixels, .. } => Ok(pixels.clone()),
        }
    }
}

pub struct Dataset {
    /// Short name for tables, JSON and cache files.
    pub name: &'static str,
    pub title: &'static str,
    /// The main protocol first.
    pub protocols: Vec<Protocol>,
    pub tiles: Vec<EvalTile>,
    pub meta: Vec<TileMeta>,
    /// The source files, in order: with the tiling, what the tiles are.
    sources: Vec<String>,
}

impl Dataset {
    /// SHA-256 (hex) of the source list and tiling: part of the embedding cache's key.
    pub fn tile_list_digest(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(format!(
            "{} tiles of {} px\n",
            self.tiles.len(),
            FIELD_TILE_SIZE
        ));
        for source in &self.sources {
            hash.update(source.as_bytes());
            hash.update(b"\n");
        }
        hex::encode(hash.finalize())
    }
}

fn manifest(data: &Path, file: &str) -> anyhow::Result<Vec<(TileSource, TileMeta)>> {
    let path = data.join(file);
    if !path.is_file() {
        bail!(
            "{}: not found (pass --data with the shared data folder)",
            path.display()
        );
    }
    list_tiles(&path)?
        .into_iter()
        .enumerate()
        .map(|(row, tile)| {
            let name = format!("{}, row {}", path.display(), row + 2);
            let meta = TileMeta::from_columns(|c| tile.metadata.get(c).map(String::as_str), &name)?;
            Ok((tile, meta))
        })
        .collect()
}

/// LC25000 lung tiles (224×224), one query each; main protocol: same group excluded.
pub fn load_lc25000(data: &Path) -> anyhow::Result<Dataset> {
    let rows = manifest(data, "lc25000-lung.csv")?;
    let sources = rows
        .iter()
        .map(|(t, _)| t.metadata["path"].clone())
        .collect();
    let (tiles, meta) = rows
        .into_iter()
        .map(|(t, m)| (EvalTile::File(t.path), m))
        .unzip();
    Ok(Dataset {
        name: "lc25000",
        title: "LC25000 lung (3 classes)",
        protocols: vec![Protocol::ExcludeSameGroup, Protocol::AllOthers],
        tiles,
        meta,
        sources,
    })
}

/// MoNuSeg fields, each cut into 4×4 non-overlapping 224-px tiles from the top-left
/// corner (see [`grid_tiles`]); label = organ. Protocols: leave one slide out, and the
/// stricter leave one hospital (TCGA tissue-source site) out.
pub fn load_monuseg(data: &Path) -> anyhow::Result<Dataset> {
    let rows = manifest(data, "monuseg.csv")?;
    let cut: Vec<Vec<(EvalTile, TileMeta)>> = rows
        .par_iter()
        .map(|(field, meta)| {
            let pixels = read_tile(&field.path)?;
            let tiles = grid_tiles(&pixels, FIELD_TILE_SIZE);
            if tiles.is_empty() {
                bail!(
                    "{}: smaller than one {FIELD_TILE_SIZE}-px tile",
                    field.path.display()
                );
            }
            Ok(tiles
                .into_iter()
                .map(|t| {
                    let tile = EvalTile::Cut {
                        field: field.path.clone(),
                        x: t.x,
                        y: t.y,
                        pixels: t.image,
                    };
                    (tile, meta.clone())
                })
                .collect())
        })
        .collect::<anyhow::Result<_>>()
        .context("cutting MoNuSeg fields into tiles")?;
    let sources = rows
        .iter()
        .map(|(t, _)| t.metadata["path"].clone())
        .collect();
    let (tiles, meta) = cut.into_iter().flatten().unzip();
    Ok(Dataset {
        name: "monuseg",
        title: "MoNuSeg organs (7 classes, 224-px tiles of 1000×1000 fields)",
        protocols: vec![Protocol::LeaveOneSlideOut, Protocol::LeaveOneSiteOut],
        tiles,
        meta,
        sources,
    })
}
