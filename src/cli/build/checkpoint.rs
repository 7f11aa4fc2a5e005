//! A build's progress on disk, so an interrupted `tessera build` (Ctrl-C, a crash, a full
//! disk) resumes with `--resume` instead of starting over. `<output>.checkpoint` holds, in
//! input order, the outcome of every tile described so far — its vector, metadata and
//! thumbnail, or why it was skipped — appended and synced after each chunk. A resumed
//! build replays those records into the builder and describes only the rest, so its index
//! is byte for byte the one an uninterrupted build writes.
//!
//! The file starts with a fingerprint of the build's options and tile list; a checkpoint
//! from another build is refused. A record cut short by the interruption is dropped.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"TSCKPT1\n";
const FINGERPRINT_LEN: usize = 32;
const NO_THUMBNAIL: u32 = u32::MAX;
/// Longest field a record may declare (a vector, metadata or thumbnail): larger means the
/// file is damaged.
const MAX_FIELD_BYTES: u32 = 64 << 20;

/// What became of one tile.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Described { vector: Vec<f32>, metadata: Vec<(String, String)>, thumbnail: Option<Vec<u8>> },
    Skipped { why: String },
}

pub fn path_for(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".checkpoint");
    PathBuf::from(name)
}

/// The fingerprint of a build: its options and every tile's name, in order.
pub fn fingerprint(options: &str, tiles: impl Iterator<Item = String>) -> [u8; FINGERPRINT_LEN] {
    let mut hash = Sha256::new();
    hash.update(options.as_bytes());
    for tile in tiles {
        hash.update((tile.len() as u64).to_le_bytes());
        hash.update(tile.as_bytes());
    }
    hash.finalize().into()
}

pub struct Checkpoint {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Checkpoint {
    /// A new, empty checkpoint for this build (replacing any old one).
    pub fn create(path: &Path, fingerprint: &[u8; FINGERPRINT_LEN]) -> anyhow::Result<Checkpoint> {
        let mut file = File::create(path).with_context(|| format!("{}: cannot create the checkpoint", path.display()))?;
        file.write_all(MAGIC)?;
        file.write_all(fingerprint)?;
        file.sync_data()?;
        Ok(Checkpoint { path: path.to_path_buf(), out: BufWriter::new(file) })
    }

    /// Opens the checkpoint of an interrupted build of the same fingerprint: its complete
    /// records, and the checkpoint ready to take the next ones.
    pub fn resume(path: &Path, fingerprint: &[u8; FINGERPRINT_LEN]) -> anyhow::Result<(Checkpoint, Vec<Outcome>)> {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .with_context(|| format!("{}: no checkpoint to resume from (run without --resume)", path.display()))?;
        let header = MAGIC.len() + FINGERPRINT_LEN;
        if bytes.len() < header || &bytes[..MAGIC.len()] != MAGIC {
            bail!("{}: not a tessera build checkpoint", path.display());
        }
        if bytes[MAGIC.len()..header] != fingerprint[..] {
            bail!(
                "{}: the checkpoint is of a build with other inputs or options; run the same command as before, or without --resume to start over",
                path.display()
            );
        }
        let mut outcomes = Vec::new();
        let mut at = header;
        while let Some((outcome, next)) = read_record(&bytes, at) {
            outcomes.push(outcome);
            at = next;
        }
        let mut file = OpenOptions::new().write(true).open(path)?;
        // Drop a record the interruption cut short.
        file.set_len(at as u64)?;
        file.seek(SeekFrom::End(0))?;
        Ok((Checkpoint { path: path.to_path_buf(), out: BufWriter::new(file) }, outcomes))
    }

    /// Appends one chunk's outcomes and makes them durable.
    pub fn append(&mut self, outcomes: &[Outcome]) -> anyhow::Result<()> {
        for outcome in outcomes {
            write_record(&mut self.out, outcome)?;
        }
        self.out.flush()?;
        self.out.get_ref().sync_data().with_context(|| format!("{}: cannot write the checkpoint", self.path.display()))
    }

