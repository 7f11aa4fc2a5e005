//! Searching an [`Index`]: exact or HNSW, with positive and negative examples, metadata
//! filters, at most one hit per slide/case (or any metadata key), and MMR diversity.
//!
//! # Scoring with several examples
//! For a tile `x` (stored vector), positives `p₁..pₘ` and negatives `n₁..nₖ` (all unit
//! vectors, cosine = inner product):
//!
//! ```text
//! score(x) = mean_i cos(x, pᵢ) − β · max_j cos(x, nⱼ)        (β = negative_weight)
//! ```
//!
//! Positives are averaged: they are examples of one thing the user wants, and the mean of
//! cosines is the cosine with the mean vector (Rocchio's query point), so one graph
//! traversal serves any number of positives. Negatives are maxed: each rejects one look
//! (a fold, a stain artefact, a near-duplicate); averaging several different rejected looks
//! blurs them into a direction that also penalizes unrelated tissue, while the max
//! penalizes only tiles that resemble some negative.
//!
//! Measured by simulated feedback on the model's LC25000 vectors (`bench/search_feedback.py`:
//! 238 queries whose top 20 held a wrong-class tile; up to 3 right-class hits as positives,
//! up to 3 wrong-class hits as negatives; P@10 of the remaining ranking, same group
//! excluded): no feedback 0.831, positives only 0.893, mean-pos − 0.5·max-neg 0.947,
//! max-pos − 0.5·max-neg 0.920 (so positives are averaged), mean-pos − 0.5·mean-neg 0.947
//! (a tie with max on this task, whose negatives are homogeneous). β = 0.5 is the default:
//! 0.25 → 0.927, 0.4 → 0.942, 0.6 → 0.948, 0.75 → 0.906, 1.0 → 0.578.
//!
//! With one query and no negatives the score is plain
//! cosine similarity. Candidates come from the Rocchio vector `mean(p) − β·mean(n)`
//! (graph search) and are then re-scored exactly with the formula above — on the
//! full-dimension re-ranking vectors when the index stores them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::index::{dot_f32, normalize, ColumnRef, Index, PreparedQuery, VectorStore};
use crate::vector::top_k_where;

mod query;
pub use query::{Example, Query};

/// Keep only tiles whose `key` value is in `include` (when non-empty) and not in `exclude`.
/// A tile without a value for `key` fails a non-empty `include`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub key: String,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// Unknown fields are refused: a misspelt option (`uniqueBy`) must not be silently ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchOptions {
    pub k: usize,
    /// At most one hit per value of this metadata key ("slide", "case", ...).
    pub unique_by: Option<String>,
    pub filters: Vec<Filter>,
    /// MMR trade-off λ in [0, 1]: 1 is pure relevance; lower values push the hits apart.
    pub mmr: Option<f32>,
    /// β in the score: how strongly negatives push tiles down.
    pub negative_weight: f32,
    /// Graph beam width; defaults to the index's build-time `ef_search`.
    pub ef: Option<usize>,
    /// Force exact (brute-force) search even when the index has a graph.
    pub exact: bool,
    /// Indexes with fewer tiles than this are always searched exactly (the same size below
    /// which `tessera build` stores no graph: an f16 scan of 10k tiles takes ~2 ms).
    pub exact_below: usize,
    /// Partitions a partitioned index probes; defaults to the index's own `nprobe`
    /// (ignored by a whole index).
    pub nprobe: Option<usize>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 10,
            unique_by: None,
            filters: Vec::new(),
            mmr: None,
            negative_weight: 0.5,
            ef: None,
            exact: false,
            exact_below: 10_000,
            nprobe: None,
        }
    }
}

