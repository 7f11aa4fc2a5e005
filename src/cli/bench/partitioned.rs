//! `tessera bench partitioned`: the partitioned index (`src/partitioned`) served over local
//! HTTP (`tessera serve`'s handler on a thread) and searched the way the browser does it —
//! a cold reader per query: the directory is fetched once per size, then each query fetches
//! the partitions it probes by Range requests. Per size and nprobe: bytes fetched per
//! query, latency (fetch + verify + search) and recall@10 against exact float32 search on
//! the same synthetic vectors as `tessera bench search`. An encoding with re-ranking vectors
//! (`int8+pca64+rerankf16`) keeps them as row ranges: a query fetches its probed partitions'
//! compact vectors, then its shortlist's rows.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use serde_json::json;

use tessera::index::{BuildOptions, IndexBuilder, ModelRef};
use tessera::partitioned::{PartitionOptions, PartitionedIndex};
use tessera::search::{Query, SearchOptions};

use super::search::{exact_truth, parse_variant, BenchVectors, SyntheticArgs};
use crate::cli::remote::{Source, Transfer};

#[derive(clap::Args)]
pub struct BenchPartitionedArgs {
    /// Index sizes (tiles), comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [100_000usize, 1_000_000, 10_000_000])]
    sizes: Vec<usize>,
    /// Sizes above this are recorded as skipped: the synthetic vectors, the ground truth and
    /// the source index are all held in memory (10⁷ × 384 f32 is 15 GB).
    #[arg(long, default_value_t = 2_000_000)]
    max_tiles: usize,
    #[command(flatten)]
    synthetic: SyntheticArgs,
    #[arg(long, default_value_t = 200)]
    queries: usize,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Partitions probed per query, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [4usize, 8, 16, 32])]
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

    let (mut rows, mut skipped) = (Vec::new(), Vec::new());
    for &n in &args.sizes {
        if n > args.max_tiles {
            eprintln!("== {n} tiles: skipped (above --max-tiles {})", args.max_tiles);
            skipped.push(json!({ "tiles": n, "why": format!("above --max-tiles {}: the vectors, the ground truth and the source index are held in memory", args.max_tiles) }));
            continue;
        }
        eprintln!("== {n} tiles × {} dims", args.synthetic.dim);
        let data = BenchVectors::generate(n, args.queries, &args.synthetic, 42);
        let truth = exact_truth(&data, args.k);
        for encoding in &args.encodings {
            rows.extend(bench_size(&args, &data, &truth, encoding, &dir.path().join(format!("{n}.tsp")), &base)?);
        }
    }
    server.unblock();
    print_rows(&rows);
    let report = json!({
        "benchmark": "partitioned",
        "dim": args.synthetic.dim,
        "queries": args.queries,
        "k": args.k,
        "data": "the synthetic vectors of `tessera bench search` (same generator and seed)",
        "served": "over HTTP on 127.0.0.1 (`tessera serve`'s handler, one thread); every query starts with no partition loaded",
        "latency": "per query: the Range requests for its probed partitions (and its shortlist's rows), their checks, the search; one thread",
        "recall": "recall@k against exact float32 inner-product search on the unquantized vectors",
        "provenance": crate::cli::Provenance::now(),
        "skipped": skipped,
        "rows": rows,
    });
    super::write_results(&args.output, &report)
}

fn bench_size(
    args: &BenchPartitionedArgs,
    data: &BenchVectors,
    truth: &[Vec<u32>],
    encoding: &str,
    path: &std::path::Path,
    base: &str,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let (quantization, pca_dim, rerank) = parse_variant(encoding)?;
    let n = data.len();
    let model = ModelRef { views: 1, id: "synthetic".into(), sha256: "0".repeat(64), dim: data.dim, descriptor: tessera::descriptor::DescriptorKind::Vit };
    let started = Instant::now();
    let build = BuildOptions { quantization, pca_dim, rerank, graph_min_tiles: usize::MAX, ..BuildOptions::default() };
    let mut builder = IndexBuilder::new(model, build)?;
    // The source position of each tile, to score recall: partitioned ids are partition order.
    for (i, v) in data.base.chunks_exact(data.dim).enumerate() {
        builder.add(v, vec![("source".into(), i.to_string())], None)?;
    }
    let index = builder.build()?;
    let options = PartitionOptions { partitions: args.partitions, shortlist: args.shortlist, ..PartitionOptions::default() };
    let summary = crate::cli::partition::write(&index, &options, path)?;
    drop(index);
    let build_s = started.elapsed().as_secs_f64();
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
        let search_options = SearchOptions { k: args.k, nprobe: Some(nprobe), ..SearchOptions::default() };
        let (mut times, mut bytes, mut requests, mut found) = (Vec::new(), Vec::new(), 0usize, 0usize);
        for (qi, expected) in truth.iter().enumerate() {
            let wanted: HashSet<String> = expected.iter().map(|i| i.to_string()).collect();
            let query = Query::vector(data.query(qi).to_vec());
            let mut reader = cold.clone();
            let mut transfer = Transfer::default();
            let started = Instant::now();
            loop {
                let needed = reader.needed(&query, &search_options)?;
                if needed.is_empty() {
                    break;
                }
                for fetch in needed {
                    let bytes = source.read_range(reader.range(&fetch).expect("a range of the file"), &mut transfer)?;
                    reader.add(&fetch, &bytes)?;
                }
            }
            let hits = reader.search(&query, &search_options)?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            bytes.push(transfer.bytes as f64);
            requests += transfer.requests;
            found += hits.iter().filter(|h| h.metadata.get("source").is_some_and(|s| wanted.contains(s))).count();
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        let mean_bytes = bytes.iter().sum::<f64>() / bytes.len() as f64;
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
            "bytes_per_query": mean_bytes,
            "requests_per_query": requests as f64 / truth.len() as f64,
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "recall_at_k": found as f64 / (truth.len() * args.k) as f64,
        }));
    }
    Ok(rows)
}

fn print_rows(rows: &[serde_json::Value]) {
    println!("| tiles | encoding | partitions | nprobe | file MB | directory kB | fetched kB/query | p50 ms | p99 ms | recall@10 |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.0} | {:.0} | {:.2} | {:.2} | {:.4} |",
            r["tiles"],
            r["encoding"].as_str().unwrap_or(""),
            r["partitions"],
            r["nprobe"],
            r["file_bytes"].as_f64().unwrap_or(0.0) / 1e6,
            r["directory_bytes"].as_f64().unwrap_or(0.0) / 1e3,
            r["bytes_per_query"].as_f64().unwrap_or(0.0) / 1e3,
            r["p50_ms"].as_f64().unwrap_or(0.0),
            r["p99_ms"].as_f64().unwrap_or(0.0),
            r["recall_at_k"].as_f64().unwrap_or(0.0),
        );
    }
}
