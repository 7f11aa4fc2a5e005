//! `tessera partition`: an index split into the partitioned form (`src/partitioned`) that
//! static hosting serves by HTTP Range requests.

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use anyhow::Context;
use tessera::index::Index;
use tessera::partitioned::{partition, PartitionOptions};

#[derive(clap::Args)]
pub struct PartitionArgs {
    /// Index written by `tessera build`. One built with `--rerank f16` (and `--quant int8`,
    /// `--pca N` for fewer bytes per tile) keeps its re-ranking vectors beside the partitions,
    /// fetched only for each search's shortlist.
    index: PathBuf,
    /// The partitioned index to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Partitions (k-means centroids); default √tiles.
    #[arg(long, default_value_t = 0)]
    partitions: usize,
    /// Partitions a search probes by default.
    #[arg(long, default_value_t = PartitionOptions::default().nprobe)]
    nprobe: usize,
    #[arg(long, default_value_t = PartitionOptions::default().iterations)]
    iterations: usize,
    #[arg(long, default_value_t = PartitionOptions::default().seed)]
    seed: u64,
    /// For an index with re-ranking vectors: candidates whose rows each search fetches and
    /// re-scores.
    #[arg(long, default_value_t = PartitionOptions::default().shortlist)]
    shortlist: usize,
    /// For an index without re-ranking vectors: store int8 codes of a PCA to this many dims
    /// in the partitions and its vectors as f16 rows beside them (few bytes per probed tile).
    #[arg(long)]
    pca: Option<usize>,
}

pub fn run(args: PartitionArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.index).with_context(|| format!("{}: cannot read", args.index.display()))?;
    let index = Index::from_bytes(&bytes, None).with_context(|| format!("{}: cannot load the index", args.index.display()))?;
    drop(bytes);
    let options = PartitionOptions { partitions: args.partitions, nprobe: args.nprobe, iterations: args.iterations, seed: args.seed, shortlist: args.shortlist, pca: args.pca };
    let summary = write(&index, &options, &args.output)?;
    println!(
        "{}: {} tiles in {} partitions (largest {} tiles), directory {} bytes, partitions {} bytes",
        args.output.display(),
        summary.tiles,
        summary.partitions,
        summary.largest_partition_tiles,
        summary.directory_bytes,
        summary.partition_bytes
    );
    if !summary.detail_columns.is_empty() {
        // They can no longer filter or group a search: say so where the file is made.
        println!(
            "kept with each tile's details, fetched per hit (one value per tile, not searchable by filter or unique-by): {}",
            summary.detail_columns.join(", ")
        );
    }
    Ok(())
}

/// Writes the partitioned file next to `output` and renames it into place, so an
/// interrupted run leaves no partial file: the partitions go to a temporary file first
/// (their directory, which comes first, is known only once they are written).
pub fn write(index: &Index, options: &PartitionOptions, output: &std::path::Path) -> anyhow::Result<tessera::partitioned::PartitionSummary> {
    let dir = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut partitions = tempfile::tempfile_in(dir).with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
    let (directory, summary) = partition(index, options, |bytes| partitions.write_all(bytes))?;
    let mut out = tempfile::NamedTempFile::new_in(dir)?;
    out.write_all(&directory)?;
    partitions.seek(SeekFrom::Start(0))?;
    std::io::copy(&mut partitions, &mut out)?;
    out.persist(output).with_context(|| format!("{}: cannot write", output.display()))?;
    Ok(summary)
}