/// One result, in rank order; `metadata` holds every non-empty column of the tile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// 1-based rank.
    pub rank: usize,
    /// Tile id: its position in the build input.
    pub id: u32,
    pub score: f32,
    pub metadata: BTreeMap<String, String>,
    pub has_thumbnail: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the query has no positive example")]
    NoPositive,
    #[error("{which} example {index}: {what}")]
    BadExample { which: &'static str, index: usize, what: String },
    #[error("bad search option: {0}")]
    BadOption(String),
    #[error("partition {partition} of the index is not loaded yet (ask which partitions a query needs first)")]
    NotLoaded { partition: usize },
    #[error("no partition of the index is loaded yet (load the partitions a query needs first)")]
    NothingLoaded,
    #[error("the re-ranking row of tile {tile} is not loaded yet (ask what a query needs first)")]
    RowNotLoaded { tile: u32 },
}

/// Runs a search; hits are sorted by descending score (or MMR order when `mmr` is set).
pub fn search(index: &Index, query: &Query, options: &SearchOptions) -> Result<Vec<Hit>, SearchError> {
    check_scoring(query, options.negative_weight)?;
    check_mmr(options)?;
    // Columns and filter values are resolved once here, not per tile.
    let filters = options.filters.iter().map(|f| CodeFilter::new(index, f)).collect::<Result<Vec<_>, _>>()?;
    let unique = options.unique_by.as_deref().map(|key| column(index, key)).transpose()?;
    let positives = resolve(index, &query.positives, "positive")?;
    let negatives = resolve(index, &query.negatives, "negative")?;
    if index.is_empty() || options.k == 0 {
        return Ok(Vec::new());
    }
    let k = options.k.min(index.len());
    let scorer = Scorer::new(index, &positives, &negatives, options.negative_weight);
    let accept = |id: u32| filters.iter().all(|f| f.accepts(id as usize));

    // Enough candidates for the filters, unique-by and MMR to choose k from.
    let want = if options.mmr.is_some() { (k * 4).min(index.len()) } else { k };
    let use_graph = !options.exact && index.len() >= options.exact_below && index.graph.is_some();
    let mut shortlist = if use_graph {
        let mut ef = options.ef.or(index.hnsw.map(|h| h.ef_search)).unwrap_or(64).max(want);
        loop {
            let ranked = scorer.graph_candidates(index, ef);
            let picked = pick(ranked.iter().copied().filter(|&(_, id)| accept(id)), unique, want);
            // Filters or unique-by left too few: widen the beam, then fall back to a scan.
            if picked.len() >= want || ef >= index.len() {
                break picked;
            }
            ef = (ef * 4).min(index.len());
            if ef * 2 > index.len() {
                break pick_best(&scorer.exact_scores(index, &accept), &accept, unique, want);
            }
        }
    } else {
        pick_best(&scorer.exact_scores(index, &accept), &accept, unique, want)
    };
    if let Some(lambda) = options.mmr {
        shortlist = mmr(index, shortlist, lambda, k);
    }
    shortlist.truncate(k);
    Ok(shortlist
        .into_iter()
        .enumerate()
        .map(|(i, (score, id))| Hit {
            rank: i + 1,
            id,
            score,
            metadata: index.metadata(id as usize),
            has_thumbnail: index.thumbnail(id as usize).is_some(),
        })
        .collect())
}

/// The search's score (mean cosine to the positives − β · max cosine to the negatives) of
/// each descriptor in `descriptors` (back to back, each the index's model dimension; made
/// like the index's vectors, e.g. the tiles of a slide being scanned), in the space the
/// index's final scores use: the full model space when it keeps re-ranking vectors, else
/// its stored (possibly PCA-reduced) space.
pub fn score_descriptors(index: &Index, query: &Query, negative_weight: f32, descriptors: &[f32]) -> Result<Vec<f32>, SearchError> {
    check_scoring(query, negative_weight)?;
    let positives = resolve(index, &query.positives, "positive")?;
    let negatives = resolve(index, &query.negatives, "negative")?;
    let full = index.rerank.is_some();
    let space = |p: &Probe| if full { p.full.clone().unwrap_or_else(|| p.stored.clone()) } else { p.stored.clone() };
    let (positives, negatives): (Vec<Vec<f32>>, Vec<Vec<f32>>) = (positives.iter().map(space).collect(), negatives.iter().map(space).collect());
    score_units(&positives, &negatives, negative_weight, descriptors, index.model().dim, |unit| if full { unit } else { index.project(&unit) })
}

