//! The pixel pyramid of a TIFF file — Aperio SVS or a generic tiled/stripped TIFF — decoded
//! chunk by chunk (a chunk is a TIFF tile or strip), so a 100k×100k slide never has to fit
//! in memory.
//!
//! Levels: directory 0 is level 0; every later *tiled* directory whose aspect ratio matches
//! is a further (downsampled) level. Aperio's thumbnail, label and macro images are stored
//! in strips, so they are skipped, as OpenSlide does.
//!
//! Colour: the `tiff` crate hands JPEG chunks back without colour conversion. That is right
//! for Aperio, whose JPEG tiles carry RGB under PhotometricInterpretation = RGB (no
//! YCbCr transform, like libtiff); for PhotometricInterpretation = YCbCr we convert here.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;
use tiff::decoder::{ChunkType, Decoder, DecodingResult, Limits};
use tiff::tags::Tag;
use tiff::{ColorType, TiffError};

use super::{Level, SlideError, MAX_SIDE};

/// Most directories we walk: real slides have about six (levels, thumbnail, label, macro).
const MAX_DIRECTORIES: usize = 64;
/// Largest decoded chunk we accept (a whole-image strip of a huge plain TIFF is refused).
const MAX_CHUNK_BYTES: u64 = 256 << 20;
/// Decoded chunks kept in memory, so that a grid walk decodes each chunk about once: a
/// row of tiles spans up to two rows of chunks, ~150 MB on a 100k-px-wide level.
const CACHE_BYTES: usize = 256 << 20;

/// What the decoded samples of a level mean.
#[derive(Debug, Clone, Copy)]
enum Colour {
    Rgb,
    Rgba,
    YCbCr,
    Gray,
}

impl Colour {
    fn from_tiff(colour: ColorType) -> Option<Colour> {
        match colour {
            ColorType::RGB(8) => Some(Colour::Rgb),
            ColorType::RGBA(8) => Some(Colour::Rgba),
            ColorType::YCbCr(8) => Some(Colour::YCbCr),
            ColorType::Gray(8) => Some(Colour::Gray),
            _ => None,
        }
    }

    fn samples(self) -> usize {
        match self {
            Colour::Rgb | Colour::YCbCr => 3,
            Colour::Rgba => 4,
            Colour::Gray => 1,
        }
    }
}

/// One level as stored: which directory, and how it is cut into chunks.
#[derive(Debug)]
struct TiffLevel {
    directory: usize,
    width: u32,
    height: u32,
    chunk_width: u32,
    chunk_height: u32,
    chunks_across: u32,
    tiled: bool,
    colour: Colour,
}

pub(super) struct TiffPyramid {
    path: PathBuf,
    decoder: Decoder<BufReader<File>>,
    /// The directory the decoder has loaded.
    current_directory: usize,
    levels: Vec<TiffLevel>,
    cache: ChunkCache,
    /// ImageDescription of directory 0 (Aperio keeps AppMag and MPP there).
    pub(super) description: Option<String>,
}

