//! A projection trained on the labelled collection an index is built from, so that
//! similarity follows the collection's diagnoses rather than its stain.
//!
//! The adapter is a shrinkage LDA fused with the descriptor it adapts:
//!
//! ```text
//! adapted(x) = concat( sqrt(1-w)·x , sqrt(w)·normalize(Pᵀ(x − μ)) )
//! ```
//!
//! `P` holds the (classes − 1) discriminant directions against the within-class covariance
//! shrunk towards a multiple of the identity, `Σ_s = (1-s)·Σ_w + s·(tr Σ_w / d)·I`. The
//! cosine of two adapted vectors is `(1-w)·cos(x) + w·cos(LDA)`: plain LDA alone projects
//! three classes to two dimensions and collapses retrieval; fused, it only pulls tiles of
//! one diagnosis together. `s` and `w` are chosen by cross-validation on the collection
//! itself, in folds that keep whole groups (or slides, cases, sites) apart, and
//! [`AdapterChoice::Auto`] keeps the adapter only when that held-out P@5 beats the plain
//! descriptor. Nothing here sees a query: the figures a build decides by are leak-free by
//! construction. Training is native and in-process; applying it is a small matrix product,
//! native or in the browser.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::vector::{dot, l2_normalize, symmetric_eigen, top_k_where};

/// Shrinkage values tried by cross-validation (chosen on LC25000 and MoNuSeg folds,
/// docs/eval.md; the build re-chooses among them on its own collection).
pub const SHRINKAGE_GRID: [f32; 3] = [0.03, 0.1, 0.3];
/// Fusion weights of the LDA part tried by cross-validation.
pub const WEIGHT_GRID: [f32; 4] = [0.1, 0.2, 0.3, 0.5];
/// Used by [`AdapterChoice::Lda`] when the collection is too small to cross-validate.
pub const DEFAULT_PARAMS: LdaParams = LdaParams { shrinkage: 0.1, weight: 0.3 };
/// Metadata columns that may define cross-validation folds, strictest first: tiles that
/// share a site (hospital) share stain, so folds by site measure what a new hospital sees.
pub const FOLD_COLUMNS: [&str; 4] = ["site", "case", "slide", "group"];
const CV_FOLDS: usize = 3;
/// Fewer labelled tiles than this: no adapter (too little to fit or to check it).
pub const MIN_LABELLED: usize = 20;
/// Classes with fewer tiles than this are left out of training.
pub const MIN_CLASS_TILES: usize = 2;
/// At most this many labelled tiles (evenly strided) enter the cross-validation.
const CV_SAMPLE: usize = 6_000;
/// At most this many labelled tiles (evenly strided) fit the final projection.
const FIT_SAMPLE: usize = 50_000;
/// Neighbours per held-out query in the cross-validation score (P@5).
const CV_K: usize = 5;

/// What `tessera build --adapter` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterChoice {
    /// An LDA adapter when the collection's labels allow one and it wins held-out.
    #[default]
    Auto,
    None,
    /// An LDA adapter whenever the labels allow one, even without a held-out gain.
    Lda,
}

impl fmt::Display for AdapterChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdapterChoice::Auto => "auto",
            AdapterChoice::None => "none",
            AdapterChoice::Lda => "lda",
        })
    }
}

impl FromStr for AdapterChoice {
    type Err = AdapterError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(AdapterChoice::Auto),
            "none" => Ok(AdapterChoice::None),
            "lda" => Ok(AdapterChoice::Lda),
            _ => Err(AdapterError::UnknownChoice { text: text.to_string() }),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AdapterError {
    #[error("unknown adapter {text:?}: expected auto, none or lda")]
    UnknownChoice { text: String },
    #[error("adapter: {vectors} floats are not {tiles} vectors of dimension {dim}")]
    Shape { vectors: usize, tiles: usize, dim: usize },
    #[error("adapter section: {what}")]
    Malformed { what: String },
    #[error("adapter expects vectors of dimension {expected}, got {found}")]
    WrongDim { expected: usize, found: usize },
}

/// The two hyper-parameters of the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LdaParams {
    /// `s` in `(1-s)·Σ_w + s·(tr Σ_w / d)·I`.
    pub shrinkage: f32,
    /// `w`: the LDA part's share of the cosine.
    pub weight: f32,
}

