//! Metric functions and protocols on tiny hand-made cases whose answers are known.

use tessera::eval::exact::top_k_where;
use tessera::eval::metrics::{any_correct_within, majority_label, precision_at};
use tessera::eval::{evaluate, EvalError, Protocol, TileMeta, VectorSet};

fn meta(label: &str, group: &str, slide: &str, site: &str) -> TileMeta {
    TileMeta {
        label: label.into(),
        group: group.into(),
        slide: Some(slide.into()),
        case: Some(slide.into()),
        site: Some(site.into()),
    }
}

#[test]
fn precision_counts_missing_hits_as_wrong() {
    let correct = [true, false, true, true, false];
    assert_eq!(precision_at(&correct, 1), 1.0);
    assert!((precision_at(&correct, 3) - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(precision_at(&correct, 5), 0.6);
    assert_eq!(precision_at(&correct[..2], 5), 0.2);
    assert_eq!(precision_at(&correct, 0), 0.0);
}

#[test]
fn recall_at_k_is_any_correct_within_k() {
    let correct = [false, false, true];
    assert!(!any_correct_within(&correct, 2));
    assert!(any_correct_within(&correct, 3));
    assert!(!any_correct_within(&[], 10));
}

#[test]
fn majority_vote_breaks_ties_by_rank() {
    assert_eq!(majority_label(&['a', 'b', 'c', 'b', 'b'], 5), Some('b'));
    // The sixth hit does not vote: 'a' and 'b' tie at 2 and 'a' ranks first.
    assert_eq!(
        majority_label(&['a', 'b', 'b', 'c', 'a', 'b'], 5),
        Some('a')
    );
    // 2-2-1: 'c' ranks first among the tied 'c' and 'a'.
    assert_eq!(majority_label(&['c', 'a', 'a', 'b', 'c'], 5), Some('c'));
    assert_eq!(majority_label(&['a', 'b', 'c'], 5), Some('a'));
    // Only the first k vote.
    assert_eq!(
        majority_label(&['a', 'b', 'b', 'a', 'a', 'b', 'b', 'b'], 5),
        Some('a')
    );
    assert_eq!(majority_label::<char>(&[], 5), None);
}

#[test]
fn top_k_ranks_by_score_then_index_and_skips_excluded() {
    let scores = [0.5, 0.9, 0.5, 0.1, 0.9, 0.7];
    assert_eq!(top_k_where(&scores, 4, |_| true), vec![1, 4, 5, 0]);
    assert_eq!(top_k_where(&scores, 3, |i| i != 4), vec![1, 5, 0]);
    assert_eq!(top_k_where(&scores, 10, |i| i % 2 == 1), vec![1, 5, 3]);
    assert!(top_k_where(&scores, 0, |_| true).is_empty());
}

/// Six tiles on a line: an A/A' near-duplicate pair, a lone A far away, and three Bs.
/// 2-d vectors at angles so the cosine order is the list order.
fn line_of_tiles() -> (Vec<f32>, Vec<TileMeta>) {
    let angles = [0.0f32, 0.04, 0.1, 0.3, 0.35, 1.2];
    let vectors = angles.iter().flat_map(|a| [a.cos(), a.sin()]).collect();
    let meta = vec![
        meta("A", "g0", "s0", "h0"),
        meta("A", "g0", "s0", "h0"), // near-duplicate of tile 0
        meta("B", "g1", "s1", "h1"),
        meta("B", "g2", "s2", "h0"),
        meta("B", "g3", "s3", "h1"),
        meta("A", "g4", "s4", "h1"),
    ];
    (vectors, meta)
}

#[test]
fn excluding_the_same_group_removes_near_duplicate_hits() {
    let (vectors, meta) = line_of_tiles();
    let set = VectorSet::new(&vectors, 2).unwrap();
    let reports = evaluate(
        &set,
        &meta,
        &[Protocol::AllOthers, Protocol::ExcludeSameGroup],
    )
    .unwrap();
    let (all, excl) = (&reports[0], &reports[1]);
    assert_eq!(all.queries, 6);
    // Queries' nearest neighbours with everything allowed: 0→1 (A✓), 1→0 (A✓), 2→1 (A✗),
    // 3→4 (B✓), 4→3 (B✓), 5→4 (B✗).
    assert!((all.overall.p_at_1 - 4.0 / 6.0).abs() < 1e-12);
    // Without the same group, 0 and 1 lose each other and find tile 2 (B✗) first.
    assert!((excl.overall.p_at_1 - 2.0 / 6.0).abs() < 1e-12);
    // Every query has fewer than 10 candidates here.
    assert_eq!(excl.short_queries, 6);
    // R@5 with 4 or 5 candidates: every A query still reaches an A, every B query a B.
    assert_eq!(excl.overall.r_at_5, 1.0);
    let a = excl.per_class.iter().find(|c| c.label == "A").unwrap();
    assert_eq!(a.queries, 3);
}

#[test]
fn slide_and_site_protocols_remove_their_hits() {
    // 0 and 1: one slide, two groups; 2: another slide of the same hospital; 3: elsewhere.
    let angles = [0.0f32, 0.04, 0.1, 0.5];
    let vectors: Vec<f32> = angles.iter().flat_map(|a| [a.cos(), a.sin()]).collect();
    let meta = vec![
        meta("B", "g0", "s0", "h0"),
        meta("B", "g1", "s0", "h0"),
        meta("B", "g2", "s2", "h0"),
        meta("A", "g3", "s3", "h1"),
    ];
    let set = VectorSet::new(&vectors, 2).unwrap();
    let protocols = [
        Protocol::ExcludeSameGroup,
        Protocol::LeaveOneSlideOut,
        Protocol::LeaveOneSiteOut,
    ];
    let reports = evaluate(&set, &meta, &protocols).unwrap();
    let p = |i: usize| (reports[i].overall.p_at_1, reports[i].overall.p_at_3);
    // Same group excluded: 0→[1,2,3], 1→[0,2,3], 2→[1,0,3], 3→[2,1,0].
    assert_eq!(p(0).0, 0.75);
    assert!((p(0).1 - 0.5).abs() < 1e-12);
    // Same slide excluded too: 0→[2,3], 1→[2,3]; 2 and 3 keep their lists.
    assert_eq!(p(1).0, 0.75);
    assert!((p(1).1 - 1.0 / 3.0).abs() < 1e-12);
    // Same hospital excluded too: the Bs can only find the A, and the A only Bs.
    assert_eq!(p(2), (0.0, 0.0));
    assert_eq!(reports[2].overall.r_at_10, 0.0);
}

#[test]
fn macro_majority_vote_weights_classes_equally() {
    // Three A tiles clustered and one B tile next to them: A queries vote A, the B query
    // votes A, so micro MV@5 = 3/4 and the class-balanced mMV@5 = (1 + 0) / 2.
    let angles = [0.0f32, 0.01, 0.02, 0.03];
    let vectors: Vec<f32> = angles.iter().flat_map(|a| [a.cos(), a.sin()]).collect();
    let meta: Vec<TileMeta> = ["A", "A", "A", "B"]
        .iter()
        .enumerate()
        .map(|(i, l)| meta(l, &format!("g{i}"), &format!("s{i}"), "h"))
        .collect();
    let set = VectorSet::new(&vectors, 2).unwrap();
    let report = &evaluate(&set, &meta, &[Protocol::ExcludeSameGroup]).unwrap()[0];
    assert_eq!(report.overall.mv_at_5, 0.75);
    assert_eq!(report.m_mv_at_5, 0.5);
}

#[test]
fn bad_inputs_are_errors() {
    let (vectors, mut meta) = line_of_tiles();
    assert_eq!(
        VectorSet::new(&vectors[..11], 2).unwrap_err(),
        EvalError::VectorShape { floats: 11, dim: 2 }
    );
    assert_eq!(
        VectorSet::new(&[0.0, 0.0, 1.0, 0.0], 2).unwrap_err(),
        EvalError::DegenerateVector { tile: 0 }
    );
    let set = VectorSet::new(&vectors, 2).unwrap();
    assert_eq!(
        evaluate(&set, &meta[..5], &[Protocol::AllOthers]).unwrap_err(),
        EvalError::CountMismatch {
            vectors: 6,
            tiles: 5
        }
    );
    meta[3].site = None;
    assert!(evaluate(&set, &meta, &[Protocol::LeaveOneSlideOut]).is_ok());
    assert_eq!(
        evaluate(&set, &meta, &[Protocol::LeaveOneSiteOut]).unwrap_err(),
        EvalError::MissingField {
            protocol: "leave_one_site_out",
            field: "site",
            tile: 3
        }
    );
}

#[test]
fn metadata_comes_from_named_columns() {
    let row = [
        ("label", "lung"),
        ("group", "g"),
        ("slide", "s"),
        ("site", " "),
    ];
    let column = |name: &str| row.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let meta = TileMeta::from_columns(column, "row 2").unwrap();
    assert_eq!(meta.slide.as_deref(), Some("s"));
    assert_eq!(meta.case, None);
    assert_eq!(meta.site, None, "blank values count as absent");
    let no_group = |name: &str| if name == "label" { Some("lung") } else { None };
    assert_eq!(
        TileMeta::from_columns(no_group, "row 3").unwrap_err(),
        EvalError::MissingColumn {
            tile: "row 3".into(),
            column: "group"
        }
    );
}
