//! Whole slides: open an Aperio SVS, a generic tiled TIFF or a plain large JPEG/PNG/WebP,
//! and cut it into a grid of tiles at a chosen magnification, skipping background.
//!
//! Native only (feature `cli`): a browser never reads SVS, so this module reads files.
//! Pure Rust — the `tiff` crate and zune-jpeg — so no system library is needed.
//!
//! Coordinates follow OpenSlide: `x`, `y` are level-0 pixels; widths and heights are in
//! the pixels of the level read.

mod tiff_pyramid;
pub mod tiff_writer;

use std::io::Read;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::RgbImage;

use crate::preprocess::{self, PreprocessError};

use tiff_pyramid::TiffPyramid;
pub use crate::tissue::TissueMask;

/// Longest side of level 0 we accept (the largest scans are ~200k px).
const MAX_SIDE: u32 = 1 << 20;
/// Largest region `read_region` returns, in RGB bytes.
const MAX_REGION_BYTES: u64 = 512 << 20;
/// Memory a plain (non-TIFF) image may take once decoded.
const MAX_RASTER_BYTES: u64 = 1 << 30;
/// Bytes of level pixels decoded at a time while building a thumbnail.
const THUMBNAIL_BAND_BYTES: u64 = 64 << 20;
/// Mask pixels wanted across one tile, so a tile's tissue fraction has some resolution
/// (the thumbnail rounding leaves between half and all of them).
const MASK_PIXELS_PER_TILE: f64 = 8.0;
/// Bounds on the thumbnail the tissue mask is computed on (longest side).
const MASK_MIN_SIDE: u32 = 256;
const MASK_MAX_SIDE: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SlideError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a slide (expected TIFF/SVS, JPEG, PNG or WebP)", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("{}: TIFF {context}: {source}", path.display())]
    Tiff {
        path: PathBuf,
        context: String,
        source: tiff::TiffError,
    },
    #[error("{}: cannot decode image: {source}", path.display())]
    Image {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error("{}: unsupported {what}", path.display())]
    Unsupported { path: PathBuf, what: String },
    #[error("{}: corrupt: {what}", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("{}: {what} runs past the end of the file (truncated?)", path.display())]
    Truncated { path: PathBuf, what: String },
    #[error("{}: {what} is {width}×{height}, over the limit of {limit}", path.display())]
    TooLarge {
        path: PathBuf,
        what: String,
        width: u64,
        height: u64,
        limit: u64,
    },
    #[error("{}: level {level} does not exist (the slide has {count})", path.display())]
    NoSuchLevel {
        path: PathBuf,
        level: usize,
        count: usize,
    },
    #[error("{}: region at ({x}, {y}) of {width}×{height} lies outside level {level} ({level_width}×{level_height})", path.display())]
    OutOfBounds {
        path: PathBuf,
        level: usize,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        level_width: u32,
        level_height: u32,
    },
    #[error("{}: magnification {requested}× is above the slide's objective power {objective}×", path.display())]
    MagnificationTooHigh {
        path: PathBuf,
        requested: f32,
        objective: f32,
    },
    #[error("invalid slide tile options: {0}")]
    InvalidOptions(String),
}

/// One level of the pyramid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    pub width: u32,
    pub height: u32,
    /// Level-0 pixels per pixel of this level.
    pub downsample: f64,
}

/// An open slide.
pub struct Slide {
    path: PathBuf,
    name: String,
    levels: Vec<Level>,
    objective_power: Option<f32>,
    mpp: Option<f32>,
    pixels: Pixels,
}

// The index builder may open slides on worker threads.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Slide>();
};

enum Pixels {
    Tiff(Box<TiffPyramid>),
    /// A plain image, decoded whole: one level.
    Raster(RgbImage),
}

/// Opens `path` as a slide: TIFF (by its magic bytes) or any image the `image` crate reads.
pub fn open(path: &Path) -> Result<Slide, SlideError> {
    let io_err = |source| SlideError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut magic = Vec::with_capacity(4);
    let file = std::fs::File::open(path).map_err(io_err)?;
    file.take(4).read_to_end(&mut magic).map_err(io_err)?;
    let is_tiff = matches!(magic.as_slice(), b"II*\0" | b"MM\0*" | b"II+\0" | b"MM\0+");

    let (levels, objective_power, mpp, pixels) = if is_tiff {
        let pyramid = TiffPyramid::open(path)?;
        let aperio = pyramid
            .description
            .as_deref()
            .and_then(AperioProperties::parse);
        (
            pyramid.levels(),
            aperio.as_ref().and_then(|a| a.objective_power),
            aperio.as_ref().and_then(|a| a.mpp),
            Pixels::Tiff(Box::new(pyramid)),
        )
    } else {
        let image = decode_raster(path)?;
        let level = Level {
            width: image.width(),
            height: image.height(),
            downsample: 1.0,
        };
        (vec![level], None, None, Pixels::Raster(image))
    };
    Ok(Slide {
        path: path.to_path_buf(),
        name: slide_name(path),
        levels,
        objective_power,
        mpp,
        pixels,
    })
}