/// What an index records about its adapter (in its header); the numbers are in the
/// `ADPT` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterInfo {
    pub kind: String,
    /// Length of the descriptor it adapts.
    pub dim_in: usize,
    /// Number of discriminant directions (classes − 1).
    pub rank: usize,
    pub params: LdaParams,
    /// The classes it was trained on, with their tile counts.
    pub classes: BTreeMap<String, usize>,
    /// Held-out P@5 of the plain descriptor and of the adapter in the build's own
    /// cross-validation, when it ran.
    pub cv: Option<CvSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvSummary {
    /// The metadata column whose values were kept within one fold.
    pub folds_by: String,
    pub folds: usize,
    pub queries: usize,
    pub plain_p_at_5: f64,
    pub adapted_p_at_5: f64,
}

/// A trained adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct Adapter {
    info: AdapterInfo,
    mean: Vec<f32>,
    /// `rank` rows of `dim_in` values.
    directions: Vec<f32>,
}

impl Adapter {
    pub fn info(&self) -> &AdapterInfo {
        &self.info
    }

    pub fn dim_in(&self) -> usize {
        self.info.dim_in
    }

    /// Length of an adapted vector.
    pub fn dim_out(&self) -> usize {
        self.info.dim_in + self.info.rank
    }

    /// Adapts one descriptor (normalized here); the result has unit length.
    pub fn apply(&self, x: &[f32]) -> Result<Vec<f32>, AdapterError> {
        if x.len() != self.info.dim_in {
            return Err(AdapterError::WrongDim { expected: self.info.dim_in, found: x.len() });
        }
        let mut unit = x.to_vec();
        l2_normalize(&mut unit);
        let centred: Vec<f32> = unit.iter().zip(&self.mean).map(|(a, m)| a - m).collect();
        let mut projected: Vec<f32> =
            self.directions.chunks_exact(self.info.dim_in).map(|row| dot(row, &centred)).collect();
        // A tile exactly at the mean has no LDA direction: it keeps only the plain part.
        l2_normalize(&mut projected);
        let w = self.info.params.weight;
        let (plain, lda) = ((1.0 - w).sqrt(), w.sqrt());
        let mut out = Vec::with_capacity(self.dim_out());
        out.extend(unit.iter().map(|v| v * plain));
        out.extend(projected.iter().map(|v| v * lda));
        Ok(out)
    }

    /// Adapts every row of `rows` (rows of [`Adapter::dim_in`] values), row after row.
    pub fn apply_rows(&self, rows: &[f32]) -> Result<Vec<f32>, AdapterError> {
        if !rows.len().is_multiple_of(self.info.dim_in) {
            return Err(AdapterError::WrongDim { expected: self.info.dim_in, found: rows.len() % self.info.dim_in });
        }
        let mut out = Vec::with_capacity(rows.len() / self.info.dim_in * self.dim_out());
        for row in rows.chunks_exact(self.info.dim_in) {
            out.extend(self.apply(row)?);
        }
        Ok(out)
    }

    /// The `ADPT` section: the mean, then the directions, as little-endian f32.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.mean.iter().chain(&self.directions).flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Reads the `ADPT` section described by `info`; refuses any size or value that does
    /// not fit it.
    pub fn from_bytes(info: AdapterInfo, bytes: &[u8]) -> Result<Adapter, AdapterError> {
        let bad = |what: String| Err(AdapterError::Malformed { what });
        if info.kind != "lda" {
            return bad(format!("unknown kind {:?}", info.kind));
        }
        if info.dim_in == 0 || info.dim_in > 1 << 16 || info.rank == 0 || info.rank > info.dim_in {
            return bad(format!("dimensions {} → rank {} out of range", info.dim_in, info.rank));
        }
        let w = info.params.weight;
        if !(w > 0.0 && w < 1.0 && (0.0..=1.0).contains(&info.params.shrinkage)) {
            return bad(format!("parameters {:?} out of range", info.params));
        }
        let expected = 4 * info.dim_in * (1 + info.rank);
        if bytes.len() != expected {
            return bad(format!("{} bytes, expected {expected}", bytes.len()));
        }
        let values: Vec<f32> =
            bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if values.iter().any(|v| !v.is_finite()) {
            return bad("non-finite value".into());
        }
        let directions = values[info.dim_in..].to_vec();
        Ok(Adapter { mean: values[..info.dim_in].to_vec(), directions, info })
    }
}

