//! The fuzz targets' seed corpora (`fuzz/corpus/<target>/seed-*`): small real files that
//! their readers accept, made from the shared data — LC25000 tiles and the CC0 CMU-1 slide
//! region, never MoNuSeg. `TESSERA_WRITE_FUZZ_SEEDS=1 cargo test --release --test
//! fuzz_seeds` rewrites them (`fuzz/make_tiny_onnx.py` makes the model seed); otherwise
//! this checks that every seed is still accepted, so a format change cannot leave a fuzzer
//! mutating files that its reader refuses at the first byte.
#![cfg(feature = "cli")]

use crate::index_support;

use std::path::{Path, PathBuf};

use image::{ImageEncoder, RgbImage};
use index_support::{data_dir, load, read_manifest};
use tessera::adapter::AdapterChoice;
use tessera::descriptor::DescriptorKind;
use tessera::index::{make_thumbnail, BuildOptions, HnswParams, Index, IndexBuilder, ModelRef, Quantization};
use tessera::model::{sha256_hex, Embedder, ModelManifest};
use tessera::search::{Query, SearchOptions, SlideOptions};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target)
}

/// Every committed seed of `target`, by file name.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus(target))
        .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_string_lossy().starts_with("seed-"))
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap()))
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "fuzz/corpus/{target} has no seed-* file");
    for (name, bytes) in &seeds {
        assert!(bytes.len() <= 64 << 10, "{target}/{name} is {} bytes: seeds stay small", bytes.len());
    }
    seeds
}

