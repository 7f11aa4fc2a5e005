//! The MLP projection: `z = normalize(W₂·relu(W₁x + b₁) + b₂)`, trained with a supervised
//! contrastive loss (SupCon: tiles of one class pull together, all others push apart) on
//! the collection's centred, unit-length descriptors.
//!
//! Unlike LDA, whose rank is (classes − 1), the MLP's output has [`OUT`] dimensions, so
//! three classes do not collapse to a plane; like LDA it is fused with the plain descriptor
//! (see the module above), so it only reshapes the neighbourhoods it is confident about.
//! Training is seeded and single-threaded, so the same collection always gives the same
//! weights; its cost is a fixed number of steps, whatever the collection's size.
//!
//! With [`Domains`], positive pairs must cross domains (hospitals, say); with its
//! `adversary`, a linear domain classifier on the hidden layer is trained alongside and its
//! gradient reaches the first layer reversed (DANN's gradient reversal), so the hidden
//! layer keeps less of what tells one domain from another.

use nalgebra::DMatrix;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::vector::{dot, l2_normalize};

/// Hidden units (the 384→256→d shape).
pub const HIDDEN: usize = 256;
/// Output dimensions.
pub const OUT: usize = 64;
/// Fixed before any measurement (the SupCon paper's usual values, scaled to a few
/// thousand tiles); the fusion weight is what the collection's cross-validation picks.
const TEMPERATURE: f32 = 0.1;
const STEPS: usize = 150;
const BATCH: usize = 128;
const LEARNING_RATE: f32 = 1e-3;
const WEIGHT_DECAY: f32 = 1e-4;
const SEED: u64 = 0x7e55_e2a0;
/// The reversed gradient's final weight against the SupCon loss, reached by DANN's ramp
/// `λ(p) = λ_max·(2 / (1 + e^(−10p)) − 1)` over the training progress `p` (the DANN
/// paper's schedule and weight 1, fixed before any measurement).
const ADVERSARY_WEIGHT: f32 = 1.0;

/// Each row's domain (e.g. its hospital) and what training does with it.
#[derive(Debug, Clone, Copy)]
pub struct Domains<'a> {
    pub ids: &'a [u32],
    /// A domain classifier on the hidden layer whose gradient is reversed.
    pub adversary: bool,
}

/// Trained weights, row-major: `w1` is [`HIDDEN`] rows of `dim_in`, `w2` [`OUT`] rows of
/// [`HIDDEN`].
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    pub dim_in: usize,
    pub hidden: usize,
    pub out: usize,
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    pub w2: Vec<f32>,
    pub b2: Vec<f32>,
}

impl Mlp {
    /// Number of f32 values of a network of this shape (the `ADPT` section's tail).
    pub fn value_count(dim_in: usize, hidden: usize, out: usize) -> usize {
        hidden * dim_in + hidden + out * hidden + out
    }

    /// Splits `values` (as [`Mlp::values`] wrote them) into a network of this shape.
    pub fn from_values(dim_in: usize, hidden: usize, out: usize, values: &[f32]) -> Option<Mlp> {
        if values.len() != Self::value_count(dim_in, hidden, out) {
            return None;
        }
        let (w1, rest) = values.split_at(hidden * dim_in);
        let (b1, rest) = rest.split_at(hidden);
        let (w2, b2) = rest.split_at(out * hidden);
        Some(Mlp { dim_in, hidden, out, w1: w1.to_vec(), b1: b1.to_vec(), w2: w2.to_vec(), b2: b2.to_vec() })
    }

    pub fn values(&self) -> impl Iterator<Item = &f32> {
        self.w1.iter().chain(&self.b1).chain(&self.w2).chain(&self.b2)
    }

