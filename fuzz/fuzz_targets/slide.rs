//! Whole-slide reading (TIFF/SVS pyramids, or a plain image): open, read a corner of every
//! level, and on slides small enough to mask in a moment, plan and read tiles. `slide`
//! reads paths, so each input goes through one scratch file per process.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera::slide::{self, SlideTileOptions};

/// Largest level 0 the tiling is run on: planning decodes a whole level for the tissue
/// mask, and a small file can declare a huge single-level slide.
const MAX_PLANNED_PIXELS: u64 = 1 << 22;

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let dir = if shm.is_dir() { shm } else { std::env::temp_dir() };
        dir.join(format!("tessera-fuzz-slide-{}", std::process::id()))
    })
}

/// Largest plain (non-TIFF) image the target opens: the slide reader decodes one whole,
/// up to 1 GiB, at a cost linear in its pixels (see the image target).
const MAX_RASTER_PIXELS: u64 = 1 << 22;

fuzz_target!(|data: &[u8]| {
    let raster = image::ImageReader::new(std::io::Cursor::new(data)).with_guessed_format().ok().and_then(|r| r.into_dimensions().ok());
    if raster.is_some_and(|(w, h)| u64::from(w) * u64::from(h) > MAX_RASTER_PIXELS) {
        return;
    }
    std::fs::write(scratch(), data).expect("write the scratch slide");
    let Ok(mut slide) = slide::open(scratch()) else { return };
    let levels = slide.levels().to_vec();
    for (level, info) in levels.iter().enumerate() {
        let (w, h) = (info.width.min(64), info.height.min(64));
        let level0 = |v: u32| (f64::from(v) * info.downsample) as u32;
        let _ = slide.read_region(level, 0, 0, w, h);
        let _ = slide.read_region(level, level0(info.width - w), level0(info.height - h), w, h);
    }
    let (width, height) = slide.dimensions();
    if u64::from(width) * u64::from(height) <= MAX_PLANNED_PIXELS {
        let options = SlideTileOptions { tile_size: 32, magnification: Some(10.0), min_tissue: 0.0, max_tiles: Some(4) };
        if let Ok(placements) = slide.plan_tiles(&options) {
            for placement in &placements {
                let _ = slide.read_tile(placement);
            }
        }
    }
});
