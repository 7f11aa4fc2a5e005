//! Retrieval evaluation: how often a tile's nearest neighbours share its label, under
//! protocols that keep near-duplicates, slides, cases or hospitals out of the hits.
//!
//! Every tile is a query against all the others with exact cosine search; see
//! [`metrics`] for the definitions of P@k, MV@5, mMV@5 and R@k.

mod adapted;
pub mod bootstrap;
pub mod exact;
mod expanded;
pub mod fields;
pub mod metrics;
pub mod protocol;
mod recall;
mod site_bias;
mod slides;

use std::collections::HashMap;

use serde::Serialize;

pub use adapted::{evaluate_adapted, fold_keys, folds_by, AdaptedReport};
pub use bootstrap::{paired_bootstrap, Interval};
pub use exact::VectorSet;
pub use expanded::{evaluate_expanded, QueryVariants};
pub use metrics::Metrics;
pub use protocol::{MetaField, Protocol, TileMeta};
pub use recall::hnsw_recall_at;
pub use site_bias::SiteBias;
pub use slides::{SlideReport, SLIDE_VOTERS};

use site_bias::SiteBiasTally;
use slides::SlideTally;

use metrics::{MetricSums, RANK_DEPTH};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EvalError {
    #[error("{floats} floats are not whole vectors of dimension {dim}")]
    VectorShape { floats: usize, dim: usize },
    #[error("tile {tile} has a zero or non-finite vector; its cosine is undefined")]
    DegenerateVector { tile: usize },
    #[error("{vectors} vectors but metadata for {tiles} tiles")]
    CountMismatch { vectors: usize, tiles: usize },
    #[error("tile {tile}: no `{column}` value")]
    MissingColumn { tile: String, column: &'static str },
    #[error("HNSW index for the recall measurement: {0}")]
    Index(String),
    #[error("adapter: {0}")]
    Adapter(String),
    #[error("protocol {protocol} needs the {field} of every tile, and tile {tile} has none")]
    MissingField {
        protocol: &'static str,
        field: &'static str,
        tile: usize,
    },
}

/// Figures of one protocol over one set of tiles.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub protocol: Protocol,
    /// Every tile is a query.
    pub queries: usize,
    /// Queries left with fewer than 10 candidates after exclusions; their missing hits
    /// count as wrong.
    pub short_queries: usize,
    /// Means over queries.
    pub overall: Metrics,
    /// MV@5 averaged per class, then over classes.
    pub m_mv_at_5: f64,
    /// Per class (the query's label), in order of first appearance.
    pub per_class: Vec<ClassReport>,
    /// Slide-level figures (tiles vote for slides), when the tiles name their slides.
    pub slides: Option<SlideReport>,
    /// The share of same-class neighbours on other slides that share the query's site, when
    /// the tiles name their sites and the protocol lets same-site tiles compete.
    pub site_bias: Option<SiteBias>,
    /// P@5 of each query, by tile index (`NaN` for tiles that were not queries), for
    /// paired comparisons.
    #[serde(skip)]
    pub per_query_p_at_5: Vec<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassReport {
    pub label: String,
    pub queries: usize,
    pub metrics: Metrics,
}

/// Evaluates `vectors` (one row per tile of `meta`) under each protocol in turn.
/// The cosines of each query are computed once and shared by the protocols.
pub fn evaluate(
    vectors: &VectorSet,
    meta: &[TileMeta],
    protocols: &[Protocol],
) -> Result<Vec<EvalReport>, EvalError> {
    if vectors.len() != meta.len() {
        return Err(EvalError::CountMismatch {
            vectors: vectors.len(),
            tiles: meta.len(),
        });
    }
    let keys = TileKeys::new(meta, protocols)?;
    let mut tallies: Vec<Tally> = protocols.iter().map(|&p| Tally::new(&keys, p)).collect();
    for query in 0..meta.len() {
        let cosines = vectors.cosines_from(query);
        for (tally, &protocol) in tallies.iter_mut().zip(protocols) {
            tally.add(&keys, protocol, query, &cosines);
        }
    }
    Ok(protocols.iter().zip(tallies).map(|(&protocol, tally)| tally.report(protocol, &keys)).collect())
}

/// The running sums of one protocol's queries.
pub(crate) struct Tally {
    sums: Vec<MetricSums>,
    short: usize,
    per_query_p_at_5: Vec<f32>,
    /// Present when the tiles name their slides.
    slides: Option<SlideTally>,
    site_bias: Option<SiteBiasTally>,
}

impl Tally {
    pub(crate) fn new(keys: &TileKeys, protocol: Protocol) -> Tally {
        Tally {
            sums: vec![MetricSums::default(); keys.class_names.len()],
            short: 0,
            per_query_p_at_5: vec![f32::NAN; keys.label.len()],
            slides: keys.field(MetaField::Slide).is_some().then(|| SlideTally::new(keys)),
            site_bias: SiteBiasTally::new(keys, protocol),
        }
    }

    /// Ranks the candidates `protocol` allows for `query` by `cosines` and counts it. One
    /// scan serves the tile metrics (the first `RANK_DEPTH`) and the slide votes.
    pub(crate) fn add(&mut self, keys: &TileKeys, protocol: Protocol, query: usize, cosines: &[f32]) {
        let depth = if self.slides.is_some() { RANK_DEPTH.max(SLIDE_VOTERS) } else { RANK_DEPTH };
        let nearest = exact::top_k_where(cosines, depth, |c| !keys.excludes(protocol, query, c));
        let hits = &nearest[..nearest.len().min(RANK_DEPTH)];
        if hits.len() < RANK_DEPTH {
            self.short += 1;
        }
        let ranked: Vec<u32> = hits.iter().map(|&h| keys.label[h]).collect();
        let label = keys.label[query];
        let correct: Vec<bool> = ranked.iter().map(|&l| l == label).collect();
        self.per_query_p_at_5[query] = metrics::precision_at(&correct, 5) as f32;
        self.sums[label as usize].add(label, &ranked);
        if let Some(slides) = &mut self.slides {
            slides.add(query, cosines, &nearest[..nearest.len().min(SLIDE_VOTERS)]);
        }
        if let Some(bias) = &mut self.site_bias {
            bias.add(keys, query, cosines, |c| !keys.excludes(protocol, query, c));
        }
    }

    pub(crate) fn report(self, protocol: Protocol, keys: &TileKeys) -> EvalReport {
        let mut report = report(protocol, keys, &self.sums, self.short);
        report.per_query_p_at_5 = self.per_query_p_at_5;
        report.slides = self.slides.map(|s| s.report(keys));
        report.site_bias = self.site_bias.map(SiteBiasTally::report);
        report
    }
}

fn report(
    protocol: Protocol,
    keys: &TileKeys,
    class_sums: &[MetricSums],
    short_queries: usize,
) -> EvalReport {
    let mut total = MetricSums::default();
    for sums in class_sums {
        total.merge(sums);
    }
    let per_class: Vec<ClassReport> = keys
        .class_names
        .iter()
        .zip(class_sums)
        .map(|(label, sums)| ClassReport {
            label: label.clone(),
            queries: sums.queries,
            metrics: sums.mean(),
        })
        .collect();
    let m_mv_at_5 =
        per_class.iter().map(|c| c.metrics.mv_at_5).sum::<f64>() / per_class.len().max(1) as f64;
    EvalReport {
        protocol,
        queries: total.queries,
        short_queries,
        overall: total.mean(),
        m_mv_at_5,
        per_class,
        slides: None,
        site_bias: None,
        per_query_p_at_5: Vec::new(),
    }
}

/// Metadata interned to small integers, so the per-pair exclusion test compares numbers.
pub(crate) struct TileKeys {
    pub(crate) class_names: Vec<String>,
    pub(crate) label: Vec<u32>,
    pub(crate) group: Vec<u32>,
    /// Per [`MetaField`] (slide, case, site); `None` when some tile lacks it.
    fields: [Option<Vec<u32>>; 3],
}

impl TileKeys {
    pub(crate) fn new(meta: &[TileMeta], protocols: &[Protocol]) -> Result<Self, EvalError> {
        let (class_names, label) = intern(meta.iter().map(|m| m.label.as_str()));
        let (_, group) = intern(meta.iter().map(|m| m.group.as_str()));
        let fields = [MetaField::Slide, MetaField::Case, MetaField::Site].map(|field| {
            let values: Option<Vec<&str>> = meta.iter().map(|m| field.of(m)).collect();
            values.map(|v| intern(v.into_iter()).1)
        });
        let keys = TileKeys {
            class_names,
            label,
            group,
            fields,
        };
        for &protocol in protocols {
            for &field in protocol.excluded_fields() {
                if keys.field(field).is_none() {
                    let tile = meta.iter().position(|m| field.of(m).is_none()).unwrap_or(0);
                    return Err(EvalError::MissingField {
                        protocol: protocol.name(),
                        field: field.name(),
                        tile,
                    });
                }
            }
        }
        Ok(keys)
    }

    pub(crate) fn field(&self, field: MetaField) -> Option<&Vec<u32>> {
        let slot = match field {
            MetaField::Slide => 0,
            MetaField::Case => 1,
            MetaField::Site => 2,
        };
        self.fields[slot].as_ref()
    }

    /// Whether `protocol` keeps `candidate` out of `query`'s hits.
    pub(crate) fn excludes(&self, protocol: Protocol, query: usize, candidate: usize) -> bool {
        candidate == query
            || (protocol.excludes_group() && self.group[candidate] == self.group[query])
            || protocol.excluded_fields().iter().any(|&field| {
                // Checked present in `new` for every protocol it was given.
                self.field(field)
                    .is_some_and(|values| values[candidate] == values[query])
            })
    }
}

/// Distinct values in order of first appearance, and each item's index among them.
fn intern<'a>(items: impl Iterator<Item = &'a str>) -> (Vec<String>, Vec<u32>) {
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut names = Vec::new();
    let keys = items
        .map(|item| {
            *ids.entry(item).or_insert_with(|| {
                names.push(item.to_string());
                (names.len() - 1) as u32
            })
        })
        .collect();
    (names, keys)
}
