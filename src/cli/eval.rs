//! `tessera eval`: retrieval quality of the colour histogram, the ViT embedding at one or
//! more input sizes, and their fusion, on the shared LC25000 and MoNuSeg data, in one run.
//! Prints markdown tables; `--json` writes every figure.

mod datasets;
mod held_out;
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use npyz::WriterBuilder;
use rayon::prelude::*;
use serde::Serialize;

use tessera::adapter::{AdapterChoice, AdapterKind, AdapterParams};
use tessera::descriptor::{colour_histogram, pool_views, DescriptorKind, HIST_DIM, VIEW_COUNTS};
use tessera::eval::{
    evaluate, evaluate_adapted, evaluate_expanded, hnsw_recall_at, AdaptedReport, EvalReport, Protocol, QueryVariants,
    VectorSet,
};
use tessera::expand::{self, Fusion, Variant, MAX_EXPAND};
use tessera::index::HnswParams;
use tessera::model::Embedder;

use super::tiles::{embed_all, progress_bar};
use super::ModelArgs;
use datasets::{load_lc25000, load_monuseg, Dataset};
use held_out::held_out_collection;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Folder holding `lc25000-lung.csv`, `monuseg.csv` and their images.
    #[arg(long, default_value = "../shared/data")]
    data: PathBuf,
    /// Model input sizes to evaluate (multiples of 14; the graph's H/W are symbolic).
    /// Default: the manifest's size.
    #[arg(long = "input-size", num_args = 1.., value_name = "PX")]
    input_sizes: Vec<u32>,
    /// Histogram weights w of the fused descriptors, similarity (1-w)·cos(vit) + w·cos(hist).
    #[arg(long = "fuse-weight", num_args = 1.., default_values_t = [0.3], value_name = "W")]
    fuse_weights: Vec<f32>,
    /// Rotated views the ViT part averages (1: the tile as it is; 4: its four 90°
    /// rotations). Each is evaluated.
    #[arg(long, num_args = 1.., default_values_t = [1, 4], value_name = "N")]
    views: Vec<u32>,
    /// Folds for the adapter rows: each fold's queries go through an adapter trained on
    /// the other folds (folds keep groups / slides / sites whole, as the protocol does).
    #[arg(long, default_value_t = 10)]
    adapter_folds: usize,
    /// Query expansion sizes to evaluate (1 to 5 variants: the mirror image, then stain
    /// re-weightings), for the ViT and the first fused weight at the first input size with
    /// the most views, plain and adapted, fused by mean and by reciprocal rank. Embeds
    /// every variant of every tile (cached like the rotations).
    #[arg(long, num_args = 1.., value_name = "N")]
    expand: Vec<usize>,
    /// Adapter choices evaluated in the adapter rows (`auto`: what the default build does,
    /// choosing among LDA, MLP and none by its own cross-validation; `lda`, `mlp`: forced;
    /// `mlp-cross`: an MLP whose positive pairs cross sites, cases, slides or groups;
    /// `mlp-adv`: `mlp-cross` trained against a domain classifier too).
    #[arg(long, num_args = 1.., default_values_t = [AdapterChoice::Auto], value_name = "CHOICE")]
    adapters: Vec<AdapterChoice>,
    /// Skip the adapter rows and the held-out-collection experiment.
    #[arg(long)]
    no_adapter: bool,
    /// Cluster resamples for the paired bootstrap intervals.
    #[arg(long, default_value_t = 2000)]
    bootstrap: usize,
    /// Evaluate the colour histogram only (no model).
    #[arg(long)]
    hist_only: bool,
    /// Skip the HNSW-vs-exact recall measurement.
    #[arg(long)]
    no_recall: bool,
    /// Write every figure as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write the markdown tables to this file.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Folder for cached embeddings, keyed by model SHA-256, input size and tile list.
    #[arg(long, default_value = "target/eval-cache")]
    cache: PathBuf,
    /// Recompute embeddings even when cached.
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    model: ModelArgs,
    /// A fine-tuned network of the same graph shape (`models/finetune.sh` exports one),
    /// evaluated side by side with the model: every ViT and fused row again on it, marked
    /// `ft:`, and paired against the same row on the model.
    #[arg(long, value_name = "ONNX")]
    finetuned: Option<PathBuf>,
    /// The fine-tuned network's manifest. Default: its ONNX file with `.json` for `.onnx`.
    #[arg(long, value_name = "FILE", requires = "finetuned")]
    finetuned_manifest: Option<PathBuf>,
}

