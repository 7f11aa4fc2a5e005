//! Where tiles come from on disk (a folder or a CSV manifest) and embedding many of them
//! with rayon and a progress bar. Shared by `embed-dir`, `build` and `eval`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use tessera::describer::embed_view;
use tessera::model::Embedder;
use tessera::preprocess::{self, RgbImage};

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp"];

/// One tile to embed: its file and every metadata column known for it.
#[derive(Debug, Clone)]
pub struct TileSource {
    pub path: PathBuf,
    /// `path` (as written in the manifest, or relative to the folder), `label`, `group`,
    /// and any other manifest column.
    pub metadata: BTreeMap<String, String>,
}

/// Lists the tiles of a CSV manifest (`path,label,group,...`: paths relative to the
/// manifest's folder, every column kept) or of a folder (recursively; a tile's label is
/// its parent folder's name).
pub fn list_tiles(input: &Path) -> anyhow::Result<Vec<TileSource>> {
    if input.is_dir() {
        list_folder(input)
    } else if input.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        list_manifest(input)
    } else {
        bail!("{}: expected a folder of tiles or a .csv manifest", input.display())
    }
}

fn list_folder(dir: &Path) -> anyhow::Result<Vec<TileSource>> {
    let mut tiles = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.with_context(|| format!("{}: cannot list folder", dir.display()))?;
        let path = entry.path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if !entry.file_type().is_file() || !is_image {
            continue;
        }
        let relative = path.strip_prefix(dir).unwrap_or(path);
        let mut metadata = BTreeMap::from([("path".to_string(), relative.display().to_string())]);
        if let Some(parent) = relative.parent().and_then(|p| p.file_name()) {
            metadata.insert("label".into(), parent.to_string_lossy().into_owned());
        }
        tiles.push(TileSource { path: path.to_path_buf(), metadata });
    }
    if tiles.is_empty() {
        bail!("{}: no .jpg/.jpeg/.png/.webp tiles found", dir.display());
    }
    Ok(tiles)
}

fn list_manifest(csv_path: &Path) -> anyhow::Result<Vec<TileSource>> {
    let base = csv_path.parent().unwrap_or(Path::new("."));
    let bytes = std::fs::read(csv_path).with_context(|| format!("{}: cannot open manifest", csv_path.display()))?;
    let rows = tessera::manifest::parse(&bytes, &csv_path.display().to_string())?;
    Ok(rows.into_iter().map(|metadata| TileSource { path: base.join(&metadata["path"]), metadata }).collect())
}

pub fn read_tile(path: &Path) -> anyhow::Result<RgbImage> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(preprocess::decode(&bytes, &path.display().to_string())?)
}

pub fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Embeds `items` in parallel (rayon), keeping order. `load` turns an item into pixels.
/// Items that fail are reported on stderr and returned as `None`, so one unreadable
/// tile does not sink a build of thousands.
pub fn embed_all<T: Sync>(
    embedder: &Embedder,
    items: &[T],
    what: &str,
    name: impl Fn(&T) -> String + Sync,
    load: impl Fn(&T) -> anyhow::Result<RgbImage> + Sync,
    quarter_turns: u32,
) -> Vec<Option<Vec<f32>>> {
    let bar = progress_bar(items.len(), what);
    let vectors: Vec<Option<Vec<f32>>> = items
        .par_iter()
        .map(|item| {
            let result = load(item).and_then(|img| Ok(embed_view(embedder, &img, quarter_turns)?));
            bar.inc(1);
            result.map_err(|e| bar.suspend(|| eprintln!("skipped {}: {e:#}", name(item)))).ok()
        })
        .collect();
    bar.finish_and_clear();
    vectors
}
