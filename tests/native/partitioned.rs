//! The partitioned index (`src/partitioned`) on the committed demo index (LC25000 tiles,
//! fused descriptor with an adapter): probing every partition ranks exactly like
//! the whole index; fewer partitions return a subset from the probed ones; damaged
//! directories and partitions are refused; `tessera search` reads it from a file, over
//! HTTP Range (`tessera serve`) and from a server that ignores Range, with equal hits.
//! An index with int8 + PCA vectors and f16 re-ranking vectors is partitioned with its rows
//! beside the partitions: a search fetches only its shortlist's rows, ranks like the whole
//! index when the shortlist holds every tile, and refuses rows that are not the tile's; the
//! hits' details (thumbnails, the per-tile `path` column) come after, checked per tile.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use tessera::index::{BuildOptions, CompactIndexBuilder, Index, IndexBuilder, IndexError, Quantization};
use tessera::partitioned::{partition, Fetch, PartitionOptions, PartitionedIndex};
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

/// Loads what `query` needs, as a client would, from the file's bytes; returns the
/// partitions and the rows it loaded.
fn load_for_rows(p: &mut PartitionedIndex, file: &[u8], query: &Query, options: &SearchOptions) -> (usize, usize) {
    let (mut partitions, mut rows) = (0, 0);
    loop {
        let needed = p.needed(query, options).unwrap();
        if needed.is_empty() {
            return (partitions, rows);
        }
        for fetch in needed {
            let range = p.range(&fetch).unwrap();
            p.add(&fetch, &file[range.start as usize..range.end as usize]).unwrap();
            match fetch {
                Fetch::Partition(_) => partitions += 1,
                Fetch::Rows { count, .. } => rows += count as usize,
                Fetch::Details { .. } => unreachable!("a search's needs are partitions and rows"),
            }
        }
    }
}

fn load_for(p: &mut PartitionedIndex, file: &[u8], query: &Query, options: &SearchOptions) -> usize {
    load_for_rows(p, file, query, options).0
}

