//! `tessera bench search`: index build and query figures at scale on synthetic vectors
//! with cluster structure, beside faiss (IndexFlatIP, IndexHNSWFlat) and hnswlib run on
//! the same vectors, queries and ground truth in the same run.
//!
//! The vectors mimic embeddings rather than noise: a shared mean direction, √n clusters
//! ("slides"), and a decaying spectrum λᵢ = (1+i)^-decay for both the cluster centres and
//! the within-cluster spread. The defaults match what we measured on the model's vectors of
//! the 2,959 LC25000 tiles: mean cosine between tiles 0.86 and eigenvalues decaying as
//! i^-1.8 (there, PCA to 32/48/64/96 dims keeps recall@10 of 0.90/0.94/0.96/0.98).
//! Queries are fresh draws from the same clusters, not members of the index.
//! `--vectors FILE.npy` measures real vectors beside the generator at the same count and dim
//! (bench/run: LC25000's embeddings, bench/results/search-vectors.json): there the generator
//! is kinder to PCA and PQ (int8+pca32 recall 0.935 against 0.878 on the real vectors, faiss
//! IVF-PQ 0.897 against 0.814) and harsher to int8, so the scale rows' PCA and PQ figures are
//! upper bounds.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use npyz::WriterBuilder;
use rayon::prelude::*;
use serde_json::json;

use tessera::index::{BuildOptions, HnswParams, Index, IndexBuilder, ModelRef, Quantization};
use tessera::search::{search, Query, SearchOptions};

#[derive(clap::Args)]
pub struct BenchSearchArgs {
    /// Index sizes (tiles), comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 100_000, 1_000_000])]
    sizes: Vec<usize>,
    #[command(flatten)]
    synthetic: SyntheticArgs,
    #[command(flatten)]
    query: QueryArgs,
    /// Index variants: QUANT[+pcaN][+rerankQUANT] (e.g. int8, f16, int8+pca64+rerankf16), comma
    /// separated; the first is `tessera build`'s default (f16), the rest the smaller encodings.
    #[arg(long, value_delimiter = ',', default_values_t = ["f16".to_string(), "int8".to_string(), "int8+pca64".to_string(), "int8+pca32".to_string()])]
    variants: Vec<String>,
    /// Above this many tiles only the first variant is built (the others are recorded as
    /// skipped): each 1M-tile graph takes minutes.
    #[arg(long)]
    all_variants_up_to: Option<usize>,
    /// Above this many tiles no system builds an HNSW graph (exact and IVF-PQ search only;
    /// the graphs are recorded as skipped): a 1M-tile graph takes minutes for each system.
    #[arg(long)]
    graphs_up_to: Option<usize>,
    /// Extra variants built only at the smallest size (bytes/tile of each encoding).
    #[arg(long, value_delimiter = ',', default_values_t = ["f32".to_string()])]
    small_variants: Vec<String>,
    /// Layer-0 neighbours kept per tile.
    #[arg(long, default_value_t = HnswParams::default().max_degree)]
    max_degree: usize,
    /// Threads for every system's index build (queries run on one).
    #[arg(long, default_value_t = 2)]
    build_threads: usize,
    /// Skip faiss/hnswlib (no Python needed).
    #[arg(long)]
    no_reference: bool,
    /// Above this many tiles, skip faiss's HNSW (its build takes longest).
    #[arg(long, default_value_t = 100_000)]
    faiss_hnsw_max: usize,
    /// Real vectors instead of sizes: an N × dim float32 .npy (e.g. `tessera embed-dir`),
    /// every ⌈N / queries⌉-th row a query and the others the index, measured beside the
    /// generator at the same count and dim (how representative the synthetic rows are).
    #[arg(long, conflicts_with = "sizes")]
    vectors: Option<PathBuf>,
    #[arg(long, default_value = "bench/results/search.json")]
    output: PathBuf,
}

