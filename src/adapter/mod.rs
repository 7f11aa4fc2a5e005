//! A projection trained on the labelled collection an index is built from, so that
//! similarity follows the collection's diagnoses rather than its stain.
//!
//! The adapter fuses a learned projection `f` with the descriptor it adapts:
//!
//! ```text
//! adapted(x) = concat( sqrt(1-w)·x , sqrt(w)·normalize(f(x − μ)) )
//! ```
//!
//! so the cosine of two adapted vectors is `(1-w)·cos(x) + w·cos(f)`. `f` is one of
//! - a shrinkage LDA ([`lda`]): the (classes − 1) discriminant directions against the
//!   within-class covariance shrunk towards a multiple of the identity. Alone it projects
//!   three classes to two dimensions and collapses retrieval; fused, it only pulls tiles of
//!   one diagnosis together;
//! - a small MLP ([`mlp`]) trained with a supervised contrastive loss, 64 dimensions out.
//!
//! Its hyper-parameters (shrinkage, fusion weight) are chosen by cross-validation on the
//! collection itself, in folds that keep whole groups (or slides, cases, sites) apart, and
//! [`AdapterChoice::Auto`] keeps an adapter only when that held-out P@5 beats the plain
//! descriptor. Nothing here sees a query: the figures a build decides by are leak-free by
//! construction. Training is native and in-process; applying it is a few small matrix
//! products, native or in the browser.

pub mod lda;
pub mod mlp;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use half::f16;
use serde::{Deserialize, Serialize};

use crate::vector::{dot, l2_normalize, top_k_where};
use lda::Lda;
use mlp::Mlp;

/// Shrinkage values tried by cross-validation (chosen on LC25000 and MoNuSeg folds,
/// docs/eval.md; the build re-chooses among them on its own collection).
pub const SHRINKAGE_GRID: [f32; 3] = [0.03, 0.1, 0.3];
/// Fusion weights of the learned part tried by cross-validation.
pub const WEIGHT_GRID: [f32; 4] = [0.1, 0.2, 0.3, 0.5];
/// Used by [`AdapterChoice::Lda`] when the collection is too small to cross-validate.
pub const DEFAULT_PARAMS: LdaParams = LdaParams { shrinkage: 0.1, weight: 0.3 };
/// Used by [`AdapterChoice::Mlp`] when the collection is too small to cross-validate.
pub const DEFAULT_MLP_PARAMS: MlpParams = MlpParams { hidden: mlp::HIDDEN, weight: 0.3, across_domains: false, adversary: false };
/// The kinds [`AdapterChoice::Auto`] chooses among by cross-validation.
const AUTO_KINDS: [AdapterKind; 2] = [AdapterKind::Lda, AdapterKind::Mlp];
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
    /// The adapter kind and parameters that win the collection's cross-validation, when
    /// the labels allow one and it beats the plain descriptor held-out.
    #[default]
    Auto,
    None,
    /// An LDA adapter whenever the labels allow one, even without a held-out gain.
    Lda,
    /// An MLP adapter whenever the labels allow one, even without a held-out gain.
    Mlp,
    /// An MLP adapter whose positive pairs are tiles of one class from different domains
    /// (the strictest of [`FOLD_COLUMNS`] the collection has: sites, else cases, slides or
    /// groups), so that what a hospital's tiles share does not count as similarity.
    #[serde(rename = "mlp-cross")]
    MlpCross,
    /// [`AdapterChoice::MlpCross`] trained against a domain classifier too (gradient
    /// reversal, [`mlp`]): the hidden layer is pushed to forget the domain.
    #[serde(rename = "mlp-adv")]
    MlpAdversarial,
}

/// The learned part of an adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    Lda,
    Mlp,
}

