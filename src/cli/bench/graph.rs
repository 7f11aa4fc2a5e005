//! `tessera bench graph`: the HNSW graph build, instant-distance on one thread against the
//! batched build on 1 and 2 threads, on the synthetic vectors of `tessera bench search`:
//! build time, the speed-up over instant-distance in the same run, recall@k and the median
//! query time (one thread) at two beam widths, and whether the file is the same whatever the thread count (its SHA-256).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use serde_json::json;
use sha2::{Digest, Sha256};

use tessera::descriptor::DescriptorKind;
use tessera::index::{BuildOptions, GraphConstruction, HnswParams, Index, IndexBuilder, ModelRef, Quantization};
use tessera::search::SearchOptions;

use super::search::{exact_truth, time_queries, QueryArgs, BenchVectors, SyntheticArgs};

#[derive(clap::Args)]
pub struct BenchGraphArgs {
    /// Index sizes (tiles), comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [100_000usize, 1_000_000])]
    sizes: Vec<usize>,
    #[command(flatten)]
    synthetic: SyntheticArgs,
    /// Builds to time: CONSTRUCTION:THREADS, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["instant-distance:1".to_string(), "batched:1".to_string(), "batched:2".to_string()])]
    builds: Vec<String>,
    #[command(flatten)]
    query: QueryArgs,
    #[arg(long, default_value = "bench/results/graph-build.json")]
    output: PathBuf,
}

pub fn run(args: BenchGraphArgs) -> anyhow::Result<()> {
    let builds: Vec<(GraphConstruction, usize)> = args.builds.iter().map(|b| parse_build(b)).collect::<anyhow::Result<_>>()?;
    if args.sizes.is_empty() || builds.is_empty() || args.query.queries == 0 || args.query.k == 0 {
        bail!("need at least one size, build, query and k");
    }
    let mut rows = Vec::new();
    for &n in &args.sizes {
        eprintln!("== {n} tiles × {} dims", args.synthetic.dim);
        let data = BenchVectors::generate(n, args.query.queries, &args.synthetic, 42);
        let truth = exact_truth(&data, args.query.k);
        let mut baseline_s = None;
        for &(construction, threads) in &builds {
            let mut row = bench_build(&args, &data, &truth, construction, threads)?;
            let build_s = row["build_s"].as_f64().unwrap_or(f64::NAN);
            if construction == GraphConstruction::InstantDistance && threads == 1 {
                baseline_s.get_or_insert(build_s);
            }
            row["speedup_vs_instant_distance_1_thread"] = json!(baseline_s.map(|b| b / build_s));
            eprintln!(
                "{construction} on {threads} thread(s): {build_s:.1} s, speed-up {}, recall@{} {}, sha256 {}",
                baseline_s.map_or("-".into(), |b| format!("{:.2}×", b / build_s)),
                args.query.k,
                row["recall_at_k"],
                &row["sha256"].as_str().unwrap_or("")[..12],
            );
            rows.push(row);
        }
    }
    let report = json!({
        "benchmark": "graph-build",
        "dim": args.synthetic.dim,
        "queries": args.query.queries,
        "k": args.query.k,
        "data": format!(
            "the synthetic vectors of `tessera bench search` (typical cosine {}, eigenvalues (1+i)^-{}); f16 vectors, default graph parameters",
            args.synthetic.mean_cos, args.synthetic.decay
        ),
        "recall": "recall@k of HNSW search against exact float32 inner-product search on the unquantized vectors; queries on one thread",
        "provenance": crate::cli::Provenance::now(),
        "rows": rows,
    });
    super::write_results(&args.output, &report)
}

/// `batched:2` → (Batched, 2).
fn parse_build(text: &str) -> anyhow::Result<(GraphConstruction, usize)> {
    let (construction, threads) = text.split_once(':').unwrap_or((text, "1"));
    let construction: GraphConstruction = construction.parse().map_err(anyhow::Error::msg)?;
    match threads.parse::<usize>() {
        Ok(t) if t > 0 => Ok((construction, t)),
        _ => bail!("`{text}`: expected CONSTRUCTION:THREADS with THREADS ≥ 1"),
    }
}

fn bench_build(
    args: &BenchGraphArgs,
    data: &BenchVectors,
    truth: &[Vec<u32>],
    construction: GraphConstruction,
    threads: usize,
) -> anyhow::Result<serde_json::Value> {
    let model = ModelRef { views: 1, id: "synthetic".into(), sha256: "0".repeat(64), dim: data.dim, descriptor: DescriptorKind::Vit };
    let options = BuildOptions {
        quantization: Quantization::F16,
        hnsw: HnswParams { construction, ..HnswParams::default() },
        graph_min_tiles: 0,
        ..BuildOptions::default()
    };
    let mut builder = IndexBuilder::new(model.clone(), options)?;
    for v in data.base.chunks_exact(data.dim) {
        builder.add(v, Vec::new(), None)?;
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let started = Instant::now();
    let built = pool.install(|| builder.build())?;
    let build_s = started.elapsed().as_secs_f64();
    let bytes = built.to_bytes();
    drop(built);
    let index = Index::from_bytes(&bytes, Some(&model))?;
    let (mut recall, mut p50) = (serde_json::Map::new(), serde_json::Map::new());
    for &ef in &args.query.ef {
        let options = SearchOptions { k: args.query.k, ef: Some(ef), exact_below: 0, ..SearchOptions::default() };
        let (median, _, found) = time_queries(&index, data, truth, &options)?;
        recall.insert(format!("ef={ef}"), json!(found));
        p50.insert(format!("ef={ef}"), json!(median));
    }
    Ok(json!({
        "tiles": data.len(),
        "construction": construction.to_string(),
        "threads": threads,
        "build_s": build_s,
        "recall_at_k": recall,
        "p50_ms": p50,
        "graph_mean_degree": index.info().graph_mean_degree,
        "file_bytes": bytes.len(),
        "sha256": hex::encode(Sha256::digest(&bytes)),
    }))
}
