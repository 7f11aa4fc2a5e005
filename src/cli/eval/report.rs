//! What `tessera eval` reports: the JSON document and its markdown tables.

use std::fmt::Write;

use serde::Serialize;

use tessera::eval::{Metrics, Protocol};
use tessera::model::Embedder;

use super::datasets::Dataset;
use super::held_out::HeldOutRow;
use super::{Comparison, EmbedTiming, RecallRow, ResultRow};

pub const TILING: &str = "LC25000 tiles are used whole (224×224). Each 1000×1000 MoNuSeg field is cut into \
4×4 = 16 non-overlapping 224×224 tiles from its top-left corner (the right and bottom 104 px are unused); \
every tile keeps its field's organ label, slide, case and tissue-source site.";

pub const DEFINITIONS: &str = "Every tile is a query against all other tiles allowed by the protocol, ranked by \
exact cosine similarity. P@k: share of the top k hits with the query's label (missing hits count as wrong). \
MV@5: the most frequent label among the top 5 is the query's (ties go to the label ranked first). \
mMV@5: MV@5 averaged per class, then over classes (as SISH/RetCCL report it). \
R@k: share of queries with at least one correct hit in the top k (not recall over all relevant tiles). \
All other figures are means over queries.";

#[derive(Debug, Serialize)]
pub struct ModelInfo {
    pub id: String,
    pub sha256: String,
    pub block: u32,
    pub pooling: String,
    pub dim: usize,
}