    /// `normalize(W₂·relu(W₁x + b₁) + b₂)` of one centred descriptor.
    pub fn project(&self, centred: &[f32]) -> Vec<f32> {
        let hidden: Vec<f32> = self
            .w1
            .chunks_exact(self.dim_in)
            .zip(&self.b1)
            .map(|(row, b)| (dot(row, centred) + b).max(0.0))
            .collect();
        let mut z: Vec<f32> = self.w2.chunks_exact(self.hidden).zip(&self.b2).map(|(row, b)| dot(row, &hidden) + b).collect();
        l2_normalize(&mut z);
        z
    }

    /// Trains on `data` (rows of `dim_in`, centred) with class `classes[i]` per row. With
    /// `domains`, a positive pair is two tiles of one class from different domains (e.g.
    /// hospitals), so what one domain's tiles share is pushed apart rather than pulled
    /// together; with its adversary, the hidden layer is also trained against a domain
    /// classifier. `None` when no positive pair exists.
    pub fn train(data: &[f32], dim_in: usize, classes: &[u32], domains: Option<Domains>) -> Option<Mlp> {
        let n = classes.len();
        let adversary_classes = match domains {
            Some(Domains { ids, adversary: true }) => ids.iter().max().map_or(0, |&m| m as usize + 1),
            _ => 0,
        };
        let domains = domains.map(|d| d.ids);
        let mut domains_of_class: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
        for i in 0..n {
            domains_of_class.entry(classes[i]).or_default().push(domains.map_or(i as u32, |d| d[i]));
        }
        let has_pair = domains_of_class.values_mut().any(|d| {
            d.sort_unstable();
            d.dedup();
            d.len() >= 2
        });
        if n < 2 || !has_pair {
            return None;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        let x = DMatrix::<f32>::from_row_slice(n, dim_in, data);
        let mut net = Trainable::init(dim_in, HIDDEN, OUT, adversary_classes, &mut rng);
        let batch = BATCH.min(n);
        let mut order: Vec<usize> = (0..n).collect();
        let mut cursor = n;
        for step in 1..=STEPS {
            let mut rows = Vec::with_capacity(batch);
            while rows.len() < batch {
                if cursor == n {
                    order.shuffle(&mut rng);
                    cursor = 0;
                }
                rows.push(order[cursor]);
                cursor += 1;
            }
            let xb = x.select_rows(&rows);
            let (batch_classes, batch_domains): (Vec<u32>, Option<Vec<u32>>) =
                (rows.iter().map(|&i| classes[i]).collect(), domains.map(|d| rows.iter().map(|&i| d[i]).collect()));
            let progress = (step - 1) as f32 / STEPS as f32;
            let reversal = ADVERSARY_WEIGHT * (2.0 / (1.0 + (-10.0 * progress).exp()) - 1.0);
            let pairs = Pairs { classes: &batch_classes, domains: batch_domains.as_deref() };
            let grads = net.gradients(&xb, &pairs, reversal);
            net.adam_step(&grads, step);
        }
        let mut mlp = net.to_mlp();
        // The index stores the weights as f16: round them now, so that the vectors a build
        // stores and the queries a reader adapts go through the same network.
        for v in mlp.w1.iter_mut().chain(&mut mlp.b1).chain(&mut mlp.w2).chain(&mut mlp.b2) {
            *v = half::f16::from_f32(*v).to_f32();
        }
        let finite = mlp.values().all(|v| v.is_finite());
        finite.then_some(mlp)
    }
}

/// A batch's classes and (for positives across domains) domains: which rows pair up.
struct Pairs<'a> {
    classes: &'a [u32],
    domains: Option<&'a [u32]>,
}

impl Pairs<'_> {
    /// Rows `i` and `j` (distinct) are a positive pair.
    fn positive(&self, i: usize, j: usize) -> bool {
        i != j && self.classes[i] == self.classes[j] && self.domains.is_none_or(|d| d[i] != d[j])
    }
}

/// The trained tensors: W₁, b₁, W₂, b₂, then the domain classifier's weights and biases
/// (no columns without an adversary).
const TENSORS: usize = 6;

