//! The new user's experiment: an index built by the build's own code path with default
//! options (adapter `auto` included) from half of LC25000's augmentation groups, queried
//! with the tiles of the other half — source images that neither the index nor anything
//! trained on it has seen — and the other way round.

use anyhow::Context;
use serde::Serialize;

use tessera::adapter::AdapterChoice;
use tessera::descriptor::{DescriptorKind, ModelRef};
use tessera::eval::{paired_bootstrap, Interval};
use tessera::index::{BuildOptions, IndexBuilder};
use tessera::search::{search, Query, SearchOptions};

use super::datasets::Dataset;
use super::{Descriptor, VitSet};

const K: usize = 5;
const BOOTSTRAP: usize = 2000;

#[derive(Debug, Serialize)]
pub struct HeldOutRow {
    pub descriptor: String,
    /// Both directions: half A indexed and B queried, then B indexed and A queried.
    pub queries: usize,
    pub p_at_5: f64,
    /// What the build's `auto` adapter decided in each direction.
    pub adapter_decisions: Vec<String>,
    /// Paired against the histogram row, clustered by group.
    pub vs_hist: Option<Interval>,
}

/// Rows for the histogram, and per (network, input size, views) the first fused weight
/// without and with the adapter.
pub fn held_out_collection(
    dataset: &Dataset,
    hist: &[Vec<f32>],
    vit: &[VitSet],
    weights: &[f32],
) -> anyhow::Result<Vec<HeldOutRow>> {
    let mut groups: Vec<&str> = dataset.meta.iter().map(|m| m.group.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    let half: Vec<bool> =
        dataset.meta.iter().map(|m| groups.binary_search(&m.group.as_str()).unwrap_or(0) % 2 == 0).collect();
    let clusters: Vec<&str> = dataset.meta.iter().map(|m| m.group.as_str()).collect();

    let mut runs: Vec<(Descriptor, Vec<Vec<f32>>, AdapterChoice)> =
        vec![(Descriptor::plain(DescriptorKind::Hist, None, 1), hist.to_vec(), AdapterChoice::None)];
    if let Some(&weight) = weights.first() {
        let kind = DescriptorKind::Fused { weight };
        for VitSet { finetuned, input_size, views, tiles } in vit {
            let fused: Vec<Vec<f32>> =
                tiles.iter().zip(hist).map(|(v, h)| kind.compose(v, h)).collect::<Result<_, _>>()?;
            for adapter in [None, Some(AdapterChoice::Auto)] {
                let spec = Descriptor {
                    finetuned: *finetuned,
                    adapter,
                    ..Descriptor::plain(kind, Some(*input_size), *views)
                };
                runs.push((spec, fused.clone(), adapter.unwrap_or(AdapterChoice::None)));
            }
        }
    }
    let mut rows = Vec::new();
    let mut hist_scores: Option<Vec<f32>> = None;
    for (spec, vectors, choice) in runs {
        let mut per_query = vec![f32::NAN; vectors.len()];
        let mut decisions = Vec::new();
        for indexed_half in [true, false] {
            let decision = score_half(dataset, &vectors, &half, indexed_half, spec, choice, &mut per_query)
                .with_context(|| format!("held-out collection, {}", spec.label()))?;
            decisions.push(decision);
        }
        let scored: Vec<f32> = per_query.iter().copied().filter(|v| !v.is_nan()).collect();
        let p_at_5 = scored.iter().map(|&v| f64::from(v)).sum::<f64>() / scored.len().max(1) as f64;
        let vs_hist = hist_scores.as_ref().map(|h| paired_bootstrap(&per_query, h, &clusters, BOOTSTRAP, 0x5eed));
        if spec.kind == DescriptorKind::Hist {
            hist_scores = Some(per_query.clone());
        }
        rows.push(HeldOutRow {
            descriptor: spec.label(),
            queries: scored.len(),
            p_at_5,
            adapter_decisions: if choice == AdapterChoice::None { Vec::new() } else { decisions },
            vs_hist,
        });
    }
    Ok(rows)
}

/// Builds the index from one half and scores every tile of the other half as a query;
/// returns the adapter decision the build printed.
fn score_half(
    dataset: &Dataset,
    vectors: &[Vec<f32>],
    half: &[bool],
    indexed_half: bool,
    spec: Descriptor,
    choice: AdapterChoice,
    per_query: &mut [f32],
) -> anyhow::Result<String> {
    let dim = vectors.first().map_or(0, Vec::len);
    let model = ModelRef { id: "eval".into(), sha256: "0".repeat(64), dim, descriptor: spec.kind, views: spec.views };
    let mut builder = IndexBuilder::new(model, BuildOptions::default())?;
    for (i, v) in vectors.iter().enumerate().filter(|&(i, _)| half[i] == indexed_half) {
        let m = &dataset.meta[i];
        builder.add(v, vec![("label".into(), m.label.clone()), ("group".into(), m.group.clone())], None)?;
    }
    let decision = builder.fit_adapter(choice)?;
    let index = builder.build()?;
    let options = SearchOptions { k: K, ..SearchOptions::default() };
    for (i, v) in vectors.iter().enumerate().filter(|&(i, _)| half[i] != indexed_half) {
        let query = match index.adapter() {
            Some(adapter) => adapter.apply(v)?,
            None => v.clone(),
        };
        let hits = search(&index, &Query::vector(query), &options)?;
        let label = &dataset.meta[i].label;
        let correct = hits.iter().filter(|h| h.metadata.get("label") == Some(label)).count();
        per_query[i] = correct as f32 / K as f32;
    }
    Ok(decision.to_string())
}
