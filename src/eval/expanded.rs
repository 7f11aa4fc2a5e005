//! Evaluating query expansion: the index holds each tile's descriptor as usual, and each
//! query is the tile plus its variants ([`crate::expand`]), their rankings fused. The
//! candidates and exclusions are the protocol's, as for the plain descriptors.

use crate::expand::{rrf_scores, Fusion};

use super::{exact::VectorSet, metrics::RANK_DEPTH, EvalError, EvalReport, Protocol, Tally, TileKeys, TileMeta};

/// Each query's variants, described like the stored vectors (one flat row set per
/// variant), and how their rankings are fused. No rows: queries are not expanded.
#[derive(Debug, Clone, Copy)]
pub struct QueryVariants<'a> {
    pub rows: &'a [Vec<f32>],
    pub fusion: Fusion,
}

impl QueryVariants<'_> {
    pub const NONE: QueryVariants<'static> = QueryVariants { rows: &[], fusion: Fusion::Mean };
}

/// How deep each list goes into reciprocal-rank fusion: ten times the depth scored.
const RRF_DEPTH: usize = 10 * RANK_DEPTH;

/// Scores `stored` (one row per tile of `meta`) under each protocol with every query
/// expanded: `variants[v]` holds variant `v` of every tile, described like `stored`.
pub fn evaluate_expanded(
    stored: &VectorSet,
    variants: &[VectorSet],
    meta: &[TileMeta],
    protocols: &[Protocol],
    fusion: Fusion,
) -> Result<Vec<EvalReport>, EvalError> {
    check_counts(stored, variants, meta.len())?;
    let keys = TileKeys::new(meta, protocols)?;
    let mut tallies: Vec<Tally> = protocols.iter().map(|&p| Tally::new(&keys, p)).collect();
    for query in 0..meta.len() {
        // The lists, and their mean, do not depend on the protocol; reciprocal ranks do.
        let lists = query_lists(stored, variants, query);
        let mean = matches!(fusion, Fusion::Mean).then(|| mean(&lists));
        for (tally, &protocol) in tallies.iter_mut().zip(protocols) {
            let rrf;
            let scores = match &mean {
                Some(mean) => mean,
                None => {
                    rrf = rrf_scores(&lists, RRF_DEPTH, |c| !keys.excludes(protocol, query, c));
                    &rrf
                }
            };
            tally.add(&keys, protocol, query, scores);
        }
    }
    Ok(protocols.iter().zip(tallies).map(|(&protocol, tally)| tally.report(protocol, &keys)).collect())
}

fn check_counts(stored: &VectorSet, variants: &[VectorSet], tiles: usize) -> Result<(), EvalError> {
    match std::iter::once(stored).chain(variants).find(|set| set.len() != tiles) {
        Some(bad) => Err(EvalError::CountMismatch { vectors: bad.len(), tiles }),
        None => Ok(()),
    }
}

/// The query's cosines with every stored tile, then each of its variants'.
fn query_lists(stored: &VectorSet, variants: &[VectorSet], query: usize) -> Vec<Vec<f32>> {
    std::iter::once(stored.cosines_from(query)).chain(variants.iter().map(|set| stored.cosines_with(set.row(query)))).collect()
}

fn mean(lists: &[Vec<f32>]) -> Vec<f32> {
    let mut sum = vec![0.0f32; lists[0].len()];
    for list in lists {
        sum.iter_mut().zip(list).for_each(|(s, v)| *s += v);
    }
    let n = lists.len() as f32;
    sum.iter_mut().for_each(|s| *s /= n);
    sum
}

/// The fused score of every stored tile for `query` and its variants; without variants,
/// its plain cosines. `allowed` says which candidates fill the reciprocal-rank lists.
pub(crate) fn query_scores(
    stored: &VectorSet,
    variants: &[VectorSet],
    query: usize,
    fusion: Fusion,
    allowed: impl Fn(usize) -> bool + Copy,
) -> Vec<f32> {
    let mut lists = query_lists(stored, variants, query);
    match fusion {
        _ if lists.len() == 1 => lists.pop().unwrap_or_default(),
        Fusion::Mean => mean(&lists),
        Fusion::Rrf => rrf_scores(&lists, RRF_DEPTH, allowed),
    }
}