/// The demo's tiles again, stored as int8 codes of a 16-d PCA with f16 re-ranking vectors:
/// the first 96 of their 960 values (a PCA of all 960 takes a minute to fit).
fn compact_index() -> Index {
    let demo = demo_index();
    let model = tessera::index::ModelRef { dim: 96, ..demo.model().clone() };
    let options = BuildOptions { quantization: Quantization::Int8, pca_dim: Some(16), rerank: Some(Quantization::F16), graph_min_tiles: usize::MAX, ..BuildOptions::default() };
    let mut builder = IndexBuilder::new(model, options).unwrap();
    for id in 0..demo.len() {
        let vector = demo.stored_vector(id).unwrap()[..96].to_vec();
        builder.add(&vector, demo.metadata(id).into_iter().collect(), demo.thumbnail(id).map(<[u8]>::to_vec)).unwrap();
    }
    builder.build().unwrap()
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

#[test]
fn rows_beside_compact_partitions_rerank_a_shortlist() {
    let index = compact_index();
    let whole_probe = PartitionOptions { partitions: 6, shortlist: index.len(), ..PartitionOptions::default() };
    let file = partitioned_bytes(&index, &whole_probe);
    assert_eq!(u32::from_le_bytes(file[8..12].try_into().unwrap()), 3, "a file with rows and detail columns is version 3");
    let mut p = open(&file);
    // `path` (one value per tile) lives with each hit's details, not in the partitions: it
    // cannot filter a search; `label` stays.
    let by_path = SearchOptions { filters: vec![Filter { key: "path".into(), include: vec!["x".into()], exclude: vec![] }], ..SearchOptions::default() };
    let e = p.needed(&queries(&index)[0], &by_path).unwrap_err();
    assert!(matches!(e, tessera::search::SearchError::BadOption(_)) && e.to_string().contains("'path'"), "{e}");
    let info = p.index_info();
    assert_eq!((info.vector_dim, info.rerank), (16, Some(Quantization::F16)));
    // With every partition probed and every tile shortlisted: the whole index's exact ranking
    // (which scores every tile on its re-ranking vector).
    let label_filter = Filter { key: "label".into(), include: vec!["lung_scc".into()], exclude: vec![] };
    let cases = [
        SearchOptions { k: 10, exact: true, nprobe: Some(6), ..SearchOptions::default() },
        SearchOptions { k: 5, exact: true, nprobe: Some(6), filters: vec![label_filter], ..SearchOptions::default() },
    ];
    for query in queries(&index) {
        for options in &cases {
            let (partitions, rows) = load_for_rows(&mut p, &file, &query, options);
            assert!(partitions <= 6 && rows <= index.len());
            let whole = search(&index, &query, options).unwrap();
            let parts = p.search(&query, options).unwrap();
            // `path` is in a hit's metadata once its details are loaded (by an earlier search).
            for h in &parts {
                let loaded = p.needed_details(&[h.id]).is_empty();
                assert!(h.metadata.contains_key("label") && h.metadata.contains_key("path") == loaded);
            }
            for (a, b) in parts.iter().zip(&whole) {
                assert!((a.score - b.score).abs() < 1e-4, "{} vs {}", a.score, b.score);
                assert_eq!(a.has_thumbnail, b.has_thumbnail);
            }
            // Thumbnails and detail columns stay out of the partitions: fetched for the hits
            // only, each checked against its row's CRC-32.
            let ids: Vec<u32> = parts.iter().map(|h| h.id).collect();
            for fetch in p.needed_details(&ids) {
                let range = p.range(&fetch).unwrap();
                p.add(&fetch, &file[range.start as usize..range.end as usize]).unwrap();
            }
            assert!(p.needed_details(&ids).is_empty());
            let again = p.search(&query, options).unwrap();
            for ((a, b), c) in parts.iter().zip(&whole).zip(&again) {
                assert_eq!(p.metadata(a.id), b.metadata, "{options:?}");
                assert_eq!(c.metadata, b.metadata, "a hit whose details are loaded shows them at once");
                assert_eq!(p.thumbnail(a.id), index.thumbnail(b.id as usize), "{}", b.metadata["path"]);
            }
        }
    }

    // The default shortlist: only its rows are fetched, and the query tile still comes first.
    let file = partitioned_bytes(&index, &PartitionOptions { partitions: 16, nprobe: 3, ..PartitionOptions::default() });
    let mut p = open(&file);
    let shortlist = p.rows_info().unwrap().shortlist;
    let options = SearchOptions { k: 10, ..SearchOptions::default() };
    for query in queries(&index) {
        let mut fresh = open(&file);
        let (partitions, rows) = load_for_rows(&mut fresh, &file, &query, &options);
        // The shortlist's rows and the few between them that share a range.
        let probed_tiles: u32 = (0..16).filter(|&i| fresh.is_loaded(i)).map(|i| fresh.partitions()[i].tiles).sum();
        assert!(partitions <= 3 && rows >= shortlist && (rows as u32) < probed_tiles / 2, "{partitions} partitions ({probed_tiles} tiles), {rows} rows");
        let hits = fresh.search(&query, &options).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits[0].score > 0.999, "{}", hits[0].score);
        load_for(&mut p, &file, &query, &options);
    }
    // A hit as a tile example: its partition, then its row, then the probe and the shortlist.
    let query = &queries(&index)[2];
    let first = p.search(query, &options).unwrap();
    let by_tile = Query { positives: vec![Example::Tile(first[0].id)], negatives: vec![Example::Tile(first[3].id)] };
    let mut fresh = open(&file);
    load_for(&mut fresh, &file, &by_tile, &options);
    let again = fresh.search(&by_tile, &options).unwrap();
    assert_eq!(again[0].id, first[0].id);
    let descriptor = index.rerank_vector(0).unwrap();
    assert_eq!(fresh.score_descriptors(&by_tile, 0.0, &descriptor).unwrap().len(), 1);

    // Rows are checked against the partition's stored codes.
    let mut p = open(&file);
    let fetch = Fetch::Partition(1);
    let span = p.range(&fetch).unwrap();
    let rows_of = |first: u32| p.range(&Fetch::Rows { partition: 1, first, count: 1 }).unwrap();
    let (row0, row1) = (rows_of(0), rows_of(1));
    assert_eq!(row0.start, span.end, "a partition's rows follow it");
    assert!(matches!(p.add_rows(1, 0, 1, &file[row0.start as usize..row0.end as usize]), Err(IndexError::BadOptions(_))), "its partition first");
    p.add(&fetch, &file[span.start as usize..span.end as usize]).unwrap();
    let e = p.add_rows(1, 0, 1, &file[row1.start as usize..row1.end as usize]).unwrap_err();
    assert!(matches!(e, IndexError::BadPartition { partition: 1, .. }), "another tile's row: {e}");
    assert_eq!(tessera::error::Kinded::kind(&e).as_str(), "integrity");
    let mut damaged = file[row0.start as usize..row0.end as usize].to_vec();
    damaged[1] = 0x7c;
    let e = p.add_rows(1, 0, 1, &damaged).unwrap_err();
    assert!(matches!(e, IndexError::BadPartition { .. }), "a non-finite value: {e}");
    assert!(matches!(p.add_rows(1, 0, 1, &damaged[1..]), Err(IndexError::SectionLength { .. })));
    p.add_rows(1, 0, 1, &file[row0.start as usize..row0.end as usize]).unwrap();
    let tiles = p.partitions()[1].tiles;
    assert!(p.range(&Fetch::Rows { partition: 1, first: tiles, count: 1 }).is_none(), "no row past the partition's tiles");
    // A damaged detail record is refused; the right bytes are then taken.
    let tile = p.partitions()[1].first_tile;
    let needed = p.needed_details(&[tile]);
    assert_eq!(needed, vec![Fetch::Details { partition: 1, first: 0, count: 1 }]);
    let range = p.range(&needed[0]).unwrap();
    assert!(range.start >= row0.start + u64::from(tiles) * (row0.end - row0.start), "details follow the rows");
    let mut jpeg = file[range.start as usize..range.end as usize].to_vec();
    jpeg[10] ^= 1;
    let e = p.add(&needed[0], &jpeg).unwrap_err();
    assert!(matches!(e, IndexError::BadPartition { partition: 1, .. }), "{e}");
    p.add(&needed[0], &file[range.start as usize..range.end as usize]).unwrap();
    assert!(p.thumbnail(tile).is_some() && p.metadata(tile).contains_key("path"));

    // PCA without re-ranking vectors cannot be probed in the model's space.
    let mut builder = IndexBuilder::new(index.model().clone(), BuildOptions { pca_dim: Some(16), graph_min_tiles: usize::MAX, ..BuildOptions::default() }).unwrap();
    for id in 0..50 {
        builder.add(&index.rerank_vector(id).unwrap(), vec![], None).unwrap();
    }
    let pca_only = builder.build().unwrap();
    assert!(matches!(partition(&pca_only, &PartitionOptions::default(), |_| Ok(())), Err(IndexError::BadOptions(_))));
}