/// The search's score of each `dim`-d descriptor in `descriptors` (back to back),
/// normalized and mapped by `space` into the examples' space.
pub(crate) fn score_units(
    positives: &[Vec<f32>],
    negatives: &[Vec<f32>],
    negative_weight: f32,
    descriptors: &[f32],
    dim: usize,
    space: impl Fn(Vec<f32>) -> Vec<f32>,
) -> Result<Vec<f32>, SearchError> {
    if dim == 0 || descriptors.len() % dim != 0 {
        return Err(SearchError::BadOption(format!("{} descriptor values are not a whole number of {dim}-d descriptors", descriptors.len())));
    }
    descriptors
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, d)| {
            let unit = normalize(d, dim).map_err(|what| SearchError::BadOption(format!("descriptor {i}: {what}")))?;
            let v = space(unit);
            Ok(combine(positives, negatives, negative_weight, |p| dot_f32(p, &v)))
        })
        .collect()
}

/// What every scoring needs of a query: a positive example and a usable β.
pub(crate) fn check_scoring(query: &Query, negative_weight: f32) -> Result<(), SearchError> {
    if query.positives.is_empty() {
        return Err(SearchError::NoPositive);
    }
    if !negative_weight.is_finite() || negative_weight < 0.0 {
        return Err(SearchError::BadOption(format!("negative weight {negative_weight} must be ≥ 0")));
    }
    Ok(())
}

/// A candidate's score from its similarity to each example (the module docs): the mean
/// over the positives − β · the maximum over the negatives.
pub(crate) fn combine<P>(positives: &[P], negatives: &[P], beta: f32, similarity: impl Fn(&P) -> f32) -> f32 {
    let pos = positives.iter().map(&similarity).sum::<f32>() / positives.len() as f32;
    if negatives.is_empty() {
        return pos;
    }
    pos - beta * negatives.iter().map(&similarity).fold(f32::NEG_INFINITY, f32::max)
}

/// An example in the two spaces an index may score in: the stored (navigation) space,
/// and the full model space when the index keeps re-ranking vectors.
struct Probe {
    stored: Vec<f32>,
    full: Option<Vec<f32>>,
}

fn resolve(index: &Index, examples: &[Example], which: &'static str) -> Result<Vec<Probe>, SearchError> {
    examples
        .iter()
        .enumerate()
        .map(|(i, e)| match e {
            Example::Vector(v) => {
                let unit = normalize(v, index.model().dim).map_err(|what| SearchError::BadExample { which, index: i, what })?;
                Ok(Probe { stored: index.project(&unit), full: index.rerank.is_some().then_some(unit) })
            }
            Example::Tile(id) => match index.stored_vector(*id as usize) {
                Some(stored) => Ok(Probe { stored, full: index.rerank_vector(*id as usize) }),
                None => Err(SearchError::BadExample {
                    which,
                    index: i,
                    what: format!("tile {id} is not in the index ({} tiles)", index.len()),
                }),
            },
        })
        .collect()
}

/// MMR's λ must be in [0, 1].
pub(crate) fn check_mmr(options: &SearchOptions) -> Result<(), SearchError> {
    match options.mmr {
        Some(l) if !(0.0..=1.0).contains(&l) => Err(SearchError::BadOption(format!("mmr λ {l} is outside [0, 1]"))),
        _ => Ok(()),
    }
}

/// A key that no tile has would make unique-by, a filter or slide ranking silently do
/// nothing (or everything): refuse it, naming the columns there are.
fn column<'a>(index: &'a Index, key: &str) -> Result<ColumnRef<'a>, SearchError> {
    index.metadata.column(key).ok_or_else(|| unknown_column(key, index.metadata.column_names()))
}

/// The error for a metadata key no tile has, naming the index's columns.
pub(crate) fn unknown_column<'a>(key: &str, columns: impl Iterator<Item = &'a str>) -> SearchError {
    let columns: Vec<&str> = columns.collect();
    SearchError::BadOption(format!("no tile has a `{key}` value; the index's columns are {}", columns.join(", ")))
}

