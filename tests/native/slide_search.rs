//! Slide-level search on real MoNuSeg fields (colour histograms stand in for the model):
//! a field's own slide ranks first when its tiles are in the index, votes add up, and
//! keys that no tile has are refused with the index's columns.

use crate::index_support;

use index_support::*;
use tessera::index::{BuildOptions, Index, IndexBuilder};
use tessera::search::{search, search_slides, Example, Query, SearchOptions, SlideOptions};

fn monuseg_index() -> Index {
    let mut builder = IndexBuilder::new(colour_model(), BuildOptions::default()).unwrap();
    for (v, cols, _) in monuseg_tiles(4) {
        builder.add(&v, cols, None).unwrap();
    }
    builder.build().unwrap()
}

#[test]
fn a_tile_votes_for_its_own_slide_first() {
    let index = monuseg_index();
    let slide = index.metadata_value(0, "slide").unwrap().to_string();
    let query = Query { positives: vec![Example::Tile(0)], negatives: vec![] };
    let options = SlideOptions { k: 3, neighbours: 40, ..SlideOptions::default() };
    let slides = search_slides(&index, std::slice::from_ref(&query), &SearchOptions::default(), &options).unwrap();
    assert_eq!(slides.len(), 3);
    assert_eq!(slides[0].slide, slide);
    assert_eq!(slides[0].best_tile, 0);
    assert!(slides.windows(2).all(|w| w[0].score >= w[1].score), "ranked by summed score");
    assert!(slides.iter().map(|s| s.votes).sum::<usize>() <= 40);
    assert_eq!(slides[0].metadata["label"], index.metadata_value(0, "label").unwrap());

    // Excluding the query's own slide by a filter moves the ranking to other slides.
    let filter = tessera::search::Filter { key: "slide".into(), include: vec![], exclude: vec![slide.clone()] };
    let others = SearchOptions { filters: vec![filter], ..SearchOptions::default() };
    let slides = search_slides(&index, std::slice::from_ref(&query), &others, &options).unwrap();
    assert!(slides.iter().all(|s| s.slide != slide));

    // Two query tiles of the same field: their votes add up.
    let two = [query.clone(), Query { positives: vec![Example::Tile(1)], negatives: vec![] }];
    let slides = search_slides(&index, &two, &SearchOptions::default(), &options).unwrap();
    assert!(slides.iter().map(|s| s.votes).sum::<usize>() > 40);

    // Count voting ranks by votes.
    let counted = SlideOptions { weighted: false, ..options };
    let slides = search_slides(&index, &[query], &SearchOptions::default(), &counted).unwrap();
    assert!(slides.windows(2).all(|w| w[0].votes >= w[1].votes));
}

#[test]
fn keys_no_tile_has_are_refused() {
    let mut builder = IndexBuilder::new(colour_model(), BuildOptions::default()).unwrap();
    for (v, cols) in lc25000(60) {
        builder.add(&v, cols, None).unwrap();
    }
    let index = builder.build().unwrap();
    let query = Query { positives: vec![Example::Tile(0)], negatives: vec![] };
    let err = search_slides(&index, std::slice::from_ref(&query), &SearchOptions::default(), &SlideOptions::default()).unwrap_err();
    assert!(err.to_string().contains("no tile has a `slide` value") && err.to_string().contains("label"), "{err}");
    let unique = SearchOptions { unique_by: Some("slide".into()), ..SearchOptions::default() };
    let err = search(&index, &query, &unique).unwrap_err();
    assert!(err.to_string().contains("the index's columns are"), "{err}");
    assert!(search_slides(&index, &[], &SearchOptions::default(), &SlideOptions::default()).is_err());
}
