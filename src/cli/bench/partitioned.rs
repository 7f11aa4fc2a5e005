//! `tessera bench partitioned`: the partitioned index (`src/partitioned`) served over local
//! HTTP (`tessera serve`'s handler on a thread) and searched the way the browser does it —
//! a cold reader per query: the directory is fetched once per size, then each query fetches
//! the partitions it probes by Range requests. Per size and nprobe: bytes fetched per
//! query, latency (fetch + verify + search) and recall@10 against exact float32 search on
//! the same synthetic vectors as `tessera bench search`. An encoding with re-ranking vectors
//! (`int8+pca64+rerankf16`) keeps them as row ranges: a query fetches its probed partitions'
//! compact vectors, then its shortlist's rows; such a file is also measured held in memory
//! (directory and partitions, the rows read from the local file): the in-memory trade-off.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use serde_json::json;

use rayon::prelude::*;
use tessera::index::{BuildOptions, CompactIndexBuilder, IndexBuilder, ModelRef, Quantization};
use tessera::partitioned::{PartitionOptions, PartitionSummary, PartitionedIndex};
use tessera::search::{Query, SearchOptions};

use super::search::{exact_truth, parse_variant, BenchVectors, SyntheticArgs, SyntheticStream};
use crate::cli::remote::{Source, Transfer};

#[derive(clap::Args)]
pub struct BenchPartitionedArgs {
    /// Index sizes (tiles), comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [100_000usize, 1_000_000, 10_000_000])]
    sizes: Vec<usize>,
    /// Sizes above this are streamed: the synthetic vectors are drawn one at a time (twice:
    /// for the index, then for the ground truth) into a compact index of int8 PCA codes
    /// with f16 rows, so only encodings `int8+pcaN+rerankf16` are measured there (the others
    /// hold every f32 vector in memory: 10⁷ × 384 is 15 GB) and the rest are recorded as skipped.
    #[arg(long, default_value_t = 2_000_000)]
    max_tiles: usize,
    #[command(flatten)]
    synthetic: SyntheticArgs,
    #[arg(long, default_value_t = 200)]
    queries: usize,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Partitions probed per query, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [4usize, 8, 12, 16, 32])]
    nprobe: Vec<usize>,
    /// Encodings, comma separated: QUANT[+pcaN][+rerankQUANT], as `bench search --variants`;
    /// with re-ranking vectors they are row ranges fetched for each query's shortlist.
    #[arg(long, alias = "quantizations", value_delimiter = ',', default_values_t = ["f16".to_string(), "int8".to_string(), "int8+pca32+rerankf16".to_string()])]
    encodings: Vec<String>,
    /// Candidates whose rows an encoding with re-ranking vectors fetches per query.
    #[arg(long, default_value_t = PartitionOptions::default().shortlist)]
    shortlist: usize,
    /// Partitions per index (0: √tiles).
    #[arg(long, default_value_t = 0)]
    partitions: usize,
    #[arg(long, default_value = "bench/results/partitioned.json")]
    output: PathBuf,
}

