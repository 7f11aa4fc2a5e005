//! `tessera build`: tiles from manifests, folders and whole slides → one index file.

mod checkpoint;
pub mod shard;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context};
use rayon::prelude::*;

use tessera::adapter::AdapterChoice;
use tessera::describer::TileDescriber;
use tessera::descriptor::{DescriptorKind, DEFAULT_VIEWS};
use tessera::index::{make_thumbnail, BuildOptions, GraphConstruction, HnswParams, IndexBuilder, Quantization};
use tessera::preprocess::RgbImage;
use tessera::slide::{self, Slide, SlideTileOptions, TilePlacement};

use checkpoint::{Checkpoint, Outcome};
use shard::{ShardHeader, ShardSpec};

use super::tiles::{list_tiles, progress_bar, read_tile};
use super::EmbeddingArgs;

const SLIDE_EXTENSIONS: &[&str] = &["svs", "tif", "tiff"];

#[derive(clap::Args, Debug, Clone)]
pub struct BuildArgs {
    /// CSV manifests (`path,label,group[,...]`, paths relative to the manifest's folder;
    /// every column is kept), folders of tiles, or whole slides (.svs/.tif/.tiff).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The index file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Store a small JPEG of every tile, so hits can be shown without the tile files.
    #[arg(long)]
    thumbnails: bool,
    /// What each tile's vector is: vit (the model's embedding), hist (colour histogram) or
    /// fused:W (similarity = (1-W)·cos(vit) + W·cos(hist)). fused:0.3 won on the shared
    /// data (docs/eval.md).
    #[arg(long, default_value_t = DescriptorKind::default())]
    descriptor: DescriptorKind,
    /// The ViT part averages this many 90° rotations of each tile (1 or 4); queries are
    /// described the same way. 4 won on the shared data (docs/eval.md) at 4× the compute.
    #[arg(long, default_value_t = DEFAULT_VIEWS)]
    views: u32,
    /// Train a projection on the manifest's `label` column: auto (LDA or MLP, whichever
    /// wins the collection's own cross-validation, folds by site/case/slide/group, and only
    /// when it beats no adapter), lda, mlp (forced), mlp-cross (an MLP whose positive pairs cross sites,
    /// cases, slides or groups), mlp-adv (mlp-cross trained against a site classifier too), none.
    #[arg(long, default_value_t = AdapterChoice::default())]
    adapter: AdapterChoice,
    /// Longest side of stored thumbnails, px.
    #[arg(long, default_value_t = 64)]
    thumbnail_size: u32,
    /// Vector encoding: f32, f16 or int8 (f16 keeps recall@10 ≥ 0.99; int8 halves the
    /// size at a recall cost; see docs/index-format.md).
    #[arg(long, default_value = "f16")]
    quant: Quantization,
    /// Project vectors onto this many principal directions first.
    #[arg(long)]
    pca: Option<usize>,
    /// Also keep full-dimension vectors (f16 or f32) to re-score the shortlist exactly.
    #[arg(long)]
    rerank: Option<Quantization>,
    /// Build a graph only at or above this many tiles (below, search is exact).
    #[arg(long, default_value_t = BuildOptions::default().graph_min_tiles)]
    graph_min_tiles: usize,
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    ef_construction: usize,
    /// Default search beam width stored in the index.
    #[arg(long, default_value_t = HnswParams::default().ef_search)]
    ef_search: usize,
    /// Layer-0 neighbours kept per tile.
    #[arg(long, default_value_t = HnswParams::default().max_degree)]
    max_degree: usize,
    /// Seed of the graph's layer assignment (same seed and input: same file).
    #[arg(long, default_value_t = HnswParams::default().seed)]
    seed: u64,
    /// Graph construction: `batched` uses every core, `instant-distance` one; each gives
    /// the same file whatever the core count.
    #[arg(long, default_value_t = HnswParams::default().construction)]
    graph_construction: GraphConstruction,
    /// Slides: tile side in pixels at the target magnification.
    #[arg(long, default_value_t = 224)]
    tile_size: u32,
    /// Slides: target magnification (e.g. 20); default: level 0.
    #[arg(long)]
    magnification: Option<f32>,
    /// Slides: fraction of a tile that must be tissue.
    #[arg(long, default_value_t = 0.5)]
    min_tissue: f32,
    /// Slides: keep at most this many tiles per slide, evenly spread.
    #[arg(long)]
    max_tiles_per_slide: Option<usize>,
    /// Continue an interrupted build of the same command from `<output>.checkpoint`
    /// instead of starting over (the result is the same file).
    #[arg(long)]
    resume: bool,
    /// Describe only the K-th of N equal slices of the tiles (in input order) and write a
    /// shard to `--output` instead of an index; `tessera merge` joins the N shards into
    /// the index this build would write.
    #[arg(long, value_name = "K/N")]
    shard: Option<ShardSpec>,
    #[command(flatten)]
    model: EmbeddingArgs,
}

