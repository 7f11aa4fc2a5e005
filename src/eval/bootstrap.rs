//! Paired bootstrap confidence intervals for the difference of two descriptors' per-query
//! figures, resampling whole clusters (groups, slides, sites) because queries that share
//! one are not independent.

use std::collections::BTreeMap;

use serde::Serialize;

/// A mean difference and its 95% percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub difference: f64,
    pub low: f64,
    pub high: f64,
    pub resamples: usize,
}

/// Mean of `a − b` over the queries where both are defined (not NaN), with a 95% interval
/// from `resamples` cluster resamples (seeded: the same inputs give the same interval).
pub fn paired_bootstrap(a: &[f32], b: &[f32], clusters: &[&str], resamples: usize, seed: u64) -> Interval {
    let mut by_cluster: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for ((&x, &y), &c) in a.iter().zip(b).zip(clusters) {
        if x.is_nan() || y.is_nan() {
            continue;
        }
        let entry = by_cluster.entry(c).or_insert((0.0, 0));
        entry.0 += f64::from(x) - f64::from(y);
        entry.1 += 1;
    }
    let sums: Vec<(f64, usize)> = by_cluster.into_values().collect();
    let mean = |pick: &mut dyn FnMut() -> usize| {
        let (mut total, mut count) = (0.0, 0usize);
        for _ in 0..sums.len() {
            let (s, n) = sums[pick()];
            total += s;
            count += n;
        }
        if count == 0 { 0.0 } else { total / count as f64 }
    };
    let mut identity = 0..;
    let difference = mean(&mut || identity.next().unwrap_or(0));
    if sums.is_empty() {
        return Interval { difference, low: difference, high: difference, resamples: 0 };
    }
    let mut state = seed;
    let n = sums.len() as u64;
    let mut draws: Vec<f64> = (0..resamples)
        .map(|_| mean(&mut || (splitmix64(&mut state) % n) as usize))
        .collect();
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| draws[((q * (draws.len() - 1) as f64).round() as usize).min(draws.len() - 1)];
    Interval { difference, low: at(0.025), high: at(0.975), resamples }
}

/// SplitMix64: a tiny, well-mixed generator; enough for resampling indices.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