impl AdapterChoice {
    fn kinds(self) -> &'static [AdapterKind] {
        match self {
            AdapterChoice::Auto => &AUTO_KINDS,
            AdapterChoice::None => &[],
            AdapterChoice::Lda => &[AdapterKind::Lda],
            AdapterChoice::Mlp | AdapterChoice::MlpCross | AdapterChoice::MlpAdversarial => &[AdapterKind::Mlp],
        }
    }

    /// Whether the MLP's positive pairs must cross domains.
    fn across_domains(self) -> bool {
        matches!(self, AdapterChoice::MlpCross | AdapterChoice::MlpAdversarial)
    }

    /// The MLP's parameters before the fusion weight is chosen.
    fn mlp_params(self) -> MlpParams {
        MlpParams { across_domains: self.across_domains(), adversary: self == AdapterChoice::MlpAdversarial, ..DEFAULT_MLP_PARAMS }
    }
}

impl fmt::Display for AdapterChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdapterChoice::Auto => "auto",
            AdapterChoice::None => "none",
            AdapterChoice::Lda => "lda",
            AdapterChoice::Mlp => "mlp",
            AdapterChoice::MlpCross => "mlp-cross",
            AdapterChoice::MlpAdversarial => "mlp-adv",
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
            "mlp" => Ok(AdapterChoice::Mlp),
            "mlp-cross" => Ok(AdapterChoice::MlpCross),
            "mlp-adv" => Ok(AdapterChoice::MlpAdversarial),
            _ => Err(AdapterError::UnknownChoice { text: text.to_string() }),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AdapterError {
    #[error("unknown adapter {text:?}: expected auto, none, lda, mlp, mlp-cross or mlp-adv")]
    UnknownChoice { text: String },
    #[error("adapter: {vectors} floats are not {tiles} vectors of dimension {dim}")]
    Shape { vectors: usize, tiles: usize, dim: usize },
    #[error("adapter section: {what}")]
    Malformed { what: String },
    #[error("adapter expects vectors of dimension {expected}, got {found}")]
    WrongDim { expected: usize, found: usize },
}

/// The two hyper-parameters of an LDA adapter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LdaParams {
    /// `s` in `(1-s)·Σ_w + s·(tr Σ_w / d)·I`.
    pub shrinkage: f32,
    /// `w`: the LDA part's share of the cosine.
    pub weight: f32,
}

/// The shape and fusion weight of an MLP adapter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MlpParams {
    pub hidden: usize,
    /// `w`: the MLP part's share of the cosine.
    pub weight: f32,
    /// Trained with positive pairs across domains only ([`AdapterChoice::MlpCross`]);
    /// absent in files written before it existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub across_domains: bool,
    /// Trained against a domain classifier ([`AdapterChoice::MlpAdversarial`]); absent in
    /// files written before it existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adversary: bool,
}

/// An adapter's hyper-parameters; in the index header as `{"shrinkage", "weight"}` (LDA,
/// as version-2 files always had) or `{"hidden", "weight"}` (MLP).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AdapterParams {
    Lda(LdaParams),
    Mlp(MlpParams),
}

impl AdapterParams {
    pub fn kind(&self) -> AdapterKind {
        match self {
            AdapterParams::Lda(_) => AdapterKind::Lda,
            AdapterParams::Mlp(_) => AdapterKind::Mlp,
        }
    }

    pub fn weight(&self) -> f32 {
        match self {
            AdapterParams::Lda(p) => p.weight,
            AdapterParams::Mlp(p) => p.weight,
        }
    }

    fn with_weight(self, weight: f32) -> AdapterParams {
        match self {
            AdapterParams::Lda(p) => AdapterParams::Lda(LdaParams { weight, ..p }),
            AdapterParams::Mlp(p) => AdapterParams::Mlp(MlpParams { weight, ..p }),
        }
    }
}

impl fmt::Display for AdapterParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdapterParams::Lda(p) => write!(f, "LDA (shrinkage {}, weight {})", p.shrinkage, p.weight),
            AdapterParams::Mlp(p) => {
                let across = if p.across_domains { ", positives across domains" } else { "" };
                let adversary = if p.adversary { ", domain adversary" } else { "" };
                write!(f, "MLP ({} hidden, weight {}{across}{adversary})", p.hidden, p.weight)
            }
        }
    }
}