/// The seeds the generator writes, as (target, file name, bytes).
fn generated() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let tiles = lc25000_tiles(24);
    let manifest = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/vit-s14-int8.json")).unwrap();
    let csv = std::fs::read_to_string(data_dir().join("lc25000-lung.csv")).unwrap();
    let csv: String = csv.lines().take(6).map(|l| format!("{l}\n")).collect();
    let tile = &tiles[0].1;
    let crop = image::imageops::crop_imm(tile, 100, 100, 24, 24).to_image();
    let cmu = load(&data_dir().join("slides/CMU-1-Small-Region.jpg"));
    let region = image::imageops::crop_imm(&cmu, 800, 600, 128, 96).to_image();
    vec![
        ("index", "seed-f16.tsi", index_file(&tiles[..6], false)),
        ("index", "seed-int8-pca-graph-rerank-adapter-thumbs.tsi", index_file(&tiles, true)),
        ("partitioned", "seed-3-partitions.tsp", partitioned_file(&index_file(&tiles, false))),
        ("partitioned", "seed-3-partitions-pca-rows-adapter-thumbs.tsp", partitioned_file(&index_file(&tiles, true))),
        ("model_manifest", "seed-vit-s14-int8.json", manifest),
        ("csv_manifest", "seed-lc25000-lung.csv", csv.into_bytes()),
        ("csv_manifest", "seed-quoted-extra-column.csv", b"path,label,group,note\n\"a,b.jpeg\",lung_n,g1,\"say \"\"hi\"\"\"\nc.png,lung_scc,g2,\n".to_vec()),
        ("image", "seed-lc25000.jpeg", encode(&crop, image::ImageFormat::Jpeg)),
        ("image", "seed-lc25000.png", encode(&crop, image::ImageFormat::Png)),
        ("image", "seed-lc25000.webp", encode(&crop, image::ImageFormat::WebP)),
        ("image", "seed-rgba-canvas.bin", rgba_canvas(&image::imageops::crop_imm(&crop, 0, 0, 8, 6).to_image())),
        ("slide", "seed-aperio-jpeg-pyramid.tif", tiled_tiff(&region, 32, true)),
        ("slide", "seed-raw-tiles.tif", tiled_tiff(&image::imageops::crop_imm(&region, 0, 0, 48, 32).to_image(), 16, false)),
        ("slide", "seed-strips.tif", stripped_tiff(&image::imageops::crop_imm(&region, 0, 0, 40, 24).to_image())),
        ("search_json", "seed-tile-unique.json", br#"{"query":{"positives":[0]},"options":{"k":5,"unique_by":"slide"}}"#.to_vec()),
        ("search_json", "seed-feedback-filters-slides.json", br#"{"query":{"positives":[[1,2,3,4,5,6,7,8],2],"negatives":[3]},"options":{"k":10,"mmr":0.5,"negative_weight":0.4,"ef":16,"exact":false,"exact_below":0,"filters":[{"key":"label","include":["a","b"],"exclude":["c"]}]},"slides":{"k":3,"key":"slide","neighbours":10,"weighted":false}}"#.to_vec()),
    ]
}

/// A tile's vector, pixels and manifest columns.
type Tile = (Vec<f32>, RgbImage, Vec<(String, String)>);

/// A 16-bin colour histogram (R in 4 bins, G and B in 2) of every `n`-th part of LC25000:
/// small vectors keep the index seeds a few kB.
fn lc25000_tiles(n: usize) -> Vec<Tile> {
    let rows = read_manifest("lc25000-lung.csv");
    let step = rows.len() / n;
    rows.iter()
        .step_by(step)
        .take(n)
        .map(|row| {
            let img = load(&row.path);
            let mut hist = [0f32; 16];
            for p in img.pixels() {
                let [r, g, b] = p.0;
                hist[(r as usize >> 6) * 4 + (g as usize >> 7) * 2 + (b as usize >> 7)] += 1.0;
            }
            (hist.iter().map(|x| x.sqrt()).collect(), img, row.columns.clone())
        })
        .collect()
}

fn index_file(tiles: &[Tile], every_section: bool) -> Vec<u8> {
    let model = ModelRef { id: "seed-colour-16".into(), sha256: "0".repeat(64), dim: 16, descriptor: DescriptorKind::Hist, views: 1 };
    let options = match every_section {
        false => BuildOptions::default(),
        true => BuildOptions {
            quantization: Quantization::Int8,
            pca_dim: Some(8),
            hnsw: HnswParams::default(),
            graph_min_tiles: 0,
            rerank: Some(Quantization::F32),
        },
    };
    let mut builder = IndexBuilder::new(model, options).unwrap();
    for (i, (vector, img, columns)) in tiles.iter().enumerate() {
        let thumbnail = (every_section && i % 4 == 0).then(|| make_thumbnail(img, 8).unwrap());
        builder.add(vector, columns.clone(), thumbnail).unwrap();
    }
    if every_section {
        assert!(builder.fit_adapter(AdapterChoice::Lda).unwrap().adapter.is_some(), "the seed has an ADPT section");
    }
    builder.build().unwrap().to_bytes()
}

/// The index split into 3 partitions (`tessera partition`'s layout: directory, partitions).
fn partitioned_file(index: &[u8]) -> Vec<u8> {
    let index = Index::from_bytes(index, None).unwrap();
    let mut tail = Vec::new();
    let options = tessera::partitioned::PartitionOptions { partitions: 3, nprobe: 2, ..Default::default() };
    let (mut file, _) = tessera::partitioned::partition(&index, &options, |b| {
        tail.extend_from_slice(b);
        Ok(())
    })
    .unwrap();
    file.extend(tail);
    file
}

fn encode(img: &RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// What the image target reads as a canvas: u16 width and height, then RGBA pixels.
fn rgba_canvas(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend((img.width() as u16).to_le_bytes());
    out.extend((img.height() as u16).to_le_bytes());
    img.pixels().for_each(|p| out.extend([p[0], p[1], p[2], 255]));
    out
}

fn stripped_tiff(img: &RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    tiff::encoder::TiffEncoder::new(&mut out)
        .unwrap()
        .write_image::<tiff::encoder::colortype::RGB8>(img.width(), img.height(), img.as_raw())
        .unwrap();
    out.into_inner()
}

/// A little-endian tiled TIFF: `img` as level 0 and, with `jpeg`, a half-size level 1,
/// self-contained JFIF tiles (Photometric YCbCr) and an Aperio description; raw RGB
/// tiles otherwise.
fn tiled_tiff(img: &RgbImage, tile: u32, jpeg: bool) -> Vec<u8> {
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    const ASCII: u16 = 2;
    let mut levels = vec![img.clone()];
    if jpeg {
        levels.push(image::imageops::resize(img, img.width() / 2, img.height() / 2, image::imageops::FilterType::Triangle));
    }
    let mut out = b"II*\0\0\0\0\0".to_vec();
    let mut ifds = Vec::new();
    for (level, img) in levels.iter().enumerate() {
        let (mut offsets, mut counts) = (Vec::new(), Vec::new());
        for ty in 0..img.height().div_ceil(tile) {
            for tx in 0..img.width().div_ceil(tile) {
                let chunk = RgbImage::from_fn(tile, tile, |x, y| {
                    *img.get_pixel((tx * tile + x).min(img.width() - 1), (ty * tile + y).min(img.height() - 1))
                });
                let start = out.len();
                match jpeg {
                    true => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
                        .write_image(chunk.as_raw(), tile, tile, image::ExtendedColorType::Rgb8)
                        .unwrap(),
                    false => out.extend(chunk.as_raw()),
                }
                offsets.push(start as u32);
                counts.push((out.len() - start) as u32);
            }
        }
        let mut array = |values: &[u32]| {
            let at = out.len() as u32;
            values.iter().for_each(|v| out.extend(v.to_le_bytes()));
            at
        };
        let (offsets_at, counts_at) = (array(&offsets), array(&counts));
        let bits_at = out.len() as u32;
        out.extend([8, 0, 8, 0, 8, 0]);
        let (compression, photometric) = if jpeg { (7, 6) } else { (1, 2) };
        let mut entries = vec![
            (254u16, LONG, 1u32, level as u32),
            (256, LONG, 1, img.width()),
            (257, LONG, 1, img.height()),
            (258, SHORT, 3, bits_at),
            (259, SHORT, 1, compression),
            (262, SHORT, 1, photometric),
            (277, SHORT, 1, 3),
            (284, SHORT, 1, 1),
            (322, LONG, 1, tile),
            (323, LONG, 1, tile),
            (324, LONG, offsets.len() as u32, offsets_at),
            (325, LONG, counts.len() as u32, counts_at),
        ];
        if jpeg && level == 0 {
            let description = b"Aperio Image Library v12.0.15 \r\n128x96 [0,0 128x96] (32x32) JPEG Q=80|AppMag = 20|MPP = 0.499\0";
            entries.push((270, ASCII, description.len() as u32, out.len() as u32));
            out.extend(description);
        }
        entries.sort();
        ifds.push(entries);
    }
    // Directories last, each pointing at the next; the header points at the first.
    let mut next_at = 4;
    for entries in ifds {
        let at = out.len() as u32;
        out[next_at..next_at + 4].copy_from_slice(&at.to_le_bytes());
        out.extend((entries.len() as u16).to_le_bytes());
        for (tag, kind, count, value) in entries {
            out.extend(tag.to_le_bytes());
            out.extend(kind.to_le_bytes());
            out.extend(count.to_le_bytes());
            out.extend(value.to_le_bytes());
        }
        next_at = out.len();
        out.extend(0u32.to_le_bytes());
    }
    out
}

#[test]
fn seeds_are_accepted_by_their_readers() {
    if std::env::var_os("TESSERA_WRITE_FUZZ_SEEDS").is_some() {
        for (target, name, bytes) in generated() {
            std::fs::create_dir_all(corpus(target)).unwrap();
            std::fs::write(corpus(target).join(name), bytes).unwrap();
        }
    }
    for (name, bytes) in seeds("index") {
        Index::from_bytes(&bytes, None).unwrap_or_else(|e| panic!("index/{name}: {e}"));
    }
    for (name, bytes) in seeds("partitioned") {
        let mut index = tessera::partitioned::PartitionedIndex::from_directory(&bytes, None).unwrap_or_else(|e| panic!("partitioned/{name}: {e}"));
        for p in 0..index.partitions().len() {
            let span = index.span(p).unwrap();
            index.add_partition(p, &bytes[span.start as usize..span.end as usize]).unwrap_or_else(|e| panic!("partitioned/{name}: {e}"));
            if index.rows_info().is_some() {
                let rows = tessera::partitioned::Fetch::Rows { partition: p, first: 0, count: index.partitions()[p].tiles };
                let range = index.range(&rows).unwrap();
                index.add(&rows, &bytes[range.start as usize..range.end as usize]).unwrap_or_else(|e| panic!("partitioned/{name} rows: {e}"));
            }
        }
    }
    for (name, bytes) in seeds("model_manifest") {
        ModelManifest::from_json(&bytes, &name).unwrap();
    }
    for (name, bytes) in seeds("model_bytes") {
        // As the target loads it: the repository's manifest with the seed's hash and a
        // small input and output.
        let json = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/vit-s14-int8.json")).unwrap();
        let mut manifest = ModelManifest::from_json(&json, "vit-s14-int8.json").unwrap();
        (manifest.sha256, manifest.input.size, manifest.output.dim) = (sha256_hex(&bytes), 28, 8);
        let embedder = Embedder::from_bytes(&bytes, manifest).unwrap_or_else(|e| panic!("model_bytes/{name}: {e}"));
        embedder.embed_square(&RgbImage::new(28, 28)).unwrap();
    }
    for (name, bytes) in seeds("image") {
        if name.ends_with(".bin") {
            let (w, h) = (u16::from_le_bytes([bytes[0], bytes[1]]), u16::from_le_bytes([bytes[2], bytes[3]]));
            tessera::preprocess::from_rgba(w.into(), h.into(), &bytes[4..]).unwrap();
        } else {
            tessera::preprocess::decode(&bytes, &name).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in seeds("slide") {
        let path = dir.path().join(&name);
        std::fs::write(&path, &bytes).unwrap();
        let mut slide = tessera::slide::open(&path).unwrap_or_else(|e| panic!("slide/{name}: {e}"));
        let levels = slide.levels().to_vec();
        assert_eq!(levels.len(), if name.contains("pyramid") { 2 } else { 1 }, "slide/{name}: levels");
        for (level, info) in levels.iter().enumerate() {
            slide.read_region(level, 0, 0, info.width, info.height).unwrap_or_else(|e| panic!("slide/{name}: {e}"));
        }
    }
    for (name, bytes) in seeds("csv_manifest") {
        tessera::manifest::parse(&bytes, &name).unwrap();
    }
    for (name, bytes) in seeds("search_json") {
        let request: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        serde_json::from_value::<Query>(request["query"].clone()).unwrap_or_else(|e| panic!("search_json/{name}: {e}"));
        serde_json::from_value::<SearchOptions>(request["options"].clone()).unwrap();
        if let Some(slides) = request.get("slides") {
            serde_json::from_value::<SlideOptions>(slides.clone()).unwrap();
        }
    }
}
