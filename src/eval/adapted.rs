//! Evaluating a descriptor that is trained on the collection (the adapter) without
//! leakage: the tiles are split into folds that keep whole groups, slides, cases or sites
//! together (whichever the protocol excludes), and each fold's queries are scored with an
//! adapter trained — hyper-parameters and the keep-or-skip decision included — on the
//! other folds only. The candidates are those the protocol allows, exactly as for the plain
//! descriptors, so the figures sit side by side.

use crate::adapter::{self, AdapterChoice, AdapterParams, TileLabels};
use super::expanded::{query_scores, QueryVariants};
use super::{exact::VectorSet, EvalError, EvalReport, MetaField, Protocol, Tally, TileKeys, TileMeta};

/// Which tiles must never meet in training and scoring under `protocol`: the value of its
/// strictest excluded column (site, then case, then slide), else the group.
pub fn fold_keys(meta: &[TileMeta], protocol: Protocol) -> Vec<&str> {
    let field = fold_field(meta, protocol);
    meta.iter().map(|m| field.and_then(|f| f.of(m)).unwrap_or(&m.group)).collect()
}

/// The protocol's strictest excluded column that every tile has; `None`: the group.
fn fold_field(meta: &[TileMeta], protocol: Protocol) -> Option<MetaField> {
    protocol.excluded_fields().iter().rev().copied().find(|f| meta.iter().all(|m| f.of(m).is_some()))
}

/// Figures of an adapted descriptor under one protocol.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdaptedReport {
    pub report: EvalReport,
    /// The column the folds kept apart, and how many folds there were.
    pub folds_by: &'static str,
    pub folds: usize,
    /// Folds whose training kept an adapter (the others scored the plain descriptor).
    pub folds_adapted: usize,
    /// The parameters each adapted fold chose.
    pub params: Vec<AdapterParams>,
}

/// Scores `vectors` (rows of `dim`, one per tile of `meta`) under `protocol`, each query
/// through an adapter trained as `choice` asks on the tiles outside its fold. Queries are
/// expanded when `variants` has rows; the adapter is trained on `vectors` only.
pub fn evaluate_adapted(
    vectors: &[f32],
    dim: usize,
    meta: &[TileMeta],
    protocol: Protocol,
    choice: AdapterChoice,
    folds: usize,
    variants: QueryVariants,
) -> Result<AdaptedReport, EvalError> {
    if dim == 0 || vectors.len() != meta.len() * dim {
        return Err(EvalError::CountMismatch { vectors: vectors.len() / dim.max(1), tiles: meta.len() });
    }
    if let Some(bad) = variants.rows.iter().find(|v| v.len() != vectors.len()) {
        return Err(EvalError::CountMismatch { vectors: bad.len() / dim, tiles: meta.len() });
    }
    let keys = TileKeys::new(meta, &[protocol])?;
    let fold_key = fold_keys(meta, protocol);
    let mut distinct: Vec<&str> = fold_key.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let folds = folds.clamp(2, distinct.len().max(2));
    let fold_of: Vec<usize> = fold_key.iter().map(|k| distinct.binary_search(k).unwrap_or(0) % folds).collect();
    let labels: Vec<TileLabels> = meta
        .iter()
        .map(|m| TileLabels {
            label: Some(m.label.clone()),
            folds: [m.site.clone(), m.case.clone(), m.slide.clone(), Some(m.group.clone())],
        })
        .collect();
    let mut tally = Tally::new(&keys, protocol);
    let (mut folds_adapted, mut params) = (0, Vec::new());
    for fold in 0..folds {
        let queries: Vec<usize> = (0..meta.len()).filter(|&i| fold_of[i] == fold).collect();
        if queries.is_empty() {
            continue;
        }
        let train: Vec<usize> = (0..meta.len()).filter(|&i| fold_of[i] != fold).collect();
        let train_vectors: Vec<f32> = train.iter().flat_map(|&i| vectors[i * dim..(i + 1) * dim].iter().copied()).collect();
        let train_labels: Vec<TileLabels> = train.iter().map(|&i| labels[i].clone()).collect();
        let decision = adapter::train(&train_vectors, dim, &train_labels, choice).map_err(|e| EvalError::Adapter(e.to_string()))?;
        let (adapted, adapted_variants, adapted_dim) = match &decision.adapter {
            Some(a) => {
                folds_adapted += 1;
                params.push(a.info().params);
                let apply = |rows: &[f32]| a.apply_rows(rows).map_err(|e| EvalError::Adapter(e.to_string()));
                (apply(vectors)?, variants.rows.iter().map(|v| apply(v)).collect::<Result<Vec<_>, _>>()?, a.dim_out())
            }
            None => (vectors.to_vec(), variants.rows.to_vec(), dim),
        };
        let set = VectorSet::new(&adapted, adapted_dim)?;
        let variant_sets =
            adapted_variants.iter().map(|v| VectorSet::new(v, adapted_dim)).collect::<Result<Vec<_>, _>>()?;
        for &query in &queries {
            let scores = query_scores(&set, &variant_sets, query, variants.fusion, |c| !keys.excludes(protocol, query, c));
            tally.add(&keys, protocol, query, &scores);
        }
    }
    Ok(AdaptedReport { report: tally.report(protocol, &keys), folds_by: folds_by(meta, protocol), folds, folds_adapted, params })
}

/// The name of the column [`fold_keys`] takes its values from.
pub fn folds_by(meta: &[TileMeta], protocol: Protocol) -> &'static str {
    fold_field(meta, protocol).map_or("group", MetaField::name)
}