pub fn run(args: BenchPartitionedArgs) -> anyhow::Result<()> {
    if args.sizes.is_empty() || args.queries == 0 || args.k == 0 || args.nprobe.is_empty() {
        bail!("need at least one size, query, k and nprobe");
    }
    let dir = tempfile::tempdir()?;
    let server = tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("cannot start the local server: {e}"))?;
    let base = format!("http://{}", server.server_addr());
    let server = std::sync::Arc::new(server);
    let root = dir.path().to_path_buf();
    let serving = std::sync::Arc::clone(&server);
    std::thread::spawn(move || crate::cli::serve::serve(&serving, &root, false));

    let (mut rows, mut held, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for &n in &args.sizes {
        let path = dir.path().join(format!("{n}.tsp"));
        if n > args.max_tiles {
            let (streamable, other): (Vec<&String>, Vec<&String>) = args.encodings.iter().partition(|e| streamed_pca(e).is_some());
            for encoding in other {
                eprintln!("== {n} tiles, {encoding}: skipped (above --max-tiles {})", args.max_tiles);
                skipped.push(json!({ "tiles": n, "encoding": encoding, "why": format!("above --max-tiles {}: this encoding is built from every f32 vector in memory (10⁷ × 384 is 15 GB); only int8+pcaN+rerankf16 is streamed", args.max_tiles) }));
            }
            for encoding in streamable {
                eprintln!("== {n} tiles × {} dims, {encoding}: streamed", args.synthetic.dim);
                rows.extend(bench_streamed(&args, n, encoding, &path, &base)?);
                std::fs::remove_file(&path)?;
            }
            continue;
        }
        eprintln!("== {n} tiles × {} dims", args.synthetic.dim);
        let data = BenchVectors::generate(n, args.queries, &args.synthetic, 42);
        let truth = exact_truth(&data, args.k);
        for encoding in &args.encodings {
            let built = build_in_memory(&args, &data, encoding, &path)?;
            rows.extend(measure(&args, &built, &data.queries, &truth, &path, &base)?);
            if parse_variant(encoding)?.2.is_some() {
                held.extend(measure_held(&args, &built, &data.queries, &truth, &path)?);
            }
        }
    }
    server.unblock();
    print_table(&COLUMNS, &rows);
    if !held.is_empty() {
        println!();
        print_table(&HELD_COLUMNS, &held);
    }
    let report = json!({
        "benchmark": "partitioned",
        "dim": args.synthetic.dim,
        "queries": args.queries,
        "k": args.k,
        "data": "the synthetic vectors of `tessera bench search` (same generator and seed)",
        "served": "over HTTP on 127.0.0.1 (`tessera serve`'s handler, one thread); every query starts with no partition loaded",
        "latency": "per query: the Range requests for its probed partitions (and its shortlist's rows, then its hits' details), their checks, the search; one thread",
        "recall": "recall@k against exact float32 inner-product search on the unquantized vectors",
        "provenance": crate::cli::Provenance::now(),
        "skipped": skipped,
        "rows": rows,
        "held": "encodings with rows, sizes built in memory (not streamed): the directory and every partition held in memory, a fresh copy per query that reads only its shortlist's rows and its hits' details from the local file",
        "held_rows": held,
    });
    super::write_results(&args.output, &report)
}

/// A partitioned file written for one size and encoding.
struct Built<'a> {
    tiles: usize,
    encoding: &'a str,
    summary: PartitionSummary,
    build_s: f64,
}

/// The synthetic model: the vectors' dimension, nothing to embed with.
fn synthetic_model(dim: usize) -> ModelRef {
    ModelRef { views: 1, id: "synthetic".into(), sha256: "0".repeat(64), dim, descriptor: tessera::descriptor::DescriptorKind::Vit }
}

/// The source position of each tile, to score recall: partitioned ids are partition order.
fn source(i: usize) -> Vec<(String, String)> {
    vec![("source".into(), i.to_string())]
}

fn partition_options(args: &BenchPartitionedArgs) -> PartitionOptions {
    PartitionOptions { partitions: args.partitions, shortlist: args.shortlist, ..PartitionOptions::default() }
}

fn build_in_memory<'a>(args: &BenchPartitionedArgs, data: &BenchVectors, encoding: &'a str, path: &std::path::Path) -> anyhow::Result<Built<'a>> {
    let (quantization, pca_dim, rerank) = parse_variant(encoding)?;
    let started = Instant::now();
    let build = BuildOptions { quantization, pca_dim, rerank, graph_min_tiles: usize::MAX, ..BuildOptions::default() };
    let mut builder = IndexBuilder::new(synthetic_model(data.dim), build)?;
    for (i, v) in data.base.chunks_exact(data.dim).enumerate() {
        builder.add(v, source(i), None)?;
    }
    let index = builder.build()?;
    let summary = crate::cli::partition::write(&index, &partition_options(args), path)?;
    Ok(Built { tiles: data.len(), encoding, summary, build_s: started.elapsed().as_secs_f64() })
}