/// The labels and fold keys of one tile, as the collection's metadata gives them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TileLabels {
    pub label: Option<String>,
    /// Values of [`FOLD_COLUMNS`], in that order.
    pub folds: [Option<String>; 4],
}

impl TileLabels {
    /// From metadata columns (a manifest row): `label`, and the fold columns.
    pub fn from_columns<'a>(column: impl Fn(&str) -> Option<&'a str>) -> TileLabels {
        let present = |name: &str| column(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        TileLabels { label: present("label"), folds: FOLD_COLUMNS.map(present) }
    }
}

/// What a training run did and why: printed by the build, reported by the evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterDecision {
    pub choice: AdapterChoice,
    /// Tiles with a label of a class that was kept.
    pub labelled: usize,
    pub unlabelled: usize,
    /// Classes left out, with their tile counts (fewer than [`MIN_CLASS_TILES`]).
    pub dropped_classes: BTreeMap<String, usize>,
    /// Every grid point's held-out P@5, when cross-validation ran.
    pub grid: Vec<(LdaParams, f64)>,
    pub cv: Option<CvSummary>,
    /// Why there is no adapter, when there is none.
    pub skipped: Option<String>,
    #[serde(skip)]
    pub adapter: Option<Adapter>,
}

impl fmt::Display for AdapterDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "adapter {}: {} labelled tiles", self.choice, self.labelled)?;
        if self.unlabelled > 0 {
            write!(f, ", {} without a label (not used for training)", self.unlabelled)?;
        }
        for (class, n) in &self.dropped_classes {
            write!(f, ", class {class:?} left out ({n} tile{})", if *n == 1 { "" } else { "s" })?;
        }
        if let Some(cv) = &self.cv {
            write!(
                f,
                "; {}-fold cross-validation by {} ({} held-out queries): P@5 plain {:.4}, adapted {:.4} ({:+.4})",
                cv.folds,
                cv.folds_by,
                cv.queries,
                cv.plain_p_at_5,
                cv.adapted_p_at_5,
                cv.adapted_p_at_5 - cv.plain_p_at_5
            )?;
        }
        match (&self.adapter, &self.skipped) {
            (Some(a), _) => write!(
                f,
                "; using LDA over {} classes (shrinkage {}, weight {})",
                a.info.classes.len(),
                a.info.params.shrinkage,
                a.info.params.weight
            ),
            (None, Some(why)) => write!(f, "; no adapter: {why}"),
            (None, None) => Ok(()),
        }
    }
}

