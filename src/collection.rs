//! What the faces search: a whole index in memory, or a partitioned one whose partitions
//! arrive as they are needed. One set of calls for both, so the browser engine and the
//! CLI do not each dispatch on the kind.

use std::collections::BTreeMap;

use serde::Serialize;

#[cfg(feature = "model")]
use crate::backend::EmbeddingBackend;
#[cfg(feature = "model")]
use crate::describer::{DescribeError, TileDescriber};
use crate::index::{Census, Index, IndexError, IndexInfo};
use crate::partitioned::{Fetch, PartitionedIndex, PartitionedInfo};
use crate::search::{self, Hit, Query, SearchError, SearchOptions, SlideHit, SlideOptions};

pub enum Collection {
    Whole(Index),
    Partitioned(PartitionedIndex),
}

/// [`IndexInfo`], and for a partitioned index its partitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionInfo {
    #[serde(flatten)]
    pub index: IndexInfo,
    pub partitioned: Option<PartitionedInfo>,
}

impl Collection {
    /// A whole index file, or the start of a partitioned one (at least its directory).
    pub fn from_bytes(bytes: &[u8]) -> Result<Collection, IndexError> {
        if PartitionedIndex::is_partitioned(bytes) {
            PartitionedIndex::from_directory(bytes, None).map(Collection::Partitioned)
        } else {
            Index::from_bytes(bytes, None).map(Collection::Whole)
        }
    }

    #[cfg(feature = "model")]
    pub fn describer(&self, backend: impl Into<EmbeddingBackend>) -> Result<TileDescriber, DescribeError> {
        match self {
            Collection::Whole(index) => index.describer(backend),
            Collection::Partitioned(index) => index.describer(backend),
        }
    }

    /// What a query needs that is not loaded yet (nothing for a whole index): load it with
    /// [`PartitionedIndex::add`] and ask again until nothing is left.
    pub fn needed(&mut self, query: &Query, options: &SearchOptions) -> Result<Vec<Fetch>, SearchError> {
        match self {
            Collection::Whole(_) => Ok(Vec::new()),
            Collection::Partitioned(index) => index.needed(query, options),
        }
    }

    pub fn search(&self, query: &Query, options: &SearchOptions) -> Result<Vec<Hit>, SearchError> {
        match self {
            Collection::Whole(index) => search::search(index, query, options),
            Collection::Partitioned(index) => index.search(query, options),
        }
    }

    pub fn search_slides(&self, query: &Query, options: &SearchOptions, slides: &SlideOptions) -> Result<Vec<SlideHit>, SearchError> {
        match self {
            Collection::Whole(index) => search::search_slides(index, std::slice::from_ref(query), options, slides),
            Collection::Partitioned(index) => index.search_slides(query, options, slides),
        }
    }

    pub fn score_descriptors(&self, query: &Query, negative_weight: f32, descriptors: &[f32]) -> Result<Vec<f32>, SearchError> {
        match self {
            Collection::Whole(index) => search::score_descriptors(index, query, negative_weight, descriptors),
            Collection::Partitioned(index) => index.score_descriptors(query, negative_weight, descriptors),
        }
    }

    pub fn thumbnail(&self, id: u32) -> Option<&[u8]> {
        match self {
            Collection::Whole(index) => index.thumbnail(id as usize),
            Collection::Partitioned(index) => index.thumbnail(id),
        }
    }

    pub fn metadata(&self, id: u32) -> BTreeMap<String, String> {
        match self {
            Collection::Whole(index) => index.metadata(id as usize),
            Collection::Partitioned(index) => index.metadata(id),
        }
    }

    pub fn census(&self) -> Census {
        match self {
            Collection::Whole(index) => index.census(),
            Collection::Partitioned(index) => index.census(),
        }
    }

    pub fn info(&self) -> CollectionInfo {
        match self {
            Collection::Whole(index) => CollectionInfo { index: index.info(), partitioned: None },
            Collection::Partitioned(index) => CollectionInfo { index: index.index_info(), partitioned: Some(index.info()) },
        }
    }
}
