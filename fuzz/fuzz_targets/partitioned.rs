//! The partitioned index's reader (`PartitionedIndex::from_directory`, then `add` of each
//! partition, re-ranking row range and hits' detail records): all of them arrive from
//! another origin by HTTP Range. As for `index`, each input is also read with its directory
//! CRC recomputed, so the header and centroid parsers see the mutations; what parses is probed and searched, and
//! the bytes after the directory are offered as each partition, row range and detail record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::partitioned::{PartitionedIndex, PRELUDE};
use tessera::search::{Example, Query, SearchOptions};

fuzz_target!(|data: &[u8]| {
    let _ = PartitionedIndex::from_directory(data, None);
    let Ok(length) = PartitionedIndex::directory_length(data) else { return };
    if length > data.len() || length < PRELUDE + 4 {
        return;
    }
    let mut fixed = data.to_vec();
    let crc = crc32fast::hash(&fixed[..length - 4]);
    fixed[length - 4..length].copy_from_slice(&crc.to_le_bytes());
    let Ok(mut index) = PartitionedIndex::from_directory(&fixed, None) else { return };
    let _ = (index.info(), index.index_info(), index.census());
    let dim = index.model().dim;
    let query = Query { positives: vec![Example::Vector(vec![1.0; dim]), Example::Tile(0)], negatives: vec![] };
    let options = SearchOptions { k: 5, unique_by: Some("label".into()), ..SearchOptions::default() };
    for _ in 0..4 {
        let Ok(needed) = index.needed(&query, &options) else { return };
        if needed.is_empty() {
            break;
        }
        for fetch in needed {
            let Some(range) = index.range(&fetch) else { return };
            let (start, end) = (range.start as usize, range.end as usize);
            if end > fixed.len() || start > end || index.add(&fetch, &fixed[start..end]).is_err() {
                return;
            }
        }
    }
    let Ok(hits) = index.search(&query, &options) else { return };
    // The hits' details (thumbnails, per-tile columns), as a page fetches them to show.
    let ids: Vec<u32> = hits.iter().map(|h| h.id).collect();
    for fetch in index.needed_details(&ids) {
        let Some(range) = index.range(&fetch) else { return };
        let (start, end) = (range.start as usize, range.end as usize);
        if end > fixed.len() || start > end || index.add(&fetch, &fixed[start..end]).is_err() {
            return;
        }
    }
    for id in ids {
        let _ = (index.metadata(id), index.thumbnail(id));
    }
});