/// Trains an adapter on `vectors` (`labels.len()` rows of `dim`, L2-normalized) as
/// `choice` asks, and says what it did. Never fails on unusable labels: it skips, with
/// the reason.
pub fn train(
    vectors: &[f32],
    dim: usize,
    labels: &[TileLabels],
    choice: AdapterChoice,
) -> Result<AdapterDecision, AdapterError> {
    if dim == 0 || vectors.len() != labels.len() * dim {
        return Err(AdapterError::Shape { vectors: vectors.len(), tiles: labels.len(), dim });
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for l in labels.iter().filter_map(|l| l.label.as_deref()) {
        *counts.entry(l).or_insert(0) += 1;
    }
    let dropped_classes: BTreeMap<String, usize> =
        counts.iter().filter(|(_, &n)| n < MIN_CLASS_TILES).map(|(c, &n)| (c.to_string(), n)).collect();
    let classes: Vec<&str> = counts.iter().filter(|(_, &n)| n >= MIN_CLASS_TILES).map(|(c, _)| *c).collect();
    let rows: Vec<usize> = (0..labels.len())
        .filter(|&i| labels[i].label.as_deref().is_some_and(|l| classes.contains(&l)))
        .collect();
    let mut decision = AdapterDecision {
        choice,
        labelled: rows.len(),
        unlabelled: labels.iter().filter(|l| l.label.is_none()).count(),
        dropped_classes,
        grid: Vec::new(),
        cv: None,
        skipped: None,
        adapter: None,
    };
    let skip = |mut d: AdapterDecision, why: String| {
        d.skipped = Some(why);
        Ok(d)
    };
    if choice == AdapterChoice::None {
        return skip(decision, "not asked for (--adapter none)".into());
    }
    if classes.len() < 2 {
        return skip(decision, format!("needs at least 2 classes with {MIN_CLASS_TILES}+ tiles, found {}", classes.len()));
    }
    if rows.len() < MIN_LABELLED {
        return skip(decision, format!("needs at least {MIN_LABELLED} labelled tiles, found {}", rows.len()));
    }
    let class_of: Vec<u32> = rows
        .iter()
        .map(|&i| classes.iter().position(|c| Some(*c) == labels[i].label.as_deref()).unwrap_or(0) as u32)
        .collect();
    let data: Vec<f32> = rows.iter().flat_map(|&i| unit_row(&vectors[i * dim..(i + 1) * dim])).collect();

    let cv = cross_validate(&data, dim, &class_of, classes.len(), &rows, labels);
    let params = match &cv {
        Some(cv) => {
            decision.grid = cv.grid.clone();
            decision.cv = Some(cv.summary.clone());
            let gain = cv.summary.adapted_p_at_5 - cv.summary.plain_p_at_5;
            if choice == AdapterChoice::Auto && gain <= 0.0 {
                return skip(decision, format!("held-out P@5 gain {gain:+.4} is not positive"));
            }
            cv.best
        }
        None if choice == AdapterChoice::Auto => {
            return skip(
                decision,
                format!("cannot measure a held-out gain: no column of {FOLD_COLUMNS:?} has {CV_FOLDS}+ values"),
            );
        }
        None => DEFAULT_PARAMS,
    };
    let (sample, sample_classes) = strided(&data, dim, &class_of, FIT_SAMPLE);
    let Some(lda) = Lda::fit(&sample, dim, &sample_classes, classes.len()) else {
        return skip(decision, "the labelled vectors have no within-class variance".into());
    };
    let directions = lda.directions(params.shrinkage);
    if directions.is_empty() {
        return skip(decision, "no finite discriminant direction (the class means coincide or the scatter is degenerate)".into());
    }
    let class_counts = classes
        .iter()
        .enumerate()
        .map(|(c, name)| (name.to_string(), class_of.iter().filter(|&&k| k as usize == c).count()))
        .collect();
    let info = AdapterInfo {
        kind: "lda".into(),
        dim_in: dim,
        rank: directions.len() / dim,
        params,
        classes: class_counts,
        cv: decision.cv.clone(),
    };
    decision.adapter = Some(Adapter { info, mean: lda.mean_f32(), directions });
    Ok(decision)
}

fn unit_row(row: &[f32]) -> Vec<f32> {
    let mut v = row.to_vec();
    l2_normalize(&mut v);
    v
}

/// At most `max` rows, evenly strided (all of them when fewer).
fn strided(data: &[f32], dim: usize, classes: &[u32], max: usize) -> (Vec<f32>, Vec<u32>) {
    let step = classes.len().div_ceil(max).max(1);
    let keep: Vec<usize> = (0..classes.len()).step_by(step).collect();
    (keep.iter().flat_map(|&i| data[i * dim..(i + 1) * dim].iter().copied()).collect(), keep.iter().map(|&i| classes[i]).collect())
}

/// One training set's scatter matrices, from which the directions for any shrinkage
/// follow by one Cholesky factorization.
struct Lda {
    dim: usize,
    mean: Vec<f64>,
    /// Σ_w, the within-class covariance.
    within: DMatrix<f64>,
    /// Columns `sqrt(n_c/n)·(m_c − μ)`, so that Σ_b = B·Bᵀ.
    between: DMatrix<f64>,
}

impl Lda {
    fn fit(data: &[f32], dim: usize, classes: &[u32], class_count: usize) -> Option<Lda> {
        let n = classes.len();
        let x = DMatrix::<f64>::from_row_iterator(n, dim, data.iter().map(|&v| f64::from(v)));
        let mut sums = DMatrix::<f64>::zeros(class_count, dim);
        let mut counts = vec![0usize; class_count];
        for (i, &c) in classes.iter().enumerate() {
            counts[c as usize] += 1;
            let mut row = sums.row_mut(c as usize);
            row += x.row(i);
        }
        let mean: Vec<f64> = (0..dim).map(|j| x.column(j).sum() / n as f64).collect();
        let mut centred = x;
        for (i, &c) in classes.iter().enumerate() {
            let k = counts[c as usize] as f64;
            for j in 0..dim {
                centred[(i, j)] -= sums[(c as usize, j)] / k;
            }
        }
        let within = centred.tr_mul(&centred) / n as f64;
        if within.trace() <= 0.0 || !within.trace().is_finite() {
            return None;
        }
        let mut between = DMatrix::<f64>::zeros(dim, class_count);
        for c in 0..class_count {
            let share = (counts[c] as f64 / n as f64).sqrt();
            for j in 0..dim {
                between[(j, c)] = share * (sums[(c, j)] / counts[c].max(1) as f64 - mean[j]);
            }
        }
        Some(Lda { dim, mean, within, between })
    }

    fn mean_f32(&self) -> Vec<f32> {
        self.mean.iter().map(|&m| m as f32).collect()
    }

    /// The discriminant directions (classes − 1 rows of `dim`) at shrinkage `s`: the
    /// generalized eigenvectors of `Σ_b v = λ Σ_s v`, through `Σ_s = L·Lᵀ`: the top left
    /// singular vectors `w` of `L⁻¹·B` give `v = L⁻ᵀ·w` (so `vᵀ Σ_s v = 1`). Only
    /// Cholesky and triangular solves come from nalgebra; the small eigenproblem is ours
    /// (nalgebra's iterative solvers returned NaN on degenerate inputs, see `vector.rs`).
    fn directions(&self, shrinkage: f32) -> Vec<f32> {
        let s = f64::from(shrinkage);
        let ridge = s * self.within.trace() / self.dim as f64;
        let mut shrunk = &self.within * (1.0 - s);
        for i in 0..self.dim {
            shrunk[(i, i)] += ridge.max(1e-12);
        }
        let Some(cholesky) = shrunk.cholesky() else { return Vec::new() };
        let l = cholesky.l();
        let Some(scaled) = l.solve_lower_triangular(&self.between) else { return Vec::new() };
        // Left singular vectors of the thin d×C matrix M = L⁻¹B from the eigenvectors of the
        // small C×C matrix MᵀM: u = M·v / sqrt(λ).
        let classes = scaled.ncols();
        let gram = scaled.tr_mul(&scaled);
        let (values, vectors) = symmetric_eigen(gram.transpose().as_slice().to_vec(), classes);
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
        let top = values.iter().copied().fold(0.0f64, f64::max);
        let kept: Vec<usize> = order
            .into_iter()
            .take(classes.saturating_sub(1))
            .filter(|&k| values[k] > 1e-12 * top.max(1e-300))
            .collect();
        let lt = l.transpose();
        let mut out = Vec::with_capacity(kept.len() * self.dim);
        for k in kept {
            let v = DMatrix::from_iterator(classes, 1, (0..classes).map(|i| vectors[i * classes + k]));
            let w = (&scaled * v) / values[k].sqrt();
            let Some(direction) = lt.solve_upper_triangular(&w) else { return Vec::new() };
            // A fixed sign, so that the same data always gives the same file.
            let pivot = direction.iter().copied().fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
            let sign = if pivot < 0.0 { -1.0 } else { 1.0 };
            out.extend(direction.iter().map(|&v| (v * sign) as f32));
        }
        // A degenerate scatter can still give inf/NaN: then there is no usable direction.
        if out.iter().all(|v| v.is_finite()) {
            out
        } else {
            Vec::new()
        }
    }
}

struct CrossValidation {
    grid: Vec<(LdaParams, f64)>,
    best: LdaParams,
    summary: CvSummary,
}

/// Held-out P@5 of the plain descriptor and of every grid point, in folds by the
/// strictest [`FOLD_COLUMNS`] column with enough values; `None` when no column has.
fn cross_validate(
    data: &[f32],
    dim: usize,
    classes: &[u32],
    class_count: usize,
    rows: &[usize],
    labels: &[TileLabels],
) -> Option<CrossValidation> {
    let (column, keys) = FOLD_COLUMNS.iter().enumerate().find_map(|(c, name)| {
        let keys: Option<Vec<&str>> = rows.iter().map(|&i| labels[i].folds[c].as_deref()).collect();
        let keys = keys?;
        let mut distinct: Vec<&str> = keys.clone();
        distinct.sort_unstable();
        distinct.dedup();
        (distinct.len() >= CV_FOLDS).then(|| {
            let fold_of: Vec<usize> =
                keys.iter().map(|k| distinct.binary_search(k).unwrap_or(0) % CV_FOLDS).collect();
            (*name, fold_of)
        })
    })?;
    let step = rows.len().div_ceil(CV_SAMPLE).max(1);
    let sample: Vec<usize> = (0..rows.len()).step_by(step).collect();
    let mut plain_hits = 0usize;
    let mut hits = vec![0usize; SHRINKAGE_GRID.len() * WEIGHT_GRID.len()];
    let mut queries = 0usize;
    let mut folds_run = 0;
    for fold in 0..CV_FOLDS {
        let (held, train): (Vec<usize>, Vec<usize>) = sample.iter().partition(|&&i| keys[i] == fold);
        if held.is_empty() || train.len() < MIN_LABELLED {
            continue;
        }
        let gather = |set: &[usize]| -> Vec<f32> { set.iter().flat_map(|&i| data[i * dim..(i + 1) * dim].iter().copied()).collect() };
        let (train_x, held_x) = (gather(&train), gather(&held));
        let train_classes: Vec<u32> = train.iter().map(|&i| classes[i]).collect();
        let Some(lda) = Lda::fit(&train_x, dim, &train_classes, class_count) else { continue };
        folds_run += 1;
        queries += held.len();
        let plain = cosines(&held_x, &train_x, dim);
        plain_hits += count_hits(&plain, train.len(), &held, &train, classes);
        for (si, &s) in SHRINKAGE_GRID.iter().enumerate() {
            let directions = lda.directions(s);
            if directions.is_empty() {
                continue;
            }
            let (held_z, train_z) = (project(&held_x, dim, &lda.mean, &directions), project(&train_x, dim, &lda.mean, &directions));
            let rank = directions.len() / dim;
            let lda_cos = cosines(&held_z, &train_z, rank);
            for (wi, &w) in WEIGHT_GRID.iter().enumerate() {
                let fused: Vec<f32> = plain.iter().zip(&lda_cos).map(|(p, l)| (1.0 - w) * p + w * l).collect();
                hits[si * WEIGHT_GRID.len() + wi] += count_hits(&fused, train.len(), &held, &train, classes);
            }
        }
    }
    if folds_run < 2 || queries == 0 {
        return None;
    }
    let p = |h: usize| h as f64 / (queries * CV_K) as f64;
    let grid: Vec<(LdaParams, f64)> = SHRINKAGE_GRID
        .iter()
        .flat_map(|&shrinkage| WEIGHT_GRID.iter().map(move |&weight| LdaParams { shrinkage, weight }))
        .zip(hits.iter().map(|&h| p(h)))
        .collect();
    // Ties keep the earlier (less shrunk, lighter) grid point.
    let (best, best_p) = grid.iter().fold(grid[0], |b, &g| if g.1 > b.1 { g } else { b });
    Some(CrossValidation {
        grid,
        best,
        summary: CvSummary {
            folds_by: column.to_string(),
            folds: folds_run,
            queries,
            plain_p_at_5: p(plain_hits),
            adapted_p_at_5: best_p,
        },
    })
}

/// `normalize(Pᵀ(x − μ))` of every row.
fn project(rows: &[f32], dim: usize, mean: &[f64], directions: &[f32]) -> Vec<f32> {
    rows.chunks_exact(dim)
        .flat_map(|x| {
            let centred: Vec<f32> = x.iter().zip(mean).map(|(&a, &m)| a - m as f32).collect();
            let mut z: Vec<f32> = directions.chunks_exact(dim).map(|d| dot(d, &centred)).collect();
            l2_normalize(&mut z);
            z
        })
        .collect()
}

/// Row-major `queries × base` matrix of dot products.
fn cosines(queries: &[f32], base: &[f32], dim: usize) -> Vec<f32> {
    queries
        .chunks_exact(dim)
        .flat_map(|q| base.chunks_exact(dim).map(move |b| dot(q, b)))
        .collect()
}

/// Hits of the query's class among each held-out query's top [`CV_K`] training tiles.
fn count_hits(scores: &[f32], width: usize, held: &[usize], train: &[usize], classes: &[u32]) -> usize {
    held.iter()
        .enumerate()
        .map(|(q, &query)| {
            let row = &scores[q * width..(q + 1) * width];
            top_k_where(row, CV_K, |_| true).iter().filter(|&&t| classes[train[t]] == classes[query]).count()
        })
        .sum()
}