/// A [`Filter`] resolved for one query: which of its column's values pass, by code.
struct CodeFilter<'a> {
    column: ColumnRef<'a>,
    allowed: Vec<bool>,
}

impl<'a> CodeFilter<'a> {
    fn new(index: &'a Index, filter: &Filter) -> Result<CodeFilter<'a>, SearchError> {
        let column = column(index, &filter.key)?;
        let allowed = (0..column.codes() as u32)
            .map(|code| {
                let v = column.decode(code);
                let included = filter.include.is_empty() || v.is_some_and(|v| filter.include.iter().any(|i| i == v));
                let excluded = v.is_some_and(|v| filter.exclude.iter().any(|e| e == v));
                included && !excluded
            })
            .collect();
        Ok(CodeFilter { column, allowed })
    }

    fn accepts(&self, id: usize) -> bool {
        self.allowed[self.column.code(id) as usize]
    }
}

/// Walks candidates best first, keeping at most one per value of the `unique` column, up
/// to `want`.
fn pick(ranked: impl Iterator<Item = (f32, u32)>, unique: Option<ColumnRef<'_>>, want: usize) -> Vec<(f32, u32)> {
    let mut seen = vec![false; unique.map_or(0, |c| c.codes())];
    let mut out = Vec::with_capacity(want);
    for (score, id) in ranked {
        if let Some(column) = unique {
            let code = column.code(id as usize);
            // Tiles without a value for the key are each their own group.
            if column.decode(code).is_some() && std::mem::replace(&mut seen[code as usize], true) {
                continue;
            }
        }
        out.push((score, id));
        if out.len() >= want {
            break;
        }
    }
    out
}

/// [`pick`] over every tile's score (`scores[id]`): only the best few are ordered (the one
/// top-k, a single pass) instead of sorting them all, widening while unique-by leaves too few.
fn pick_best(scores: &[f32], accept: &dyn Fn(u32) -> bool, unique: Option<ColumnRef<'_>>, want: usize) -> Vec<(f32, u32)> {
    let mut head = want.max(1);
    loop {
        let best = top_k_where(scores, head, |id| accept(id as u32));
        let exhausted = best.len() < head;
        let picked = pick(best.iter().map(|&id| (scores[id], id as u32)), unique, want);
        if picked.len() >= want || exhausted {
            return picked;
        }
        head *= 4;
    }
}

/// Maximal marginal relevance over the index's stored vectors.
fn mmr(index: &Index, candidates: Vec<(f32, u32)>, lambda: f32, k: usize) -> Vec<(f32, u32)> {
    mmr_order(&candidates, lambda, k, |id| index.vectors.decode(id as usize))
}

/// Maximal marginal relevance: repeatedly take the candidate maximizing
/// `λ·score − (1−λ)·max cos(candidate, already taken)`; `vector` gives a candidate's
/// stored vector by id.
pub(crate) fn mmr_order(candidates: &[(f32, u32)], lambda: f32, k: usize, vector: impl Fn(u32) -> Vec<f32>) -> Vec<(f32, u32)> {
    let vectors: Vec<Vec<f32>> = candidates.iter().map(|&(_, id)| vector(id)).collect();
    let mut max_sim = vec![f32::NEG_INFINITY; candidates.len()];
    let mut taken = vec![false; candidates.len()];
    let mut out = Vec::with_capacity(k);
    for _ in 0..k.min(candidates.len()) {
        let mut best: Option<(f32, usize)> = None;
        for (i, &(score, _)) in candidates.iter().enumerate() {
            if taken[i] {
                continue;
            }
            let redundancy = if out.is_empty() { 0.0 } else { max_sim[i] };
            let value = lambda * score - (1.0 - lambda) * redundancy;
            if best.is_none_or(|(b, _)| value > b) {
                best = Some((value, i));
            }
        }
        let Some((_, chosen)) = best else { break };
        taken[chosen] = true;
        out.push(candidates[chosen]);
        for (i, v) in vectors.iter().enumerate() {
            if !taken[i] {
                max_sim[i] = max_sim[i].max(dot_f32(v, &vectors[chosen]));
            }
        }
    }
    out
}

/// The score of the module docs, prepared for one index. Final scores use the
/// re-ranking vectors when the index has them, else the stored vectors; the graph is
/// always walked on the stored vectors.
struct Scorer<'a> {
    store: &'a VectorStore,
    positives: Vec<PreparedQuery>,
    negatives: Vec<PreparedQuery>,
    /// `mean(p) − β·mean(n)` in the stored space: the direction the graph is searched along.
    rocchio: PreparedQuery,
    beta: f32,
}