/// One descriptor evaluated: a kind, the model input size and views for those that use
/// the ViT, and which adapter (trained on the other folds) transforms it, if any.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Descriptor {
    /// Described by the `--finetuned` network instead of the model.
    pub finetuned: bool,
    pub kind: DescriptorKind,
    pub input_size: Option<u32>,
    pub views: u32,
    pub adapter: Option<AdapterChoice>,
    /// Queries expanded by this many variants, fused this way.
    pub expansion: Option<Expansion>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Expansion {
    pub n: usize,
    pub fusion: Fusion,
}

impl Descriptor {
    pub(super) fn plain(kind: DescriptorKind, input_size: Option<u32>, views: u32) -> Descriptor {
        Descriptor { finetuned: false, kind, input_size, views, adapter: None, expansion: None }
    }

    /// `fused:0.3@112`, `fused:0.3@112×4` (four views), `…+adapter` (adapted as `auto`
    /// chooses; `+lda`, `+mlp`: forced), `…+expand:3/rrf`; `ft:…` on the fine-tuned network.
    pub fn label(&self) -> String {
        let mut label = if self.finetuned { String::from("ft:") } else { String::new() };
        label.push_str(&match self.input_size {
            Some(size) => format!("{}@{size}", self.kind),
            None => self.kind.to_string(),
        });
        if self.views > 1 {
            label.push_str(&format!("×{}", self.views));
        }
        match self.adapter {
            None | Some(AdapterChoice::None) => {}
            Some(AdapterChoice::Auto) => label.push_str("+adapter"),
            Some(choice) => label.push_str(&format!("+{choice}")),
        }
        if let Some(Expansion { n, fusion }) = self.expansion {
            let fusion = match fusion {
                Fusion::Mean => "mean",
                Fusion::Rrf => "rrf",
            };
            label.push_str(&format!("+expand:{n}/{fusion}"));
        }
        label
    }
}

/// A descriptor's vectors on one dataset, ready to evaluate.
struct DescribedSet<'a> {
    dataset: &'a Dataset,
    descriptor: Descriptor,
    dim: usize,
    vectors: Vec<f32>,
}

/// The descriptors of every tile of one dataset, per network, input size and views.
struct DatasetVectors<'a> {
    dataset: &'a Dataset,
    hist: Vec<Vec<f32>>,
    vit: Vec<VitSet>,
    /// For query expansion: at one input size and views, each variant's histogram and
    /// pooled ViT embedding of every tile.
    variants: Option<VariantVectors>,
}

/// Every tile's ViT embedding by one network at one input size, pooled over `views`.
pub(super) struct VitSet {
    pub finetuned: bool,
    pub input_size: u32,
    pub views: u32,
    pub tiles: Vec<Vec<f32>>,
}

struct VariantVectors {
    input_size: u32,
    views: u32,
    /// Per variant, in [`expand::VARIANTS`] order: (histograms, pooled ViT), one per tile.
    sets: Vec<(Vec<Vec<f32>>, Vec<Vec<f32>>)>,
}

/// How long embedding took at one input size.
#[derive(Debug, Serialize)]
pub struct EmbedTiming {
    pub finetuned: bool,
    pub input_size: u32,
    pub tiles: usize,
    pub threads: usize,
    /// Wall-clock ms per tile with `threads` tiles in flight; `None` when cached.
    pub wall_ms_per_tile: Option<f64>,
}

/// One evaluation: a descriptor on a dataset under one protocol.
#[derive(Debug, Serialize)]
pub struct ResultRow {
    pub dataset: &'static str,
    pub descriptor: String,
    #[serde(flatten)]
    pub spec: Descriptor,
    pub dim: usize,
    pub report: EvalReport,
    /// How the adapter rows were trained (folds, what each fold chose).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<AdapterRun>,
}

#[derive(Debug, Serialize)]
pub struct AdapterRun {
    pub folds_by: &'static str,
    pub folds: usize,
    pub folds_adapted: usize,
    pub params: Vec<AdapterParams>,
}

/// A paired difference of per-query P@5 between two descriptors, with its interval.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub dataset: &'static str,
    pub protocol: Protocol,
    pub descriptor: String,
    pub against: String,
    pub clustered_by: &'static str,
    pub p_at_5_difference: tessera::eval::Interval,
}