pub fn run(args: BenchSearchArgs) -> anyhow::Result<()> {
    if args.sizes.is_empty() || args.query.queries == 0 || args.query.k == 0 || args.synthetic.dim == 0 || args.build_threads == 0 {
        bail!("need at least one size, query, dim, k and build thread");
    }
    if let Some(path) = &args.vectors {
        return run_on_vectors(&args, path);
    }
    let (mut rows, mut skipped) = (Vec::new(), Vec::new());
    let smallest = args.sizes.iter().copied().min().unwrap_or(0);
    for &n in &args.sizes {
        eprintln!("== {n} tiles × {} dims", args.synthetic.dim);
        let started = Instant::now();
        let data = BenchVectors::generate(n, args.query.queries, &args.synthetic, 42);
        bench_size(&args, &data, n == smallest, &mut rows, &mut skipped, started)?;
    }
    let data = format!(
        "synthetic clustered: shared mean direction (typical cosine {}), sqrt(n) clusters, eigenvalues (1+i)^-{}; queries are fresh draws",
        args.synthetic.mean_cos, args.synthetic.decay
    );
    write_report(&args, "search", args.synthetic.dim, args.query.queries, data, rows, skipped)
}

/// `--vectors`: the file's vectors, then the generator at the same count and dim; each
/// row says which (`data`).
fn run_on_vectors(args: &BenchSearchArgs, path: &std::path::Path) -> anyhow::Result<()> {
    let real = BenchVectors::from_npy(path, args.query.queries)?;
    let shape = SyntheticArgs { dim: real.dim, ..args.synthetic };
    let synthetic = BenchVectors::generate(real.len(), args.query.queries, &shape, 42);
    let (mut rows, mut skipped) = (Vec::new(), Vec::new());
    for (name, data) in [("vectors", &real), ("synthetic", &synthetic)] {
        eprintln!("== {name}: {} tiles × {} dims", data.len(), data.dim);
        let first = rows.len();
        bench_size(args, data, true, &mut rows, &mut skipped, Instant::now())?;
        rows[first..].iter_mut().for_each(|r: &mut serde_json::Value| r["data"] = json!(name));
    }
    let data = format!(
        "`vectors` rows: {} (unit length), every ⌈N / queries⌉-th row a query and the rest the index; `synthetic` rows: \
         the generator of the scale rows (typical cosine {}, eigenvalues (1+i)^-{}) at the same count and dim, queries fresh draws",
        path.display(), shape.mean_cos, shape.decay
    );
    write_report(args, "search-vectors", real.dim, real.queries.len() / real.dim, data, rows, skipped)
}

/// `args.output`: the rows and what they were measured on.
fn write_report(
    args: &BenchSearchArgs,
    benchmark: &str,
    dim: usize,
    queries: usize,
    data: String,
    rows: Vec<serde_json::Value>,
    skipped: Vec<serde_json::Value>,
) -> anyhow::Result<()> {
    let report = json!({
        "benchmark": benchmark,
        "dim": dim,
        "queries": queries,
        "k": args.query.k,
        "data": data,
        "threads": format!("builds on {} threads, queries on one, for every system", args.build_threads),
        "build_threads": args.build_threads,
        "recall": "recall@k against exact float32 inner-product search on the unquantized vectors",
        "provenance": crate::cli::Provenance::now(),
        "rows": rows,
        "skipped": skipped,
    });
    super::write_results(&args.output, &report)
}

/// Every variant (and the references) on `data`; `smallest`: the extra small-size variants too.
fn bench_size(
    args: &BenchSearchArgs,
    data: &BenchVectors,
    smallest: bool,
    rows: &mut Vec<serde_json::Value>,
    skipped: &mut Vec<serde_json::Value>,
    started: Instant,
) -> anyhow::Result<()> {
    let n = data.len();
    let truth = exact_truth(data, args.query.k);
    eprintln!("data and exact ground truth: {:.1} s", started.elapsed().as_secs_f64());
    let mut variants = args.variants.clone();
    if let Some(max) = args.all_variants_up_to.filter(|&max| n > max) {
        for variant in variants.drain(1..) {
            skipped.push(json!({"tiles": n, "variant": variant, "reason": format!("above --all-variants-up-to {max}")}));
        }
    }
    if smallest {
        variants.extend(args.small_variants.iter().cloned());
    }
    let graphs_skipped = args.graphs_up_to.filter(|&max| n > max);
    if let Some(max) = graphs_skipped {
        for variant in ["tessera HNSW (every variant)", "faiss IndexHNSWFlat", "hnswlib"] {
            skipped.push(json!({"tiles": n, "variant": variant, "reason": format!("above --graphs-up-to {max}")}));
        }
    }
    let graphs = graphs_skipped.is_none();
    let first = rows.len();
    for variant in variants.iter().filter(|v| !v.is_empty()) {
        rows.extend(bench_tessera(args, data, &truth, variant, graphs)?);
    }
    if !args.no_reference {
        rows.extend(reference(args, data, &truth, graphs)?);
    }
    print_rows(&rows[first..]);
    Ok(())
}