/// Tiles described at a time: their pixels are all the build holds in memory besides the
/// vectors, metadata and thumbnails, so a whole slide of any size streams through.
const CHUNK_TILES: usize = 256;

/// A tile waiting to be described: a file to read, or a planned tile of an open slide
/// (only its placement: pixels are read when its chunk comes).
enum Pending {
    File { path: PathBuf, metadata: Vec<(String, String)> },
    SlideTile { slide: usize, placement: TilePlacement },
}

/// The slides of a build, opened once, with their paths; a tile read locks its slide
/// (reading is a small part of a tile's time next to the model).
struct OpenSlides(Vec<(String, Mutex<Slide>)>);

impl Pending {
    fn name(&self, slides: &OpenSlides) -> String {
        match self {
            Pending::File { path, .. } => path.display().to_string(),
            Pending::SlideTile { slide, placement } => format!("{} at ({}, {})", slides.0[*slide].0, placement.x, placement.y),
        }
    }

    fn load(self, slides: &OpenSlides) -> anyhow::Result<(RgbImage, Vec<(String, String)>)> {
        match self {
            Pending::File { path, metadata } => Ok((read_tile(&path)?, metadata)),
            Pending::SlideTile { slide, placement } => {
                let (path, slide) = &slides.0[slide];
                let tile = slide.lock().unwrap_or_else(|e| e.into_inner()).read_tile(&placement)?;
                let metadata = vec![
                    ("path".into(), path.clone()),
                    // `group` as in the shared manifests: tiles of one slide are
                    // near-duplicates for evaluation and one source for unique-by.
                    ("group".into(), tile.slide.clone()),
                    ("slide".into(), tile.slide),
                    ("x".into(), tile.x.to_string()),
                    ("y".into(), tile.y.to_string()),
                    ("level".into(), tile.level.to_string()),
                    ("size".into(), tile.size_level0.to_string()),
                ];
                Ok((tile.image, metadata))
            }
        }
    }
}

