//! Retrieval metrics of one ranked hit list, and their averages over queries.
//!
//! Definitions (a hit is "correct" when its label equals the query's):
//! - P@k: correct hits among the top k, divided by k (a missing hit counts as wrong).
//! - R@k: 1 if at least one of the top k hits is correct, else 0 — the fraction of
//!   queries with a correct hit in the top k (not recall over all relevant tiles).
//! - MV@5: 1 if the most frequent label among the top 5 is the query's; a tie goes to
//!   the tied label ranked highest, as SISH's `Counter.most_common` does.
//! - mMV@5: MV@5 averaged per class, then over classes (the class-balanced figure SISH
//!   and RetCCL report); all other figures average over queries.

use serde::Serialize;

/// Depth of the ranked list every query needs: the largest k of any metric.
pub const RANK_DEPTH: usize = 10;
/// Hits that vote in MV@5.
pub const VOTE_DEPTH: usize = 5;

/// Fraction of the first `k` entries of `correct` that are true, over `k`.
pub fn precision_at(correct: &[bool], k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    correct.iter().take(k).filter(|&&c| c).count() as f64 / k as f64
}

/// Whether any of the first `k` entries of `correct` is true.
pub fn any_correct_within(correct: &[bool], k: usize) -> bool {
    correct.iter().take(k).any(|&c| c)
}

/// The most frequent label among the first `k` of `ranked`; ties go to the label that
/// appears first. `None` for an empty list.
pub fn majority_label<L: PartialEq + Copy>(ranked: &[L], k: usize) -> Option<L> {
    let top = &ranked[..k.min(ranked.len())];
    let mut best: Option<(L, usize)> = None;
    for (i, &label) in top.iter().enumerate() {
        if top[..i].contains(&label) {
            continue; // counted at its first appearance
        }
        let count = top.iter().filter(|&&l| l == label).count();
        if best.is_none_or(|(_, best_count)| count > best_count) {
            best = Some((label, count));
        }
    }
    best.map(|(label, _)| label)
}

/// Averages of the per-query metrics over a set of queries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    pub p_at_1: f64,
    pub p_at_3: f64,
    pub p_at_5: f64,
    pub mv_at_5: f64,
    pub r_at_5: f64,
    pub r_at_10: f64,
}

/// Running sums of per-query metrics.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MetricSums {
    pub queries: usize,
    p_at_1: f64,
    p_at_3: f64,
    p_at_5: f64,
    mv_at_5: f64,
    r_at_5: f64,
    r_at_10: f64,
}

impl MetricSums {
    /// Adds one query, given its label and the labels of its ranked hits.
    pub fn add<L: PartialEq + Copy>(&mut self, query: L, ranked: &[L]) {
        let correct: Vec<bool> = ranked.iter().map(|&l| l == query).collect();
        self.queries += 1;
        self.p_at_1 += precision_at(&correct, 1);
        self.p_at_3 += precision_at(&correct, 3);
        self.p_at_5 += precision_at(&correct, 5);
        self.mv_at_5 += f64::from(u8::from(majority_label(ranked, VOTE_DEPTH) == Some(query)));
        self.r_at_5 += f64::from(u8::from(any_correct_within(&correct, 5)));
        self.r_at_10 += f64::from(u8::from(any_correct_within(&correct, 10)));
    }

    pub fn merge(&mut self, other: &MetricSums) {
        self.queries += other.queries;
        self.p_at_1 += other.p_at_1;
        self.p_at_3 += other.p_at_3;
        self.p_at_5 += other.p_at_5;
        self.mv_at_5 += other.mv_at_5;
        self.r_at_5 += other.r_at_5;
        self.r_at_10 += other.r_at_10;
    }

    pub fn mean(&self) -> Metrics {
        let n = self.queries.max(1) as f64;
        Metrics {
            p_at_1: self.p_at_1 / n,
            p_at_3: self.p_at_3 / n,
            p_at_5: self.p_at_5 / n,
            mv_at_5: self.mv_at_5 / n,
            r_at_5: self.r_at_5 / n,
            r_at_10: self.r_at_10 / n,
        }
    }
}
