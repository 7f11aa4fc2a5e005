//! `tessera bench embed`: per-tile embedding time of tract (int8 and fp32, one thread and
//! all threads) beside onnxruntime on the same tiles and model files, in the same run; and
//! where loading the shipped model goes (ONNX parse, declutter, optimize) beside loading
//! the NNEF copy of its decluttered graph that the browser caches.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use rayon::prelude::*;
use serde_json::json;

use crate::cli::tiles::{list_tiles, read_tile};
use tessera::model::{Embedder, LoadTimes, ModelManifest};
use tessera::preprocess::RgbImage;

#[derive(clap::Args)]
pub struct BenchEmbedArgs {
    /// Tiles to time: a folder or CSV manifest (the first --tiles of it are used).
    #[arg(long, default_value = "../shared/data/lc25000-lung.csv")]
    data: PathBuf,
    /// How many tiles (the median is taken over them).
    #[arg(long, default_value_t = 30)]
    tiles: usize,
    /// Skip onnxruntime (no Python needed).
    #[arg(long)]
    no_reference: bool,
    #[arg(long, default_value = "bench/results/embed-native.json")]
    output: PathBuf,
}

struct Timing {
    /// Median wall time of one tile when tiles run one after another on one thread.
    single_median_ms: f64,
    /// Wall time per tile when all cores embed different tiles at once (throughput).
    parallel_ms_per_tile: f64,
}

fn time_embedder(embedder: &Embedder, tiles: &[RgbImage]) -> anyhow::Result<Timing> {
    embedder.embed(&tiles[0])?; // warm-up: first-run allocations
    let mut times = Vec::with_capacity(tiles.len());
    for tile in tiles {
        let start = Instant::now();
        embedder.embed(tile)?;
        times.push(ms(start));
    }
    times.sort_by(f64::total_cmp);
    let start = Instant::now();
    tiles.par_iter().try_for_each(|t| embedder.embed(t).map(drop))?;
    Ok(Timing {
        single_median_ms: times[times.len() / 2],
        parallel_ms_per_tile: ms(start) / tiles.len() as f64,
    })
}

/// Milliseconds since `since`.
fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// The phases of loading `model` as the engine does (one run each): from the ONNX file,
/// and from the NNEF copy of its decluttered graph that the browser caches, with the two
/// embeddings of `tile` compared.
fn load_phases(model: &Path, manifest: &ModelManifest, tile: &RgbImage) -> anyhow::Result<serde_json::Value> {
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let (from_onnx, decluttered) = Embedder::from_verified_bytes_keeping_decluttered(&bytes, manifest.clone())?;
    let start = Instant::now();
    let nnef = decluttered.to_nnef()?;
    let write_ms = ms(start);
    let from_nnef = Embedder::from_decluttered_nnef(&nnef, manifest.clone())?;
    let (a, b) = (from_onnx.embed(tile)?, from_nnef.embed(tile)?);
    let max_abs_diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let phases = |t: LoadTimes, bytes: usize| {
        json!({ "parse_ms": t.parse_ms, "declutter_ms": t.declutter_ms, "optimize_ms": t.optimize_ms,
                "total_ms": t.parse_ms + t.declutter_ms + t.optimize_ms, "bytes": bytes })
    };
    let mut nnef_phases = phases(from_nnef.load_times(), nnef.len());
    nnef_phases["write_ms"] = json!(write_ms);
    nnef_phases["max_abs_output_diff"] = json!(max_abs_diff);
    Ok(json!({ "onnx": phases(from_onnx.load_times(), bytes.len()), "nnef": nnef_phases }))
}

fn onnxruntime_reference(paths: &[PathBuf], int8: &Path, fp32: &Path) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(super::python::python()?)
        .arg("bench/embed_reference.py")
        .arg("--int8")
        .arg(int8)
        .arg("--fp32-out")
        .arg(fp32)
        .arg("--tiles")
        .args(paths)
        .output()
        .context("cannot run bench/embed_reference.py")?;
    if !out.status.success() {
        bail!("bench/embed_reference.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

pub fn run(args: BenchEmbedArgs) -> anyhow::Result<()> {
    let sources: Vec<_> = list_tiles(&args.data)?.into_iter().step_by(7).take(args.tiles).collect();
    let paths: Vec<PathBuf> = sources.iter().map(|s| s.path.clone()).collect();
    let tiles = paths.iter().map(|p| read_tile(p)).collect::<anyhow::Result<Vec<_>>>()?;
    let threads = rayon::current_num_threads();
    let (int8_model, int8_manifest) = Embedder::default_files();
    let fp32_model = PathBuf::from("target/models/vit-s14-fp32.onnx");

    // onnxruntime first: it also writes the fp32 model tract is timed on.
    let reference = if args.no_reference {
        None
    } else {
        eprintln!("onnxruntime on {} tiles ...", tiles.len());
        Some(onnxruntime_reference(&paths, &int8_model, &fp32_model)?)
    };

    let mut rows = Vec::new();
    let mut input_size = 0;
    let mut models = vec![("int8", int8_model.clone(), int8_manifest)];
    if fp32_model.exists() {
        models.push(("fp32", fp32_model.clone(), fp32_model.with_extension("json")));
    }
    println!("| model | runtime | 1 thread median ms/tile | {threads} threads ms/tile | tract / onnxruntime (1 thread) |");
    println!("|---|---|---|---|---|");
    for (kind, model, manifest) in &models {
        eprintln!("tract {kind} ...");
        let embedder = Embedder::from_files(model, manifest)?;
        input_size = embedder.manifest().input.size;
        let t = time_embedder(&embedder, &tiles)?;
        let load = load_phases(model, embedder.manifest(), &tiles[0])?;
        eprintln!("tract {kind} load: {load}");
        let ort = |threads: usize| {
            reference.as_ref().and_then(|r| r["median_ms"][format!("{kind}/{threads}")].as_f64())
        };
        let ratio = ort(1).map(|o| format!("{:.2}", t.single_median_ms / o)).unwrap_or("-".into());
        println!("| {kind} | tract | {:.1} | {:.1} | {ratio} |", t.single_median_ms, t.parallel_ms_per_tile);
        if let (Some(one), Some(all)) = (ort(1), ort(threads)) {
            println!("| {kind} | onnxruntime | {one:.1} | {all:.1} (intra-op) | 1.00 |");
        }
        rows.push(json!({
            "model": kind,
            "tract": { "single_thread_median_ms": t.single_median_ms, "all_threads_ms_per_tile": t.parallel_ms_per_tile },
            "onnxruntime": { "single_thread_median_ms": ort(1), "all_threads_median_ms": ort(threads) },
            "tract_over_onnxruntime_single_thread": ort(1).map(|o| t.single_median_ms / o),
            "load": load,
        }));
    }
    let report = json!({
        "benchmark": "embed-native",
        "provenance": crate::cli::Provenance::now(),
        "tiles": tiles.len(),
        "threads": threads,
        "input_size": input_size,
        "notes": "tract all-threads = rayon across tiles (throughput); onnxruntime all-threads = intra-op threads on one tile (latency); load: one run of each phase on one thread, NNEF = the decluttered graph as the browser caches it (src/model/decluttered.rs), written and read back",
        "onnxruntime_version": reference.as_ref().map(|r| r["onnxruntime"].clone()),
        "results": rows,
    });
    super::write_results(&args.output, &report)
}