/// Column-major training copy: `w1` is dim_in × hidden, `w2` hidden × out, the classifier
/// hidden × domains, so a batch goes through as `X·W₁`.
#[derive(Clone)]
struct Trainable {
    params: [DMatrix<f32>; TENSORS],
    first: [DMatrix<f32>; TENSORS],
    second: [DMatrix<f32>; TENSORS],
}

impl Trainable {
    fn init(dim_in: usize, hidden: usize, out: usize, domains: usize, rng: &mut ChaCha8Rng) -> Trainable {
        // He-uniform for the ReLU layer, Glorot-uniform for the linear output.
        let mut uniform = |rows: usize, cols: usize, bound: f32| {
            DMatrix::from_fn(rows, cols, |_, _| rng.gen_range(-bound..bound))
        };
        let w1 = uniform(dim_in, hidden, (6.0 / dim_in as f32).sqrt());
        let w2 = uniform(hidden, out, (6.0 / (hidden + out) as f32).sqrt());
        let v = uniform(hidden, domains, (6.0 / (hidden + domains) as f32).sqrt());
        let params = [w1, DMatrix::zeros(1, hidden), w2, DMatrix::zeros(1, out), v, DMatrix::zeros(1, domains)];
        let zeros = || params.clone().map(|p| DMatrix::zeros(p.nrows(), p.ncols()));
        Trainable { first: zeros(), second: zeros(), params }
    }

    /// The gradients for one batch: of the SupCon loss — for anchor i with positives P(i),
    /// `L_i = logΣ_{a≠i} exp(s_ia) − mean_{p∈P(i)} s_ip`, `s = z_i·z_a / τ` — and, with an
    /// adversary, of the domain classifier's cross-entropy `C`: its own weights descend
    /// `C`, the first layer descends `L − reversal·C`.
    fn gradients(&self, x: &DMatrix<f32>, pairs: &Pairs, reversal: f32) -> [DMatrix<f32>; TENSORS] {
        let [w1, b1, w2, b2, v, c] = &self.params;
        let b = x.nrows();
        let mut pre = x * w1;
        for mut row in pre.row_iter_mut() {
            row += b1;
        }
        let hidden = pre.map(|v| v.max(0.0));
        let mut u = &hidden * w2;
        for mut row in u.row_iter_mut() {
            row += b2;
        }
        // A row whose output is zero (every hidden unit off, b₂ = 0) has no direction: its
        // z is zero and it passes no gradient, like `l2_normalize` leaves it in `project`.
        let norms: Vec<f32> = u.row_iter().map(|r| r.norm()).collect();
        let mut z = u.clone();
        for (mut row, &n) in z.row_iter_mut().zip(&norms) {
            if n > 0.0 {
                row /= n;
            }
        }
        let s = (&z * z.transpose()) / TEMPERATURE;
        let anchors = (0..b).filter(|&i| (0..b).any(|j| pairs.positive(i, j))).count().max(1);
        let mut g = DMatrix::<f32>::zeros(b, b);
        for i in 0..b {
            let positives = (0..b).filter(|&j| pairs.positive(i, j)).count();
            if positives == 0 {
                continue;
            }
            let top = (0..b).filter(|&j| j != i).map(|j| s[(i, j)]).fold(f32::NEG_INFINITY, f32::max);
            let total: f32 = (0..b).filter(|&j| j != i).map(|j| (s[(i, j)] - top).exp()).sum();
            for j in (0..b).filter(|&j| j != i) {
                let p = (s[(i, j)] - top).exp() / total;
                let target = if pairs.positive(i, j) { 1.0 / positives as f32 } else { 0.0 };
                g[(i, j)] = (p - target) / anchors as f32;
            }
        }
        let dz = (&g + g.transpose()) * &z / TEMPERATURE;
        // Through the normalization: du = (dz − z·(z·dz)) / |u|.
        let mut du = dz;
        for (i, &n) in norms.iter().enumerate() {
            let along = z.row(i).dot(&du.row(i));
            let zi = z.row(i).into_owned();
            let mut row = du.row_mut(i);
            if n > 0.0 {
                row -= zi * along;
                row /= n;
            } else {
                row.fill(0.0);
            }
        }
        let dw2 = hidden.transpose() * &du;
        let db2 = DMatrix::from_fn(1, du.ncols(), |_, c| du.column(c).sum());
        let mut dpre = &du * w2.transpose();
        let (dv, dc) = match pairs.domains {
            Some(domains) if v.ncols() > 0 => {
                let (dlogits, dv, dc) = domain_classifier_gradients(&hidden, v, c, domains);
                dpre -= (dlogits * v.transpose()) * reversal;
                (dv, dc)
            }
            _ => (DMatrix::zeros(v.nrows(), v.ncols()), DMatrix::zeros(1, c.ncols())),
        };
        dpre.zip_apply(&pre, |d, p| {
            if p <= 0.0 {
                *d = 0.0;
            }
        });
        let dw1 = x.transpose() * &dpre;
        let db1 = DMatrix::from_fn(1, dpre.ncols(), |_, c| dpre.column(c).sum());
        [dw1, db1, dw2, db2, dv, dc]
    }