/// What an index records about its adapter (in its header); the numbers are in the
/// `ADPT` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterInfo {
    /// `lda` or `mlp`.
    pub kind: String,
    /// Length of the descriptor it adapts.
    pub dim_in: usize,
    /// Dimensions of the learned part: classes − 1 (LDA), the MLP's output.
    pub rank: usize,
    pub params: AdapterParams,
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

/// The learned part `f`.
#[derive(Debug, Clone, PartialEq)]
enum Projection {
    /// `rank` rows of `dim_in` values: `f(x) = P·x`.
    Linear(Vec<f32>),
    Mlp(Mlp),
}

impl Projection {
    fn apply(&self, centred: &[f32]) -> Vec<f32> {
        match self {
            Projection::Linear(directions) => {
                let mut z: Vec<f32> = directions.chunks_exact(centred.len()).map(|row| dot(row, centred)).collect();
                // A tile exactly at the mean has no LDA direction: it keeps only the plain part.
                l2_normalize(&mut z);
                z
            }
            Projection::Mlp(mlp) => mlp.project(centred),
        }
    }
}

/// A trained adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct Adapter {
    info: AdapterInfo,
    mean: Vec<f32>,
    projection: Projection,
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
        let projected = self.projection.apply(&centred);
        let w = self.info.params.weight();
        let (plain, learned) = ((1.0 - w).sqrt(), w.sqrt());
        let mut out = Vec::with_capacity(self.dim_out());
        out.extend(unit.iter().map(|v| v * plain));
        out.extend(projected.iter().map(|v| v * learned));
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

    /// The `ADPT` section: the mean as little-endian f32, then the learned part: LDA's
    /// directions as f32, the MLP's W₁, b₁, W₂, b₂ (row-major) as f16, which it was
    /// rounded to when trained (half the bytes; an index ships next to a page).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mean = self.mean.iter().flat_map(|v| v.to_le_bytes());
        match &self.projection {
            Projection::Linear(directions) => mean.chain(directions.iter().flat_map(|v| v.to_le_bytes())).collect(),
            Projection::Mlp(mlp) => mean.chain(mlp.values().flat_map(|&v| f16::from_f32(v).to_le_bytes())).collect(),
        }
    }

    /// Reads the `ADPT` section described by `info`; refuses any size or value that does
    /// not fit it.
    pub fn from_bytes(info: AdapterInfo, bytes: &[u8]) -> Result<Adapter, AdapterError> {
        let bad = |what: String| Err(AdapterError::Malformed { what });
        let kind = match (info.kind.as_str(), info.params) {
            ("lda", AdapterParams::Lda(p)) if (0.0..=1.0).contains(&p.shrinkage) => AdapterKind::Lda,
            ("mlp", AdapterParams::Mlp(p)) if (1..=4096).contains(&p.hidden) => AdapterKind::Mlp,
            (kind, params) => return bad(format!("kind {kind:?} with parameters {params:?}")),
        };
        let max_rank = if kind == AdapterKind::Lda { info.dim_in } else { 1024 };
        if info.dim_in == 0 || info.dim_in > 1 << 16 || info.rank == 0 || info.rank > max_rank {
            return bad(format!("dimensions {} → rank {} out of range", info.dim_in, info.rank));
        }
        let w = info.params.weight();
        if !(w > 0.0 && w < 1.0) {
            return bad(format!("weight {w} out of range"));
        }
        let learned_bytes = match info.params {
            AdapterParams::Lda(_) => 4 * info.rank * info.dim_in,
            AdapterParams::Mlp(p) => 2 * Mlp::value_count(info.dim_in, p.hidden, info.rank),
        };
        let expected = 4 * info.dim_in + learned_bytes;
        if bytes.len() != expected {
            return bad(format!("{} bytes, expected {expected}", bytes.len()));
        }
        let (mean, learned) = bytes.split_at(4 * info.dim_in);
        let f32s = |b: &[u8]| -> Vec<f32> { b.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect() };
        let (mean, learned) = match kind {
            AdapterKind::Lda => (f32s(mean), f32s(learned)),
            AdapterKind::Mlp => (f32s(mean), learned.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()),
        };
        if mean.iter().chain(&learned).any(|v| !v.is_finite()) {
            return bad("non-finite value".into());
        }
        let projection = match info.params {
            AdapterParams::Lda(_) => Projection::Linear(learned),
            AdapterParams::Mlp(p) => match Mlp::from_values(info.dim_in, p.hidden, info.rank, &learned) {
                Some(mlp) => Projection::Mlp(mlp),
                None => return bad("MLP weights do not fit its shape".into()),
            },
        };
        Ok(Adapter { mean, projection, info })
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
    pub grid: Vec<(AdapterParams, f64)>,
    pub cv: Option<CvSummary>,
    /// Why there is no adapter, when there is none.
    pub skipped: Option<String>,
    /// The column whose values are the domains an MLP's positive pairs cross.
    pub domains_by: Option<String>,
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
            (Some(a), _) => {
                write!(f, "; using {} over {} classes", a.info.params, a.info.classes.len())?;
                match &self.domains_by {
                    Some(column) => write!(f, " (domains: {column})"),
                    None => Ok(()),
                }
            }
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
        domains_by: None,
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
    let domains = if choice.across_domains() {
        let Some((column, ids)) = column_ids(&rows, labels, 2) else {
            return skip(
                decision,
                format!("positives across domains need a column of {FOLD_COLUMNS:?} with 2+ values on every labelled tile"),
            );
        };
        decision.domains_by = Some(column.to_string());
        Some(ids)
    } else {
        None
    };
    let set = Labelled { data, dim, classes: class_of, class_count: classes.len(), domains };

    let cv = cross_validate(&set, &rows, labels, choice);
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
        None if choice.kinds() == [AdapterKind::Mlp] => AdapterParams::Mlp(choice.mlp_params()),
        None => AdapterParams::Lda(DEFAULT_PARAMS),
    };
    let sample = set.subset(&strided(set.classes.len(), FIT_SAMPLE));
    let fitted = match fit(&sample, params) {
        Ok(fitted) => fitted,
        Err(why) => return skip(decision, why.into()),
    };
    let class_counts = classes
        .iter()
        .enumerate()
        .map(|(c, name)| (name.to_string(), set.classes.iter().filter(|&&k| k as usize == c).count()))
        .collect();
    let (mean, projection) = fitted;
    let rank = match &projection {
        Projection::Linear(directions) => directions.len() / dim,
        Projection::Mlp(mlp) => mlp.out,
    };
    let kind = match params.kind() {
        AdapterKind::Lda => "lda",
        AdapterKind::Mlp => "mlp",
    };
    let info = AdapterInfo { kind: kind.into(), dim_in: dim, rank, params, classes: class_counts, cv: decision.cv.clone() };
    decision.adapter = Some(Adapter { info, mean, projection });
    Ok(decision)
}