/// HNSW search through the index against exact cosine search.
#[derive(Debug, Serialize)]
pub struct RecallRow {
    pub dataset: &'static str,
    pub descriptor: String,
    pub k: usize,
    /// Mean over all tiles as queries of |HNSW top-k ∩ exact top-k| / k (query excluded).
    pub recall: f64,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    check_args(&args)?;
    let datasets = [load_lc25000(&args.data)?, load_monuseg(&args.data)?];
    let (all, timings, model_info, finetuned_info) = embed_datasets(&args, &datasets)?;

    let described: Vec<DescribedSet> = all
        .iter()
        .map(|v| describe(v, &args.fuse_weights))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    let mut results = evaluate_all(&described)?;
    results.extend(evaluate_expansions(&all, &args)?);
    let mut held_out = Vec::new();
    if !args.no_adapter {
        results.extend(evaluate_adapters(&described, &args)?);
        if let Some(lc) = all.iter().find(|v| v.dataset.name == "lc25000") {
            held_out = held_out_collection(lc.dataset, &lc.hist, &lc.vit, &args.fuse_weights)?;
        }
    }
    let comparisons = compare(&results, &datasets, args.bootstrap);
    let recall = if args.no_recall {
        Vec::new()
    } else {
        hnsw_recall(&described, &args.fuse_weights)?
    };

    let out = report::EvalOutput {
        provenance: super::Provenance::now(),
        data: args.data.display().to_string(),
        model: model_info,
        finetuned_model: finetuned_info,
        tiling: report::TILING,
        definitions: report::DEFINITIONS,
        datasets: datasets.iter().map(report::DatasetInfo::of).collect(),
        embedding: timings,
        results,
        comparisons,
        held_out,
        hnsw_recall: recall,
    };
    let markdown = report::markdown(&out);
    print!("{markdown}");
    if let Some(path) = &args.markdown {
        write_file(path, markdown.as_bytes())?;
    }
    if let Some(path) = &args.json {
        write_file(path, &serde_json::to_vec_pretty(&out)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Refuses option values no evaluation can use, before anything is loaded.
fn check_args(args: &EvalArgs) -> anyhow::Result<()> {
    for &w in &args.fuse_weights {
        if !(0.0..=1.0).contains(&w) {
            bail!("--fuse-weight {w} is not within [0, 1]");
        }
    }
    for &views in &args.views {
        if !VIEW_COUNTS.contains(&views) {
            bail!("--views {views}: expected one of {VIEW_COUNTS:?}");
        }
    }
    if let Some(&n) = args.expand.iter().find(|&&n| n == 0 || n > MAX_EXPAND) {
        bail!("--expand {n}: expected 1 to {MAX_EXPAND} variants");
    }
    Ok(())
}

/// What [`embed_datasets`] returns: the vectors, the embedding times, and what the model
/// and the fine-tuned network are.
type Embedded<'a> = (Vec<DatasetVectors<'a>>, Vec<EmbedTiming>, Option<report::ModelInfo>, Option<report::ModelInfo>);

/// Every dataset's histograms, and its ViT embeddings by the model (and the fine-tuned
/// network) at each input size and view count (from the cache when there), with the
/// expansion variants at the first size (the model's only).
fn embed_datasets<'a>(args: &EvalArgs, datasets: &'a [Dataset]) -> anyhow::Result<Embedded<'a>> {
    let (model_path, manifest_path) = args.model.paths();
    let mut networks = vec![(false, model_path.clone(), manifest_path.clone())];
    if let Some(onnx) = &args.finetuned {
        if args.hist_only {
            bail!("--finetuned needs a model to compare with, and --hist-only evaluates none");
        }
        let manifest = args.finetuned_manifest.clone().unwrap_or_else(|| onnx.with_extension("json"));
        // Refused now, not after the model's embeddings (minutes).
        Embedder::from_files(onnx, &manifest)
            .with_context(|| format!("--finetuned {}: cannot load the network", onnx.display()))?;
        networks.push((true, onnx.clone(), manifest));
    }
    let sizes = if args.hist_only {
        Vec::new()
    } else if args.input_sizes.is_empty() {
        vec![Embedder::from_files(&model_path, &manifest_path)?.manifest().input.size]
    } else {
        args.input_sizes.clone()
    };
    let mut all: Vec<DatasetVectors> = datasets
        .iter()
        .map(|dataset| Ok(DatasetVectors { dataset, hist: histograms(dataset, None)?, vit: Vec::new(), variants: None }))
        .collect::<anyhow::Result<_>>()?;
    let mut timings = Vec::new();
    let (mut model_info, mut finetuned_info) = (None, None);
    let max_views = args.views.iter().copied().max().unwrap_or(1);
    let expand_variants = expand::variants(args.expand.iter().copied().max().unwrap_or(0))?;
    for (&size, (finetuned, model_path, manifest_path)) in
        sizes.iter().flat_map(|size| networks.iter().map(move |n| (size, n)))
    {
        let finetuned = *finetuned;
        let embedder = Embedder::from_files_with(model_path, manifest_path, |m| m.input.size = size)
            .with_context(|| format!("cannot load {} at input size {size}", model_path.display()))?;
        let info = if finetuned { &mut finetuned_info } else { &mut model_info };
        info.get_or_insert_with(|| report::ModelInfo::of(&embedder));
        let mut spent = EmbedSpent::default();
        for vectors in &mut all {
            let rotations = embed_rotations(&embedder, vectors.dataset, args, max_views, None, &mut spent)?;
            for &views in &args.views {
                let tiles = pool_rotations(&rotations[..views as usize]);
                vectors.vit.push(VitSet { finetuned, input_size: size, views, tiles });
            }
            if size == sizes[0] && !finetuned && !expand_variants.is_empty() {
                let mut sets = Vec::new();
                for &variant in expand_variants {
                    let rotations = embed_rotations(&embedder, vectors.dataset, args, max_views, Some(variant), &mut spent)?;
                    sets.push((histograms(vectors.dataset, Some(variant))?, pool_rotations(&rotations)));
                }
                vectors.variants = Some(VariantVectors { input_size: size, views: max_views, sets });
            }
        }
        let EmbedSpent { tiles, computed_secs } = spent;
        timings.push(EmbedTiming {
            finetuned,
            input_size: size,
            tiles,
            threads: rayon::current_num_threads(),
            wall_ms_per_tile: computed_secs.map(|s| 1000.0 * s / tiles as f64),
        });
    }
    Ok((all, timings, model_info, finetuned_info))
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create folder", dir.display()))?;
    }
    super::write_atomically(path, |file| Ok(std::io::Write::write_all(file, bytes)?))
}

