//! Where index bytes come from: a local file or an HTTP(S) URL read by byte ranges, so
//! `tessera search` reads a partitioned index the way the browser does (the directory,
//! then one range per probed partition) and says how many bytes that took.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;

use anyhow::{bail, Context};
use tessera::partitioned::{Fetch, PartitionedIndex};

/// A whole file smaller than this may come back from a server that ignores Range (200
/// instead of 206) and is then used whole; a larger one is an error.
pub const WHOLE_FILE_FALLBACK_BYTES: u64 = 64 << 20;

pub enum Source {
    File(PathBuf),
    Http(String),
    /// The whole file, from a server that answered a Range request with all of it.
    Memory(String, Vec<u8>),
}

/// Bytes read through a [`Source`]: requests and bytes, for the figures a search prints.
#[derive(Default, Debug, Clone, Copy)]
pub struct Transfer {
    pub requests: usize,
    pub bytes: u64,
}

impl Transfer {
    /// One request that brought `bytes` bytes (a whole file or a range, even when the server
    /// sent more than was asked for).
    fn record(&mut self, bytes: usize) {
        self.requests += 1;
        self.bytes += bytes as u64;
    }
}

impl Source {
    pub fn new(location: &str) -> Source {
        if location.starts_with("http://") || location.starts_with("https://") {
            Source::Http(location.to_string())
        } else {
            Source::File(PathBuf::from(location))
        }
    }

    pub fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Http(u) | Source::Memory(u, _) => u.clone(),
        }
    }

    /// Every byte of the file.
    pub fn read_all(&mut self, transfer: &mut Transfer) -> anyhow::Result<Vec<u8>> {
        let bytes = match self {
            Source::File(p) => std::fs::read(&*p).with_context(|| format!("{}: cannot read", p.display()))?,
            Source::Memory(_, bytes) => return Ok(bytes.clone()),
            Source::Http(url) => {
                let mut response = ureq::get(url.as_str()).call().with_context(|| format!("GET {url}"))?;
                read_body(response.body_mut(), url)?
            }
        };
        transfer.record(bytes.len());
        Ok(bytes)
    }

    /// Reads each of `needed`'s ranges into `index`, which verifies it.
    pub fn read_into(&mut self, index: &mut PartitionedIndex, needed: Vec<Fetch>, transfer: &mut Transfer) -> anyhow::Result<()> {
        for fetch in needed {
            let range = index.range(&fetch).expect("needed names existing ranges");
            let bytes = self.read_range(range, transfer)?;
            index.add(&fetch, &bytes).with_context(|| format!("{}: {fetch}", self.name()))?;
        }
        Ok(())
    }

    /// Bytes `range` of the file (fewer at its end). A server that ignores Range and sends
    /// a small whole file turns this source into a [`Source::Memory`] of it.
    pub fn read_range(&mut self, range: Range<u64>, transfer: &mut Transfer) -> anyhow::Result<Vec<u8>> {
        let len = range.end.saturating_sub(range.start);
        let bytes = match self {
            Source::Memory(_, bytes) => {
                let end = (range.end as usize).min(bytes.len());
                return Ok(bytes.get(range.start as usize..end).unwrap_or_default().to_vec());
            }
            Source::File(p) => {
                let mut file = File::open(&*p).with_context(|| format!("{}: cannot open", p.display()))?;
                file.seek(SeekFrom::Start(range.start))?;
                let mut bytes = Vec::with_capacity(len as usize);
                file.take(len).read_to_end(&mut bytes).with_context(|| format!("{}: cannot read bytes {range:?}", p.display()))?;
                bytes
            }
            Source::Http(url) => {
                let spec = format!("bytes={}-{}", range.start, range.end.saturating_sub(1));
                let mut response = ureq::get(url.as_str()).header("Range", &spec).call().with_context(|| format!("GET {url} ({spec})"))?;
                let status = response.status().as_u16();
                let body = read_body(response.body_mut(), url)?;
                transfer.record(body.len());
                match status {
                    206 => return Ok(body),
                    200 if (body.len() as u64) <= WHOLE_FILE_FALLBACK_BYTES => {
                        let part = body.get(range.start as usize..(range.end as usize).min(body.len())).unwrap_or_default().to_vec();
                        *self = Source::Memory(url.clone(), body);
                        return Ok(part);
                    }
                    200 => bail!(
                        "{url}: the server ignores Range requests (it answered {spec} with the whole {} MB file); \
                         serve partitioned indexes from a host that supports byte ranges",
                        body.len() >> 20
                    ),
                    other => bail!("{url}: HTTP {other} for {spec}"),
                }
            }
        };
        transfer.record(bytes.len());
        Ok(bytes)
    }
}

fn read_body(body: &mut ureq::Body, url: &str) -> anyhow::Result<Vec<u8>> {
    body.with_config().limit(u64::MAX).read_to_vec().with_context(|| format!("{url}: reading the response"))
}