/// Labelled unit descriptors (rows of `dim`), with each row's class and, when an MLP's
/// positives must cross domains ([`AdapterChoice::MlpCross`], [`AdapterChoice::MlpAdversarial`]),
/// its domain.
struct Labelled {
    data: Vec<f32>,
    dim: usize,
    classes: Vec<u32>,
    class_count: usize,
    domains: Option<Vec<u32>>,
}

impl Labelled {
    /// The rows `rows` of this set.
    fn subset(&self, rows: &[usize]) -> Labelled {
        Labelled {
            data: rows.iter().flat_map(|&i| self.data[i * self.dim..(i + 1) * self.dim].iter().copied()).collect(),
            dim: self.dim,
            classes: rows.iter().map(|&i| self.classes[i]).collect(),
            class_count: self.class_count,
            domains: self.domains.as_ref().map(|d| rows.iter().map(|&i| d[i]).collect()),
        }
    }
}

/// The strictest [`FOLD_COLUMNS`] column that every row of `rows` has, with `min_distinct`+
/// values, and each row's value as a number (its rank among the column's values): the
/// cross-validation's folds and the domains an MLP's positives cross.
fn column_ids(rows: &[usize], labels: &[TileLabels], min_distinct: usize) -> Option<(&'static str, Vec<u32>)> {
    FOLD_COLUMNS.iter().enumerate().find_map(|(c, name)| {
        let keys: Vec<&str> = rows.iter().map(|&i| labels[i].folds[c].as_deref()).collect::<Option<_>>()?;
        let mut distinct = keys.clone();
        distinct.sort_unstable();
        distinct.dedup();
        (distinct.len() >= min_distinct).then(|| (*name, keys.iter().map(|k| distinct.binary_search(k).unwrap_or(0) as u32).collect()))
    })
}