pub fn run(args: BuildArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let describer = TileDescriber::new(args.model.load()?, args.descriptor, args.views)?;
    let options = BuildOptions {
        quantization: args.quant,
        pca_dim: args.pca,
        hnsw: HnswParams {
            ef_construction: args.ef_construction,
            ef_search: args.ef_search,
            seed: args.seed,
            max_degree: args.max_degree,
            construction: args.graph_construction,
            ..HnswParams::default()
        },
        graph_min_tiles: args.graph_min_tiles,
        rerank: args.rerank,
    };
    let mut builder = IndexBuilder::new(describer.model_ref(), options.clone())?;

    let (pending, slides, inputs_skipped) = collect_inputs(&args)?;
    if pending.is_empty() {
        bail!("no tiles found in {} input(s)", args.inputs.len());
    }
    let thumbnail = args.thumbnails.then_some(args.thumbnail_size);
    let checkpoint_path = checkpoint::path_for(&args.output);
    let names: Vec<String> = pending.iter().map(|p| p.name(&slides)).collect();
    // The build's identity, shared by all its shards: everything but where it is written.
    let build_id = {
        let options = BuildArgs { resume: false, shard: None, output: PathBuf::new(), ..args.clone() };
        hex::encode(checkpoint::fingerprint(&format!("{options:?} model {}", describer.model_ref().sha256), names.iter().cloned()))
    };
    let total = pending.len();
    let (pending, names, first) = match args.shard {
        Some(spec) => {
            let range = spec.range(total);
            let first = range.start;
            let names = names[range.clone()].to_vec();
            (pending.into_iter().skip(first).take(range.len()).collect(), names, first)
        }
        None => (pending, names, 0),
    };
    let fingerprint = {
        let options = format!("{:?} model {}", BuildArgs { resume: false, ..args.clone() }, describer.model_ref().sha256);
        checkpoint::fingerprint(&options, names.iter().cloned())
    };
    let (mut checkpoint, done) = if args.resume {
        Checkpoint::resume(&checkpoint_path, &fingerprint)?
    } else {
        (Checkpoint::create(&checkpoint_path, &fingerprint)?, Vec::new())
    };
    let resumed = done.len();
    if resumed > pending.len() {
        bail!("{}: holds {resumed} tiles, the build has {}; remove it to start over", checkpoint_path.display(), pending.len());
    }
    if args.shard.is_none() {
        builder.reserve(pending.len());
        if thumbnail.is_some() {
            // Beside the output (as the checkpoint), deleted when the build ends however it ends.
            let dir = args.output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let spool = tempfile::tempfile_in(dir).with_context(|| format!("{}: cannot make the thumbnails' spool file", dir.display()))?;
            builder.spool_thumbnails(spool)?;
        }
    }
    let mut progress = Progress::new(&pending, &names, &slides);
    let mut shard_outcomes = Vec::new();
    if resumed > 0 {
        progress.note(&format!("resuming: {resumed} of {} tiles already described", pending.len()));
    }
    for outcome in done {
        progress.record(outcome, &mut builder, args.shard.is_some().then_some(&mut shard_outcomes));
    }
    let mut pending = pending.into_iter().skip(resumed).peekable();
    while pending.peek().is_some() {
        let chunk: Vec<Pending> = pending.by_ref().take(CHUNK_TILES).collect();
        // In input order, so builds are reproducible.
        let outcomes = describe(&describer, chunk, &slides, thumbnail);
        checkpoint.append(&outcomes)?;
        for outcome in outcomes {
            progress.record(outcome, &mut builder, args.shard.is_some().then_some(&mut shard_outcomes));
        }
    }
    let tiles_skipped = progress.finish();
    // What the tiles' streaming cost, apart from writing the index (bench slide reads it).
    let embedding_peak_mb = peak_memory_mb();
    let skipped = inputs_skipped + tiles_skipped;
    if let Some(spec) = args.shard {
        let header = ShardHeader {
            build: build_id,
            shard: spec.k,
            shards: spec.n,
            first,
            tiles: shard_outcomes.len(),
            total,
            model: describer.model_ref(),
            options,
            adapter: args.adapter,
            inputs_skipped,
        };
        shard::write(&args.output, &header, &shard_outcomes)?;
        checkpoint.remove()?;
        eprintln!(
            "wrote shard {spec} {}: tiles {}..{} of {total}, {} skipped, {:.1} s",
            args.output.display(),
            first,
            first + header.tiles,
            tiles_skipped,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    if builder.is_empty() {
        // Nothing a resume could reuse: leave no checkpoint behind.
        checkpoint.remove()?;
        bail!("none of the tiles could be embedded ({skipped} skipped)");
    }
    finish(builder, args.adapter, &args.output, skipped, started, embedding_peak_mb)?;
    checkpoint.remove()
}

/// One described tile into the builder; why not, for a tile that was skipped or refused.
fn add_outcome(builder: &mut IndexBuilder, outcome: Outcome) -> anyhow::Result<()> {
    match outcome {
        Outcome::Described { vector, metadata, thumbnail } => builder.add(&vector, metadata, thumbnail).map(drop).map_err(anyhow::Error::from),
        Outcome::Skipped { why } => Err(anyhow::anyhow!(why)),
    }
}

/// The end of every build (single or merged): train the adapter, build the index, write
/// it, and say what was written, with the peak memory before this step when it is known.
fn finish(
    mut builder: IndexBuilder,
    adapter: AdapterChoice,
    output: &Path,
    skipped: usize,
    started: Instant,
    embedding_peak_mb: Option<u64>,
) -> anyhow::Result<()> {
    if builder.is_empty() {
        bail!("none of the tiles could be embedded ({skipped} skipped)");
    }
    let tiles = builder.len();
    let spinner = progress_bar(0, "training the adapter");
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let decision = builder.fit_adapter(adapter)?;
    spinner.finish_and_clear();
    eprintln!("{decision}");
    let spinner = progress_bar(0, "building index");
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let index = builder.build()?;
    spinner.finish_and_clear();
    let mut written = None;
    super::write_atomically(output, |file| {
        // Section by section: the index is never held twice.
        written = Some(index.write_to(&mut std::io::BufWriter::new(file))?.total);
        Ok(())
    })
    .with_context(|| format!("{}: cannot write the index", output.display()))?;
    let bytes = written.unwrap_or_default();
    let info = index.info();
    eprintln!(
        "wrote {}: {tiles} tiles, {skipped} skipped, {bytes} bytes ({:.0} B/tile), {:?}{}{}, {:.1} s{}",
        output.display(),
        bytes as f64 / tiles as f64,
        info.quantization,
        info.pca_energy_kept.map(|e| format!(", PCA {} dims ({:.1}% energy)", info.vector_dim, e * 100.0)).unwrap_or_default(),
        if info.graph_layers > 0 {
            format!(", HNSW {} layers, {:.1} neighbours/tile", info.graph_layers, info.graph_mean_degree)
        } else {
            ", exact search (no graph)".into()
        },
        started.elapsed().as_secs_f64(),
        peak_memory_mb().map(|mb| format!(", {mb} MB peak memory")).unwrap_or_default()
            + &embedding_peak_mb.map(|mb| format!(" ({mb} MB while embedding)")).unwrap_or_default()
    );
    Ok(())
}

/// The process's peak resident memory (Linux `VmHWM`), in MB.
fn peak_memory_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024)
}