/// The queries a benchmark times and scores (`bench search`, `bench graph`).
#[derive(clap::Args)]
pub(super) struct QueryArgs {
    /// Queries per size (latency percentiles and recall are over these).
    #[arg(long, default_value_t = 500)]
    pub(super) queries: usize,
    #[arg(long, default_value_t = 10)]
    pub(super) k: usize,
    /// Search beam widths to report.
    #[arg(long, value_delimiter = ',', default_values_t = [64usize, 128])]
    pub(super) ef: Vec<usize>,
}

/// The synthetic vectors' shape (`tessera bench search` and `bench partitioned`).
#[derive(clap::Args)]
pub(super) struct SyntheticArgs {
    #[arg(long, default_value_t = 384)]
    pub(super) dim: usize,
    /// Eigenvalue decay exponent of the synthetic vectors.
    #[arg(long, default_value_t = 1.8)]
    pub(super) decay: f32,
    /// Typical cosine between unrelated synthetic vectors (the shared component).
    #[arg(long, default_value_t = 0.86)]
    pub(super) mean_cos: f32,
}

/// A benchmark's index vectors and queries, unit length, row-major: generated
/// ([`BenchVectors::generate`]) or read from a file ([`BenchVectors::from_npy`]).
pub(super) struct BenchVectors {
    pub(super) dim: usize,
    pub(super) base: Vec<f32>,
    pub(super) queries: Vec<f32>,
}

impl BenchVectors {
    /// The rows of an N × dim float32 .npy at unit length: every ⌈N / queries⌉-th a query,
    /// the others the index.
    fn from_npy(path: &std::path::Path, queries: usize) -> anyhow::Result<BenchVectors> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let npy = npyz::NpyFile::new(&bytes[..]).with_context(|| format!("{}: not a .npy file", path.display()))?;
        let &[n, dim] = npy.shape() else { bail!("{}: shape {:?}, expected N × dim", path.display(), npy.shape()) };
        let (n, dim) = (n as usize, dim as usize);
        if dim == 0 || n <= 2 * queries {
            bail!("{}: {n} × {dim} vectors, need more than twice the {queries} queries", path.display());
        }
        let flat: Vec<f32> = npy.into_vec().with_context(|| format!("{}: expected float32 values", path.display()))?;
        let step = n.div_ceil(queries);
        let (mut base, mut held_out) = (Vec::with_capacity(flat.len()), Vec::new());
        for (i, row) in flat.chunks_exact(dim).enumerate() {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if !(norm > 0.0 && norm.is_finite()) {
                bail!("{}: row {i} has length {norm}", path.display());
            }
            let target = if i % step == 0 { &mut held_out } else { &mut base };
            target.extend(row.iter().map(|x| x / norm));
        }
        Ok(BenchVectors { dim, base, queries: held_out })
    }

    pub(super) fn generate(n: usize, queries: usize, shape: &SyntheticArgs, seed: u64) -> BenchVectors {
        let mut stream = SyntheticStream::new(n, shape, seed);
        let base = stream.base().flatten().collect();
        let queries = (0..queries).flat_map(|_| stream.draw()).collect();
        BenchVectors { dim: shape.dim, base, queries }
    }

    pub(super) fn len(&self) -> usize {
        self.base.len() / self.dim
    }

    pub(super) fn query(&self, i: usize) -> &[f32] {
        &self.queries[i * self.dim..(i + 1) * self.dim]
    }
}

