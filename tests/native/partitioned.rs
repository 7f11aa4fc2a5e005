//! The partitioned index (`src/partitioned`) on the committed demo index (LC25000 tiles,
//! fused descriptor with an adapter): probing every partition ranks exactly like
//! the whole index; fewer partitions return a subset from the probed ones; damaged
//! directories and partitions are refused; `tessera search` reads it from a file, over
//! HTTP Range (`tessera serve`) and from a server that ignores Range, with equal hits.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use tessera::index::{Index, IndexError};
use tessera::partitioned::{partition, PartitionOptions, PartitionedIndex};
use tessera::search::{search, Example, Filter, Hit, Query, SearchOptions, SlideOptions};

fn demo_index() -> Index {
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("www/demo/index.tsi")).expect("the committed demo index");
    Index::from_bytes(&bytes, None).unwrap()
}

/// The partitioned file's bytes: directory, then partitions.
fn partitioned_bytes(index: &Index, options: &PartitionOptions) -> Vec<u8> {
    let mut tail = Vec::new();
    let (mut file, _) = partition(index, options, |b| {
        tail.extend_from_slice(b);
        Ok(())
    })
    .unwrap();
    file.extend(tail);
    file
}

fn open(file: &[u8]) -> PartitionedIndex {
    PartitionedIndex::from_directory(file, None).unwrap()
}

/// Loads what `query` needs, as a client would, from the file's bytes.
fn load_for(p: &mut PartitionedIndex, file: &[u8], query: &Query, options: &SearchOptions) -> usize {
    let mut loaded = 0;
    loop {
        let needed = p.needed(query, options).unwrap();
        if needed.is_empty() {
            return loaded;
        }
        for part in needed {
            let span = p.span(part).unwrap();
            p.add_partition(part, &file[span.start as usize..span.end as usize]).unwrap();
            loaded += 1;
        }
    }
}

/// Hits by what identifies a tile across the two files (ids differ: the partitioned file
/// numbers tiles by partition) and score.
fn by_path(hits: &[Hit]) -> Vec<(String, f32)> {
    hits.iter().map(|h| (h.metadata["path"].clone(), h.score)).collect()
}

fn queries(index: &Index) -> Vec<Query> {
    [0usize, 700, 1500, 2958]
        .iter()
        .map(|&id| Query::vector(index.rerank_vector(id).unwrap_or_else(|| index.stored_vector(id).unwrap())))
        .collect()
}

#[test]
fn probing_every_partition_ranks_like_the_whole_index() {
    let index = demo_index();
    let options = PartitionOptions { partitions: 8, ..PartitionOptions::default() };
    let file = partitioned_bytes(&index, &options);
    assert_eq!(file, partitioned_bytes(&index, &options), "the same index and options give the same bytes");
    let mut p = open(&file);
    assert_eq!((p.len(), p.partitions().len()), (index.len(), 8));
    assert_eq!(p.census(), index.census());
    let label_filter = Filter { key: "label".into(), include: vec!["lung_aca".into(), "lung_n".into()], exclude: vec![] };
    let cases = [
        SearchOptions { k: 10, exact: true, nprobe: Some(8), ..SearchOptions::default() },
        SearchOptions { k: 7, exact: true, nprobe: Some(8), unique_by: Some("group".into()), ..SearchOptions::default() },
        SearchOptions { k: 5, exact: true, nprobe: Some(8), filters: vec![label_filter], ..SearchOptions::default() },
        SearchOptions { k: 6, exact: true, nprobe: Some(8), mmr: Some(0.5), ..SearchOptions::default() },
    ];
    for query in queries(&index) {
        for options in &cases {
            load_for(&mut p, &file, &query, options);
            let whole = search(&index, &query, options).unwrap();
            let parts = p.search(&query, options).unwrap();
            assert_eq!(by_path(&parts), by_path(&whole), "{options:?}");
            assert!(parts.iter().enumerate().all(|(i, h)| h.rank == i + 1));
            for h in &parts {
                assert_eq!(p.metadata(h.id), h.metadata);
                assert_eq!(p.thumbnail(h.id).is_some(), h.has_thumbnail);
            }
        }
    }
    // A hit's id works as an example: its partition is loaded first, then the probe's.
    let query = &queries(&index)[1];
    let options = SearchOptions { k: 5, nprobe: Some(8), ..SearchOptions::default() };
    let first = p.search(query, &options).unwrap();
    let by_tile = Query { positives: vec![Example::Tile(first[1].id)], negatives: vec![Example::Tile(first[4].id)] };
    let mut fresh = open(&file);
    assert!(load_for(&mut fresh, &file, &by_tile, &options) >= 2, "the examples' partitions, then the probe's");
    let again = fresh.search(&by_tile, &options).unwrap();
    assert_eq!(again.len(), 5);
    let slides = fresh.search_slides(&by_tile, &options, &SlideOptions { key: "group".into(), ..SlideOptions::default() }).unwrap();
    assert!(!slides.is_empty());
}

