//! `tessera bench gpu`: the WGSL forward pass (wgpu) at several batch sizes beside tract on
//! the same tiles, in the same run: ms/tile, tiles/s, achieved GFLOP/s, the adapter's name.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context};
use rayon::prelude::*;
use serde_json::json;

use crate::cli::tiles::{list_tiles, read_tile};
use tessera::gpu::{Gpu, GpuEmbedder};
use tessera::model::Embedder;
use tessera::preprocess::{self, RgbImage};

#[derive(clap::Args)]
pub struct BenchGpuArgs {
    /// Tiles to time: a folder or CSV manifest (as many as the largest batch are used).
    #[arg(long, default_value = "../shared/data/lc25000-lung.csv")]
    data: PathBuf,
    /// Batch sizes (tiles per GPU run).
    #[arg(long, num_args = 1.., default_values_t = [1, 8, 32, 64])]
    batches: Vec<usize>,
    /// Keep timing a batch size until this many seconds have passed (at least one run).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    #[arg(long, default_value = "bench/results/gpu.json")]
    output: PathBuf,
}

/// Wall ms per tile of `run` over `tiles` tiles, the median of the runs that fit in `seconds`.
fn time_runs(seconds: f64, tiles: usize, mut run: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<(f64, usize)> {
    let mut times = Vec::new();
    let started = Instant::now();
    while times.is_empty() || (started.elapsed().as_secs_f64() < seconds && times.len() < 50) {
        let start = Instant::now();
        run()?;
        times.push(start.elapsed().as_secs_f64() * 1e3 / tiles as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times.len()))
}

pub fn run(args: BenchGpuArgs) -> anyhow::Result<()> {
    let largest = args.batches.iter().copied().max().context("no batch size")?;
    ensure!(largest > 0, "batch sizes must be positive");
    let (model, manifest) = Embedder::default_files();
    let tract = Embedder::from_files(&model, &manifest)?;
    let size = tract.manifest().input.size;
    let sources: Vec<_> = list_tiles(&args.data)?.into_iter().step_by(7).take(largest).collect();
    ensure!(sources.len() == largest, "{}: fewer than {largest} tiles", args.data.display());
    let squares = sources
        .iter()
        .map(|s| Ok(preprocess::square_resize(&read_tile(&s.path)?, size)))
        .collect::<anyhow::Result<Vec<RgbImage>>>()?;

    let gpu = pollster::block_on(Gpu::new())?;
    let adapter = gpu.adapter_name();
    let bytes = std::fs::read(&model)?;
    let gpu = pollster::block_on(GpuEmbedder::new(gpu, &bytes, tract.manifest().clone(), largest))?;
    let gflop = gpu.flops_per_tile() / 1e9;
    let threads = rayon::current_num_threads();
    eprintln!("{adapter}: {gflop:.2} GFLOP per {size}-px tile; warm-up ...");
    // Warm-up at the largest batch: pipelines compiled, scratch buffers allocated once.
    pollster::block_on(gpu.embed_squares(&squares))?;

    println!("| backend | batch | ms/tile | tiles/s | GFLOP/s | runs |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |backend: &str, batch: Option<usize>, ms: f64, runs: usize| {
        let batch_text = batch.map_or("-".into(), |b| b.to_string());
        println!("| {backend} | {batch_text} | {ms:.1} | {:.1} | {:.1} | {runs} |", 1e3 / ms, gflop / (ms / 1e3));
        json!({ "backend": backend, "batch": batch, "ms_per_tile": ms, "tiles_per_s": 1e3 / ms, "gflop_per_s": gflop / (ms / 1e3), "runs": runs })
    };
    let mut rows = Vec::new();
    let mut gpu_ms = Vec::new();
    for &batch in &args.batches {
        let tiles = &squares[..batch];
        let (ms, runs) = time_runs(args.seconds, batch, || Ok(pollster::block_on(gpu.embed_squares(tiles)).map(drop)?))?;
        gpu_ms.push((batch, ms));
        rows.push(row("wgpu", Some(batch), ms, runs));
    }
    let (tract_one, runs) = time_runs(args.seconds, squares.len(), || squares.iter().try_for_each(|s| tract.embed_square(s).map(drop)).map_err(Into::into))?;
    rows.push(row("tract, 1 thread", None, tract_one, runs));
    let (tract_all, runs) =
        time_runs(args.seconds, squares.len(), || squares.par_iter().try_for_each(|s| tract.embed_square(s).map(drop)).map_err(Into::into))?;
    rows.push(row(&format!("tract, {threads} threads"), None, tract_all, runs));
    let speedups: Vec<_> = gpu_ms.iter().map(|&(batch, ms)| json!({ "batch": batch, "over_tract_1_thread": tract_one / ms })).collect();
    for &(batch, ms) in &gpu_ms {
        eprintln!("batch {batch}: wgpu is {:.2}× tract on 1 thread", tract_one / ms);
    }

    let report = json!({
        "benchmark": "gpu",
        "provenance": crate::cli::Provenance::now(),
        "adapter": adapter,
        "wgpu_version": "30",
        "input_size": size,
        "gflop_per_tile": gflop,
        "tiles": squares.len(),
        "threads": threads,
        "notes": "wgpu: one run embeds `batch` tiles (upload, forward pass, readback); tract embeds one tile at a time (1 thread: one after another; all threads: rayon across tiles). Median of the runs that fit in the time budget.",
        "results": rows,
        "speedup": speedups,
    });
    super::write_results(&args.output, &report)
}