/// Embeddings counted for the timing table: tiles embedded or read from the cache, and
/// the seconds spent computing those that were not cached.
#[derive(Default)]
struct EmbedSpent {
    tiles: usize,
    computed_secs: Option<f64>,
}

/// The dataset's embeddings (of each tile's `variant` when given) in each of the first
/// `views` quarter turns.
fn embed_rotations(
    embedder: &Embedder,
    dataset: &Dataset,
    args: &EvalArgs,
    views: u32,
    variant: Option<Variant>,
    spent: &mut EmbedSpent,
) -> anyhow::Result<Vec<Vec<Vec<f32>>>> {
    (0..views)
        .map(|quarter_turns| {
            let (vit, secs) = embeddings(embedder, dataset, args, quarter_turns, variant)?;
            spent.tiles += vit.len();
            if let Some(s) = secs {
                *spent.computed_secs.get_or_insert(0.0) += s;
            }
            Ok(vit)
        })
        .collect()
}

/// Each tile's embedding pooled over the given rotations.
fn pool_rotations(rotations: &[Vec<Vec<f32>>]) -> Vec<Vec<f32>> {
    (0..rotations[0].len()).map(|i| pool_views(&rotations.iter().map(|r| r[i].clone()).collect::<Vec<_>>())).collect()
}

/// Colour histograms of every tile, or of every tile's `variant`.
fn histograms(dataset: &Dataset, variant: Option<Variant>) -> anyhow::Result<Vec<Vec<f32>>> {
    let bar = progress_bar(
        dataset.tiles.len(),
        &format!("{}: colour histograms", dataset.name),
    );
    let hist = dataset
        .tiles
        .par_iter()
        .map(|tile| {
            let pixels = load_variant(tile, variant)?;
            bar.inc(1);
            colour_histogram(&pixels).with_context(|| tile.name())
        })
        .collect();
    bar.finish_and_clear();
    hist
}

fn load_variant(tile: &datasets::EvalTile, variant: Option<Variant>) -> anyhow::Result<tessera::preprocess::RgbImage> {
    let pixels = tile.load()?;
    Ok(match variant {
        Some(v) => v.apply(&pixels),
        None => pixels,
    })
}