#[test]
fn fewer_probes_return_hits_from_the_nearest_partitions_only() {
    let index = demo_index();
    let file = partitioned_bytes(&index, &PartitionOptions { partitions: 16, nprobe: 2, ..PartitionOptions::default() });
    let mut p = open(&file);
    for query in queries(&index) {
        let options = SearchOptions { k: 10, ..SearchOptions::default() };
        assert_eq!(load_for(&mut p, &file, &query, &options) <= 2, true);
        let hits = p.search(&query, &options).unwrap();
        assert_eq!(hits.len(), 10);
        // The query tile is its own nearest neighbour, so its partition is probed.
        assert!(hits[0].score > 0.999, "{}", hits[0].score);
        let unloaded = open(&file);
        assert!(matches!(unloaded.search(&query, &options), Err(tessera::search::SearchError::NotLoaded { .. })));
        let descriptor = index.stored_vector(0).unwrap();
        assert!(matches!(unloaded.score_descriptors(&query, 0.0, &descriptor), Err(tessera::search::SearchError::NothingLoaded)));
    }
    assert!(p.info().loaded <= 8);
}

#[test]
fn damaged_directories_and_partitions_are_refused() {
    let index = demo_index();
    let file = partitioned_bytes(&index, &PartitionOptions { partitions: 4, ..PartitionOptions::default() });
    let p = open(&file);
    let dir = p.directory_bytes();
    assert_eq!(PartitionedIndex::directory_length(&file[..tessera::partitioned::PRELUDE]).unwrap(), dir);
    assert!(matches!(PartitionedIndex::from_directory(&file[..dir - 1], None), Err(IndexError::Truncated { .. })));
    let mut flipped = file[..dir].to_vec();
    flipped[dir / 2] ^= 1;
    assert!(matches!(PartitionedIndex::from_directory(&flipped, None), Err(IndexError::BadChecksum { .. })));
    assert!(matches!(PartitionedIndex::from_directory(b"TESSERA\x1a....", None), Err(IndexError::NotAnIndex)));

    let mut p = open(&file);
    let span = p.span(1).unwrap();
    let mut part = file[span.start as usize..span.end as usize].to_vec();
    let good = part.clone();
    part[100] ^= 0x40;
    let e = p.add_partition(1, &part).unwrap_err();
    assert!(matches!(e, IndexError::BadPartition { partition: 1, .. }), "{e}");
    assert_eq!(tessera::error::Kinded::kind(&e).as_str(), "integrity");
    assert!(matches!(p.add_partition(1, &good[1..]), Err(IndexError::SectionLength { .. })));
    assert!(matches!(p.add_partition(0, &good), Err(IndexError::SectionLength { .. } | IndexError::BadPartition { .. })));
    assert!(matches!(p.add_partition(9, &good), Err(IndexError::BadOptions(_))));
    p.add_partition(1, &good).unwrap();
    assert!(p.is_loaded(1));
}

fn tessera() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
}

/// `tessera serve ROOT` on a free port; killed on drop.
struct Server(std::process::Child, String);

impl Server {
    fn start(root: &Path, extra: &[&str]) -> Server {
        let mut child = tessera()
            .args(["serve", root.to_str().unwrap(), "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(url.starts_with("http://"), "{line}");
        Server(child, url)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[test]
fn the_cli_searches_a_partitioned_file_locally_and_over_http_range() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo.tsp");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("www/demo/index.tsi");
    let run = tessera().args(["partition", demo.to_str().unwrap(), "-o", out.to_str().unwrap(), "--partitions", "12", "--nprobe", "3"]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let tiles = demo_index().len();
    assert!(String::from_utf8_lossy(&run.stdout).contains(&format!("{tiles} tiles in 12 partitions")), "{}", String::from_utf8_lossy(&run.stdout));
    let query = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/lc25000-lung/lung_aca/lungaca2495.jpeg");
    let search = |location: &str| {
        let o = tessera().args(["search", location, query.to_str().unwrap(), "--k", "8", "--json", "--backend", "cpu"]).output().unwrap();
        assert!(o.status.success(), "{location}: {}", String::from_utf8_lossy(&o.stderr));
        (serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    let (local, note) = search(out.to_str().unwrap());
    assert_eq!(local.as_array().unwrap().len(), 8);
    assert!(note.contains("12 partitions") && note.contains("read 3 partitions"), "{note}");
    let server = Server::start(tmp.path(), &[]);
    let (remote, note) = search(&format!("{}/demo.tsp", server.1));
    assert_eq!(remote, local, "over HTTP Range the hits are the local file's");
    assert!(note.contains("in 3 requests"), "one Range request per probed partition: {note}");
    let whole = Server::start(tmp.path(), &["--ignore-range"]);
    let (fallback, _) = search(&format!("{}/demo.tsp", whole.1));
    assert_eq!(fallback, local, "a small file from a server that ignores Range is used whole");
    let missing = tessera().args(["search", &format!("{}/nothing.tsp", server.1), query.to_str().unwrap()]).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"), "{}", String::from_utf8_lossy(&missing.stderr));
}
