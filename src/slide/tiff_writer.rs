//! Writing a tiled, multi-level TIFF (the shape of an Aperio scan) tile by tile, so a test
//! or a benchmark can make a slide of any size from the shared data without holding it in
//! memory: each tile is asked for, encoded and written, and only the tile tables stay.
//!
//! Little-endian classic TIFF (offsets are 32-bit: files up to 4 GiB); one directory per
//! image, the first carrying the description (Aperio's `AppMag = 20|MPP = 0.5` line is
//! what the reader takes the magnification from).

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use image::imageops::{self, FilterType};
use image::RgbImage;

const SHORT: u16 = 3;
const LONG: u16 = 4;
const ASCII: u16 = 2;

/// How tiles are stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TileStorage {
    Raw,
    /// Self-contained JFIF tiles (YCbCr 4:4:4), PhotometricInterpretation = YCbCr.
    Jpeg { quality: u8 },
}

/// One directory entry: tag, type, count, value or offset.
type Entry = (u16, u16, u32, u32);

pub struct TiledTiffWriter {
    out: BufWriter<File>,
    at: u64,
    directories: Vec<Vec<Entry>>,
}

fn too_big() -> io::Error {
    io::Error::other("a classic TIFF cannot exceed 4 GiB: write a smaller slide")
}

impl TiledTiffWriter {
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(b"II*\0\0\0\0\0")?;
        Ok(TiledTiffWriter { out, at: 8, directories: Vec::new() })
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<u32> {
        let start = u32::try_from(self.at).map_err(|_| too_big())?;
        self.out.write_all(bytes)?;
        self.at += bytes.len() as u64;
        u32::try_from(self.at).map_err(|_| too_big())?;
        Ok(start)
    }

    /// Appends a `width` × `height` image as `tile`-px tiles in raster order; `tile_at(col,
    /// row)` gives each tile's pixels (`tile` × `tile`; pad past the image's edge).
    pub fn add_image(
        &mut self,
        width: u32,
        height: u32,
        tile: u32,
        storage: TileStorage,
        description: Option<&str>,
        mut tile_at: impl FnMut(u32, u32) -> RgbImage,
    ) -> io::Result<()> {
        let (mut offsets, mut counts) = (Vec::new(), Vec::new());
        let mut encoded = Vec::new();
        for row in 0..height.div_ceil(tile) {
            for col in 0..width.div_ceil(tile) {
                let pixels = tile_at(col, row);
                if pixels.dimensions() != (tile, tile) {
                    return Err(io::Error::other(format!("tile ({col}, {row}) is {:?}, expected {tile}×{tile}", pixels.dimensions())));
                }
                let bytes: &[u8] = match storage {
                    TileStorage::Raw => pixels.as_raw(),
                    TileStorage::Jpeg { quality } => {
                        encoded.clear();
                        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, quality)
                            .encode_image(&pixels)
                            .map_err(io::Error::other)?;
                        &encoded
                    }
                };
                offsets.push(self.write(bytes)?);
                counts.push(bytes.len() as u32);
            }
        }
        let bits = self.write(&[8, 0, 8, 0, 8, 0])?;
        let (compression, photometric) = match storage {
            TileStorage::Raw => (1, 2),
            TileStorage::Jpeg { .. } => (7, 6),
        };
        let mut entries = vec![
            (254, LONG, 1, 0),
            (256, LONG, 1, width),
            (257, LONG, 1, height),
            (258, SHORT, 3, bits),
            (259, SHORT, 1, compression),
            (262, SHORT, 1, photometric),
        ];
        if let Some(text) = description {
            let mut bytes = text.as_bytes().to_vec();
            bytes.push(0);
            entries.push((270, ASCII, bytes.len() as u32, self.write(&bytes)?));
        }
        let offsets_at = self.table(&offsets)?;
        let counts_at = self.table(&counts)?;
        entries.extend([
            (277, SHORT, 1, 3),
            (284, SHORT, 1, 1),
            (322, LONG, 1, tile),
            (323, LONG, 1, tile),
            (324, LONG, offsets.len() as u32, offsets_at),
            (325, LONG, counts.len() as u32, counts_at),
        ]);
        if matches!(storage, TileStorage::Jpeg { .. }) {
            // YCbCrSubSampling = (1, 1), two SHORTs inline.
            entries.push((530, SHORT, 2, 0x0001_0001));
        }
        self.directories.push(entries);
        Ok(())
    }

    /// A LONG table: stored inline in its entry when it has one value (TIFF's rule).
    fn table(&mut self, values: &[u32]) -> io::Result<u32> {
        if let [one] = values {
            return Ok(*one);
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.write(&bytes)
    }

    /// Writes the directories, links them from the header, and flushes the file.
    pub fn finish(mut self) -> io::Result<()> {
        let mut link_at = 4u64; // where the next directory's offset goes
        for entries in std::mem::take(&mut self.directories) {
            if self.at % 2 == 1 {
                self.write(&[0])?;
            }
            let at = self.at;
            let mut bytes = (entries.len() as u16).to_le_bytes().to_vec();
            for (tag, kind, count, value) in entries {
                bytes.extend(tag.to_le_bytes());
                bytes.extend(kind.to_le_bytes());
                bytes.extend(count.to_le_bytes());
                bytes.extend(value.to_le_bytes());
            }
            bytes.extend(0u32.to_le_bytes());
            self.write(&bytes)?;
            self.link(link_at, at)?;
            link_at = at + bytes.len() as u64 - 4;
        }
        self.out.flush()
    }

    fn link(&mut self, from: u64, to: u64) -> io::Result<()> {
        self.out.flush()?;
        let file = self.out.get_mut();
        file.seek(SeekFrom::Start(from))?;
        file.write_all(&u32::try_from(to).map_err(|_| too_big())?.to_le_bytes())?;
        file.seek(SeekFrom::End(0))?;
        Ok(())
    }
}

/// Side of the stored tiles of [`write_repeated_slide`].
const REPEATED_TILE: u32 = 256;

/// A `side` × `side` Aperio-like pyramid (levels at 1×, 4× and 16×, 256-px JPEG tiles, 20×)
/// whose pixels repeat `source` (downsampled the same at the coarser levels), written tile
/// by tile through `path` + `.partial`, so a whole slide of any size is made from a small
/// real region (the slide benchmark's and the build tests' slides).
pub fn write_repeated_slide(path: &Path, source: &RgbImage, side: u32) -> io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let mut writer = TiledTiffWriter::create(&partial)?;
    let description = format!(
        "Aperio Image Library (generated by tessera from a repeated region)\r\n{side}x{side} ({REPEATED_TILE}x{REPEATED_TILE}) JPEG|AppMag = 20|MPP = 0.499"
    );
    for (i, downsample) in [1u32, 4, 16].into_iter().enumerate() {
        let level = if downsample == 1 {
            source.clone()
        } else {
            imageops::resize(source, (source.width() / downsample).max(1), (source.height() / downsample).max(1), FilterType::Triangle)
        };
        let level_side = side / downsample;
        let (w, h) = level.dimensions();
        let storage = TileStorage::Jpeg { quality: 85 };
        writer.add_image(level_side, level_side, REPEATED_TILE, storage, (i == 0).then_some(description.as_str()), |col, row| {
            RgbImage::from_fn(REPEATED_TILE, REPEATED_TILE, |x, y| {
                let (x, y) = (col * REPEATED_TILE + x, row * REPEATED_TILE + y);
                *level.get_pixel(x % w, y % h)
            })
        })?;
    }
    writer.finish()?;
    std::fs::rename(&partial, path)
}