/// The dataset's embeddings at the embedder's input size (of each tile's `variant` when
/// given), from the cache or computed (then cached); with the seconds spent computing
/// them, `None` when cached.
fn embeddings(
    embedder: &Embedder,
    dataset: &Dataset,
    args: &EvalArgs,
    quarter_turns: u32,
    variant: Option<Variant>,
) -> anyhow::Result<(Vec<Vec<f32>>, Option<f64>)> {
    let manifest = embedder.manifest();
    let rotation = if quarter_turns == 0 { String::new() } else { format!("-rot{}", quarter_turns * 90) };
    let variant_name = variant.map_or(String::new(), |v| format!("-{}", v.name()));
    let cache_file = args.cache.join(format!(
        "{}-{}-{}px{variant_name}{rotation}-{}.npy",
        dataset.name,
        &manifest.sha256[..12],
        manifest.input.size,
        &dataset.tile_list_digest()[..12]
    ));
    if !args.no_cache {
        if let Some(cached) = read_cache(&cache_file, dataset.tiles.len(), embedder.dim()) {
            eprintln!(
                "{}: embeddings at {} px from {}",
                dataset.name,
                manifest.input.size,
                cache_file.display()
            );
            return Ok((cached, None));
        }
    }
    let what = format!(
        "{}: embedding at {} px, rotated {}°{variant_name}",
        dataset.name,
        manifest.input.size,
        quarter_turns * 90
    );
    let start = Instant::now();
    let vectors = embed_all(embedder, &dataset.tiles, &what, |t| t.name(), |t| load_variant(t, variant), quarter_turns);
    let secs = start.elapsed().as_secs_f64();
    let failed = vectors.iter().filter(|v| v.is_none()).count();
    if failed > 0 {
        bail!(
            "{}: {failed} tiles could not be embedded; an evaluation needs all of them",
            dataset.name
        );
    }
    let vectors: Vec<Vec<f32>> = vectors.into_iter().flatten().collect();
    if let Err(err) = write_cache(&cache_file, &vectors, embedder.dim()) {
        eprintln!("note: embeddings not cached ({err:#})");
    }
    Ok((vectors, Some(secs)))
}

fn read_cache(path: &Path, tiles: usize, dim: usize) -> Option<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).ok()?;
    let npy = npyz::NpyFile::new(&bytes[..]).ok()?;
    if npy.shape() != [tiles as u64, dim as u64] {
        return None;
    }
    let flat: Vec<f32> = npy.into_vec().ok()?;
    Some(flat.chunks_exact(dim).map(<[f32]>::to_vec).collect())
}

fn write_cache(path: &Path, vectors: &[Vec<f32>], dim: usize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    super::write_atomically(path, |file| {
        let mut writer = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[vectors.len() as u64, dim as u64])
            .writer(file)
            .begin_nd()?;
        writer.extend(vectors.iter().flatten().copied())?;
        writer.finish()?;
        Ok(())
    })
}

/// The histogram, and per input size the ViT and each fused descriptor, as flat matrices.
fn describe<'a>(
    vectors: &DatasetVectors<'a>,
    weights: &[f32],
) -> anyhow::Result<Vec<DescribedSet<'a>>> {
    let hist = Descriptor::plain(DescriptorKind::Hist, None, 1);
    let mut sets = vec![DescribedSet {
        dataset: vectors.dataset,
        descriptor: hist,
        dim: HIST_DIM,
        vectors: vectors.hist.concat(),
    }];
    for VitSet { finetuned, input_size, views, tiles: vit } in &vectors.vit {
        let kinds = std::iter::once(DescriptorKind::Vit).chain(
            weights
                .iter()
                .map(|&weight| DescriptorKind::Fused { weight }),
        );
        for kind in kinds {
            let dim = kind.dim(vit.first().map_or(0, Vec::len));
            let mut flat = Vec::with_capacity(dim * vit.len());
            for (i, (v, h)) in vit.iter().zip(&vectors.hist).enumerate() {
                let composed = kind
                    .compose(v, h)
                    .with_context(|| vectors.dataset.tiles[i].name())?;
                flat.extend(composed);
            }
            let descriptor = Descriptor { finetuned: *finetuned, ..Descriptor::plain(kind, Some(*input_size), *views) };
            sets.push(DescribedSet {
                dataset: vectors.dataset,
                descriptor,
                dim,
                vectors: flat,
            });
        }
    }
    Ok(sets)
}