    /// The build finished: its progress is no longer needed.
    pub fn remove(self) -> anyhow::Result<()> {
        drop(self.out);
        std::fs::remove_file(&self.path).with_context(|| format!("{}: cannot remove the checkpoint", self.path.display()))
    }
}

pub(super) fn write_record(out: &mut impl Write, outcome: &Outcome) -> std::io::Result<()> {
    let field = |out: &mut dyn Write, bytes: &[u8]| -> std::io::Result<()> {
        out.write_all(&(bytes.len() as u32).to_le_bytes())?;
        out.write_all(bytes)
    };
    match outcome {
        Outcome::Described { vector, metadata, thumbnail } => {
            out.write_all(&[1])?;
            let floats: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
            field(out, &floats)?;
            field(out, &serde_json::to_vec(metadata).map_err(std::io::Error::other)?)?;
            match thumbnail {
                Some(jpeg) => field(out, jpeg),
                None => out.write_all(&NO_THUMBNAIL.to_le_bytes()),
            }
        }
        Outcome::Skipped { why } => {
            out.write_all(&[0])?;
            field(out, why.as_bytes())
        }
    }
}

/// The record at `at` and where the next begins; `None` at the end or at a record cut short
/// or damaged.
pub(super) fn read_record(bytes: &[u8], at: usize) -> Option<(Outcome, usize)> {
    let mut cursor = Cursor { bytes, at };
    let outcome = match cursor.take(1)?[0] {
        1 => {
            let floats = cursor.field()??;
            if floats.len() % 4 != 0 {
                return None;
            }
            let vector = floats.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            let metadata = serde_json::from_slice(cursor.field()??).ok()?;
            let thumbnail = cursor.field()?.map(<[u8]>::to_vec);
            Outcome::Described { vector, metadata, thumbnail }
        }
        0 => Outcome::Skipped { why: String::from_utf8(cursor.field()??.to_vec()).ok()? },
        _ => return None,
    };
    Some((outcome, cursor.at))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }

    /// A length-prefixed field: `Some(None)` for the no-thumbnail marker.
    fn field(&mut self) -> Option<Option<&'a [u8]>> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        if len == NO_THUMBNAIL {
            return Some(None);
        }
        if len > MAX_FIELD_BYTES {
            return None;
        }
        Some(Some(self.take(len as usize)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes() -> Vec<Outcome> {
        vec![
            Outcome::Described { vector: vec![0.5, -1.25], metadata: vec![("label".into(), "lung_n".into())], thumbnail: Some(vec![1, 2, 3]) },
            Outcome::Skipped { why: "cannot decode".into() },
            Outcome::Described { vector: vec![3.0], metadata: vec![], thumbnail: None },
        ]
    }

    #[test]
    fn records_survive_and_a_cut_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.tsi.checkpoint");
        let fp = fingerprint("options", ["a".to_string(), "b".to_string()].into_iter());
        let mut checkpoint = Checkpoint::create(&path, &fp).unwrap();
        checkpoint.append(&outcomes()).unwrap();
        drop(checkpoint);
        // An interruption in the middle of the next record.
        let full = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new().append(true).open(&path).unwrap().write_all(&[1, 200, 0]).unwrap();
        let (mut resumed, read) = Checkpoint::resume(&path, &fp).unwrap();
        assert_eq!(read, outcomes());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), full, "the cut record is truncated away");
        resumed.append(&outcomes()[..1]).unwrap();
        drop(resumed);
        assert_eq!(Checkpoint::resume(&path, &fp).unwrap().1.len(), 4);

        let other = fingerprint("other options", std::iter::empty());
        let err = Checkpoint::resume(&path, &other).err().unwrap().to_string();
        assert!(err.contains("other inputs or options"), "{err}");
    }
}
