//! `tessera embed` and `tessera embed-dir`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use npyz::WriterBuilder;

use super::tiles::{embed_all, list_tiles, read_tile};
use super::ModelArgs;

#[derive(clap::Args)]
pub struct EmbedArgs {
    /// Tile images (JPEG, PNG or WebP).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Print one JSON object per line: {"path": ..., "embedding": [...]}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run_embed(args: EmbedArgs) -> anyhow::Result<()> {
    let embedder = args.model.load()?;
    let mut out = std::io::stdout().lock();
    for path in &args.images {
        let vector = embedder.embed(&read_tile(path)?)?;
        if args.json {
            let line = serde_json::json!({ "path": path, "model": embedder.manifest().embedding_id(), "embedding": vector });
            writeln!(out, "{line}")?;
        } else {
            let numbers: Vec<String> = vector.iter().map(|x| format!("{x:.6}")).collect();
            writeln!(out, "{}\t{}", path.display(), numbers.join(" "))?;
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct EmbedDirArgs {
    /// A folder of tiles (searched recursively) or a CSV manifest with a `path` column.
    input: PathBuf,
    /// Output matrix, N x dim float32 (.npy). Row order follows `<output>.tiles.csv`.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run_embed_dir(args: EmbedDirArgs) -> anyhow::Result<()> {
    let embedder = args.model.load()?;
    let tiles = list_tiles(&args.input)?;
    let vectors = embed_all(&embedder, &tiles, "embedding", |t| t.path.display().to_string(), |t| read_tile(&t.path), 0);
    let kept: Vec<(usize, Vec<f32>)> = vectors.into_iter().enumerate().filter_map(|(i, v)| Some((i, v?))).collect();
    let skipped = tiles.len() - kept.len();
    if kept.is_empty() {
        bail!("{}: none of the {} tiles could be embedded", args.input.display(), tiles.len());
    }
    let dim = embedder.dim();
    let flat: Vec<f32> = kept.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let npy = super::write_atomically(&args.output, |file| {
        let mut writer = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[kept.len() as u64, dim as u64])
            .writer(file)
            .begin_nd()?;
        writer.extend(flat.iter().copied())?;
        writer.finish()?;
        Ok(())
    });
    npy.with_context(|| format!("{}: cannot write", args.output.display()))?;
    let mut rows = csv::Writer::from_writer(Vec::new());
    rows.write_record(["row", "path"])?;
    for (row, (i, _)) in kept.iter().enumerate() {
        rows.write_record([row.to_string(), tiles[*i].metadata["path"].clone()])?;
    }
    let rows_path = args.output.with_extension("tiles.csv");
    let rows_bytes = rows.into_inner()?;
    super::write_atomically(&rows_path, |file| Ok(file.write_all(&rows_bytes)?))?;
    eprintln!(
        "wrote {} ({} x {dim}) and {}; {skipped} tile(s) skipped",
        args.output.display(),
        kept.len(),
        rows_path.display()
    );
    Ok(())
}