fn slide_name(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn decode_raster(path: &Path) -> Result<RgbImage, SlideError> {
    let bytes = std::fs::read(path).map_err(|source| SlideError::Io { path: path.to_path_buf(), source })?;
    let limits = preprocess::DecodeLimits { max_side: MAX_SIDE, max_bytes: MAX_RASTER_BYTES };
    let path = path.to_path_buf();
    preprocess::decode_within(&bytes, &path.display().to_string(), limits).map_err(|error| match error {
        PreprocessError::UnknownFormat { .. } => SlideError::UnknownFormat { path },
        PreprocessError::Decode { source, .. } => SlideError::Image { path, source },
        PreprocessError::BadSize { width, height, max, .. } => SlideError::TooLarge {
            path,
            what: "image".into(),
            width: width.into(),
            height: height.into(),
            limit: max.into(),
        },
        PreprocessError::Truncated { .. } => SlideError::Truncated { path, what: "JPEG data".into() },
        // Only raw RGBA input has a length to get wrong; a file never does.
        PreprocessError::RgbaLength { .. } => SlideError::Corrupt { path, what: error.to_string() },
    })
}

/// What the Aperio ImageDescription says about optics: `…|AppMag = 20|…|MPP = 0.4990|…`.
struct AperioProperties {
    objective_power: Option<f32>,
    mpp: Option<f32>,
}

impl AperioProperties {
    fn parse(description: &str) -> Option<AperioProperties> {
        if !description.starts_with("Aperio") {
            return None;
        }
        let value = |key: &str| {
            description.split('|').find_map(|field| {
                let (k, v) = field.split_once('=')?;
                let v: f32 = v.trim().parse().ok()?;
                (k.trim() == key && v.is_finite() && v > 0.0).then_some(v)
            })
        };
        Some(AperioProperties {
            objective_power: value("AppMag"),
            mpp: value("MPP"),
        })
    }
}

impl Slide {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The slide id: the file stem.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Level-0 width and height.
    pub fn dimensions(&self) -> (u32, u32) {
        (self.levels[0].width, self.levels[0].height)
    }

    pub fn levels(&self) -> &[Level] {
        &self.levels
    }

    /// Scanning objective power (Aperio `AppMag`), if the file records it.
    pub fn objective_power(&self) -> Option<f32> {
        self.objective_power
    }

    /// Microns per level-0 pixel (Aperio `MPP`), if the file records it.
    pub fn mpp(&self) -> Option<f32> {
        self.mpp
    }

    fn level(&self, level: usize) -> Result<Level, SlideError> {
        self.levels.get(level).copied().ok_or_else(|| SlideError::NoSuchLevel {
            path: self.path.clone(),
            level,
            count: self.levels.len(),
        })
    }

    /// The `width × height` pixels of `level` whose top-left is at level-0 (`x`, `y`).
    pub fn read_region(
        &mut self,
        level: usize,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    ) -> Result<RgbImage, SlideError> {
        let info = self.level(level)?;
        let to_level = |v: u32| (f64::from(v) / info.downsample).round() as u32;
        self.read_level_rect(level, to_level(x), to_level(y), width, height)
    }

    /// Like `read_region`, with the top-left in `level`'s own coordinates.
    fn read_level_rect(
        &mut self,
        level: usize,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    ) -> Result<RgbImage, SlideError> {
        let info = self.levels[level];
        let inside = |start: u32, extent: u32, limit: u32| {
            extent > 0 && start.checked_add(extent).is_some_and(|end| end <= limit)
        };
        if !inside(x, width, info.width) || !inside(y, height, info.height) {
            return Err(SlideError::OutOfBounds {
                path: self.path.clone(),
                level,
                x,
                y,
                width,
                height,
                level_width: info.width,
                level_height: info.height,
            });
        }
        if u64::from(width) * u64::from(height) * 3 > MAX_REGION_BYTES {
            return Err(SlideError::TooLarge {
                path: self.path.clone(),
                what: "requested region".into(),
                width: width.into(),
                height: height.into(),
                limit: MAX_REGION_BYTES,
            });
        }
        match &mut self.pixels {
            Pixels::Tiff(pyramid) => pyramid.read_rect(level, x, y, width, height),
            Pixels::Raster(image) => {
                Ok(image::imageops::crop_imm(image, x, y, width, height).to_image())
            }
        }
    }

    /// A box-filtered overview whose longest side is at most `max_side` and more than half
    /// of it (or level 0 whole, if smaller), read from the coarsest level that suffices,
    /// band by band so a huge level never sits in memory whole. Returns it with its
    /// level-0 pixels per pixel.
    fn thumbnail(&mut self, max_side: u32) -> Result<(RgbImage, f64), SlideError> {
        let longest = |level: &Level| level.width.max(level.height);
        let level = (0..self.levels.len())
            .rev()
            .find(|&l| longest(&self.levels[l]) >= max_side)
            .unwrap_or(0);
        let info = self.levels[level];
        let factor = longest(&info).div_ceil(max_side.max(1)).max(1);
        let mut thumbnail =
            RgbImage::new(info.width.div_ceil(factor), info.height.div_ceil(factor));

        // RGB sums and pixel count per box of the thumbnail row being filled.
        let mut row_sums = vec![[0u64; 4]; thumbnail.width() as usize];
        let band_height =
            (THUMBNAIL_BAND_BYTES / (u64::from(info.width) * 3)).clamp(1, 1024) as u32;
        let mut y = 0;
        while y < info.height {
            let rows = band_height.min(info.height - y);
            let band = self.read_level_rect(level, 0, y, info.width, rows)?;
            for (band_row, pixels) in band.rows().enumerate() {
                for (x, pixel) in pixels.enumerate() {
                    let sum = &mut row_sums[x / factor as usize];
                    for (total, &value) in sum.iter_mut().zip(&pixel.0) {
                        *total += u64::from(value);
                    }
                    sum[3] += 1;
                }
                let level_y = y + band_row as u32;
                if (level_y + 1).is_multiple_of(factor) || level_y + 1 == info.height {
                    for (x, sum) in row_sums.iter_mut().enumerate() {
                        let n = sum[3].max(1);
                        let mean = [(sum[0] / n) as u8, (sum[1] / n) as u8, (sum[2] / n) as u8];
                        thumbnail.put_pixel(x as u32, level_y / factor, image::Rgb(mean));
                        *sum = [0; 4];
                    }
                }
            }
            y += rows;
        }
        Ok((thumbnail, info.downsample * f64::from(factor)))
    }

    /// The tissue mask at a resolution fine enough for tiles of `tile_size_level0`.
    pub fn tissue_mask(&mut self, tile_size_level0: u32) -> Result<TissueMask, SlideError> {
        let (width, height) = self.dimensions();
        let level0_per_mask_pixel = (f64::from(tile_size_level0) / MASK_PIXELS_PER_TILE).max(1.0);
        let wanted = (f64::from(width.max(height)) / level0_per_mask_pixel).ceil() as u32;
        let (thumbnail, level0_per_pixel) =
            self.thumbnail(wanted.clamp(MASK_MIN_SIDE, MASK_MAX_SIDE))?;
        Ok(TissueMask::from_thumbnail(&thumbnail, level0_per_pixel))
    }

    /// Where the grid tiles with enough tissue lie, from the tissue mask alone (no tile
    /// pixels are read): full tiles only, in raster order; with `max_tiles`, an evenly
    /// spaced subset of them, so the sample covers the whole slide.
    pub fn plan_tiles(
        &mut self,
        options: &SlideTileOptions,
    ) -> Result<Vec<TilePlacement>, SlideError> {
        options.validate()?;
        let downsample = self.target_downsample(options.magnification)?;
        // The coarsest level no coarser than the target: read there, then resize down.
        let level = (0..self.levels.len())
            .rev()
            .find(|&l| self.levels[l].downsample <= downsample * 1.01)
            .unwrap_or(0);
        let size_level0 = (f64::from(options.tile_size) * downsample).round().max(1.0) as u32;
        let size_level = (f64::from(size_level0) / self.levels[level].downsample)
            .round()
            .max(1.0) as u32;
        let (width, height) = self.dimensions();
        let info = self.levels[level];
        if size_level0 > width
            || size_level0 > height
            || size_level > info.width
            || size_level > info.height
        {
            return Ok(Vec::new());
        }

        let mask = self.tissue_mask(size_level0)?;
        let mut placements = Vec::new();
        for row in 0..height / size_level0 {
            for col in 0..width / size_level0 {
                let (x, y) = (col * size_level0, row * size_level0);
                let tissue_fraction = mask.fraction(x, y, size_level0);
                if tissue_fraction >= options.min_tissue {
                    placements.push(TilePlacement {
                        x,
                        y,
                        level: level as u32,
                        size_level0,
                        size_level,
                        tile_size: options.tile_size,
                        tissue_fraction,
                    });
                }
            }
        }
        if let Some(max) = options.max_tiles {
            if placements.len() > max {
                let total = placements.len();
                placements = (0..max).map(|i| placements[i * total / max]).collect();
            }
        }
        Ok(placements)
    }

    /// Reads one planned tile and resizes it to the tile size.
    pub fn read_tile(&mut self, placement: &TilePlacement) -> Result<SlideTile, SlideError> {
        let level = placement.level as usize;
        let info = self.level(level)?;
        // Rounding to level pixels may overshoot the last column or row by one.
        let to_level = |v: u32, limit: u32| {
            ((f64::from(v) / info.downsample).round() as u32)
                .min(limit.saturating_sub(placement.size_level))
        };
        let (x, y) = (
            to_level(placement.x, info.width),
            to_level(placement.y, info.height),
        );
        let region =
            self.read_level_rect(level, x, y, placement.size_level, placement.size_level)?;
        let image = if placement.size_level == placement.tile_size {
            region
        } else {
            image::imageops::resize(
                &region,
                placement.tile_size,
                placement.tile_size,
                FilterType::Triangle,
            )
        };
        Ok(SlideTile {
            image,
            slide: self.name.clone(),
            x: placement.x,
            y: placement.y,
            level: placement.level,
            size_level0: placement.size_level0,
            tissue_fraction: placement.tissue_fraction,
        })
    }

    /// Level-0 pixels per output pixel for a target magnification. Without one, or when
    /// the slide does not record its objective power (a plain image), tiles are cut at
    /// level 0.
    fn target_downsample(&self, magnification: Option<f32>) -> Result<f64, SlideError> {
        let (Some(requested), Some(objective)) = (magnification, self.objective_power) else {
            return Ok(1.0);
        };
        if requested > objective * 1.001 {
            return Err(SlideError::MagnificationTooHigh {
                path: self.path.clone(),
                requested,
                objective,
            });
        }
        Ok(f64::from(objective) / f64::from(requested))
    }
}

/// How to cut a slide into tiles.
#[derive(Debug, Clone, PartialEq)]
pub struct SlideTileOptions {
    /// Tile side in pixels at the target magnification.
    pub tile_size: u32,
    /// Target magnification, e.g. 20.0; `None` cuts at level 0 (so does a slide that does
    /// not record its objective power).
    pub magnification: Option<f32>,
    /// Fraction of a tile that must be tissue for it to be kept.
    pub min_tissue: f32,
    /// Keep at most this many tiles, evenly spaced over the kept ones.
    pub max_tiles: Option<usize>,
}

impl Default for SlideTileOptions {
    fn default() -> Self {
        SlideTileOptions {
            tile_size: 224,
            magnification: None,
            min_tissue: 0.5,
            max_tiles: None,
        }
    }
}

impl SlideTileOptions {
    fn validate(&self) -> Result<(), SlideError> {
        let invalid = |what: String| Err(SlideError::InvalidOptions(what));
        if self.tile_size == 0 || self.tile_size > 8192 {
            return invalid(format!("tile size {} is not in 1..=8192", self.tile_size));
        }
        if let Some(m) = self.magnification {
            if !(m.is_finite() && m > 0.0) {
                return invalid(format!("magnification {m} is not a positive number"));
            }
        }
        if !(0.0..=1.0).contains(&self.min_tissue) {
            return invalid(format!("min_tissue {} is not in 0..=1", self.min_tissue));
        }
        Ok(())
    }
}

/// Where a tile lies, before its pixels are read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TilePlacement {
    /// Level-0 coordinates of the top-left corner.
    pub x: u32,
    pub y: u32,
    /// The level read from.
    pub level: u32,
    /// Tile side in level-0 pixels.
    pub size_level0: u32,
    /// Tile side in pixels of the level read.
    pub size_level: u32,
    /// Tile side after resizing (the requested tile size).
    pub tile_size: u32,
    pub tissue_fraction: f32,
}

/// A tile cut from a slide.
#[derive(Debug, Clone)]
pub struct SlideTile {
    pub image: RgbImage,
    /// The slide id: the file stem.
    pub slide: String,
    /// Level-0 coordinates of the top-left corner.
    pub x: u32,
    pub y: u32,
    /// The pyramid level the pixels were read from.
    pub level: u32,
    /// Tile side in level-0 pixels.
    pub size_level0: u32,
    pub tissue_fraction: f32,
}

/// Opens `path` and reads every tile that `options` selects.
pub fn read_tiles(path: &Path, options: &SlideTileOptions) -> Result<Vec<SlideTile>, SlideError> {
    let mut slide = open(path)?;
    let placements = slide.plan_tiles(options)?;
    placements
        .iter()
        .map(|placement| slide.read_tile(placement))
        .collect()
}
