//! The index reader (`Index::from_bytes`), the one file a page downloads from elsewhere.
//! The checksum would stop almost every mutation at the first check, so each input is also
//! read with its last four bytes replaced by the CRC of the rest: the section parsers see
//! the mutations. Whatever parses must also answer every read the page makes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::index::Index;
use tessera::search::{search, search_slides, Example, Query, SearchOptions, SlideOptions};

fuzz_target!(|data: &[u8]| {
    let _ = Index::from_bytes(data, None);
    if data.len() < 4 {
        return;
    }
    let mut fixed = data.to_vec();
    let body = fixed.len() - 4;
    let crc = crc32fast::hash(&fixed[..body]);
    fixed[body..].copy_from_slice(&crc.to_le_bytes());
    if let Ok(index) = Index::from_bytes(&fixed, None) {
        exercise(&index);
    }
});

fn exercise(index: &Index) {
    // What was read writes back to a file that reads as the same index.
    let again = Index::from_bytes(&index.to_bytes(), None).expect("a re-written index reads back");
    assert!(again == *index, "the re-written index differs from the one read");
    let _ = index.info();
    let _ = index.census();
    let _ = index.size_report();
    for id in [0, index.len().saturating_sub(1), index.len()] {
        let _ = index.metadata(id);
        let _ = index.thumbnail(id);
        let _ = index.stored_vector(id);
    }
    let exact = SearchOptions { exact_below: usize::MAX, unique_by: Some("slide".into()), ..SearchOptions::default() };
    let graph = SearchOptions { exact_below: 0, mmr: Some(0.5), ..SearchOptions::default() };
    let by_tile = Query { positives: vec![Example::Tile(0)], negatives: vec![Example::Tile(1)] };
    let by_vector = Query::vector(vec![0.5; index.model().dim]);
    for options in [&exact, &graph] {
        let _ = search(index, &by_tile, options);
        let _ = search(index, &by_vector, options);
    }
    let _ = search_slides(index, &[by_vector], &graph, &SlideOptions::default());
    if let Some(adapter) = index.adapter() {
        let _ = adapter.apply(&vec![0.5; adapter.dim_in()]);
    }
}