/// Feeds the tiles' outcomes to the builder in input order: a bar over all inputs, a bar
/// for the slide whose tiles are being recorded, a line per skipped tile, and one when a
/// slide's last tile is done.
struct Progress<'a> {
    bars: indicatif::MultiProgress,
    overall: indicatif::ProgressBar,
    /// The slide being recorded, by index into `slides`, and its bar.
    slide_bar: Option<(usize, indicatif::ProgressBar)>,
    names: &'a [String],
    /// Per tile, the slide it comes from.
    slide_of: Vec<Option<usize>>,
    slides: Vec<SlideProgress>,
    skipped: usize,
    next: usize,
}

struct SlideProgress {
    path: String,
    tiles: usize,
    left: usize,
    skipped: usize,
}

impl<'a> Progress<'a> {
    fn new(pending: &[Pending], names: &'a [String], open: &OpenSlides) -> Progress<'a> {
        let slide_of: Vec<Option<usize>> =
            pending.iter().map(|p| if let Pending::SlideTile { slide, .. } = p { Some(*slide) } else { None }).collect();
        let mut slides: Vec<SlideProgress> =
            open.0.iter().map(|(path, _)| SlideProgress { path: path.clone(), tiles: 0, left: 0, skipped: 0 }).collect();
        for &s in slide_of.iter().flatten() {
            slides[s].tiles += 1;
            slides[s].left += 1;
        }
        let bars = indicatif::MultiProgress::new();
        let overall = bars.add(progress_bar(pending.len(), "embedding"));
        Progress { bars, overall, slide_bar: None, names, slide_of, slides, skipped: 0, next: 0 }
    }

    /// A line above the bars.
    fn note(&self, line: &str) {
        self.bars.suspend(|| eprintln!("{line}"));
    }

    /// Records one tile's outcome: into the builder, or for a shard into `kept` (the merge
    /// adds them to its builder, which skips exactly what a single build skips).
    fn record(&mut self, outcome: Outcome, builder: &mut IndexBuilder, kept: Option<&mut Vec<Outcome>>) {
        let tile = self.next;
        self.next += 1;
        self.overall.inc(1);
        let added = match (kept, outcome) {
            (None, outcome) => add_outcome(builder, outcome),
            (Some(kept), Outcome::Skipped { why }) => {
                kept.push(Outcome::Skipped { why: why.clone() });
                Err(anyhow::anyhow!(why))
            }
            // The merge adds it (and refuses what a single build would refuse).
            (Some(kept), described) => {
                kept.push(described);
                Ok(())
            }
        };
        let failed = added.is_err();
        if let Err(e) = added {
            self.note(&format!("skipped {}: {e:#}", self.names[tile]));
            self.skipped += 1;
        }
        if let Some(s) = self.slide_of[tile] {
            self.slide_tile_done(s, failed);
        }
    }

    /// One more tile of slide `s` recorded: its bar moves (made when its first tile comes,
    /// as the tiles come in input order, slide by slide), and goes when the slide is done.
    fn slide_tile_done(&mut self, s: usize, failed: bool) {
        if self.slide_bar.as_ref().is_none_or(|(current, _)| *current != s) {
            if let Some((_, old)) = self.slide_bar.take() {
                old.finish_and_clear();
            }
            let slide = &self.slides[s];
            let name = Path::new(&slide.path).file_name().map_or(slide.path.clone(), |n| n.to_string_lossy().into_owned());
            // No rate or ETA: tiles are recorded a chunk at a time, so a slide's rate is
            // bursts; the overall bar's is the one to read.
            let style = indicatif::ProgressStyle::with_template("  {msg} [{bar:30}] {pos}/{len}").expect("static template");
            let bar = self.bars.add(indicatif::ProgressBar::new(slide.tiles as u64).with_style(style.progress_chars("=> ")).with_message(name));
            bar.set_position((slide.tiles - slide.left) as u64);
            self.slide_bar = Some((s, bar));
        }
        let slide = &mut self.slides[s];
        slide.left -= 1;
        slide.skipped += usize::from(failed);
        if let Some((_, bar)) = &self.slide_bar {
            bar.inc(1);
        }
        if slide.left == 0 {
            let line = format!("{}: done ({} tiles skipped)", slide.path, slide.skipped);
            if let Some((_, bar)) = self.slide_bar.take() {
                bar.finish_and_clear();
            }
            self.note(&line);
        }
    }

    fn finish(self) -> usize {
        if let Some((_, bar)) = self.slide_bar {
            bar.finish_and_clear();
        }
        self.overall.finish_and_clear();
        self.skipped
    }
}

/// Lists every tile of every input; slides are opened and their tiles planned here (from
/// the tissue mask: no tile pixels are read yet). Unreadable slides are reported and
/// counted, not fatal.
fn collect_inputs(args: &BuildArgs) -> anyhow::Result<(Vec<Pending>, OpenSlides, usize)> {
    let slide_options = SlideTileOptions {
        tile_size: args.tile_size,
        magnification: args.magnification,
        min_tissue: args.min_tissue,
        max_tiles: args.max_tiles_per_slide,
    };
    let mut pending = Vec::new();
    let mut slides = Vec::new();
    let mut skipped = 0;
    for input in &args.inputs {
        if is_slide(input) {
            let planned = slide::open(input).and_then(|mut s| Ok((s.plan_tiles(&slide_options)?, s)));
            match planned {
                Ok((placements, opened)) => {
                    eprintln!("{}: {} tiles with tissue", input.display(), placements.len());
                    let index = slides.len();
                    slides.push((input.display().to_string(), Mutex::new(opened)));
                    pending.extend(placements.into_iter().map(|placement| Pending::SlideTile { slide: index, placement }));
                }
                Err(e) => {
                    eprintln!("skipped slide {}: {e}", input.display());
                    skipped += 1;
                }
            }
        } else {
            for tile in list_tiles(input)? {
                pending.push(Pending::File { path: tile.path, metadata: tile.metadata.into_iter().collect() });
            }
        }
    }
    Ok((pending, OpenSlides(slides), skipped))
}

fn is_slide(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| SLIDE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Reads and describes one chunk of tiles in parallel, keeping their order.
fn describe(describer: &TileDescriber, chunk: Vec<Pending>, slides: &OpenSlides, thumbnail: Option<u32>) -> Vec<Outcome> {
    chunk
        .into_par_iter()
        .map(|item| {
            let described = (|| -> anyhow::Result<Outcome> {
                let (image, metadata) = item.load(slides)?;
                let vector = describer.describe(&image)?;
                let thumbnail = thumbnail.map(|side| make_thumbnail(&image, side)).transpose()?;
                Ok(Outcome::Described { vector, metadata, thumbnail })
            })();
            described.unwrap_or_else(|e| Outcome::Skipped { why: format!("{e:#}") })
        })
        .collect()
}
