//! The adapter on real tiles (square-root colour histograms of LC25000 and MoNuSeg stand in
//! for the model, so no embedding is needed): it is kept only when the collection's own
//! held-out folds say it helps, it survives the index file, a damaged adapter section is
//! refused, and labels that cannot train one are reported, never silently used.

use crate::index_support;

use index_support::*;
use tessera::adapter::{train, AdapterChoice, AdapterParams, TileLabels};
use tessera::index::{BuildOptions, Index, IndexBuilder, IndexError};
use tessera::search::{search, Query, SearchOptions};

fn labels_of(tiles: &[Tile]) -> Vec<TileLabels> {
    tiles.iter().map(|(_, cols)| TileLabels::from_columns(|k| cols.iter().find(|(c, _)| c == k).map(|(_, v)| v.as_str()))).collect()
}

fn flat(tiles: &[Tile]) -> Vec<f32> {
    tiles
        .iter()
        .flat_map(|(v, _)| {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(move |x| x / norm)
        })
        .collect()
}

fn builder_with(tiles: &[Tile]) -> IndexBuilder {
    let mut builder = IndexBuilder::new(colour_model(), BuildOptions::default()).unwrap();
    for (v, cols) in tiles {
        builder.add(v, cols.clone(), None).unwrap();
    }
    builder
}

