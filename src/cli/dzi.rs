//! `tessera dzi`: an image cut into a Deep Zoom pyramid (`src/dzi.rs`), written so that an
//! interrupted run leaves the previous pyramid, or none, never a partial one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tessera::dzi::{descriptor, pyramid, DziOptions};

#[derive(clap::Args)]
pub struct DziArgs {
    /// JPEG, PNG or WebP image (a slide region; whole-slide files are not read here).
    image: PathBuf,
    /// Output name without extension: writes OUT.dzi and the tiles under OUT_files/.
    #[arg(short, long)]
    output: PathBuf,
    #[arg(long, default_value_t = DziOptions::default().tile_size)]
    tile_size: u32,
    #[arg(long, default_value_t = DziOptions::default().overlap)]
    overlap: u32,
    /// JPEG quality of the tiles.
    #[arg(long, default_value_t = DziOptions::default().quality)]
    quality: u8,
}

pub fn run(args: DziArgs) -> anyhow::Result<()> {
    let image = image::open(&args.image).with_context(|| format!("{}: cannot read the image", args.image.display()))?.to_rgb8();
    let options = DziOptions { tile_size: args.tile_size, overlap: args.overlap, quality: args.quality };
    let name = args.output.file_name().context("--output needs a file name")?.to_string_lossy().into_owned();
    let parent = args.output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
    // Tiles go to a temporary folder beside the output, renamed into place at the end.
    let staging = tempfile::Builder::new().prefix(&format!(".{name}_files.")).tempdir_in(parent)?;
    let summary = pyramid(&image, &options, |level, col, row, bytes| -> std::io::Result<()> {
        let dir = staging.path().join(level.to_string());
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{col}_{row}.jpg")), bytes)
    })?
    .with_context(|| format!("{}: cannot write tiles", staging.path().display()))?;
    let files = parent.join(format!("{name}_files"));
    if files.exists() {
        std::fs::remove_dir_all(&files).with_context(|| format!("{}: cannot replace", files.display()))?;
    }
    std::fs::rename(staging.keep(), &files).with_context(|| format!("{}: cannot write", files.display()))?;
    let dzi = parent.join(format!("{name}.dzi"));
    let (width, height) = image.dimensions();
    let mut out = tempfile::NamedTempFile::new_in(parent)?;
    std::io::Write::write_all(&mut out, descriptor(width, height, &options).as_bytes())?;
    out.persist(&dzi).with_context(|| format!("{}: cannot write", dzi.display()))?;
    println!(
        "{}: {width} × {height}, {} levels, {} tiles, {:.1} MB",
        dzi.display(),
        summary.levels,
        summary.tiles,
        summary.bytes as f64 / 1e6
    );
    Ok(())
}