#[test]
fn the_compact_builder_fitted_on_every_tile_writes_the_whole_build() {
    let whole = compact_index();
    let demo = demo_index();
    let vectors: Vec<Vec<f32>> = (0..demo.len()).map(|id| demo.stored_vector(id).unwrap()[..96].to_vec()).collect();
    let mut builder = CompactIndexBuilder::fit(whole.model().clone(), 16, &vectors.concat()).unwrap();
    for (id, v) in vectors.iter().enumerate() {
        builder.add(v, demo.metadata(id).into_iter().collect()).unwrap();
    }
    let streamed = builder.build();
    // The whole build keeps thumbnails; the compact builder does not.
    let options = BuildOptions { quantization: Quantization::Int8, pca_dim: Some(16), rerank: Some(Quantization::F16), graph_min_tiles: usize::MAX, ..BuildOptions::default() };
    let mut plain = IndexBuilder::new(whole.model().clone(), options).unwrap();
    for (id, v) in vectors.iter().enumerate() {
        plain.add(v, demo.metadata(id).into_iter().collect(), None).unwrap();
    }
    assert_eq!(streamed.to_bytes(), plain.build().unwrap().to_bytes());
    // Fitted on a few tiles, its grid clamps the others' codes: their rows still pass the
    // partitions' checks.
    let mut builder = CompactIndexBuilder::fit(whole.model().clone(), 16, &vectors[..40].concat()).unwrap();
    for (id, v) in vectors.iter().enumerate() {
        builder.add(v, demo.metadata(id).into_iter().collect()).unwrap();
    }
    let clamped = builder.build();
    let file = partitioned_bytes(&clamped, &PartitionOptions { partitions: 4, ..PartitionOptions::default() });
    let mut p = open(&file);
    for part in 0..p.partitions().len() {
        let tiles = p.partitions()[part].tiles;
        for fetch in [Fetch::Partition(part), Fetch::Rows { partition: part, first: 0, count: tiles }] {
            let range = p.range(&fetch).unwrap();
            p.add(&fetch, &file[range.start as usize..range.end as usize]).unwrap_or_else(|e| panic!("{fetch}: {e}"));
        }
    }
    assert!(matches!(CompactIndexBuilder::fit(whole.model().clone(), 96, &vectors[0]), Err(IndexError::BadOptions(_))));
    assert!(matches!(CompactIndexBuilder::fit(whole.model().clone(), 16, &vectors[0][..95]), Err(IndexError::BadOptions(_))));
}