/// Fits the learned part that `params` describes on `set`: the mean it centres by and the
/// projection; why not, when the data cannot give one.
fn fit(set: &Labelled, params: AdapterParams) -> Result<(Vec<f32>, Projection), &'static str> {
    let Labelled { ref data, dim, ref classes, class_count, ref domains } = *set;
    match params {
        AdapterParams::Lda(p) => {
            let lda = Lda::fit(data, dim, classes, class_count).ok_or("the labelled vectors have no within-class variance")?;
            let directions = lda.directions(p.shrinkage);
            if directions.is_empty() {
                return Err("no finite discriminant direction (the class means coincide or the scatter is degenerate)");
            }
            Ok((lda.mean_f32(), Projection::Linear(directions)))
        }
        AdapterParams::Mlp(p) => {
            let mean = column_mean(data, dim);
            let centred = centre(data, &mean);
            let mlp = Mlp::train(&centred, dim, classes, mlp_domains(domains, p))
                .ok_or("the MLP did not train (no positive pairs or a non-finite weight)")?;
            Ok((mean, Projection::Mlp(mlp)))
        }
    }
}

/// What an MLP of `params` trains against: the domains, with the adversary it asks for.
fn mlp_domains(domains: &Option<Vec<u32>>, params: MlpParams) -> Option<mlp::Domains<'_>> {
    domains.as_deref().map(|ids| mlp::Domains { ids, adversary: params.adversary })
}

fn column_mean(data: &[f32], dim: usize) -> Vec<f32> {
    let n = (data.len() / dim).max(1) as f64;
    let mut sum = vec![0f64; dim];
    for row in data.chunks_exact(dim) {
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += f64::from(v);
        }
    }
    sum.iter().map(|s| (s / n) as f32).collect()
}

fn centre(data: &[f32], mean: &[f32]) -> Vec<f32> {
    data.chunks_exact(mean.len()).flat_map(|row| row.iter().zip(mean).map(|(a, m)| a - m)).collect()
}

fn unit_row(row: &[f32]) -> Vec<f32> {
    let mut v = row.to_vec();
    l2_normalize(&mut v);
    v
}

/// At most `max` of `n` row numbers, evenly strided (all of them when fewer).
fn strided(n: usize, max: usize) -> Vec<usize> {
    (0..n).step_by(n.div_ceil(max).max(1)).collect()
}

struct CrossValidation {
    grid: Vec<(AdapterParams, f64)>,
    best: AdapterParams,
    summary: CvSummary,
}

