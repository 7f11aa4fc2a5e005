//! `tessera bench ...`: figures, not timed tests. Each benchmark prints a table and
//! writes `bench/results/<name>.json`.

mod embed;
#[cfg(feature = "gpu")]
mod gpu;
mod graph;
mod partitioned;
mod python;
mod search;
mod slide;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Per-tile embedding latency: tract int8/fp32, 1 and all threads, vs onnxruntime.
    Embed(embed::BenchEmbedArgs),
    /// The WGSL forward pass (wgpu) at batch 1/8/32/64 beside tract: ms/tile, GFLOP/s.
    #[cfg(feature = "gpu")]
    Gpu(gpu::BenchGpuArgs),
    /// The HNSW graph build: instant-distance against the batched build on 1 and 2 threads.
    Graph(graph::BenchGraphArgs),
    /// Index build/search at scale on synthetic vectors, vs faiss and hnswlib.
    Search(search::BenchSearchArgs),
    /// The partitioned index over local HTTP Range: bytes per query, latency, recall@10.
    Partitioned(partitioned::BenchPartitionedArgs),
    /// `tessera build` on generated whole slides of growing size: peak memory and tiles/s.
    Slide(slide::BenchSlideArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Embed(args) => embed::run(args),
        #[cfg(feature = "gpu")]
        BenchCommand::Gpu(args) => gpu::run(args),
        BenchCommand::Graph(args) => graph::run(args),
        BenchCommand::Search(args) => search::run(args),
        BenchCommand::Partitioned(args) => partitioned::run(args),
        BenchCommand::Slide(args) => slide::run(args),
    }
}

/// Writes a benchmark's results file (creating its folder), atomically.
fn write_results(path: &std::path::Path, report: &serde_json::Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    super::write_atomically(path, |f| Ok(serde_json::to_writer_pretty(f, report)?))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