/// The synthetic vectors one at a time, for sizes whose f32 vectors do not fit in memory:
/// the same numbers as [`BenchVectors::generate`] (`n` base vectors, then the queries).
pub(super) struct SyntheticStream {
    n: usize,
    dim: usize,
    spectrum: Vec<f32>,
    /// The shared direction every vector leans along, scaled to its norm in a vector.
    offset: Vec<f32>,
    centres: Vec<Vec<f32>>,
    /// At the first base vector.
    start: Gaussian,
    /// Past the base vectors once [`SyntheticStream::base`] was walked to its end or
    /// [`SyntheticStream::draw`] skipped past them.
    rng: Gaussian,
}

impl SyntheticStream {
    pub(super) fn new(n: usize, shape: &SyntheticArgs, seed: u64) -> SyntheticStream {
        let SyntheticArgs { dim, decay, mean_cos } = *shape;
        let mut rng = Gaussian::new(seed);
        let spectrum: Vec<f32> = (0..dim).map(|i| (1.0 + i as f32).powf(-decay / 2.0)).collect();
        let mean: Vec<f32> = (0..dim).map(|_| rng.next()).collect();
        let mean_norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
        let clusters = ((n as f64).sqrt() as usize).max(2);
        let centres: Vec<Vec<f32>> = (0..clusters).map(|_| spectrum.iter().map(|s| s * rng.next()).collect()).collect();
        // |mean|² / (|mean|² + |centre + spread|²) is the typical cosine of unrelated vectors.
        let spread = spectrum.iter().map(|s| s * s).sum::<f32>() * (1.0 + 0.6 * 0.6);
        let centre_norm = (spread * mean_cos / (1.0 - mean_cos)).sqrt();
        let offset = mean.iter().map(|m| m / mean_norm * centre_norm).collect();
        SyntheticStream { n, dim, spectrum, offset, centres, start: rng.clone(), rng }
    }

    fn draw_from(&self, rng: &mut Gaussian) -> Vec<f32> {
        let c = &self.centres[(rng.next_u64() % self.centres.len() as u64) as usize];
        let mut v: Vec<f32> = (0..self.dim).map(|i| self.offset[i] + c[i] + 0.6 * self.spectrum[i] * rng.next()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }

    /// The `n` base vectors from the first; walked to its end, the stream's next draw is
    /// the first query.
    pub(super) fn base(&mut self) -> impl Iterator<Item = Vec<f32>> + '_ {
        self.rng = self.start.clone();
        (0..self.n).map(move |_| self.draw())
    }

    /// The next vector after the base ones (call after walking [`SyntheticStream::base`]).
    pub(super) fn draw(&mut self) -> Vec<f32> {
        let mut rng = std::mem::replace(&mut self.rng, Gaussian::new(0));
        let v = self.draw_from(&mut rng);
        self.rng = rng;
        v
    }
}

/// splitmix64 with Box–Muller: a seeded standard normal stream (a benchmark's data
/// generator; no need for a crate).
#[derive(Clone)]
struct Gaussian {
    state: u64,
    spare: Option<f32>,
}

impl Gaussian {
    fn new(seed: u64) -> Self {
        Gaussian { state: seed, spare: None }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    fn next(&mut self) -> f32 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let u1 = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
        self.spare = Some((r * s) as f32);
        (r * c) as f32
    }
}

/// Exact top-k ids per query by float32 inner product over the raw vectors (all cores).
pub(super) fn exact_truth(data: &BenchVectors, k: usize) -> Vec<Vec<u32>> {
    let nq = data.queries.len() / data.dim;
    (0..nq)
        .into_par_iter()
        .map(|qi| {
            let q = data.query(qi);
            let mut scored: Vec<(f32, u32)> = data
                .base
                .chunks_exact(data.dim)
                .enumerate()
                .map(|(i, v)| (tessera::index::dot_product(q, v), i as u32))
                .collect();
            let k = k.min(scored.len());
            scored.select_nth_unstable_by(k.saturating_sub(1), |a, b| b.0.total_cmp(&a.0));
            scored.truncate(k);
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored.into_iter().map(|(_, i)| i).collect()
        })
        .collect()
}

