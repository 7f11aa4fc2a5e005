//! Builds split across processes or machines: `tessera build --shard K/N` describes one
//! contiguous slice of the build's tiles (in input order) and writes a shard file instead
//! of an index; `tessera merge` checks that the shards are all N slices of one build and
//! finishes it — adapter, index, graph — exactly as a single `tessera build` would, so the
//! merged file is byte for byte the single-process one.
//!
//! A shard file: `TSSHARD1`, a u32 length and a JSON header ([`ShardHeader`]), the tiles'
//! outcomes as checkpoint records (`checkpoint.rs`), and a CRC-32 of all that.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use tessera::adapter::AdapterChoice;
use tessera::descriptor::ModelRef;
use tessera::index::{BuildOptions, IndexBuilder};

use super::checkpoint::{read_record, write_record, Outcome};

const MAGIC: &[u8; 8] = b"TSSHARD1";
/// A header larger than this means the file is damaged.
const MAX_HEADER_BYTES: u32 = 1 << 20;

/// `K/N`: the K-th (1-based) of N slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub k: usize,
    pub n: usize,
}

impl FromStr for ShardSpec {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?}: expected K/N with 1 ≤ K ≤ N, e.g. 2/8");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (k, n): (usize, usize) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if k == 0 || k > n {
            return Err(bad());
        }
        Ok(ShardSpec { k, n })
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl ShardSpec {
    /// The tiles of this slice among `total`: slices differ in size by one at most.
    pub fn range(&self, total: usize) -> std::ops::Range<usize> {
        (self.k - 1) * total / self.n..self.k * total / self.n
    }
}

/// What a merge needs to finish the build, and what proves the shards belong together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardHeader {
    /// Hex SHA-256 of the build's options (output and shard aside) and every tile's name:
    /// equal for all shards of one build.
    pub build: String,
    pub shard: usize,
    pub shards: usize,
    /// This shard's tiles are `first..first + tiles` of `total`.
    pub first: usize,
    pub tiles: usize,
    pub total: usize,
    pub model: ModelRef,
    pub options: BuildOptions,
    pub adapter: AdapterChoice,
    /// Inputs (slides) that could not be opened at all, counted once per build.
    pub inputs_skipped: usize,
}

/// Writes a finished shard.
pub fn write(path: &Path, header: &ShardHeader, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let mut bytes = MAGIC.to_vec();
    let json = serde_json::to_vec(header)?;
    bytes.extend((json.len() as u32).to_le_bytes());
    bytes.extend(json);
    for outcome in outcomes {
        write_record(&mut bytes, outcome)?;
    }
    let crc = crc32fast::hash(&bytes);
    bytes.extend(crc.to_le_bytes());
    super::super::write_atomically(path, |file| Ok(file.write_all(&bytes)?))
        .with_context(|| format!("{}: cannot write the shard", path.display()))
}

/// A shard's bytes, checked (magic, CRC-32) and its header read; the records start at the
/// returned offset.
fn read_checked(path: &Path) -> anyhow::Result<(ShardHeader, Vec<u8>, usize)> {
    let mut bytes = std::fs::read(path).with_context(|| format!("{}: cannot read the shard", path.display()))?;
    let bad = |what: &str| anyhow::anyhow!("{}: {what}", path.display());
    if bytes.len() < MAGIC.len() + 8 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad("not a tessera build shard (tessera build --shard K/N writes them)"));
    }
    let body_len = bytes.len() - 4;
    if crc32fast::hash(&bytes[..body_len]).to_le_bytes() != bytes[body_len..] {
        return Err(bad("checksum mismatch: the shard is damaged or was cut short"));
    }
    bytes.truncate(body_len);
    let len = u32::from_le_bytes(bytes[MAGIC.len()..MAGIC.len() + 4].try_into()?);
    let start = MAGIC.len() + 4;
    if len > MAX_HEADER_BYTES || start + len as usize > bytes.len() {
        return Err(bad("header length out of range"));
    }
    let header: ShardHeader =
        serde_json::from_slice(&bytes[start..start + len as usize]).map_err(|e| bad(&format!("header: {e}")))?;
    Ok((header, bytes, start + len as usize))
}

