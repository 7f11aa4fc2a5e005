//! CSV tile manifests (`path,label,group,...`): one row per tile, every column kept.
//! Parsed from bytes so the same code serves the CLI and the fuzz target; resolving the
//! paths against the manifest's folder is the caller's business.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{name}: no header row: {source}")]
    Header { name: String, source: csv::Error },
    #[error("{name}: manifest has no `path` column (columns: {columns})")]
    NoPathColumn { name: String, columns: String },
    #[error("{name}: bad row {row}: {source}")]
    Row { name: String, row: u64, source: csv::Error },
    #[error("{name}: manifest lists no tiles")]
    Empty { name: String },
}

/// Every row of a manifest as column → value; each row has a `path`. `name` labels
/// errors; rows are numbered as lines, the header being line 1.
pub fn parse(bytes: &[u8], name: &str) -> Result<Vec<BTreeMap<String, String>>, ManifestError> {
    let mut reader = csv::Reader::from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|source| ManifestError::Header { name: name.into(), source })?
        .clone();
    if !headers.iter().any(|h| h == "path") {
        let columns = headers.iter().collect::<Vec<_>>().join(",");
        return Err(ManifestError::NoPathColumn { name: name.into(), columns });
    }
    let mut rows = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|source| ManifestError::Row { name: name.into(), row: line as u64 + 2, source })?;
        rows.push(headers.iter().zip(record.iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect());
    }
    if rows.is_empty() {
        return Err(ManifestError::Empty { name: name.into() });
    }
    Ok(rows)
}