#[test]
fn auto_on_lc25000_is_kept_by_its_own_cross_validation_and_round_trips() {
    let tiles = lc25000(3);
    let mut builder = builder_with(&tiles);
    let decision = builder.fit_adapter(AdapterChoice::Auto).unwrap();
    let cv = decision.cv.clone().expect("groups give folds");
    assert_eq!(cv.folds_by, "group");
    assert_eq!(cv.queries, tiles.len());
    assert!(cv.adapted_p_at_5 > cv.plain_p_at_5, "{decision}");
    assert_eq!(decision.grid.len(), 16, "3 shrinkages and the MLP, at 4 weights each");
    let adapter = decision.adapter.clone().expect("kept: it wins held-out");
    let best = decision.grid.iter().copied().fold(decision.grid[0], |b, g| if g.1 > b.1 { g } else { b });
    assert_eq!(adapter.info().params, best.0, "auto keeps the grid point that won held-out");
    let rank = match adapter.info().params {
        AdapterParams::Lda(_) => 2,
        AdapterParams::Mlp(_) => tessera::adapter::mlp::OUT,
    };
    assert_eq!((adapter.dim_in(), adapter.dim_out()), (512, 512 + rank));
    assert!(decision.to_string().contains(&format!("using {} over 3 classes", adapter.info().params)), "{decision}");
    let lda = train(&flat(&tiles), 512, &labels_of(&tiles), AdapterChoice::Lda).unwrap().adapter.unwrap();
    assert_eq!(lda.dim_out(), 514, "3 classes give 2 LDA directions");

    let index = builder.build().unwrap();
    assert_eq!(index.model().dim, 512 + rank);
    let bytes = index.to_bytes();
    let read = Index::from_bytes(&bytes, None).unwrap();
    assert_eq!(read, index);
    assert_eq!(read.info().adapter.as_ref(), Some(adapter.info()));

    // A query adapted by the index's adapter finds its own tile first.
    let query = read.adapter().unwrap().apply(&tiles[7].0).unwrap();
    assert!((query.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4, "adapted vectors are unit length");
    let hits = search(&read, &Query::vector(query), &SearchOptions { k: 3, ..Default::default() }).unwrap();
    assert_eq!(hits[0].id, 7);
    assert!(hits[0].score > 0.999);
}

#[test]
fn the_adapter_helps_on_groups_it_never_saw() {
    // Train on the even groups, query with the odd ones: plain histogram vs adapted.
    let tiles = lc25000(2);
    let (train_tiles, held): (Vec<Tile>, Vec<Tile>) =
        tiles.into_iter().partition(|(_, cols)| value(cols, "group").bytes().last().unwrap().is_multiple_of(2));
    let p_at_5 = |index: &Index| {
        let mut hits = 0;
        for (v, cols) in &held {
            let q = index.adapter().map_or_else(|| v.clone(), |a| a.apply(v).unwrap());
            let found = search(index, &Query::vector(q), &SearchOptions { k: 5, ..Default::default() }).unwrap();
            hits += found.iter().filter(|h| h.metadata["label"] == value(cols, "label")).count();
        }
        hits as f64 / (5 * held.len()) as f64
    };
    let plain = builder_with(&train_tiles).build().unwrap();
    let mut adapted = builder_with(&train_tiles);
    adapted.fit_adapter(AdapterChoice::Lda).unwrap();
    let adapted = adapted.build().unwrap();
    let (p_plain, p_adapted) = (p_at_5(&plain), p_at_5(&adapted));
    assert!(p_adapted > p_plain + 0.005, "held-out P@5: plain {p_plain:.4}, adapted {p_adapted:.4}");
}

#[test]
fn monuseg_folds_by_site() {
    let tiles: Vec<Tile> = monuseg_tiles(2).into_iter().map(|(v, cols, _)| (v, cols)).collect();
    let decision = train(&flat(&tiles), 512, &labels_of(&tiles), AdapterChoice::Lda).unwrap();
    assert_eq!(decision.cv.as_ref().unwrap().folds_by, "site", "the strictest column wins");
    assert_eq!(decision.adapter.unwrap().dim_out(), 512 + 6, "7 organs");
}

#[test]
fn labels_that_cannot_train_an_adapter_are_reported() {
    let tiles = lc25000(20);
    let vectors = flat(&tiles);
    let mut labels = labels_of(&tiles);

    let none = train(&vectors, 512, &labels, AdapterChoice::None).unwrap();
    assert!(none.adapter.is_none() && none.skipped.as_deref().unwrap().contains("--adapter none"));

    let one_class: Vec<TileLabels> = labels.iter().map(|l| TileLabels { label: Some("x".into()), ..l.clone() }).collect();
    let d = train(&vectors, 512, &one_class, AdapterChoice::Auto).unwrap();
    assert!(d.adapter.is_none());
    assert!(d.to_string().contains("needs at least 2 classes"), "{d}");

    // A class of one tile is left out, unlabelled rows are counted, the rest trains.
    labels[0].label = Some("rare".into());
    labels[1].label = None;
    labels[2].label = None;
    let d = train(&vectors, 512, &labels, AdapterChoice::Lda).unwrap();
    assert_eq!(d.unlabelled, 2);
    assert_eq!(d.dropped_classes.get("rare"), Some(&1));
    let text = d.to_string();
    assert!(text.contains("2 without a label") && text.contains("class \"rare\" left out (1 tile)"), "{text}");
    assert_eq!(d.adapter.unwrap().info().classes.len(), 3);

    // No column with three values: auto cannot measure a gain and says so; lda still fits.
    let no_folds: Vec<TileLabels> = labels.iter().map(|l| TileLabels { label: l.label.clone(), folds: Default::default() }).collect();
    let d = train(&vectors, 512, &no_folds, AdapterChoice::Auto).unwrap();
    assert!(d.adapter.is_none() && d.to_string().contains("cannot measure a held-out gain"), "{d}");
    let d = train(&vectors, 512, &no_folds, AdapterChoice::Lda).unwrap();
    assert_eq!(d.adapter.unwrap().info().params, AdapterParams::Lda(tessera::adapter::DEFAULT_PARAMS));
    let d = train(&vectors, 512, &no_folds, AdapterChoice::Mlp).unwrap();
    let mlp = d.adapter.unwrap();
    assert_eq!(mlp.info().params, AdapterParams::Mlp(tessera::adapter::DEFAULT_MLP_PARAMS));
    assert_eq!(mlp.dim_out(), 512 + tessera::adapter::mlp::OUT);

    assert!(train(&vectors[1..], 512, &labels, AdapterChoice::Auto).is_err(), "a ragged matrix is an error");
}

/// Rewrites the CRC-32 so that the reader gets past it to the damaged section.
fn reseal(bytes: &mut [u8]) {
    let n = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn a_damaged_adapter_section_is_refused() {
    let tiles = lc25000(10);
    let mut builder = builder_with(&tiles);
    builder.fit_adapter(AdapterChoice::Lda).unwrap();
    assert!(builder.add(&tiles[0].0, Vec::new(), None).is_err(), "no tiles after training");
    let bytes = builder.build().unwrap().to_bytes();

    // The mean's first value becomes NaN.
    let adpt = bytes.windows(4).position(|w| w == b"ADPT").unwrap();
    let offset = u64::from_le_bytes(bytes[adpt + 4..adpt + 12].try_into().unwrap()) as usize;
    let mut nan = bytes.clone();
    nan[offset..offset + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    reseal(&mut nan);
    let err = Index::from_bytes(&nan, None).unwrap_err();
    assert!(matches!(err, IndexError::BadAdapter(_)), "{err}");
    assert!(err.to_string().contains("non-finite"), "{err}");

    // A header whose adapter rank no longer adds up to the model dim.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let at = text.find("\"rank\":2").unwrap();
    let mut rank = bytes.clone();
    rank[at + 7] = b'3';
    reseal(&mut rank);
    assert!(matches!(Index::from_bytes(&rank, None), Err(IndexError::BadHeader(_))));
}

#[test]
fn an_mlp_adapter_survives_the_index_file_and_a_damaged_one_is_refused() {
    let tiles = lc25000(10);
    let mut builder = builder_with(&tiles);
    let decision = builder.fit_adapter(AdapterChoice::Mlp).unwrap();
    let adapter = decision.adapter.clone().expect("mlp is forced");
    assert_eq!(adapter.info().kind, "mlp");
    assert!(decision.to_string().contains("using MLP (256 hidden"), "{decision}");
    let bytes = builder.build().unwrap().to_bytes();
    let read = Index::from_bytes(&bytes, None).unwrap();
    let stored = read.adapter().expect("the file has its adapter");
    assert_eq!(stored.info(), adapter.info());
    assert!(stored.to_bytes() == adapter.to_bytes(), "the ADPT section reads back as written");
    let query = read.adapter().unwrap().apply(&tiles[3].0).unwrap();
    assert_eq!(query.len(), 512 + tessera::adapter::mlp::OUT);
    let hits = search(&read, &Query::vector(query), &SearchOptions { k: 1, ..Default::default() }).unwrap();
    assert_eq!(hits[0].id, 3, "a stored tile finds itself through the adapted query");

    // A header that claims another hidden width no longer fits the section's size.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let at = text.find("\"hidden\":256").unwrap();
    let mut hidden = bytes.clone();
    hidden[at + 9..at + 12].copy_from_slice(b"255");
    reseal(&mut hidden);
    let err = Index::from_bytes(&hidden, None).unwrap_err();
    assert!(matches!(err, IndexError::BadAdapter(_)) && err.to_string().contains("bytes, expected"), "{err}");

    // LDA parameters under the MLP kind are refused.
    let mut kind = bytes.clone();
    let at = text.find("\"kind\":\"mlp\"").unwrap();
    kind[at + 8..at + 11].copy_from_slice(b"lda");
    reseal(&mut kind);
    assert!(Index::from_bytes(&kind, None).is_err());
}

/// `mlp-cross` on MoNuSeg: positives cross sites (the strictest column), the build says
/// so, the choice (and `mlp-adv`'s) survives the index file; with no column to cross it is
/// skipped, with why.
#[test]
fn an_mlp_whose_positives_cross_sites_says_so_and_round_trips() {
    let tiles: Vec<Tile> = monuseg_tiles(2).into_iter().map(|(v, cols, _)| (v, cols)).collect();
    let decision = train(&flat(&tiles), 512, &labels_of(&tiles), AdapterChoice::MlpCross).unwrap();
    assert_eq!(decision.domains_by.as_deref(), Some("site"));
    let text = decision.to_string();
    assert!(text.contains("positives across domains") && text.contains("(domains: site)"), "{text}");
    let adapter = decision.adapter.expect("mlp-cross is forced");
    assert!(matches!(adapter.info().params, AdapterParams::Mlp(p) if p.across_domains));
    let plain = train(&flat(&tiles), 512, &labels_of(&tiles), AdapterChoice::Mlp).unwrap().adapter.unwrap();
    assert_ne!(adapter.to_bytes(), plain.to_bytes(), "other positives, other weights");

    // The site adversary (`mlp-adv`) crosses the same sites; both flags survive the file.
    let mut builder = builder_with(&tiles);
    let fitted = builder.fit_adapter(AdapterChoice::MlpAdversarial).unwrap().adapter.unwrap();
    assert!(matches!(fitted.info().params, AdapterParams::Mlp(p) if p.across_domains && p.adversary));
    assert!(fitted.info().params.to_string().contains("domain adversary"));
    let read = Index::from_bytes(&builder.build().unwrap().to_bytes(), None).unwrap();
    assert_eq!(read.adapter().unwrap().info(), fitted.info(), "across_domains and adversary are in the header");
    assert_eq!("mlp-cross".parse::<AdapterChoice>().unwrap(), AdapterChoice::MlpCross);
    assert_eq!("mlp-adv".parse::<AdapterChoice>().unwrap(), AdapterChoice::MlpAdversarial);

    let labels: Vec<TileLabels> = labels_of(&tiles).into_iter().map(|l| TileLabels { label: l.label, folds: Default::default() }).collect();
    let d = train(&flat(&tiles), 512, &labels, AdapterChoice::MlpCross).unwrap();
    assert!(d.adapter.is_none() && d.to_string().contains("positives across domains need a column"), "{d}");
}