/// The candidates `choice` tries before the fusion weight is set (LDA: one per shrinkage).
fn candidates(choice: AdapterChoice) -> Vec<AdapterParams> {
    choice
        .kinds()
        .iter()
        .flat_map(|kind| match kind {
            AdapterKind::Lda => {
                SHRINKAGE_GRID.iter().map(|&shrinkage| AdapterParams::Lda(LdaParams { shrinkage, weight: 0.0 })).collect()
            }
            AdapterKind::Mlp => vec![AdapterParams::Mlp(MlpParams { weight: 0.0, ..choice.mlp_params() })],
        })
        .collect()
}

/// Held-out P@5 of the plain descriptor and of every candidate of `choice` at every
/// weight, in folds by the strictest [`FOLD_COLUMNS`] column with enough values; `None`
/// when no column has. `rows` maps the set's rows to `labels`.
fn cross_validate(set: &Labelled, rows: &[usize], labels: &[TileLabels], choice: AdapterChoice) -> Option<CrossValidation> {
    let Labelled { dim, ref classes, class_count, .. } = *set;
    let (column, ids) = column_ids(rows, labels, CV_FOLDS)?;
    let keys: Vec<usize> = ids.iter().map(|&id| id as usize % CV_FOLDS).collect();
    let candidates = candidates(choice);
    let sample = strided(rows.len(), CV_SAMPLE);
    let mut plain_hits = 0usize;
    let mut hits = vec![0usize; candidates.len() * WEIGHT_GRID.len()];
    let mut queries = 0usize;
    let mut folds_run = 0;
    for fold in 0..CV_FOLDS {
        let (held, train): (Vec<usize>, Vec<usize>) = sample.iter().partition(|&&i| keys[i] == fold);
        if held.is_empty() || train.len() < MIN_LABELLED {
            continue;
        }
        let (training, held_x) = (set.subset(&train), set.subset(&held).data);
        let (train_x, train_classes) = (&training.data, &training.classes);
        // The LDA scatter is shared by every shrinkage; a fold whose scatter is degenerate
        // is left out for every candidate, so all are scored on the same queries.
        let Some(lda) = Lda::fit(train_x, dim, train_classes, class_count) else { continue };
        folds_run += 1;
        queries += held.len();
        let plain = cosines(&held_x, train_x, dim);
        plain_hits += count_hits(&plain, train.len(), &held, &train, classes);
        let train_mean = lda.mean_f32();
        for (ci, candidate) in candidates.iter().enumerate() {
            let projection = match candidate {
                AdapterParams::Lda(p) => Projection::Linear(lda.directions(p.shrinkage)),
                AdapterParams::Mlp(p) => match Mlp::train(&centre(train_x, &train_mean), dim, train_classes, mlp_domains(&training.domains, *p)) {
                    Some(mlp) => Projection::Mlp(mlp),
                    None => continue,
                },
            };
            if matches!(&projection, Projection::Linear(d) if d.is_empty()) {
                continue;
            }
            let project = |rows: &[f32]| -> Vec<f32> { rows.chunks_exact(dim).flat_map(|x| projection.apply(&centre(x, &train_mean))).collect() };
            let (held_z, train_z) = (project(&held_x), project(train_x));
            let learned = cosines(&held_z, &train_z, held_z.len() / held.len());
            for (wi, &w) in WEIGHT_GRID.iter().enumerate() {
                let fused: Vec<f32> = plain.iter().zip(&learned).map(|(p, l)| (1.0 - w) * p + w * l).collect();
                hits[ci * WEIGHT_GRID.len() + wi] += count_hits(&fused, train.len(), &held, &train, classes);
            }
        }
    }
    if folds_run < 2 || queries == 0 {
        return None;
    }
    let p = |h: usize| h as f64 / (queries * CV_K) as f64;
    let grid: Vec<(AdapterParams, f64)> = candidates
        .iter()
        .flat_map(|&c| WEIGHT_GRID.iter().map(move |&w| c.with_weight(w)))
        .zip(hits.iter().map(|&h| p(h)))
        .collect();
    // Ties keep the earlier grid point (LDA before MLP, less shrunk, lighter).
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