/// `int8+pca64+rerankf16` → (int8, Some(64), Some(f16)).
pub(super) fn parse_variant(v: &str) -> anyhow::Result<(Quantization, Option<usize>, Option<Quantization>)> {
    let mut parts = v.split('+');
    let quant = parts.next().unwrap_or_default().parse().map_err(anyhow::Error::msg)?;
    let (mut pca, mut rerank) = (None, None);
    for part in parts {
        if let Some(dim) = part.strip_prefix("pca") {
            pca = Some(dim.parse::<usize>().with_context(|| format!("`{v}`: bad PCA dim"))?);
        } else if let Some(q) = part.strip_prefix("rerank") {
            rerank = Some(q.parse().map_err(anyhow::Error::msg)?);
        } else {
            bail!("`{v}`: unknown variant part `{part}`");
        }
    }
    Ok((quant, pca, rerank))
}

fn bench_tessera(
    args: &BenchSearchArgs,
    data: &BenchVectors,
    truth: &[Vec<u32>],
    variant: &str,
    graph: bool,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let (quantization, pca_dim, rerank) = parse_variant(variant)?;
    let n = data.len();
    let model = ModelRef {
        views: 1,
        id: "synthetic".into(),
        sha256: "0".repeat(64),
        dim: data.dim,
        descriptor: tessera::descriptor::DescriptorKind::Vit,
    };
    let options = BuildOptions {
        quantization,
        pca_dim,
        hnsw: HnswParams { max_degree: args.max_degree, ..HnswParams::default() },
        graph_min_tiles: if graph { 0 } else { usize::MAX },
        rerank,
    };
    let started = Instant::now();
    let mut builder = IndexBuilder::new(model.clone(), options)?;
    for v in data.base.chunks_exact(data.dim) {
        builder.add(v, Vec::new(), None)?;
    }
    // As many threads as faiss and hnswlib build with here.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.build_threads).build()?;
    let built = pool.install(|| builder.build())?;
    let build_s = started.elapsed().as_secs_f64();
    let bytes = built.to_bytes();
    let sizes = built.size_report();
    drop(built);
    let started = Instant::now();
    let index = Index::from_bytes(&bytes, Some(&model))?;
    let load_s = started.elapsed().as_secs_f64();
    let info = index.info();
    eprintln!(
        "tessera {variant}: built in {build_s:.1} s, {} bytes ({:.1} B/tile), loaded in {load_s:.2} s, {:.1} layer-0 neighbours/tile",
        bytes.len(),
        bytes.len() as f64 / n as f64,
        info.graph_mean_degree
    );
    let common = json!({
        "system": "tessera",
        "tiles": n,
        "build_s": build_s,
        "load_s": load_s,
        "file_bytes": bytes.len(),
        "bytes_per_tile": bytes.len() as f64 / n as f64,
        "sections": sizes,
        "graph_mean_degree": info.graph_mean_degree,
        "pca_energy_kept": info.pca_energy_kept,
    });
    let mut rows = Vec::new();
    let mut modes: Vec<(String, SearchOptions)> = args
        .query
        .ef
        .iter()
        .filter(|_| graph)
        .map(|&ef| (format!("HNSW ef={ef}"), SearchOptions { k: args.query.k, ef: Some(ef), exact_below: 0, ..SearchOptions::default() }))
        .collect();
    modes.push(("exact scan".into(), SearchOptions { k: args.query.k, exact: true, ..SearchOptions::default() }));
    for (mode, options) in modes {
        let (p50, p99, recall) = time_queries(&index, data, truth, &options)?;
        let mut row = common.clone();
        row["variant"] = json!(format!("{variant} {mode}"));
        row["p50_ms"] = json!(p50);
        row["p99_ms"] = json!(p99);
        row["recall_at_k"] = json!(recall);
        rows.push(row);
    }
    Ok(rows)
}