impl<'a> Scorer<'a> {
    fn new(index: &'a Index, positives: &[Probe], negatives: &[Probe], beta: f32) -> Scorer<'a> {
        let (pos, neg): (Vec<&[f32]>, Vec<&[f32]>) =
            (positives.iter().map(|p| p.stored.as_slice()).collect(), negatives.iter().map(|n| n.stored.as_slice()).collect());
        let direction = rocchio(index.vectors.dim(), &pos, &neg, beta);
        let store = index.rerank.as_ref().unwrap_or(&index.vectors);
        let prepare = |p: &Probe| store.prepare(p.full.as_deref().unwrap_or(&p.stored));
        Scorer {
            store,
            positives: positives.iter().map(prepare).collect(),
            negatives: negatives.iter().map(prepare).collect(),
            rocchio: index.vectors.prepare(&direction),
            beta,
        }
    }

    fn score(&self, id: usize) -> f32 {
        combine(&self.positives, &self.negatives, self.beta, |p| self.store.score(p, id))
    }

    /// Every tile's score by id; tiles the filters reject are not scored (−∞).
    fn exact_scores(&self, index: &Index, accept: &dyn Fn(u32) -> bool) -> Vec<f32> {
        (0..index.len() as u32).map(|id| if accept(id) { self.score(id as usize) } else { f32::NEG_INFINITY }).collect()
    }

    /// Graph search along the Rocchio direction, re-scored exactly, best first.
    fn graph_candidates(&self, index: &Index, ef: usize) -> Vec<(f32, u32)> {
        let Some(graph) = &index.graph else { return Vec::new() };
        let found = graph.search(index.len(), ef, |id| index.vectors.score(&self.rocchio, id as usize));
        let mut rescored: Vec<(f32, u32)> = found.into_iter().map(|(_, id)| (self.score(id as usize), id)).collect();
        rescored.sort_unstable_by(ranked_order);
        rescored
    }
}

/// Rocchio's query point `mean(p) − β·mean(n)`: the one direction a graph search, or a
/// partitioned index's probe, follows for any number of examples.
pub(crate) fn rocchio(dim: usize, positives: &[&[f32]], negatives: &[&[f32]], beta: f32) -> Vec<f32> {
    let mut direction = vec![0.0f32; dim];
    for p in positives {
        direction.iter_mut().zip(*p).for_each(|(d, x)| *d += x / positives.len() as f32);
    }
    for n in negatives {
        direction.iter_mut().zip(*n).for_each(|(d, x)| *d -= beta * x / negatives.len() as f32);
    }
    direction
}

/// Best first: higher score, then lower id (so equal scores rank the same everywhere).
pub(crate) fn ranked_order(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// How [`search_slides`] ranks slides (SISH / Yottixel style: each query tile's nearest
/// tiles vote for the slides they come from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlideOptions {
    /// Slides to return.
    pub k: usize,
    /// The metadata column that names a tile's slide.
    pub key: String,
    /// Nearest tiles per query tile that vote.
    pub neighbours: usize,
    /// Rank by the sum of the voters' scores (`true`) or by the number of votes.
    pub weighted: bool,
}

impl Default for SlideOptions {
    fn default() -> Self {
        SlideOptions { k: 5, key: "slide".into(), neighbours: 50, weighted: true }
    }
}

/// One slide in a [`search_slides`] ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlideHit {
    /// 1-based rank.
    pub rank: usize,
    pub slide: String,
    /// Voting tiles of this slide among every query tile's nearest tiles.
    pub votes: usize,
    /// Sum of the voters' scores.
    pub score: f32,
    /// The slide's best-scoring tile and its score.
    pub best_tile: u32,
    pub best_score: f32,
    /// The best tile's metadata (label, case, ...).
    pub metadata: BTreeMap<String, String>,
}

