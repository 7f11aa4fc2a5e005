//! A stable, machine-readable kind for every core error. The faces pass it on (the WASM
//! binding sets it on the JS `Error`, the worker forwards it), so pages branch on data,
//! not on message text.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// The pixels or image bytes given (format, size, truncation).
    Input,
    /// The index file (damaged, truncated, unsupported, inconsistent).
    Index,
    /// A model file or manifest that does not match its hash or is malformed.
    Integrity,
    /// An index built with another model than the one loaded.
    Mismatch,
    /// A query or search option.
    Search,
    /// Anything else inside the engine (the model failed to load or run).
    Engine,
}

impl ErrorKind {
    /// The code the faces use: `input`, `index`, `integrity`, `mismatch`, `search`, `engine`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Input => "input",
            ErrorKind::Index => "index",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Mismatch => "mismatch",
            ErrorKind::Search => "search",
            ErrorKind::Engine => "engine",
        }
    }
}

/// An error that knows its [`ErrorKind`].
pub trait Kinded {
    fn kind(&self) -> ErrorKind;
}

impl Kinded for crate::preprocess::PreprocessError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Input
    }
}

impl Kinded for crate::model::ModelError {
    fn kind(&self) -> ErrorKind {
        use crate::model::ModelError as E;
        match self {
            E::Manifest { .. } | E::ManifestField { .. } | E::HashMismatch { .. } => ErrorKind::Integrity,
            E::Load { .. } | E::Run { .. } | E::OutputShape { .. } | E::Io { .. } | E::WriteDecluttered { .. } => ErrorKind::Engine,
        }
    }
}

#[cfg(feature = "gpu")]
impl Kinded for crate::gpu::GpuError {
    fn kind(&self) -> ErrorKind {
        match self {
            crate::gpu::GpuError::Model(e) => e.kind(),
            _ => ErrorKind::Engine,
        }
    }
}

impl Kinded for crate::descriptor::DescriptorError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Input
    }
}

impl Kinded for crate::adapter::AdapterError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Index
    }
}

#[cfg(feature = "model")]
impl Kinded for crate::describer::DescribeError {
    fn kind(&self) -> ErrorKind {
        use crate::describer::DescribeError as E;
        match self {
            E::Model(e) => e.kind(),
            E::Descriptor(e) => e.kind(),
            E::Adapter(e) => e.kind(),
            E::ModelMismatch(_) => ErrorKind::Mismatch,
            E::BadViews { .. } => ErrorKind::Index,
            E::Expand(_) => ErrorKind::Input,
        }
    }
}

impl Kinded for crate::index::IndexError {
    fn kind(&self) -> ErrorKind {
        match self {
            crate::index::IndexError::ModelMismatch(_) => ErrorKind::Mismatch,
            crate::index::IndexError::BadPartition { .. } => ErrorKind::Integrity,
            _ => ErrorKind::Index,
        }
    }
}

impl Kinded for crate::search::SearchError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Search
    }
}
