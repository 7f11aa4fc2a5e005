//! Which hits count as retrievals: evaluation protocols and the tile metadata they read.

use serde::{Deserialize, Serialize};

use super::EvalError;

/// What the protocols need to know about a tile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileMeta {
    /// The class a correct hit shares with the query (diagnosis, organ).
    pub label: String,
    /// Near-duplicate family: tiles in one group are never hits for each other.
    pub group: String,
    pub slide: Option<String>,
    pub case: Option<String>,
    /// Tissue-source site (hospital): in TCGA barcodes, the field after `TCGA-`.
    pub site: Option<String>,
}

impl TileMeta {
    /// Reads the metadata from named columns (a manifest row: `label` and `group` are
    /// required, `slide`, `case` and `site` optional); `tile` names the row in errors.
    pub fn from_columns<'a>(
        column: impl Fn(&str) -> Option<&'a str>,
        tile: &str,
    ) -> Result<TileMeta, EvalError> {
        let present = |name: &str| {
            column(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let required = |name: &'static str| {
            present(name).ok_or_else(|| EvalError::MissingColumn {
                tile: tile.to_string(),
                column: name,
            })
        };
        Ok(TileMeta {
            label: required("label")?,
            group: required("group")?,
            slide: present("slide"),
            case: present("case"),
            site: present("site"),
        })
    }
}

/// A rule for which tiles a query may retrieve. The query itself is always excluded,
/// and so is its `group` in every protocol but [`Protocol::AllOthers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Every other tile, near-duplicates included (LC25000's "same group included").
    AllOthers,
    /// Tiles outside the query's augmentation group (LC25000's main protocol).
    ExcludeSameGroup,
    /// Leave one slide out: tiles from other slides of other cases (MoNuSeg).
    LeaveOneSlideOut,
    /// Leave one site out: as [`Protocol::LeaveOneSlideOut`], and from other hospitals,
    /// since H&E colour encodes the hospital.
    LeaveOneSiteOut,
}

/// A metadata column a protocol may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaField {
    Slide,
    Case,
    Site,
}

impl MetaField {
    pub fn name(self) -> &'static str {
        match self {
            MetaField::Slide => "slide",
            MetaField::Case => "case",
            MetaField::Site => "site",
        }
    }

    pub(crate) fn of(self, meta: &TileMeta) -> Option<&str> {
        match self {
            MetaField::Slide => meta.slide.as_deref(),
            MetaField::Case => meta.case.as_deref(),
            MetaField::Site => meta.site.as_deref(),
        }
    }
}

impl Protocol {
    /// Short name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::AllOthers => "all_others",
            Protocol::ExcludeSameGroup => "exclude_same_group",
            Protocol::LeaveOneSlideOut => "leave_one_slide_out",
            Protocol::LeaveOneSiteOut => "leave_one_site_out",
        }
    }

    /// One line saying which hits the protocol excludes.
    pub fn description(self) -> &'static str {
        match self {
            Protocol::AllOthers => "only the query itself is excluded (near-duplicates count)",
            Protocol::ExcludeSameGroup => "hits from the query's augmentation group are excluded",
            Protocol::LeaveOneSlideOut => "hits from the query's group, slide or case are excluded",
            Protocol::LeaveOneSiteOut => {
                "hits from the query's group, slide, case or tissue-source site are excluded"
            }
        }
    }

    /// Whether the protocol skips candidates in the query's group.
    pub(crate) fn excludes_group(self) -> bool {
        self != Protocol::AllOthers
    }

    /// Metadata columns beyond label and group whose equality excludes a candidate.
    pub(crate) fn excluded_fields(self) -> &'static [MetaField] {
        match self {
            Protocol::AllOthers | Protocol::ExcludeSameGroup => &[],
            Protocol::LeaveOneSlideOut => &[MetaField::Slide, MetaField::Case],
            Protocol::LeaveOneSiteOut => &[MetaField::Slide, MetaField::Case, MetaField::Site],
        }
    }
}
