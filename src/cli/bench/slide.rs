//! `tessera bench slide`: `tessera build` on whole slides of growing size, made here from
//! the shared CC0 CMU-1 region repeated over a large tiled pyramid (JPEG tiles, levels at
//! 1×, 4× and 16×; not committed), with peak memory and tiles/s per size. The build
//! streams tiles, so its peak memory should grow with the slide only by what the index
//! itself holds per tile: the bench fits that slope (bytes per tile) and extrapolates it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::json;

use tessera::slide::tiff_writer::write_repeated_slide;

#[derive(clap::Args)]
pub struct BenchSlideArgs {
    /// Level-0 sides of the square slides to build, px.
    #[arg(long, num_args = 1.., default_values_t = [10_000, 20_000, 40_000])]
    sides: Vec<u32>,
    /// The CMU-1 level-0 render the slides repeat.
    #[arg(long, default_value = "../shared/data/slides/CMU-1-Small-Region.jpg")]
    source: PathBuf,
    /// Rotated views per tile in the build (1 keeps the benchmark short; 4 is the default build).
    #[arg(long, default_value_t = 1)]
    views: u32,
    /// Where the generated slides and indexes go.
    #[arg(long, default_value = "target/bench-slides")]
    dir: PathBuf,
    #[arg(long, default_value = "bench/results/slide-build.json")]
    output: PathBuf,
}

pub fn run(args: BenchSlideArgs) -> anyhow::Result<()> {
    let source = image::open(&args.source).with_context(|| format!("{}: cannot open", args.source.display()))?.into_rgb8();
    std::fs::create_dir_all(&args.dir)?;
    let tessera = std::env::current_exe()?;
    let mut rows = Vec::new();
    let mut points = Vec::new();
    println!(
        "| level-0 side | tiles built | file MB | build s | tiles/s | peak RSS MB | while embedding MB |\n|---:|---:|---:|---:|---:|---:|---:|"
    );
    for &side in &args.sides {
        let slide = args.dir.join(format!("cmu-repeated-{side}.tif"));
        let started = Instant::now();
        if !slide.exists() {
            eprintln!("writing {} ({side} × {side} px)", slide.display());
            write_repeated_slide(&slide, &source, side).with_context(|| format!("{}: cannot write the slide", slide.display()))?;
        }
        let generate_s = started.elapsed().as_secs_f64();
        let index = args.dir.join(format!("cmu-repeated-{side}.tsi"));
        let started = Instant::now();
        let out = Command::new(&tessera)
            .args(["build", "--thumbnails", "--views", &args.views.to_string(), "-o"])
            .arg(&index)
            .arg(&slide)
            .output()
            .context("cannot run tessera build")?;
        let build_s = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!("tessera build on {} failed: {stderr}", slide.display());
        }
        let summary = stderr.lines().rev().find(|l| l.starts_with("wrote ")).unwrap_or_default();
        let tiles = number_before(summary, " tiles, ").context("the build did not say how many tiles it wrote")?;
        let peak_mb = number_before(summary, " MB peak memory");
        let embedding_mb = number_before(summary, " MB while embedding");
        let file_mb = std::fs::metadata(&slide)?.len() as f64 / 1e6;
        let shown = |mb: Option<u64>| mb.map_or("-".into(), |m| m.to_string());
        println!(
            "| {side} | {tiles} | {file_mb:.0} | {build_s:.1} | {:.1} | {} | {} |",
            tiles as f64 / build_s,
            shown(peak_mb),
            shown(embedding_mb)
        );
        rows.push(json!({
            "level0_side": side, "slide_mb": file_mb, "generate_s": generate_s, "tiles": tiles,
            "build_s": build_s, "tiles_per_s": tiles as f64 / build_s, "peak_rss_mb": peak_mb,
            "embedding_peak_rss_mb": embedding_mb,
        }));
        points.extend(peak_mb.map(|mb| (tiles as f64, mb as f64)));
    }
    let growth = memory_growth(&points);
    if let Some(g) = &growth {
        println!(
            "peak memory: {:.0} MB + {:.1} kB per tile (least squares over {} sizes); at {} tiles: {:.0} MB",
            g.base_mb,
            g.kb_per_tile,
            points.len(),
            LARGE_SLIDE_TILES,
            g.at(LARGE_SLIDE_TILES as f64)
        );
    }
    let report = json!({
        "benchmark": "slide-build",
        "provenance": crate::cli::Provenance::now(),
        "views": args.views,
        "threads": rayon::current_num_threads(),
        "notes": "tessera build --thumbnails on one generated pyramidal TIFF per size (the CMU-1 region repeated; 256-px JPEG tiles; 224-px tiles cut at level 0); peak RSS is the build process's VmHWM",
        "results": rows,
        "peak_memory_growth": growth.map(|g| json!({
            "base_mb": g.base_mb,
            "kb_per_tile": g.kb_per_tile,
            "extrapolated_tiles": LARGE_SLIDE_TILES,
            "extrapolated_peak_mb": g.at(LARGE_SLIDE_TILES as f64),
        })),
    });
    super::write_results(&args.output, &report)
}

/// A large 40× whole slide's tissue tiles at 224 px (about 100,000 × 80,000 px, 40 % tissue),
/// where the fitted peak memory is extrapolated to.
const LARGE_SLIDE_TILES: usize = 64_000;

/// Peak memory as a line in the tile count.
struct Growth {
    base_mb: f64,
    kb_per_tile: f64,
}

impl Growth {
    fn at(&self, tiles: f64) -> f64 {
        self.base_mb + self.kb_per_tile * tiles / 1024.0
    }
}

/// The least-squares line through (tiles, peak MB); none for fewer than two tile counts.
fn memory_growth(points: &[(f64, f64)]) -> Option<Growth> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if points.len() < 2 || sxx == 0.0 {
        return None;
    }
    let slope = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum::<f64>() / sxx;
    // The build's MB are MiB, so its kB are KiB.
    Some(Growth { base_mb: mean_y - slope * mean_x, kb_per_tile: slope * 1024.0 })
}

/// The integer just before `marker` in `text` (the build's summary line).
fn number_before(text: &str, marker: &str) -> Option<u64> {
    let end = text.find(marker)?;
    let digits: String = text[..end].chars().rev().take_while(char::is_ascii_digit).collect();
    digits.chars().rev().collect::<String>().parse().ok()
}
