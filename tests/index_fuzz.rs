//! Mutation fuzzing of the index reader: truncated, bit-flipped (with and without a
//! repaired checksum, so the section parsers are reached), huge declared counts, edited
//! headers and wrong versions. The reader must return an error or a valid index, never
//! panic, and never make an allocation larger than the file it was given.
//!
//! A counting global allocator records the largest single allocation while parsing.

#[path = "native/index_support/mod.rs"]
mod index_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use index_support::*;
use tessera::adapter::AdapterChoice;
use tessera::index::{make_thumbnail, BuildOptions, HnswParams, Index, IndexBuilder, Quantization};
use tessera::search::{search, Example, Query, SearchOptions};

struct Counting;
static TRACKING: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if TRACKING.load(Ordering::Relaxed) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if TRACKING.load(Ordering::Relaxed) {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Small xorshift generator: the fuzz run is the same every time.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn fix_checksum(bytes: &mut [u8]) {
    let n = bytes.len();
    if n >= 4 {
        let crc = crc32fast::hash(&bytes[..n - 4]);
        bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
    }
}

struct Outcome {
    parsed: usize,
    rejected: usize,
}

/// Parses `bytes` (and searches the index if it parses); panics are failures, and so
/// is any single allocation larger than the input (plus a fixed slack for small buffers).
fn check(bytes: &[u8], what: &str, outcome: &mut Outcome) {
    const SLACK: usize = 4096;
    LARGEST.store(0, Ordering::Relaxed);
    TRACKING.store(true, Ordering::Relaxed);
    let result = catch_unwind(AssertUnwindSafe(|| Index::from_bytes(bytes, None)));
    TRACKING.store(false, Ordering::Relaxed);
    let largest = LARGEST.load(Ordering::Relaxed);
    let parsed = result.unwrap_or_else(|_| panic!("reader panicked on {what}"));
    assert!(largest <= bytes.len() + SLACK, "{what}: allocated {largest} bytes for a {}-byte file", bytes.len());
    match parsed {
        Ok(index) => {
            outcome.parsed += 1;
            // Whatever parsed must also be searchable without panicking.
            let run = catch_unwind(AssertUnwindSafe(|| {
                let opts = SearchOptions { exact_below: 0, unique_by: Some("slide".into()), ..SearchOptions::default() };
                let by_tile = Query { positives: vec![Example::Tile(0)], negatives: vec![] };
                let _ = search(&index, &by_tile, &opts);
                let _ = search(&index, &Query::vector(vec![0.5; index.model().dim]), &SearchOptions { mmr: Some(0.5), ..opts });
                if let Some(adapter) = index.adapter() {
                    let _ = adapter.apply(&vec![0.5; adapter.dim_in()]);
                }
            }));
            assert!(run.is_ok(), "search panicked on a parsed {what}");
        }
        Err(_) => outcome.rejected += 1,
    }
}

/// A small index with every section: int8 codes and parameters, an LDA adapter, f16
/// re-ranking vectors, PCA, graph, metadata and thumbnails, from real MoNuSeg tiles.
fn sample_file() -> Vec<u8> {
    let tiles = monuseg_tiles(2);
    let options = BuildOptions {
        quantization: Quantization::Int8,
        pca_dim: Some(16),
        hnsw: HnswParams::default(),
        graph_min_tiles: 0,
        rerank: Some(Quantization::F16),
    };
    let mut b = IndexBuilder::new(colour_model(), options).unwrap();
    for (i, (v, cols, img)) in tiles.iter().take(40).enumerate() {
        let thumb = (i % 3 == 0).then(|| make_thumbnail(img, 16).unwrap());
        b.add(v, cols.clone(), thumb).unwrap();
    }
    assert!(b.fit_adapter(AdapterChoice::Lda).unwrap().adapter.is_some(), "the sample has an ADPT section");
    b.build().unwrap().to_bytes()
}

#[test]
fn mutated_files_never_panic_or_over_allocate() {
    let good = sample_file();
    if let Err(e) = Index::from_bytes(&good, None) { panic!("the sample does not parse: {e}"); }
    let mut outcome = Outcome { parsed: 0, rejected: 0 };
    check(&good, "the unmodified file", &mut outcome);
    assert_eq!(outcome.parsed, 1);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest > 0 && largest <= good.len(), "the allocation counter works: {largest} of {}", good.len());
    let mut rng = Rng(0x9e3779b97f4a7c15);

    // Every truncation, as is and with a checksum that matches the truncated content.
    for len in 0..good.len() {
        check(&good[..len], &format!("truncation to {len}"), &mut outcome);
        let mut cut = good[..len].to_vec();
        fix_checksum(&mut cut);
        check(&cut, &format!("truncation to {len}, checksum fixed"), &mut outcome);
    }
    // Single and multiple bit flips: without a fixed checksum all must be rejected.
    for i in 0..3000 {
        let mut m = good.clone();
        for _ in 0..1 + i % 4 {
            let at = rng.below(m.len());
            m[at] ^= 1 << rng.below(8);
        }
        let before = outcome.rejected;
        check(&m, &format!("bit flips #{i}"), &mut outcome);
        assert_eq!(outcome.rejected, before + 1, "bit flips #{i} passed the checksum");
        fix_checksum(&mut m);
        check(&m, &format!("bit flips #{i}, checksum fixed"), &mut outcome);
    }
    // Huge or odd counts written over 1, 4 or 8 bytes anywhere, checksum fixed.
    let values: [u64; 8] = [u64::MAX, u32::MAX as u64, 1 << 31, 1 << 40, 0, 1, 0xFFFF, 64];
    for i in 0..20_000 {
        let mut m = good.clone();
        let v = values[rng.below(values.len())].to_le_bytes();
        let width = [1, 4, 8][rng.below(3)];
        let at = rng.below(m.len().saturating_sub(width + 4).max(1));
        m[at..at + width].copy_from_slice(&v[..width]);
        fix_checksum(&mut m);
        check(&m, &format!("count overwrite #{i} at {at}"), &mut outcome);
    }
    // Header edits: numbers in the JSON replaced by huge or inconsistent ones.
    let header_end = 16 + u32::from_le_bytes([good[12], good[13], good[14], good[15]]) as usize;
    let header = std::str::from_utf8(&good[16..header_end]).unwrap().to_string();
    for (field, replacement) in [
        ("\"tiles\":", "18446744073709551615"),
        ("\"tiles\":", "4294967294"),
        ("\"tiles\":", "41"),
        ("\"vector_dim\":", "1000000"),
        ("\"dim\":", "0"),
        ("\"dim\":", "99999999999"),
        ("\"dim_out\":", "512"),
        ("\"max_degree\":", "0"),
        ("\"rank\":", "0"),
        ("\"rank\":", "100000"),
        ("\"dim_in\":", "1000000"),
        ("\"weight\":", "7"),
        ("\"shrinkage\":", "-1"),
    ] {
        let start = header.find(field).unwrap() + field.len();
        let end = start + header[start..].find([',', '}']).unwrap();
        let edited = format!("{}{}{}", &header[..start], replacement, &header[end..]);
        let mut m = good[..12].to_vec();
        m.extend_from_slice(&(edited.len() as u32).to_le_bytes());
        m.extend_from_slice(edited.as_bytes());
        m.extend_from_slice(&good[header_end..]);
        fix_checksum(&mut m);
        check(&m, &format!("header {field}{replacement}"), &mut outcome);
    }
    // Every version but ours.
    for version in [0u32, 1, 3, 255, u32::MAX] {
        let mut m = good.clone();
        m[8..12].copy_from_slice(&version.to_le_bytes());
        fix_checksum(&mut m);
        let before = outcome.rejected;
        check(&m, &format!("version {version}"), &mut outcome);
        assert_eq!(outcome.rejected, before + 1);
    }
    println!("{} mutated files parsed to a valid index, {} rejected", outcome.parsed, outcome.rejected);
}
