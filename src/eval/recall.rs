//! How much of the exact nearest neighbours the index's HNSW search finds.

use crate::index::{BuildOptions, HnswParams, IndexBuilder, ModelRef, Quantization};
use crate::search::{search, Example, Query, SearchOptions};

use super::{EvalError, VectorSet};

/// Recall@k of HNSW search against exact search: over every tile as a query, the mean of
/// |HNSW top-k ∩ exact top-k| / k, the query itself left out of both lists. The index
/// stores f32 vectors and always uses its graph, so the figure measures the graph alone.
pub fn hnsw_recall_at(vectors: &VectorSet, k: usize, hnsw: HnswParams) -> Result<f64, EvalError> {
    let index_error = |e: &dyn std::fmt::Display| EvalError::Index(e.to_string());
    let n = vectors.len();
    if n == 0 || k == 0 {
        return Ok(0.0);
    }
    // The index checks vectors against the model it names; here there is none, only a dim.
    let model = ModelRef {
        views: 1,
        id: "evaluation".into(),
        sha256: "0".repeat(64),
        dim: vectors.dim(),
        // Only the length matters to the graph.
        descriptor: crate::descriptor::DescriptorKind::Vit,
    };
    let options = BuildOptions {
        quantization: Quantization::F32,
        pca_dim: None,
        hnsw,
        graph_min_tiles: 0,
        ..BuildOptions::default()
    };
    let mut builder = IndexBuilder::new(model, options).map_err(|e| index_error(&e))?;
    for tile in 0..n {
        builder
            .add(vectors.row(tile), Vec::new(), None)
            .map_err(|e| index_error(&e))?;
    }
    let index = builder.build().map_err(|e| index_error(&e))?;
    let options = SearchOptions {
        k: k + 1,
        exact_below: 0,
        ..SearchOptions::default()
    };
    let mut found = 0usize;
    for tile in 0..n {
        let query = Query {
            positives: vec![Example::Tile(tile as u32)],
            negatives: Vec::new(),
        };
        let approx: Vec<usize> = search(&index, &query, &options)
            .map_err(|e| index_error(&e))?
            .into_iter()
            .map(|hit| hit.id as usize)
            .filter(|&id| id != tile)
            .take(k)
            .collect();
        let exact: Vec<usize> = vectors
            .top_k(tile, k + 1)
            .into_iter()
            .filter(|&id| id != tile)
            .take(k)
            .collect();
        found += approx.iter().filter(|id| exact.contains(id)).count();
    }
    Ok(found as f64 / (n * k) as f64)
}