/// The PCA dims of an encoding the streamed build makes (`int8+pcaN+rerankf16`).
fn streamed_pca(encoding: &str) -> Option<usize> {
    match parse_variant(encoding).ok()? {
        (Quantization::Int8, Some(dims), Some(Quantization::F16)) => Some(dims),
        _ => None,
    }
}

/// Tiles the streamed build fits its PCA and int8 grid on.
const STREAMED_FIT_TILES: usize = 100_000;

/// A size whose vectors do not fit in memory as f32: drawn one at a time into a
/// [`CompactIndexBuilder`] (PCA and grid fitted on the first tiles), partitioned, then drawn
/// again for the ground truth.
fn bench_streamed(args: &BenchPartitionedArgs, n: usize, encoding: &str, path: &std::path::Path, base: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let pca_dim = streamed_pca(encoding).expect("a streamed encoding");
    let started = Instant::now();
    let mut stream = SyntheticStream::new(n, &args.synthetic, 42);
    let sample: Vec<f32> = stream.base().take(STREAMED_FIT_TILES).flatten().collect();
    let mut builder = CompactIndexBuilder::fit(synthetic_model(args.synthetic.dim), pca_dim, &sample)?;
    drop(sample);
    builder.reserve(n);
    for (i, v) in stream.base().enumerate() {
        builder.add(&v, source(i))?;
    }
    let queries: Vec<f32> = (0..args.queries).flat_map(|_| stream.draw()).collect();
    let index = builder.build();
    eprintln!("{encoding}: {n} tiles drawn and encoded in {:.1} s", started.elapsed().as_secs_f64());
    let summary = crate::cli::partition::write(&index, &partition_options(args), path)?;
    drop(index);
    let built = Built { tiles: n, encoding, summary, build_s: started.elapsed().as_secs_f64() };
    let truth = streamed_truth(&mut stream, &queries, args.synthetic.dim, args.k);
    measure(args, &built, &queries, &truth, path, base)
}

/// Exact float32 top-k of each query over the stream's base vectors, drawn again a chunk at
/// a time.
fn streamed_truth(stream: &mut SyntheticStream, queries: &[f32], dim: usize, k: usize) -> Vec<Vec<u32>> {
    const CHUNK: usize = 65_536;
    let mut best: Vec<Vec<(f32, u32)>> = vec![Vec::new(); queries.len() / dim];
    let mut base = stream.base();
    let mut first = 0usize;
    loop {
        let chunk: Vec<f32> = base.by_ref().take(CHUNK).flatten().collect();
        if chunk.is_empty() {
            break;
        }
        best.par_iter_mut().enumerate().for_each(|(qi, top)| {
            let q = &queries[qi * dim..(qi + 1) * dim];
            top.extend(chunk.chunks_exact(dim).enumerate().map(|(i, v)| (tessera::index::dot_product(q, v), (first + i) as u32)));
            top.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            top.truncate(k);
        });
        first += chunk.len() / dim;
    }
    best.into_iter().map(|top| top.into_iter().map(|(_, i)| i).collect()).collect()
}

