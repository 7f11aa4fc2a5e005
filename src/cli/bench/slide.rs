//! `tessera bench slide`: `tessera build` on whole slides of growing size, made here from
//! the shared CC0 CMU-1 region repeated over a large tiled pyramid (JPEG tiles, levels at
//! 1×, 4× and 16×; not committed), with peak memory and tiles/s per size. The build
//! streams tiles, so its peak memory should grow only by what the index itself holds per
//! tile (and, with the slide's area, by its tissue mask and the reader's capped cache): the
//! largest slide is built again with a quarter of its tiles to measure that slope on one
//! slide, and it is extrapolated to a large 40× slide's tile count.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::json;

use tessera::slide::tiff_writer::write_repeated_slide;

#[derive(clap::Args)]
pub struct BenchSlideArgs {
    /// Level-0 sides of the square slides to build, px.
    #[arg(long, num_args = 1.., default_values_t = [20_000, 40_000])]
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
    let mut sides = args.sides.clone();
    sides.sort_unstable();
    let mut rows = Vec::new();
    println!(
        "| level-0 side | tiles built | file MB | build s | tiles/s | peak RSS MB | while embedding MB |\n|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut largest = None;
    for &side in &sides {
        let slide = args.dir.join(format!("cmu-repeated-{side}.tif"));
        let started = Instant::now();
        if !slide.exists() {
            eprintln!("writing {} ({side} × {side} px)", slide.display());
            write_repeated_slide(&slide, &source, side).with_context(|| format!("{}: cannot write the slide", slide.display()))?;
        }
        let generate_s = started.elapsed().as_secs_f64();
        let mut row = build(&args, &slide, side, None)?;
        row.json["generate_s"] = json!(generate_s);
        largest = Some((slide, side, row.tiles, row.peak_mb));
        rows.push(row);
    }
    // Peak memory per tile, apart from what grows with the slide's area (the tissue mask, the
    // reader's chunk cache): the largest slide again, a quarter of its tiles spread over it.
    let growth = match largest {
        // Below this many tiles in the smaller build, the reader's chunk cache is still
        // filling as the tiles grow: the difference would be the cache's, not the build's.
        Some((slide, side, tiles, Some(peak))) if tiles / 4 >= MIN_GROWTH_TILES => {
            let quarter = build(&args, &slide, side, Some((tiles / 4) as usize))?;
            let growth = quarter.peak_mb.map(|small| Growth::between(side, (quarter.tiles, small), (tiles, peak)));
            rows.push(quarter);
            growth
        }
        _ => None,
    };
    if let Some(g) = &growth {
        println!(
            "peak memory on the {}-px slide: {:.1} kB more per tile; at {LARGE_SLIDE_TILES} tiles (a slide of that area's base): {:.0} MB",
            g.side, g.kb_per_tile, g.at(LARGE_SLIDE_TILES)
        );
    }
    let report = json!({
        "benchmark": "slide-build",
        "provenance": crate::cli::Provenance::now(),
        "views": args.views,
        "threads": rayon::current_num_threads(),
        "notes": "tessera build --thumbnails on one generated pyramidal TIFF per size (the CMU-1 region repeated; 256-px JPEG tiles; 224-px tiles cut at level 0), and the largest again with --max-tiles-per-slide a quarter of its tiles; peak RSS is the build process's VmHWM, 'while embedding' its VmHWM before the index is built",
        "results": rows.into_iter().map(|r| r.json).collect::<Vec<_>>(),
        "peak_memory_growth_skipped": growth.is_none().then(|| format!("a quarter of the largest slide's tiles is fewer than {MIN_GROWTH_TILES} (the reader's chunk cache would still be filling)")),
        "peak_memory_growth": growth.map(|g| json!({
            "level0_side": g.side,
            "kb_per_tile": g.kb_per_tile,
            "extrapolated_tiles": LARGE_SLIDE_TILES,
            "extrapolated_peak_mb": g.at(LARGE_SLIDE_TILES),
        })),
    });
    super::write_results(&args.output, &report)
}

/// One build's figures.
struct Built {
    tiles: u64,
    peak_mb: Option<u64>,
    json: serde_json::Value,
}

/// `tessera build` on `slide` (at most `max_tiles` tiles), timed, its summary read.
fn build(args: &BenchSlideArgs, slide: &Path, side: u32, max_tiles: Option<usize>) -> anyhow::Result<Built> {
    let index = slide.with_extension("tsi");
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["build", "--thumbnails", "--views", &args.views.to_string(), "-o"]).arg(&index).arg(slide);
    if let Some(max) = max_tiles {
        command.args(["--max-tiles-per-slide", &max.to_string()]);
    }
    let started = Instant::now();
    let out = command.output().context("cannot run tessera build")?;
    let build_s = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("tessera build on {} failed: {stderr}", slide.display());
    }
    let summary = stderr.lines().rev().find(|l| l.starts_with("wrote ")).unwrap_or_default();
    let tiles = number_before(summary, " tiles, ").context("the build did not say how many tiles it wrote")?;
    let peak_mb = number_before(summary, " MB peak memory");
    let embedding_mb = number_before(summary, " MB while embedding");
    let file_mb = std::fs::metadata(slide)?.len() as f64 / 1e6;
    let shown = |mb: Option<u64>| mb.map_or("-".into(), |m| m.to_string());
    println!(
        "| {side}{} | {tiles} | {file_mb:.0} | {build_s:.1} | {:.1} | {} | {} |",
        if max_tiles.is_some() { " (a quarter of its tiles)" } else { "" },
        tiles as f64 / build_s,
        shown(peak_mb),
        shown(embedding_mb)
    );
    let json = json!({
        "level0_side": side, "max_tiles": max_tiles, "slide_mb": file_mb, "tiles": tiles,
        "build_s": build_s, "tiles_per_s": tiles as f64 / build_s, "peak_rss_mb": peak_mb,
        "embedding_peak_rss_mb": embedding_mb,
    });
    Ok(Built { tiles, peak_mb, json })
}

/// A large 40× whole slide's tissue tiles at 224 px (about 100,000 × 80,000 px, 40 % tissue),
/// where the fitted peak memory is extrapolated to.
const LARGE_SLIDE_TILES: usize = 64_000;

/// The fewest tiles of the smaller (quarter) build for which the growth per tile is measured.
const MIN_GROWTH_TILES: u64 = 2_000;

/// Peak memory as a line in the tile count, on one slide.
struct Growth {
    side: u32,
    base_mb: f64,
    kb_per_tile: f64,
}

impl Growth {
    /// The line through two builds' (tiles, peak MB) on the `side`-px slide.
    fn between(side: u32, (tiles_a, mb_a): (u64, u64), (tiles_b, mb_b): (u64, u64)) -> Growth {
        // The build's MB are MiB, so these kB are KiB.
        let mb_per_tile = (mb_b as f64 - mb_a as f64) / (tiles_b as f64 - tiles_a as f64).max(1.0);
        Growth { side, base_mb: mb_a as f64 - mb_per_tile * tiles_a as f64, kb_per_tile: mb_per_tile * 1024.0 }
    }

    fn at(&self, tiles: usize) -> f64 {
        self.base_mb + self.kb_per_tile * tiles as f64 / 1024.0
    }
}

/// The integer just before `marker` in `text` (the build's summary line).
fn number_before(text: &str, marker: &str) -> Option<u64> {
    let end = text.find(marker)?;
    let digits: String = text[..end].chars().rev().take_while(char::is_ascii_digit).collect();
    digits.chars().rev().collect::<String>().parse().ok()
}