/// Reads a whole shard; refuses a damaged or incomplete one.
pub fn read(path: &Path) -> anyhow::Result<(ShardHeader, Vec<Outcome>)> {
    let (header, body, mut at) = read_checked(path)?;
    let bad = |what: &str| anyhow::anyhow!("{}: {what}", path.display());
    let mut outcomes = Vec::with_capacity(header.tiles.min(1 << 20));
    while at < body.len() {
        let (outcome, next) = read_record(&body, at).ok_or_else(|| bad("a damaged tile record"))?;
        outcomes.push(outcome);
        at = next;
    }
    if outcomes.len() != header.tiles {
        return Err(bad(&format!("{} tile records, the header says {}", outcomes.len(), header.tiles)));
    }
    Ok((header, outcomes))
}

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Every shard of one build (`tessera build … --shard K/N`), in any order.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// The index file to write.
    #[arg(short, long)]
    output: PathBuf,
}

/// `tessera merge`: the shards' tiles, in input order, into the index a single build writes.
pub fn run_merge(args: MergeArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut headers = Vec::new();
    for path in &args.shards {
        headers.push((read_header(path)?, path));
    }
    headers.sort_by_key(|(h, _)| h.shard);
    let (first, first_path) = &headers[0];
    for (h, path) in &headers {
        if h.build != first.build || h.shards != first.shards || h.total != first.total {
            bail!(
                "{} and {} are shards of different builds (other inputs, options or model); merge the shards of one build",
                first_path.display(),
                path.display()
            );
        }
    }
    let present: Vec<usize> = headers.iter().map(|(h, _)| h.shard).collect();
    if let Some(pair) = headers.windows(2).find(|w| w[0].0.shard == w[1].0.shard) {
        bail!("{} and {} are both shard {}/{}", pair[0].1.display(), pair[1].1.display(), pair[0].0.shard, first.shards);
    }
    let missing: Vec<String> = (1..=first.shards).filter(|k| !present.contains(k)).map(|k| format!("{k}/{}", first.shards)).collect();
    if !missing.is_empty() {
        bail!("missing shard(s) {} of this build (given {})", missing.join(", "), present.len());
    }
    let mut builder = IndexBuilder::new(first.model.clone(), first.options.clone())?;
    let mut skipped = first.inputs_skipped;
    let mut next = 0;
    for (header, path) in &headers {
        if header.first != next {
            bail!("{}: starts at tile {}, expected {next}", path.display(), header.first);
        }
        let (_, outcomes) = read(path)?;
        next += outcomes.len();
        for outcome in outcomes {
            if let Err(e) = super::add_outcome(&mut builder, outcome) {
                eprintln!("skipped: {e:#}");
                skipped += 1;
            }
        }
    }
    if next != first.total {
        bail!("the shards hold {next} tiles, the build has {}", first.total);
    }
    super::finish(builder, first.adapter, &args.output, skipped, started, None)
}

/// The header of a checked shard; its records are parsed once, when the merge adds them.
fn read_header(path: &Path) -> anyhow::Result<ShardHeader> {
    read_checked(path).map(|(header, _, _)| header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs_parse_and_slice_every_tile_once() {
        assert_eq!("2/8".parse::<ShardSpec>().unwrap(), ShardSpec { k: 2, n: 8 });
        for bad in ["0/3", "4/3", "1", "a/b", "1/0"] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad}");
        }
        for total in [0, 1, 7, 100] {
            let mut covered = Vec::new();
            for k in 1..=3 {
                covered.extend(ShardSpec { k, n: 3 }.range(total));
            }
            assert_eq!(covered, (0..total).collect::<Vec<_>>());
        }
    }
}