    /// AdamW (β = 0.9, 0.999); weight decay on the weights, not the biases.
    fn adam_step(&mut self, grads: &[DMatrix<f32>; TENSORS], step: usize) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        for (k, grad) in grads.iter().enumerate() {
            let decay = if k % 2 == 0 { WEIGHT_DECAY } else { 0.0 };
            let (p, m, v) = (&mut self.params[k], &mut self.first[k], &mut self.second[k]);
            for i in 0..p.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * grad[i];
                v[i] = b2 * v[i] + (1.0 - b2) * grad[i] * grad[i];
                let update = (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
                p[i] -= LEARNING_RATE * (update + decay * p[i]);
            }
        }
    }

    /// The network as stored (row-major copies of the training matrices).
    fn to_mlp(&self) -> Mlp {
        let [w1, b1, w2, b2, ..] = &self.params;
        let (dim_in, hidden, out) = (w1.nrows(), w1.ncols(), w2.ncols());
        // Row h of the stored W₁ is column h of the training copy (column-major: contiguous).
        Mlp { dim_in, hidden, out, w1: w1.as_slice().to_vec(), b1: b1.as_slice().to_vec(), w2: w2.as_slice().to_vec(), b2: b2.as_slice().to_vec() }
    }
}

/// The mean cross-entropy `C` of a softmax classifier `hidden·V + c` against `domains`:
/// `∂C/∂logits`, `∂C/∂V`, `∂C/∂c`.
fn domain_classifier_gradients(
    hidden: &DMatrix<f32>,
    v: &DMatrix<f32>,
    c: &DMatrix<f32>,
    domains: &[u32],
) -> (DMatrix<f32>, DMatrix<f32>, DMatrix<f32>) {
    let b = hidden.nrows();
    let mut dlogits = hidden * v;
    for (i, mut row) in dlogits.row_iter_mut().enumerate() {
        row += c;
        let top = row.max();
        row.apply(|l| *l = (*l - top).exp());
        let total = row.sum();
        row /= total;
        row[domains[i] as usize] -= 1.0;
        row /= b as f32;
    }
    let dv = hidden.transpose() * &dlogits;
    let dc = DMatrix::from_fn(1, dlogits.ncols(), |_, col| dlogits.column(col).sum());
    (dlogits, dv, dc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written backward pass against central differences of the loss (the
    /// encoder's `L − reversal·C`, the domain classifier's `C`).
    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (b, d) = (6, 5);
        let x = DMatrix::from_fn(b, d, |_, _| rng.gen_range(-1.0f32..1.0));
        let classes = [0, 0, 1, 1, 2, 0];
        let domains = [0, 1, 0, 1, 2, 0];
        for (adversary_domains, reversal) in [(0, 0.0), (3, 0.7)] {
            let mut net = Trainable::init(d, 4, 3, adversary_domains, &mut rng);
            // Mostly positive biases: some units off, but no row with every unit off (there
            // the loss is not differentiable in b₂).
            net.params[1] = DMatrix::from_fn(1, 4, |_, _| rng.gen_range(-0.2f32..1.0));
            for domains in [None, Some(&domains[..])] {
                check_gradients(&net, &x, &Pairs { classes: &classes, domains }, reversal);
            }
        }
    }

    fn check_gradients(net: &Trainable, x: &DMatrix<f32>, pairs: &Pairs, reversal: f32) {
        let d = x.ncols();
        let grads = net.gradients(x, pairs, reversal);
        let adversary = |net: &Trainable| match pairs.domains {
            Some(domains) if net.params[4].ncols() > 0 => domain_loss(net, x, domains),
            _ => 0.0,
        };
        for k in 0..TENSORS {
            let loss = |net: &Trainable| if k < 4 { supcon_loss(net, x, pairs) - reversal * adversary(net) } else { adversary(net) };
            for i in 0..net.params[k].len() {
                let h = 1e-2;
                let mut plus = net.params.clone();
                plus[k][i] += h;
                let mut minus = net.params.clone();
                minus[k][i] -= h;
                let with = |params: [DMatrix<f32>; TENSORS]| loss(&Trainable { params, ..net.clone() });
                let numeric = (with(plus) - with(minus)) / (2.0 * h);
                let analytic = grads[k][i];
                assert!((numeric - analytic).abs() < 2e-3 + 0.05 * analytic.abs(), "param {k}[{i}]: numeric {numeric}, analytic {analytic}");
            }
        }
        // And the network as stored computes the same z as the training copy.
        let mlp = net.to_mlp();
        let row: Vec<f32> = x.row(0).iter().copied().collect();
        let z = mlp.project(&row);
        let mut u: Vec<f32> = (0..3)
            .map(|o| {
                let h: Vec<f32> = (0..4).map(|j| ((0..d).map(|c| row[c] * net.params[0][(c, j)]).sum::<f32>() + net.params[1][j]).max(0.0)).collect();
                (0..4).map(|j| h[j] * net.params[2][(j, o)]).sum::<f32>() + net.params[3][o]
            })
            .collect();
        l2_normalize(&mut u);
        for (a, b) in z.iter().zip(&u) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    /// Mean cross-entropy of the domain classifier on the hidden layer, computed plainly.
    fn domain_loss(net: &Trainable, x: &DMatrix<f32>, domains: &[u32]) -> f32 {
        let [w1, b1, _, _, v, c] = &net.params;
        let mut total = 0.0;
        for (i, row) in x.row_iter().enumerate() {
            let hidden = (row * w1 + b1).map(|h| h.max(0.0));
            let logits = hidden * v + c;
            let lse = logits.iter().map(|l| l.exp()).sum::<f32>().ln();
            total += lse - logits[domains[i] as usize];
        }
        total / x.nrows() as f32
    }

    fn supcon_loss(net: &Trainable, x: &DMatrix<f32>, pairs: &Pairs) -> f32 {
        let mlp = net.to_mlp();
        let z: Vec<Vec<f32>> = x.row_iter().map(|r| mlp.project(&r.iter().copied().collect::<Vec<_>>())).collect();
        let b = z.len();
        let anchors = (0..b).filter(|&i| (0..b).any(|j| pairs.positive(i, j))).count() as f32;
        let mut total = 0.0;
        for i in 0..b {
            let positives: Vec<usize> = (0..b).filter(|&j| pairs.positive(i, j)).collect();
            if positives.is_empty() {
                continue;
            }
            let s = |j: usize| dot(&z[i], &z[j]) / TEMPERATURE;
            let lse = (0..b).filter(|&j| j != i).map(|j| s(j).exp()).sum::<f32>().ln();
            total += lse - positives.iter().map(|&p| s(p)).sum::<f32>() / positives.len() as f32;
        }
        total / anchors
    }

    #[test]
    fn training_separates_two_shifted_classes_and_is_deterministic() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let d = 8;
        let mut data = Vec::new();
        let mut classes = Vec::new();
        for i in 0..80 {
            let c = (i % 2) as u32;
            for k in 0..d {
                data.push(rng.gen_range(-1.0f32..1.0) + if k == 0 { 1.5 * (c as f32 * 2.0 - 1.0) } else { 0.0 });
            }
            classes.push(c);
        }
        let a = Mlp::train(&data, d, &classes, None).unwrap();
        assert_eq!(a, Mlp::train(&data, d, &classes, None).unwrap());
        let z: Vec<Vec<f32>> = data.chunks_exact(d).map(|r| a.project(r)).collect();
        let (mut same, mut other) = (0.0, 0.0);
        for i in 0..80 {
            for j in 0..80 {
                if i != j {
                    let c = dot(&z[i], &z[j]);
                    if classes[i] == classes[j] { same += c } else { other += c }
                }
            }
        }
        assert!(same / (80.0 * 39.0) > other / (80.0 * 40.0) + 0.5, "same {same} other {other}");
        assert!(Mlp::train(&data[..2 * d], d, &[0, 1], None).is_none(), "no positive pair");
        assert!(Mlp::train(&data[..4 * d], d, &[0, 0, 1, 1], Some(Domains { ids: &[0, 0, 1, 1], adversary: false })).is_none(), "no pair across domains");
    }

    /// Two classes on one axis, two domains on another, stronger one: trained with
    /// positives across domains, a class's tiles from the other domain end closer than
    /// those of its own domain, and closer than plain positives leave them.
    #[test]
    fn positives_across_domains_weaken_the_domain() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let d = 8;
        let (mut data, mut classes, mut domains) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..160 {
            let (c, m) = ((i % 2) as u32, ((i / 2) % 2) as u32);
            for k in 0..d {
                let shift = match k {
                    0 => 1.0 * (c as f32 * 2.0 - 1.0),
                    1 => 2.0 * (m as f32 * 2.0 - 1.0),
                    _ => 0.0,
                };
                data.push(rng.gen_range(-1.0f32..1.0) + shift);
            }
            classes.push(c);
            domains.push(m);
        }
        let domain_gap = |mlp: &Mlp| {
            let z: Vec<Vec<f32>> = data.chunks_exact(d).map(|r| mlp.project(r)).collect();
            let (mut same, mut ns, mut other, mut no) = (0.0, 0, 0.0, 0);
            for i in 0..160 {
                for j in 0..160 {
                    if i != j && classes[i] == classes[j] {
                        let c = dot(&z[i], &z[j]);
                        if domains[i] == domains[j] { (same += c, ns += 1) } else { (other += c, no += 1) };
                    }
                }
            }
            same / ns as f32 - other / no as f32
        };
        let plain = domain_gap(&Mlp::train(&data, d, &classes, None).unwrap());
        let across = domain_gap(&Mlp::train(&data, d, &classes, Some(Domains { ids: &domains, adversary: false })).unwrap());
        assert!(across < plain && across < 0.0, "same-domain minus other-domain cosine: across {across}, plain {plain}");
        let adversarial = Domains { ids: &domains, adversary: true };
        let with_adversary = Mlp::train(&data, d, &classes, Some(adversarial)).unwrap();
        assert_eq!(with_adversary, Mlp::train(&data, d, &classes, Some(adversarial)).unwrap(), "seeded");
        let adversary_gap = domain_gap(&with_adversary);
        assert!(adversary_gap < 0.0, "same-domain minus other-domain cosine with the adversary: {adversary_gap}");
    }
}
