//! Bad slides: not a TIFF, truncated, huge declared sizes, and bit-flipped copies of the
//! real SVS. Every one must end in a `SlideError` naming the file, never a panic.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};

use tessera::slide::{self, SlideError, SlideTileOptions};

fn svs_bytes() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/slides/CMU-1-Small-Region.svs"
    );
    std::fs::read(path).expect("read the CMU SVS")
}

fn jpeg_bytes() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/slides/CMU-1-Small-Region.jpg"
    );
    std::fs::read(path).expect("read the CMU JPEG")
}

/// Opens and tiles `bytes` written to `name`; returns the error, or `None` if it worked.
fn try_slide(dir: &Path, name: &str, bytes: &[u8]) -> Option<SlideError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    slide::read_tiles(&path, &SlideTileOptions::default()).err()
}

fn expect_error(dir: &Path, name: &str, bytes: &[u8]) -> SlideError {
    let error = try_slide(dir, name, bytes).unwrap_or_else(|| panic!("{name} was accepted"));
    let message = error.to_string();
    println!("{message}");
    assert!(
        message.contains(name),
        "error does not name {name}: {message}"
    );
    error
}

/// A little-endian baseline TIFF header and one directory of (tag, type, count, value)
/// entries; values that do not fit in 4 bytes are not needed here.
fn tiff(entries: &[(u16, u16, u32, u32)]) -> Vec<u8> {
    let mut bytes = b"II*\0".to_vec();
    bytes.extend(8u32.to_le_bytes());
    bytes.extend((entries.len() as u16).to_le_bytes());
    for &(tag, kind, count, value) in entries {
        bytes.extend(tag.to_le_bytes());
        bytes.extend(kind.to_le_bytes());
        bytes.extend(count.to_le_bytes());
        bytes.extend(value.to_le_bytes());
    }
    bytes.extend(0u32.to_le_bytes());
    bytes.extend([0u8; 64]);
    bytes
}

const SHORT: u16 = 3;
const LONG: u16 = 4;

/// An 8-bit gray TIFF of the given size, one strip (or one tile) of data at offset 8.
fn gray_tiff(width: u32, height: u32, tile: Option<u32>) -> Vec<u8> {
    let mut entries = vec![
        (256, LONG, 1, width),
        (257, LONG, 1, height),
        (258, SHORT, 1, 8),
        (259, SHORT, 1, 1),
        (262, SHORT, 1, 1),
    ];
    match tile {
        None => entries.extend([
            (273, LONG, 1, 8),
            (277, SHORT, 1, 1),
            (278, LONG, 1, height),
            (279, LONG, 1, 16),
        ]),
        Some(side) => entries.extend([
            (277, SHORT, 1, 1),
            (322, LONG, 1, side),
            (323, LONG, 1, side),
            (324, LONG, 1, 8),
            (325, LONG, 1, 16),
        ]),
    }
    tiff(&entries)
}

#[test]
fn not_a_slide() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, bytes) in [
        ("notes.svs", b"patient notes, not pixels".to_vec()),
        ("empty.svs", Vec::new()),
        ("tiny.tif", b"II".to_vec()),
    ] {
        let error = expect_error(dir.path(), name, &bytes);
        assert!(
            matches!(error, SlideError::UnknownFormat { .. }),
            "{name}: {error}"
        );
    }
    // A TIFF magic with nothing behind it.
    let error = expect_error(dir.path(), "magic.tif", b"II*\0");
    assert!(matches!(error, SlideError::Truncated { .. }), "{error}");
    // A missing file.
    let missing = PathBuf::from("/nonexistent/slide.svs");
    assert!(matches!(slide::open(&missing), Err(SlideError::Io { .. })));
}

#[test]
fn truncated_svs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = svs_bytes();
    // Cuts inside the header, the level-0 tiles, each directory, and the last bytes.
    for cut in [
        8,
        100,
        10_000,
        1_000_000,
        1_275_960,
        1_400_000,
        1_474_400,
        1_900_000,
        bytes.len() - 1,
    ] {
        let name = format!("cut-{cut}.svs");
        let error = expect_error(dir.path(), &name, &bytes[..cut]);
        assert!(
            matches!(error, SlideError::Truncated { .. }),
            "{name}: {error}"
        );
    }

    // Directory intact, pixel data missing (a 64×64 strip of 4096 bytes in a file of 186):
    // caught by the chunk table check when the slide is opened.
    let missing_pixels = tiff(&[
        (256, LONG, 1, 64),
        (257, LONG, 1, 64),
        (258, SHORT, 1, 8),
        (259, SHORT, 1, 1),
        (262, SHORT, 1, 1),
        (273, LONG, 1, 8),
        (277, SHORT, 1, 1),
        (278, LONG, 1, 64),
        (279, LONG, 1, 4096),
    ]);
    let error = expect_error(dir.path(), "no-pixels.tif", &missing_pixels);
    assert!(error.to_string().contains("chunk 0"), "{error}");
}

#[test]
fn huge_declared_sizes() {
    let dir = tempfile::tempdir().expect("temp dir");

    let error = expect_error(
        dir.path(),
        "wide.tif",
        &gray_tiff(4_000_000, 4_000_000, None),
    );
    assert!(matches!(error, SlideError::TooLarge { .. }), "{error}");

    // Within the side limit, but one strip (the whole image) would decode to 90 GB.
    let error = expect_error(
        dir.path(),
        "one-strip.tif",
        &gray_tiff(300_000, 300_000, None),
    );
    assert!(matches!(error, SlideError::TooLarge { .. }), "{error}");

    // A tile of 64k × 64k: 4 GiB for one chunk.
    let error = expect_error(
        dir.path(),
        "big-tile.tif",
        &gray_tiff(65_536, 65_536, Some(65_536)),
    );
    assert!(matches!(error, SlideError::TooLarge { .. }), "{error}");

    // A JPEG whose header claims 60000 × 60000 (10 GB decoded).
    let mut jpeg = jpeg_bytes();
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline SOF marker");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    let error = expect_error(dir.path(), "huge.jpg", &jpeg);
    assert!(matches!(error, SlideError::Image { .. }), "{error}");
}

/// Bit flips in the directories, the JPEG tables, the tile tables and the tile data of
/// the real slide, from a fixed seed. Each copy must decode or fail cleanly; the counts
/// show both happen.
#[test]
fn bit_flipped_svs_never_panics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let original = svs_bytes();
    // The four directories (offsets read from the file) and what follows each.
    let directory_offsets = [1_275_950usize, 1_474_362, 1_850_194, 1_938_212];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut decoded, mut refused) = (0, 0);
    for round in 0..96 {
        let mut bytes = original.clone();
        for _ in 0..1 + next() % 4 {
            let position = if round % 4 == 3 {
                (next() % bytes.len() as u64) as usize
            } else {
                // Inside a directory's entries or the values (tables, strings) it points to.
                let start = directory_offsets[(next() % 4) as usize];
                (start + (next() % 2_000) as usize).min(bytes.len() - 1)
            };
            bytes[position] ^= 1 << (next() % 8);
        }
        match try_slide(dir.path(), "flipped.svs", &bytes) {
            None => decoded += 1,
            Some(error) => {
                assert!(error.to_string().contains("flipped.svs"), "{error}");
                refused += 1;
            }
        }
    }
    println!("bit flips: {decoded} decoded, {refused} refused");
    assert!(refused > 0);
}