impl ModelInfo {
    pub fn of(embedder: &Embedder) -> ModelInfo {
        let m = embedder.manifest();
        ModelInfo {
            id: m.id.clone(),
            sha256: m.sha256.clone(),
            block: m.block,
            pooling: m.pooling.clone(),
            dim: m.output.dim,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DatasetInfo {
    pub name: &'static str,
    pub title: &'static str,
    pub tiles: usize,
    pub protocols: Vec<ProtocolInfo>,
}

#[derive(Debug, Serialize)]
pub struct ProtocolInfo {
    pub protocol: Protocol,
    pub description: &'static str,
}

impl DatasetInfo {
    pub fn of(dataset: &Dataset) -> DatasetInfo {
        DatasetInfo {
            name: dataset.name,
            title: dataset.title,
            tiles: dataset.tiles.len(),
            protocols: dataset
                .protocols
                .iter()
                .map(|&protocol| ProtocolInfo {
                    protocol,
                    description: protocol.description(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct EvalOutput {
    pub provenance: crate::cli::Provenance,
    pub data: String,
    pub model: Option<ModelInfo>,
    /// `--finetuned`: the network the `ft:` rows use.
    pub finetuned_model: Option<ModelInfo>,
    pub tiling: &'static str,
    pub definitions: &'static str,
    pub datasets: Vec<DatasetInfo>,
    pub embedding: Vec<EmbedTiming>,
    pub results: Vec<ResultRow>,
    pub comparisons: Vec<Comparison>,
    pub held_out: Vec<HeldOutRow>,
    pub hnsw_recall: Vec<RecallRow>,
}

/// Every table as markdown.
pub fn markdown(out: &EvalOutput) -> String {
    let mut md = String::from("# Retrieval evaluation (`tessera eval`)\n\n");
    intro(out, &mut md);
    datasets(out, &mut md);
    comparisons(out, &mut md);
    held_out(out, &mut md);
    hnsw_recall(out, &mut md);
    md
}

/// Model, data, definitions, the legend of descriptor names, embedding times.
fn intro(out: &EvalOutput, md: &mut String) {
    for (what, model) in [("Model", &out.model), ("Fine-tuned network (the `ft:` rows)", &out.finetuned_model)] {
        if let Some(m) = model {
            let _ = writeln!(
                md,
                "{what} `{}` (SHA-256 `{}…`), block {}, {} pooling, {}-d; int8 weights run by tract.\n",
                m.id,
                &m.sha256[..12],
                m.block,
                m.pooling,
                m.dim
            );
        }
    }
    let _ = writeln!(
        md,
        "Data: `{}`. {}\n\n{}\n",
        out.data, out.tiling, out.definitions
    );
    let _ = writeln!(
        md,
        "`hist` is the square-root RGB 8×8×8 colour histogram; `vit@N` the model's embedding at \
         N×N input; `×4` the mean embedding of the tile's four 90° rotations; `fused:w@N` concatenates \
         ViT and histogram so that similarity = (1-w)·cos(vit) + w·cos(hist); `+adapter` adds the adapter \
         `tessera build` trains by default (`auto`: shrinkage LDA or a SupCon MLP, fused at a \
         cross-validated weight, or none), `+lda` / `+mlp` one kind forced: each query's adapter was \
         trained, with its own kind, hyper-parameter and keep-or-skip choice, only on folds that hold none \
         of the tiles sharing the query's group / slide / case / site (the column the protocol excludes); \
         `+expand:n/mean` or `/rrf` expands each query by its first n variants (mirror image, then \
         haematoxylin ×1.2 and ×0.8), fused by mean cosine or reciprocal rank; `ft:` the same \
         descriptor with the fine-tuned network in place of the model.\n"
    );
    if !out.embedding.is_empty() {
        md.push_str("| network | input px | tiles | threads | wall ms/tile |\n|---|---:|---:|---:|---:|\n");
        for t in &out.embedding {
            let ms = t
                .wall_ms_per_tile
                .map_or("cached".to_string(), |ms| format!("{ms:.1}"));
            let network = if t.finetuned { "fine-tuned" } else { "model" };
            let _ = writeln!(
                md,
                "| {network} | {} | {} | {} | {ms} |",
                t.input_size, t.tiles, t.threads
            );
        }
        md.push('\n');
    }
}

/// Per dataset and protocol: the metrics, slide-level and own-hospital tables; per class.
fn datasets(out: &EvalOutput, md: &mut String) {
    for dataset in &out.datasets {
        let _ = writeln!(md, "## {} — {} tiles\n", dataset.title, dataset.tiles);
        for p in &dataset.protocols {
            let rows: Vec<&ResultRow> = out
                .results
                .iter()
                .filter(|r| r.dataset == dataset.name && r.report.protocol == p.protocol)
                .collect();
            let _ = writeln!(md, "### `{}`: {}\n", p.protocol.name(), p.description);
            md.push_str(&metrics_table(&rows));
            md.push('\n');
            if rows.iter().any(|r| r.report.slides.is_some()) {
                let _ = writeln!(
                    md,
                    "Slide level, `{}`: each slide's tiles vote with their {} nearest allowed tiles for slides \
                     (score-weighted, as `tessera search --slides`); the top 5 slides are scored.\n\n\
                     | descriptor | slides | P@5 | MV@5 | mMV@5 |\n|---|---:|---:|---:|---:|",
                    p.protocol.name(),
                    tessera::eval::SLIDE_VOTERS
                );
                for r in rows.iter().filter_map(|r| r.report.slides.as_ref().map(|s| (r, s))) {
                    let (row, s) = r;
                    let _ = writeln!(md, "| {} | {} | {:.3} | {:.3} | {:.3} |", row.descriptor, s.slides, s.p_at_5, s.mv_at_5, s.m_mv_at_5);
                }
                md.push('\n');
            }
            if rows.iter().any(|r| r.report.site_bias.is_some()) {
                let _ = writeln!(
                    md,
                    "Own-hospital neighbours, `{}`: each query's 5 nearest tiles among other slides of its own \
                     class; the share from the query's own site (lower is better), beside the share a \
                     site-blind descriptor would get (chance).\n\n\
                     | descriptor | queries | own site @5 | chance |\n|---|---:|---:|---:|",
                    p.protocol.name()
                );
                for (row, b) in rows.iter().filter_map(|r| r.report.site_bias.as_ref().map(|b| (r, b))) {
                    let _ = writeln!(md, "| {} | {} | {:.3} | {:.3} |", row.descriptor, b.queries, b.own_site_at_5, b.chance);
                }
                md.push('\n');
            }
        }
        if let Some(main) = dataset.protocols.first() {
            let rows: Vec<&ResultRow> = out
                .results
                .iter()
                .filter(|r| r.dataset == dataset.name && r.report.protocol == main.protocol)
                .collect();
            let _ = writeln!(
                md,
                "### Per class, `{}`: P@5 / MV@5\n",
                main.protocol.name()
            );
            md.push_str(&per_class_table(&rows));
            md.push('\n');
        }
    }
}

fn comparisons(out: &EvalOutput, md: &mut String) {
    if !out.comparisons.is_empty() {
        md.push_str(
            "## Paired differences\n\nP@5 of a descriptor minus a baseline, over the same queries (the best adapted row against the histogram and the same descriptor unadapted, every `auto` row against each adapter kind forced and against no adapter, fine-tuned rows against the model's, expanded queries against unexpanded); \
             95% interval from a bootstrap that resamples whole clusters (the protocol's fold column).\n\n\
             | dataset | protocol | descriptor | against | clusters | ΔP@5 | 95% interval |\n|---|---|---|---|---|---:|---|\n",
        );
        for c in &out.comparisons {
            let i = c.p_at_5_difference;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:+.3} | [{:+.3}, {:+.3}] |",
                c.dataset,
                c.protocol.name(),
                c.descriptor,
                c.against,
                c.clustered_by,
                i.difference,
                i.low,
                i.high
            );
        }
        md.push('\n');
    }
}

fn held_out(out: &EvalOutput, md: &mut String) {
    if !out.held_out.is_empty() {
        md.push_str(
            "## Held-out collection (LC25000)\n\nAn index built by the build's code path with default options \
             from the even-numbered augmentation groups (sorted by name), queried with every tile of the odd ones, \
             then the other way round: nothing the index holds or its adapter was trained on shares a source \
             image with a query. P@5 against the index's labels; Δ vs hist paired, clustered by group.\n\n\
             | descriptor | queries | P@5 | Δ vs hist | 95% interval | adapter (A→B; B→A) |\n|---|---:|---:|---:|---|---|\n",
        );
        for r in &out.held_out {
            let (delta, interval) = match r.vs_hist {
                Some(i) => (format!("{:+.3}", i.difference), format!("[{:+.3}, {:+.3}]", i.low, i.high)),
                None => (String::new(), String::new()),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {:.3} | {delta} | {interval} | {} |",
                r.descriptor,
                r.queries,
                r.p_at_5,
                r.adapter_decisions.join("; ")
            );
        }
        md.push('\n');
    }
}

fn hnsw_recall(out: &EvalOutput, md: &mut String) {
    if !out.hnsw_recall.is_empty() {
        md.push_str(
            "## HNSW vs exact search\n\nRecall@10 of the index's HNSW search (f32 vectors, default graph \
             parameters, graph forced on) against exact cosine search; every tile a query, itself excluded.\n\n\
             | dataset | descriptor | recall@10 |\n|---|---|---:|\n",
        );
        for r in &out.hnsw_recall {
            let _ = writeln!(md, "| {} | {} | {:.4} |", r.dataset, r.descriptor, r.recall);
        }
        md.push('\n');
    }
}

fn metrics_table(rows: &[&ResultRow]) -> String {
    let mut md = String::from(
        "| descriptor | dim | P@1 | P@3 | P@5 | MV@5 | mMV@5 | R@5 | R@10 |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let best = rows
        .iter()
        .map(|r| r.report.overall.p_at_5)
        .fold(f64::NEG_INFINITY, f64::max);
    for r in rows {
        let Metrics {
            p_at_1,
            p_at_3,
            p_at_5,
            mv_at_5,
            r_at_5,
            r_at_10,
        } = r.report.overall;
        let p5 = if p_at_5 == best {
            format!("**{p_at_5:.3}**")
        } else {
            format!("{p_at_5:.3}")
        };
        let _ = writeln!(
            md,
            "| {} | {} | {p_at_1:.3} | {p_at_3:.3} | {p5} | {mv_at_5:.3} | {:.3} | {r_at_5:.3} | {r_at_10:.3} |",
            r.descriptor, r.dim, r.report.m_mv_at_5
        );
    }
    md
}

fn per_class_table(rows: &[&ResultRow]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let mut md = String::from("| class | queries |");
    for r in rows {
        let _ = write!(md, " {} |", r.descriptor);
    }
    md.push_str("\n|---|---:|");
    md.push_str(&"---:|".repeat(rows.len()));
    md.push('\n');
    for (i, class) in first.report.per_class.iter().enumerate() {
        let _ = write!(md, "| {} | {} |", class.label, class.queries);
        for r in rows {
            let m = &r.report.per_class[i].metrics;
            let _ = write!(md, " {:.3} / {:.3} |", m.p_at_5, m.mv_at_5);
        }
        md.push('\n');
    }
    md
}