/// Single-thread latency percentiles (ms) and recall@k of `search` over all queries.
pub(super) fn time_queries(
    index: &Index,
    data: &BenchVectors,
    truth: &[Vec<u32>],
    options: &SearchOptions,
) -> anyhow::Result<(f64, f64, f64)> {
    let mut times = Vec::with_capacity(truth.len());
    let mut found = 0usize;
    for (qi, expected) in truth.iter().enumerate() {
        let query = Query::vector(data.query(qi).to_vec());
        let started = Instant::now();
        let hits = search(index, &query, options)?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        let expected: HashSet<u32> = expected.iter().copied().collect();
        found += hits.iter().filter(|h| expected.contains(&h.id)).count();
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    Ok((pct(0.5), pct(0.99), found as f64 / (truth.len() * options.k) as f64))
}

/// Runs `bench/search_reference.py` on the same vectors, queries and ground truth.
fn reference(args: &BenchSearchArgs, data: &BenchVectors, truth: &[Vec<u32>], graphs: bool) -> anyhow::Result<Vec<serde_json::Value>> {
    let dir = tempfile::tempdir()?;
    let write = |name: &str, values: &[f32], rows: usize, cols: usize| -> anyhow::Result<PathBuf> {
        let path = dir.path().join(name);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[rows as u64, cols as u64])
            .writer(&mut file)
            .begin_nd()?;
        w.extend(values.iter().copied())?;
        w.finish()?;
        Ok(path)
    };
    let base = write("base.npy", &data.base, data.len(), data.dim)?;
    let queries = write("queries.npy", &data.queries, truth.len(), data.dim)?;
    let flat: Vec<f32> = truth.iter().flat_map(|t| t.iter().map(|&i| i as f32)).collect();
    let truth_path = write("truth.npy", &flat, truth.len(), args.query.k)?;
    let ef: Vec<String> = args.query.ef.iter().map(|e| e.to_string()).collect();
    let systems = match (graphs, data.len() <= args.faiss_hnsw_max) {
        (false, _) => "faiss-flat,faiss-ivfpq",
        (true, false) => "faiss-flat,faiss-ivfpq,hnswlib",
        (true, true) => "faiss-flat,faiss-hnsw,faiss-ivfpq,hnswlib",
    };
    let started = Instant::now();
    let out = Command::new(super::python::python()?)
        .arg("bench/search_reference.py")
        .arg("--base")
        .arg(&base)
        .arg("--queries")
        .arg(&queries)
        .arg("--truth")
        .arg(&truth_path)
        .args(["--k", &args.query.k.to_string(), "--ef", &ef.join(","), "--systems", systems])
        .args(["--threads", &args.build_threads.to_string()])
        .output()
        .context("cannot run bench/search_reference.py")?;
    if !out.status.success() {
        bail!("bench/search_reference.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    // faiss warns once per sub-quantizer when a small index gives PQ few training points.
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.lines().filter(|l| !l.starts_with("WARNING clustering")).for_each(|l| eprintln!("{l}"));
    eprintln!("faiss/hnswlib reference: {:.1} s", started.elapsed().as_secs_f64());
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).context("search_reference.py output")?;
    Ok(parsed["rows"].as_array().cloned().unwrap_or_default())
}

fn print_rows(rows: &[serde_json::Value]) {
    println!(
        "| {:<8} | {:<44} | {:>9} | {:>8} | {:>11} | {:>8} | {:>8} | {:>8} | {:>9} |",
        "system", "variant", "tiles", "build s", "file MB", "B/tile", "p50 ms", "p99 ms", "recall@10"
    );
    println!("|{}|", ["-"; 9].iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    for r in rows {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {:<8} | {:<44} | {:>9} | {:>8.1} | {:>11.2} | {:>8.1} | {:>8.3} | {:>8.3} | {:>9.4} |",
            r["system"].as_str().unwrap_or(""),
            r["variant"].as_str().unwrap_or(""),
            r["tiles"],
            f("build_s"),
            f("file_bytes") / 1e6,
            f("bytes_per_tile"),
            f("p50_ms"),
            f("p99_ms"),
            f("recall_at_k"),
        );
    }
}

