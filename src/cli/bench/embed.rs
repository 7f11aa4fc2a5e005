//! `tessera bench embed`: per-tile embedding time of tract (int8 and fp32, one thread and
//! all threads) beside onnxruntime on the same tiles and model files, in the same run; and
//! where loading the shipped model goes (ONNX parse, declutter, optimize, plan) beside
//! loading the same decluttered graph from NNEF, tract's own serialization.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use rayon::prelude::*;
use serde_json::json;

use crate::cli::tiles::{list_tiles, read_tile};
use tessera::model::Embedder;
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

/// The phases of loading `model` for a 1×3×size×size input, one run each, and whether
/// shipping its decluttered graph as NNEF would start faster (the outputs compared).
fn load_phases(model: &Path, size: usize) -> anyhow::Result<serde_json::Value> {
    use tract_onnx::prelude::*;
    use tract_onnx_opl::WithOnnx;

    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let start = Instant::now();
    let inference = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(&bytes))?
        .with_input_fact(0, f32::fact([1, 3, size, size]).into())?;
    let parse_ms = ms(start);
    let start = Instant::now();
    let decluttered = inference.into_typed()?.into_decluttered()?;
    let declutter_ms = ms(start);
    let start = Instant::now();
    let optimized = decluttered.clone().into_optimized()?;
    let optimize_ms = ms(start);
    let start = Instant::now();
    let plan = optimized.into_runnable()?;
    let plan_ms = ms(start);
    let onnx = json!({ "parse_ms": parse_ms, "declutter_ms": declutter_ms, "optimize_ms": optimize_ms, "plan_ms": plan_ms,
                       "total_ms": parse_ms + declutter_ms + optimize_ms + plan_ms, "bytes": bytes.len() });

    // tract-nnef 0.23 has no serializer for the GeluExact its decluttering fuses the ViT's
    // erf pattern into (an element-wise op without parameters): registered here.
    let mut gelu = tract_nnef::internal::Registry::new("tessera_bench");
    gelu.register_unit_element_wise("tessera_gelu_exact", &tract_onnx::tract_core::ops::nn::GeluExact {});
    let nnef = tract_nnef::nnef().with_onnx().with_registry(gelu);
    let from_nnef = (|| -> TractResult<serde_json::Value> {
        let tar = nnef.write_to_tar(&decluttered, Vec::new())?;
        let start = Instant::now();
        let read = nnef.model_for_read(&mut std::io::Cursor::new(&tar))?;
        let read_ms = ms(start);
        let start = Instant::now();
        let nnef_plan = read.into_optimized()?.into_runnable()?;
        let optimize_plan_ms = ms(start);
        let input: Tensor = tract_ndarray::Array4::<f32>::from_shape_fn((1, 3, size, size), |(_, c, y, x)| {
            ((c * 7 + y * 3 + x) % 17) as f32 / 17.0 - 0.5
        })
        .into();
        let a = plan.run(tvec!(input.clone().into()))?;
        let b = nnef_plan.run(tvec!(input.into()))?;
        let (a, b) = (a[0].to_plain_array_view::<f32>()?, b[0].to_plain_array_view::<f32>()?);
        let max_abs_diff = a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        Ok(json!({ "read_ms": read_ms, "optimize_plan_ms": optimize_plan_ms, "total_ms": read_ms + optimize_plan_ms,
                   "bytes": tar.len(), "max_abs_output_diff": max_abs_diff }))
    })()
    .unwrap_or_else(|e| json!({ "error": format!("{e:#}") }));
    Ok(json!({ "onnx": onnx, "nnef": from_nnef }))
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
        let load = load_phases(model, input_size as usize)?;
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
        "notes": "tract all-threads = rayon across tiles (throughput); onnxruntime all-threads = intra-op threads on one tile (latency); load: one run of each phase on one thread, NNEF = the decluttered graph written by tract-nnef and read back",
        "onnxruntime_version": reference.as_ref().map(|r| r["onnxruntime"].clone()),
        "results": rows,
    });
    super::write_results(&args.output, &report)
}