impl TiffPyramid {
    pub(super) fn open(path: &Path) -> Result<TiffPyramid, SlideError> {
        let file = File::open(path).map_err(|source| SlideError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file_len = file
            .metadata()
            .map_err(|source| SlideError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        let tiff_err = |context: String| move |source| tiff_error(path, context, source);

        // The decoder also bounds tag-value tables (tile offsets) by this size.
        let mut limits = Limits::default();
        limits.decoding_buffer_size = MAX_CHUNK_BYTES as usize;
        let mut decoder = Decoder::new(BufReader::new(file))
            .map_err(tiff_err("header or directory 0".into()))?
            .with_limits(limits);

        let description = decoder
            .find_tag(Tag::ImageDescription)
            .map_err(tiff_err("ImageDescription of directory 0".into()))?
            .and_then(|value| value.into_string().ok());

        let mut levels: Vec<TiffLevel> = Vec::new();
        let mut directory = 0;
        loop {
            match describe_directory(&mut decoder, directory, path, file_len)? {
                Some(level) if levels.is_empty() => levels.push(level),
                Some(level) if is_next_level(&levels, &level) => levels.push(level),
                Some(_) => {}
                None if directory == 0 => return Err(SlideError::Unsupported {
                    path: path.to_path_buf(),
                    what:
                        "pixel format in directory 0 (need 8-bit RGB, RGBA, YCbCr or gray, chunky)"
                            .into(),
                }),
                None => {}
            }
            directory += 1;
            if !decoder.more_images() || directory >= MAX_DIRECTORIES {
                break;
            }
            decoder
                .next_image()
                .map_err(tiff_err(format!("directory {directory}")))?;
        }

        Ok(TiffPyramid {
            path: path.to_path_buf(),
            decoder,
            current_directory: directory - 1,
            levels,
            cache: ChunkCache::default(),
            description,
        })
    }

    pub(super) fn levels(&self) -> Vec<Level> {
        let base = &self.levels[0];
        self.levels
            .iter()
            .map(|level| Level {
                width: level.width,
                height: level.height,
                // OpenSlide's definition: the mean of the two axis ratios.
                downsample: (f64::from(base.width) / f64::from(level.width)
                    + f64::from(base.height) / f64::from(level.height))
                    / 2.0,
            })
            .collect()
    }

    /// Pixels `[x, x+width) × [y, y+height)` of `level`, in that level's coordinates.
    /// The caller has checked the rectangle lies inside the level.
    pub(super) fn read_rect(
        &mut self,
        level: usize,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    ) -> Result<RgbImage, SlideError> {
        let (chunk_width, chunk_height) = {
            let info = &self.levels[level];
            (info.chunk_width, info.chunk_height)
        };
        let mut out = RgbImage::new(width, height);
        for chunk_row in y / chunk_height..=(y + height - 1) / chunk_height {
            for chunk_col in x / chunk_width..=(x + width - 1) / chunk_width {
                let chunk = self.chunk(level, chunk_col, chunk_row)?;
                let (cx, cy) = (chunk_col * chunk_width, chunk_row * chunk_height);
                // Overlap of the chunk and the requested rectangle, in level coordinates.
                let (x0, x1) = (x.max(cx), (x + width).min(cx + chunk.width()));
                let (y0, y1) = (y.max(cy), (y + height).min(cy + chunk.height()));
                let row_bytes = (x1 - x0) as usize * 3;
                for row in y0..y1 {
                    let src =
                        ((row - cy) as usize * chunk.width() as usize + (x0 - cx) as usize) * 3;
                    let dst = ((row - y) as usize * width as usize + (x0 - x) as usize) * 3;
                    out.as_mut()[dst..dst + row_bytes]
                        .copy_from_slice(&chunk.as_raw()[src..src + row_bytes]);
                }
            }
        }
        Ok(out)
    }

    /// One decoded chunk, from the cache or the file.
    fn chunk(&mut self, level: usize, col: u32, row: u32) -> Result<Arc<RgbImage>, SlideError> {
        let info = &self.levels[level];
        let index = row * info.chunks_across + col;
        if let Some(chunk) = self.cache.get(level, index) {
            return Ok(chunk);
        }
        let width = info.chunk_width.min(info.width - col * info.chunk_width);
        let height = info.chunk_height.min(info.height - row * info.chunk_height);
        let (directory, colour) = (info.directory, info.colour);
        let context = || format!("level {level} chunk {index}");

        if self.current_directory != directory {
            self.decoder.seek_to_image(directory).map_err(|source| {
                tiff_error(&self.path, format!("directory {directory}"), source)
            })?;
            self.current_directory = directory;
        }
        let samples = match self.decoder.read_chunk(index) {
            Ok(DecodingResult::U8(samples)) => samples,
            Ok(_) => {
                return Err(SlideError::Unsupported {
                    path: self.path.clone(),
                    what: format!("sample type in {}", context()),
                })
            }
            Err(source) => return Err(tiff_error(&self.path, context(), source)),
        };
        let pixels = width as usize * height as usize;
        if samples.len() < pixels * colour.samples() {
            return Err(SlideError::Corrupt {
                path: self.path.clone(),
                what: format!(
                    "{} decoded to {} bytes, expected {}",
                    context(),
                    samples.len(),
                    pixels * colour.samples()
                ),
            });
        }
        let rgb = to_rgb(&samples[..pixels * colour.samples()], colour);
        let image = RgbImage::from_raw(width, height, rgb).ok_or_else(|| SlideError::Corrupt {
            path: self.path.clone(),
            what: format!("{} has an inconsistent size", context()),
        })?;
        let image = Arc::new(image);
        self.cache.insert(level, index, Arc::clone(&image));
        Ok(image)
    }
}

/// A decoder error; reading past the end of the file is called what it is.
fn tiff_error(path: &Path, context: String, source: TiffError) -> SlideError {
    match &source {
        TiffError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            SlideError::Truncated {
                path: path.to_path_buf(),
                what: context,
            }
        }
        _ => SlideError::Tiff {
            path: path.to_path_buf(),
            context,
            source,
        },
    }
}

/// The geometry of the loaded directory if it holds readable pixels, after checking that
/// its chunk table is complete and lies inside the file (a truncated slide fails here,
/// with the chunk named, rather than midway through a tiling run).
fn describe_directory(
    decoder: &mut Decoder<BufReader<File>>,
    directory: usize,
    path: &Path,
    file_len: u64,
) -> Result<Option<TiffLevel>, SlideError> {
    let tiff_err = |what: &str| {
        let context = format!("{what} of directory {directory}");
        move |source| tiff_error(path, context, source)
    };
    let (width, height) = decoder.dimensions().map_err(tiff_err("dimensions"))?;
    let Some(colour) = decoder.colortype().ok().and_then(Colour::from_tiff) else {
        return Ok(None);
    };
    let planar = decoder
        .find_tag_unsigned::<u16>(Tag::PlanarConfiguration)
        .map_err(tiff_err("PlanarConfiguration"))?
        .unwrap_or(1);
    if planar != 1 || width == 0 || height == 0 {
        return Ok(None);
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(SlideError::TooLarge {
            path: path.to_path_buf(),
            what: format!("directory {directory}"),
            width: width.into(),
            height: height.into(),
            limit: MAX_SIDE.into(),
        });
    }

    let tiled = decoder.get_chunk_type() == ChunkType::Tile;
    let (chunk_width, chunk_height, offsets_tag, counts_tag) = match decoder.get_chunk_type() {
        ChunkType::Tile => (
            decoder
                .get_tag_u32(Tag::TileWidth)
                .map_err(tiff_err("TileWidth"))?,
            decoder
                .get_tag_u32(Tag::TileLength)
                .map_err(tiff_err("TileLength"))?,
            Tag::TileOffsets,
            Tag::TileByteCounts,
        ),
        ChunkType::Strip => (
            width,
            decoder
                .find_tag_unsigned::<u32>(Tag::RowsPerStrip)
                .map_err(tiff_err("RowsPerStrip"))?
                .unwrap_or(height)
                .min(height),
            Tag::StripOffsets,
            Tag::StripByteCounts,
        ),
    };
    let chunk_bytes = u64::from(chunk_width) * u64::from(chunk_height) * colour.samples() as u64;
    if chunk_width == 0 || chunk_height == 0 || chunk_bytes > MAX_CHUNK_BYTES {
        return Err(SlideError::TooLarge {
            path: path.to_path_buf(),
            what: format!("chunk (tile/strip) of directory {directory}"),
            width: chunk_width.into(),
            height: chunk_height.into(),
            limit: MAX_CHUNK_BYTES,
        });
    }
    let chunks_across = width.div_ceil(chunk_width);
    let chunks = u64::from(chunks_across) * u64::from(height.div_ceil(chunk_height));

    let offsets = decoder
        .get_tag_u64_vec(offsets_tag)
        .map_err(tiff_err("chunk offsets"))?;
    let counts = decoder
        .get_tag_u64_vec(counts_tag)
        .map_err(tiff_err("chunk byte counts"))?;
    if offsets.len() as u64 != chunks || counts.len() as u64 != chunks {
        return Err(SlideError::Corrupt {
            path: path.to_path_buf(),
            what: format!(
                "directory {directory} lists {} offsets and {} byte counts for {chunks} chunks",
                offsets.len(),
                counts.len()
            ),
        });
    }
    for (chunk, (&offset, &count)) in offsets.iter().zip(&counts).enumerate() {
        let end = offset.saturating_add(count);
        if end > file_len {
            return Err(SlideError::Truncated {
                path: path.to_path_buf(),
                what: format!(
                    "directory {directory} chunk {chunk} (bytes {offset}..{end} of {file_len})"
                ),
            });
        }
    }

    Ok(Some(TiffLevel {
        directory,
        width,
        height,
        chunk_width,
        chunk_height,
        chunks_across,
        tiled,
        colour,
    }))
}

/// A tiled directory that is smaller than the last level and has level 0's aspect ratio.
fn is_next_level(levels: &[TiffLevel], candidate: &TiffLevel) -> bool {
    let (base, last) = (&levels[0], &levels[levels.len() - 1]);
    let ratio_x = f64::from(base.width) / f64::from(candidate.width);
    let ratio_y = f64::from(base.height) / f64::from(candidate.height);
    // A macro or label image has a different shape; rounding of a true level stays ~1 %.
    base.tiled
        && candidate.tiled
        && candidate.width < last.width
        && (ratio_x - ratio_y).abs() / ratio_x < 0.05
}

fn to_rgb(samples: &[u8], colour: Colour) -> Vec<u8> {
    match colour {
        Colour::Rgb => samples.to_vec(),
        Colour::Rgba => samples
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        Colour::Gray => samples.iter().flat_map(|&v| [v, v, v]).collect(),
        Colour::YCbCr => samples
            .chunks_exact(3)
            .flat_map(|p| {
                // JFIF full-range YCbCr, what JPEG-compressed TIFFs carry.
                let (y, cb, cr) = (
                    f32::from(p[0]),
                    f32::from(p[1]) - 128.0,
                    f32::from(p[2]) - 128.0,
                );
                let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
                [
                    clamp(y + 1.402 * cr),
                    clamp(y - 0.344_136 * cb - 0.714_136 * cr),
                    clamp(y + 1.772 * cb),
                ]
            })
            .collect(),
    }
}

/// Decoded chunks, evicted oldest first once over `CACHE_BYTES`.
#[derive(Default)]
struct ChunkCache {
    chunks: HashMap<(usize, u32), Arc<RgbImage>>,
    order: VecDeque<(usize, u32)>,
    bytes: usize,
}

impl ChunkCache {
    fn get(&self, level: usize, index: u32) -> Option<Arc<RgbImage>> {
        self.chunks.get(&(level, index)).cloned()
    }

    fn insert(&mut self, level: usize, index: u32, chunk: Arc<RgbImage>) {
        self.bytes += chunk.as_raw().len();
        self.chunks.insert((level, index), chunk);
        self.order.push_back((level, index));
        while self.bytes > CACHE_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(evicted) = self.chunks.remove(&oldest) {
                self.bytes -= evicted.as_raw().len();
            }
        }
    }
}