fn evaluate_all(sets: &[DescribedSet]) -> anyhow::Result<Vec<ResultRow>> {
    let bar = progress_bar(sets.len(), "evaluating (exact cosine, every tile a query)");
    let per_set: Vec<Vec<ResultRow>> = sets
        .par_iter()
        .map(|set| {
            let vectors = VectorSet::new(&set.vectors, set.dim)?;
            let reports = evaluate(&vectors, &set.dataset.meta, &set.dataset.protocols)
                .with_context(|| format!("{} / {}", set.dataset.name, set.descriptor.label()))?;
            bar.inc(1);
            Ok(reports
                .into_iter()
                .map(|report| ResultRow {
                    dataset: set.dataset.name,
                    descriptor: set.descriptor.label(),
                    spec: set.descriptor,
                    dim: set.dim,
                    report,
                    adapter: None,
                })
                .collect())
        })
        .collect::<anyhow::Result<_>>()?;
    bar.finish_and_clear();
    Ok(per_set.into_iter().flatten().collect())
}

/// The adapter rows: for the ViT and the first fused weight at every size and views, each
/// protocol but `all_others` and each `--adapters` choice, an adapter per fold trained
/// (with its own cross-validation) on the other folds only.
fn evaluate_adapters(sets: &[DescribedSet], args: &EvalArgs) -> anyhow::Result<Vec<ResultRow>> {
    let first_weight = args.fuse_weights.first().copied();
    let jobs: Vec<(&DescribedSet, Protocol, AdapterChoice)> = sets
        .iter()
        .filter(|s| match s.descriptor.kind {
            DescriptorKind::Vit => true,
            DescriptorKind::Fused { weight } => Some(weight) == first_weight,
            DescriptorKind::Hist => false,
        })
        .flat_map(|s| s.dataset.protocols.iter().filter(|&&p| p != Protocol::AllOthers).map(move |&p| (s, p)))
        .flat_map(|(s, p)| args.adapters.iter().map(move |&choice| (s, p, choice)))
        .collect();
    let bar = progress_bar(jobs.len(), "adapters (trained per fold, without the query's fold)");
    let rows = jobs
        .par_iter()
        .map(|&(set, protocol, choice)| {
            let AdaptedReport { report, folds_by, folds, folds_adapted, params } = evaluate_adapted(
                &set.vectors,
                set.dim,
                &set.dataset.meta,
                protocol,
                choice,
                args.adapter_folds,
                QueryVariants::NONE,
            )
            .with_context(|| format!("{} / {} + adapter {choice}", set.dataset.name, set.descriptor.label()))?;
            bar.inc(1);
            let spec = Descriptor { adapter: Some(choice), ..set.descriptor };
            Ok(ResultRow {
                dataset: set.dataset.name,
                descriptor: spec.label(),
                spec,
                dim: report_dim(set.dim, set.dataset, &params),
                report,
                adapter: Some(AdapterRun { folds_by, folds, folds_adapted, params }),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>();
    bar.finish_and_clear();
    rows
}

/// The expansion rows: for the ViT and the first fused weight at the variants' size and
/// views, each expansion size and fusion, plain (every protocol) and adapted (as
/// [`evaluate_adapters`]).
fn evaluate_expansions(all: &[DatasetVectors], args: &EvalArgs) -> anyhow::Result<Vec<ResultRow>> {
    struct Job<'a> {
        dataset: &'a Dataset,
        spec: Descriptor,
        dim: usize,
        stored: Arc<Vec<f32>>,
        variants: Arc<Vec<Vec<f32>>>,
        protocol: Option<Protocol>,
    }
    let mut jobs = Vec::new();
    for vectors in all {
        let Some(variants) = &vectors.variants else { continue };
        let Some(VitSet { tiles: vit, .. }) = vectors
            .vit
            .iter()
            .find(|v| !v.finetuned && (v.input_size, v.views) == (variants.input_size, variants.views))
        else {
            continue;
        };
        let kinds = std::iter::once(DescriptorKind::Vit)
            .chain(args.fuse_weights.first().map(|&weight| DescriptorKind::Fused { weight }));
        for kind in kinds {
            let flat = |vit: &[Vec<f32>], hist: &[Vec<f32>]| -> anyhow::Result<Vec<f32>> {
                let mut out = Vec::new();
                for (i, (v, h)) in vit.iter().zip(hist).enumerate() {
                    out.extend(kind.compose(v, h).with_context(|| vectors.dataset.tiles[i].name())?);
                }
                Ok(out)
            };
            let stored = Arc::new(flat(vit, &vectors.hist)?);
            let all_variants: Vec<Vec<f32>> =
                variants.sets.iter().map(|(hist, vit)| flat(vit, hist)).collect::<anyhow::Result<_>>()?;
            let dim = kind.dim(vit.first().map_or(0, Vec::len));
            for &n in &args.expand {
                let shared = Arc::new(all_variants[..n].to_vec());
                for fusion in [Fusion::Mean, Fusion::Rrf] {
                    let base = Descriptor {
                        expansion: Some(Expansion { n, fusion }),
                        ..Descriptor::plain(kind, Some(variants.input_size), variants.views)
                    };
                    let adapted = vectors.dataset.protocols.iter().filter(|&&p| p != Protocol::AllOthers && !args.no_adapter);
                    for protocol in std::iter::once(None).chain(adapted.map(|&p| Some(p))) {
                        let spec = Descriptor { adapter: protocol.map(|_| AdapterChoice::Auto), ..base };
                        let (stored, variants) = (Arc::clone(&stored), Arc::clone(&shared));
                        jobs.push(Job { dataset: vectors.dataset, spec, dim, stored, variants, protocol });
                    }
                }
            }
        }
    }
    let bar = progress_bar(jobs.len(), "query expansion (plain and adapted)");
    let rows: Vec<Vec<ResultRow>> = jobs
        .par_iter()
        .map(|job| {
            let context = || format!("{} / {}", job.dataset.name, job.spec.label());
            let fusion = job.spec.expansion.map_or(Fusion::Mean, |e| e.fusion);
            let rows = match job.protocol {
                None => {
                    let stored = VectorSet::new(&job.stored, job.dim)?;
                    let variant_sets =
                        job.variants.iter().map(|v| VectorSet::new(v, job.dim)).collect::<Result<Vec<_>, _>>()?;
                    evaluate_expanded(&stored, &variant_sets, &job.dataset.meta, &job.dataset.protocols, fusion)
                        .with_context(context)?
                        .into_iter()
                        .map(|report| ResultRow {
                            dataset: job.dataset.name,
                            descriptor: job.spec.label(),
                            spec: job.spec,
                            dim: job.dim,
                            report,
                            adapter: None,
                        })
                        .collect()
                }
                Some(protocol) => {
                    let AdaptedReport { report, folds_by, folds, folds_adapted, params } = evaluate_adapted(
                        &job.stored,
                        job.dim,
                        &job.dataset.meta,
                        protocol,
                        AdapterChoice::Auto,
                        args.adapter_folds,
                        QueryVariants { rows: &job.variants, fusion },
                    )
                    .with_context(context)?;
                    vec![ResultRow {
                        dataset: job.dataset.name,
                        descriptor: job.spec.label(),
                        spec: job.spec,
                        dim: report_dim(job.dim, job.dataset, &params),
                        report,
                        adapter: Some(AdapterRun { folds_by, folds, folds_adapted, params }),
                    }]
                }
            };
            bar.inc(1);
            Ok(rows)
        })
        .collect::<anyhow::Result<_>>()?;
    bar.finish_and_clear();
    Ok(rows.into_iter().flatten().collect())
}

/// Length of an adapted vector as the first adapted fold made it: the descriptor plus
/// (classes − 1) LDA dimensions or the MLP's output; the descriptor when no fold adapted.
fn report_dim(dim: usize, dataset: &Dataset, params: &[AdapterParams]) -> usize {
    let mut classes: Vec<&str> = dataset.meta.iter().map(|m| m.label.as_str()).collect();
    classes.sort_unstable();
    classes.dedup();
    match params.first().map(AdapterParams::kind) {
        Some(AdapterKind::Lda) => dim + classes.len().saturating_sub(1),
        Some(AdapterKind::Mlp) => dim + tessera::adapter::mlp::OUT,
        None => dim,
    }
}

/// Paired bootstrap intervals for the headline differences: on each dataset's protocols,
/// the best adapted row (queries not expanded) against the histogram and against the same
/// descriptor unadapted; the `auto` adapter of every descriptor against each kind forced and
/// against no adapter; every fine-tuned row against the same descriptor on the model; and
/// each expanded fused adapted row against the same row without expansion.
fn compare(results: &[ResultRow], datasets: &[Dataset], resamples: usize) -> Vec<Comparison> {
    let mut out = Vec::new();
    for dataset in datasets {
        for &protocol in &dataset.protocols {
            let rows: Vec<&ResultRow> =
                results.iter().filter(|r| r.dataset == dataset.name && r.report.protocol == protocol).collect();
            let clusters = tessera::eval::fold_keys(&dataset.meta, protocol);
            let mut pair = |row: &ResultRow, base: &ResultRow| {
                // The best adapted row may be an `auto` row: its pair with the unadapted
                // descriptor is then asked for twice; bootstrap it once.
                let same = |c: &Comparison| {
                    c.dataset == dataset.name && c.protocol == protocol && c.descriptor == row.descriptor && c.against == base.descriptor
                };
                if out.iter().any(same) {
                    return;
                }
                out.push(Comparison {
                    dataset: dataset.name,
                    protocol,
                    descriptor: row.descriptor.clone(),
                    against: base.descriptor.clone(),
                    clustered_by: tessera::eval::folds_by(&dataset.meta, protocol),
                    p_at_5_difference: tessera::eval::paired_bootstrap(
                        &row.report.per_query_p_at_5,
                        &base.report.per_query_p_at_5,
                        &clusters,
                        resamples,
                        0x7e55e7a,
                    ),
                });
            };
            if let Some(best) = rows
                .iter()
                .filter(|r| r.spec.adapter.is_some() && r.spec.expansion.is_none())
                .max_by(|a, b| a.report.overall.p_at_5.total_cmp(&b.report.overall.p_at_5))
            {
                let plain = Descriptor { adapter: None, ..best.spec };
                for base in rows.iter().filter(|r| r.spec.kind == DescriptorKind::Hist || r.spec == plain) {
                    pair(best, base);
                }
            }
            // What the build's `auto` does on each descriptor, against each adapter kind
            // forced and against no adapter.
            for auto_row in rows.iter().filter(|r| r.spec.adapter == Some(AdapterChoice::Auto) && r.spec.expansion.is_none()) {
                let siblings = rows.iter().filter(|r| {
                    r.spec.adapter != Some(AdapterChoice::Auto)
                        && Descriptor { adapter: Some(AdapterChoice::Auto), ..r.spec } == auto_row.spec
                });
                for base in siblings {
                    pair(auto_row, base);
                }
            }
            // The fine-tuned network against the model, descriptor for descriptor.
            for tuned in rows.iter().filter(|r| r.spec.finetuned) {
                let model = Descriptor { finetuned: false, ..tuned.spec };
                if let Some(base) = rows.iter().find(|r| r.spec == model) {
                    pair(tuned, base);
                }
            }
            for expanded in rows.iter().filter(|r| {
                r.spec.adapter.is_some() && r.spec.expansion.is_some() && matches!(r.spec.kind, DescriptorKind::Fused { .. })
            }) {
                let unexpanded = Descriptor { expansion: None, ..expanded.spec };
                if let Some(base) = rows.iter().find(|r| r.spec == unexpanded) {
                    pair(expanded, base);
                }
            }
        }
    }
    out
}

/// Recall@10 of the index's HNSW search against exact search, for the histogram, the ViT
/// and the first fused weight (building a graph per descriptor; the sweep adds nothing).
fn hnsw_recall(sets: &[DescribedSet], weights: &[f32]) -> anyhow::Result<Vec<RecallRow>> {
    const K: usize = 10;
    let measured: Vec<&DescribedSet> = sets
        .iter()
        .filter(|s| match s.descriptor.kind {
            DescriptorKind::Fused { weight } => weights.first() == Some(&weight),
            _ => true,
        })
        .collect();
    let bar = progress_bar(measured.len(), "HNSW recall@10 (building graphs)");
    let rows = measured
        .par_iter()
        .map(|set| {
            let vectors = VectorSet::new(&set.vectors, set.dim)?;
            let recall = hnsw_recall_at(&vectors, K, HnswParams::default())
                .with_context(|| format!("{} / {}", set.dataset.name, set.descriptor.label()))?;
            bar.inc(1);
            Ok(RecallRow {
                dataset: set.dataset.name,
                descriptor: set.descriptor.label(),
                k: K,
                recall,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>();
    bar.finish_and_clear();
    rows
}