/// Votes of (slide, score, tile) pairs, ranked: by summed score or count, then by the best
/// single score, then by name, so that the order is deterministic.
pub fn rank_votes<K: Ord + Copy>(votes: impl IntoIterator<Item = (K, f32, u32)>, weighted: bool) -> Vec<(K, usize, f32, u32, f32)> {
    let mut by_slide: BTreeMap<K, (usize, f32, u32, f32)> = BTreeMap::new();
    for (slide, score, tile) in votes {
        let entry = by_slide.entry(slide).or_insert((0, 0.0, tile, f32::NEG_INFINITY));
        entry.0 += 1;
        entry.1 += score;
        if score > entry.3 {
            (entry.2, entry.3) = (tile, score);
        }
    }
    let mut ranked: Vec<(K, usize, f32, u32, f32)> =
        by_slide.into_iter().map(|(slide, (n, sum, best, best_score))| (slide, n, sum, best, best_score)).collect();
    ranked.sort_by(|a, b| {
        let (ka, kb) = if weighted { (a.2, b.2) } else { (a.1 as f32, b.1 as f32) };
        kb.total_cmp(&ka).then(b.4.total_cmp(&a.4)).then(a.0.cmp(&b.0))
    });
    ranked
}

/// Which slides look like these tiles: every query's nearest `neighbours` tiles (after the
/// filters in `options`; its `k` and `unique_by` are ignored) vote for their slides.
pub fn search_slides(
    index: &Index,
    queries: &[Query],
    options: &SearchOptions,
    slides: &SlideOptions,
) -> Result<Vec<SlideHit>, SearchError> {
    if queries.is_empty() {
        return Err(SearchError::NoPositive);
    }
    column(index, &slides.key)?;
    vote_slides(slides, options, |tile_options| {
        let mut hits = Vec::new();
        for query in queries {
            hits.extend(search(index, query, tile_options)?);
        }
        Ok(hits)
    })
}

/// The slide ranking from the tiles `search_tiles` finds with `options` widened to
/// `slides.neighbours` per query (no unique-by, no MMR): each hit votes for its slide.
/// The tile search whose hits vote in a slide search (what a partitioned index must load
/// for it).
pub fn slide_tile_options(slides: &SlideOptions, options: &SearchOptions) -> SearchOptions {
    SearchOptions { k: slides.neighbours, unique_by: None, mmr: None, ..options.clone() }
}

pub(crate) fn vote_slides(
    slides: &SlideOptions,
    options: &SearchOptions,
    search_tiles: impl FnOnce(&SearchOptions) -> Result<Vec<Hit>, SearchError>,
) -> Result<Vec<SlideHit>, SearchError> {
    if slides.neighbours == 0 {
        return Err(SearchError::BadOption("slide search needs at least one neighbour per query tile".into()));
    }
    let hits = search_tiles(&slide_tile_options(slides, options))?;
    let metadata: BTreeMap<u32, &BTreeMap<String, String>> = hits.iter().map(|h| (h.id, &h.metadata)).collect();
    let votes = hits.iter().filter_map(|h| h.metadata.get(&slides.key).map(|slide| (slide.as_str(), h.score, h.id)));
    Ok(rank_votes(votes, slides.weighted)
        .into_iter()
        .take(slides.k)
        .enumerate()
        .map(|(i, (slide, votes, score, best_tile, best_score))| SlideHit {
            rank: i + 1,
            slide: slide.to_string(),
            votes,
            score,
            best_tile,
            best_score,
            metadata: metadata.get(&best_tile).map(|m| (*m).clone()).unwrap_or_default(),
        })
        .collect())
}