/// Bytes, latency and recall of every nprobe for the file `built` wrote at `path`, served at `base`.
fn measure(
    args: &BenchPartitionedArgs,
    built: &Built,
    queries: &[f32],
    truth: &[Vec<u32>],
    path: &std::path::Path,
    base: &str,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let Built { tiles: n, encoding, ref summary, build_s } = *built;
    let file_bytes = std::fs::metadata(path)?.len();
    eprintln!(
        "{encoding}: {} partitions (largest {} tiles), {file_bytes} bytes, directory {} bytes, built and partitioned in {build_s:.1} s",
        summary.partitions, summary.largest_partition_tiles, summary.directory_bytes
    );
    let url = format!("{base}/{}", path.file_name().unwrap().to_string_lossy());
    let mut source = Source::new(&url);
    let mut directory_transfer = Transfer::default();
    let directory = source.read_range(0..summary.directory_bytes as u64, &mut directory_transfer)?;
    let cold = PartitionedIndex::from_directory(&directory, None)?;
    let mut rows = Vec::new();
    for &nprobe in &args.nprobe {
        let nprobe = nprobe.min(summary.partitions);
        let run = run_queries(args, &cold, &mut source, nprobe, queries, truth)?;
        rows.push(json!({
            "tiles": n,
            "encoding": encoding,
            "shortlist": cold.rows_info().map(|r| r.shortlist),
            "partitions": summary.partitions,
            "largest_partition_tiles": summary.largest_partition_tiles,
            "nprobe": nprobe,
            "file_bytes": file_bytes,
            "directory_bytes": summary.directory_bytes,
            "build_and_partition_s": build_s,
            "bytes_per_query": run.bytes_per_query,
            "requests_per_query": run.requests_per_query,
            "p50_ms": run.p50_ms,
            "p99_ms": run.p99_ms,
            "recall_at_k": run.recall_at_k,
        }));
    }
    Ok(rows)
}

/// What the queries of one nprobe measured.
struct QueryRun {
    bytes_per_query: f64,
    requests_per_query: f64,
    p50_ms: f64,
    p99_ms: f64,
    recall_at_k: f64,
}

/// Every query at `nprobe`, each on a fresh copy of `start` (so none finds another's
/// partitions or rows), fetching what it needs from `source`; recall against `truth`.
fn run_queries(args: &BenchPartitionedArgs, start: &PartitionedIndex, source: &mut Source, nprobe: usize, queries: &[f32], truth: &[Vec<u32>]) -> anyhow::Result<QueryRun> {
    let dim = args.synthetic.dim;
    let options = SearchOptions { k: args.k, nprobe: Some(nprobe), ..SearchOptions::default() };
    let (mut times, mut total) = (Vec::new(), Transfer::default());
    let mut found = 0usize;
    for (qi, expected) in truth.iter().enumerate() {
        let wanted: HashSet<String> = expected.iter().map(|i| i.to_string()).collect();
        let query = Query::vector(queries[qi * dim..(qi + 1) * dim].to_vec());
        let mut reader = start.clone();
        let started = Instant::now();
        let ids = search_fetching(&mut reader, source, &query, &options, &mut total)?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        found += ids.iter().filter(|&&id| reader.metadata(id).get("source").is_some_and(|s| wanted.contains(s))).count();
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let per_query = |x: f64| x / truth.len() as f64;
    Ok(QueryRun {
        bytes_per_query: per_query(total.bytes as f64),
        requests_per_query: per_query(total.requests as f64),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        recall_at_k: found as f64 / (truth.len() * args.k) as f64,
    })
}

/// One search as a client runs it: what it needs fetched from `source` until nothing is
/// left, the search, then its hits' details (here the per-tile `source` column) as a page
/// shows them; the hits' ids.
fn search_fetching(reader: &mut PartitionedIndex, source: &mut Source, query: &Query, options: &SearchOptions, transfer: &mut Transfer) -> anyhow::Result<Vec<u32>> {
    loop {
        let needed = reader.needed(query, options)?;
        if needed.is_empty() {
            break;
        }
        source.read_into(reader, needed, transfer)?;
    }
    let ids: Vec<u32> = reader.search(query, options)?.iter().map(|h| h.id).collect();
    let details = reader.needed_details(&ids);
    source.read_into(reader, details, transfer)?;
    Ok(ids)
}

/// The file of an encoding with rows held the way a server (or a long-lived page) would hold
/// it: the directory and every compact partition in memory, each query reading only its
/// shortlist's rows and its hits' details from the local file (a fresh copy of that reader
/// per query, so no query finds another's rows). Per nprobe: the bytes held, the bytes read
/// per query, latency and recall.
fn measure_held(args: &BenchPartitionedArgs, built: &Built, queries: &[f32], truth: &[Vec<u32>], path: &std::path::Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut source = Source::File(path.to_path_buf());
    let mut ignored = Transfer::default();
    let mut held = PartitionedIndex::from_directory(&source.read_range(0..built.summary.directory_bytes as u64, &mut ignored)?, None)?;
    held.set_budget_bytes(u64::MAX);
    let every_partition = (0..held.partitions().len()).map(tessera::partitioned::Fetch::Partition).collect();
    source.read_into(&mut held, every_partition, &mut ignored)?;
    let held_bytes = held.directory_bytes() as u64 + held.info().loaded_bytes;
    let file_bytes = std::fs::metadata(path)?.len();
    let mut rows = Vec::new();
    for &nprobe in &args.nprobe {
        let nprobe = nprobe.min(held.partitions().len());
        let run = run_queries(args, &held, &mut source, nprobe, queries, truth)?;
        rows.push(json!({
            "tiles": built.tiles,
            "encoding": built.encoding,
            "nprobe": nprobe,
            "held_bytes": held_bytes,
            "file_bytes": file_bytes,
            "read_bytes_per_query": run.bytes_per_query,
            "p50_ms": run.p50_ms,
            "p99_ms": run.p99_ms,
            "recall_at_k": run.recall_at_k,
        }));
    }
    Ok(rows)
}

/// A printed column: title, the row's field, and for a number its divisor and decimals
/// (`None`: the field as it is, left-aligned when it is text).
type Column = (&'static str, &'static str, Option<(f64, usize)>);

const COLUMNS: [Column; 10] = [
    ("tiles", "tiles", None),
    ("encoding", "encoding", None),
    ("partitions", "partitions", None),
    ("nprobe", "nprobe", None),
    ("file MB", "file_bytes", Some((1e6, 1))),
    ("directory kB", "directory_bytes", Some((1e3, 0))),
    ("fetched kB/query", "bytes_per_query", Some((1e3, 0))),
    ("p50 ms", "p50_ms", Some((1.0, 2))),
    ("p99 ms", "p99_ms", Some((1.0, 2))),
    ("recall@10", "recall_at_k", Some((1.0, 4))),
];

const HELD_COLUMNS: [Column; 9] = [
    ("tiles", "tiles", None),
    ("encoding", "encoding", None),
    ("nprobe", "nprobe", None),
    ("held MB", "held_bytes", Some((1e6, 1))),
    ("file MB", "file_bytes", Some((1e6, 1))),
    ("read kB/query", "read_bytes_per_query", Some((1e3, 0))),
    ("p50 ms", "p50_ms", Some((1.0, 2))),
    ("p99 ms", "p99_ms", Some((1.0, 2))),
    ("recall@10", "recall_at_k", Some((1.0, 4))),
];

/// `rows` as a Markdown table of `columns`.
fn print_table(columns: &[Column], rows: &[serde_json::Value]) {
    let text = |key: &str| rows.first().is_some_and(|r| r[key].is_string());
    println!("| {} |", columns.iter().map(|c| c.0).collect::<Vec<_>>().join(" | "));
    println!("|{}", columns.iter().map(|c| if text(c.1) { "---|" } else { "---:|" }).collect::<String>());
    for r in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|&(_, key, number)| match (number, &r[key]) {
                (Some((divisor, decimals)), v) => format!("{:.*}", decimals, v.as_f64().unwrap_or(0.0) / divisor),
                (None, serde_json::Value::String(s)) => s.clone(),
                (None, v) => v.to_string(),
            })
            .collect();
        println!("| {} |", cells.join(" | "));
    }
}
