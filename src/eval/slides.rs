//! Slide-level retrieval (SISH / Yottixel style): every tile of a query slide retrieves its
//! nearest allowed tiles, which vote for their slides ([`crate::search::rank_votes`], the
//! ranking `search_slides` uses); the query slide is right when the top slides share its
//! label.

use serde::Serialize;

use super::metrics::majority_label;
use super::{MetaField, TileKeys};
use crate::search::rank_votes;

/// Nearest tiles per query tile that vote (the search default).
pub const SLIDE_VOTERS: usize = 50;
/// Slides ranked per query slide.
const SLIDES_RANKED: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub struct SlideReport {
    /// Query slides.
    pub slides: usize,
    /// Share of the top 5 slides with the query slide's label.
    pub p_at_5: f64,
    /// The majority label of the top 5 slides is the query slide's.
    pub mv_at_5: f64,
    /// MV@5 averaged per class, then over classes.
    pub m_mv_at_5: f64,
}

/// Votes gathered per query slide.
pub(crate) struct SlideTally {
    slide: Vec<u32>,
    /// Per slide id: (candidate slide, score, tile) votes of all its tiles.
    votes: Vec<Vec<(u32, f32, u32)>>,
}

impl SlideTally {
    pub(crate) fn new(keys: &TileKeys) -> SlideTally {
        let slide = keys.field(MetaField::Slide).cloned().unwrap_or_else(|| keys.group.clone());
        let slides = slide.iter().copied().max().map_or(0, |m| m as usize + 1);
        SlideTally { slide, votes: vec![Vec::new(); slides] }
    }

    /// Adds the votes of one query tile: `voters` are its nearest allowed tiles (at most
    /// [`SLIDE_VOTERS`]), `cosines` their scores by tile.
    pub(crate) fn add(&mut self, query: usize, cosines: &[f32], voters: &[usize]) {
        let own = self.slide[query] as usize;
        let slide = &self.slide;
        self.votes[own].extend(voters.iter().map(|&t| (slide[t], cosines[t], t as u32)));
    }

    pub(crate) fn report(self, keys: &TileKeys) -> SlideReport {
        let label_of_slide = |s: u32| self.slide.iter().position(|&x| x == s).map(|t| keys.label[t]);
        let mut per_class: Vec<(usize, usize)> = vec![(0, 0); keys.class_names.len()];
        let (mut slides, mut p5, mut mv) = (0usize, 0.0f64, 0usize);
        for (slide, votes) in self.votes.iter().enumerate() {
            if votes.is_empty() {
                continue;
            }
            let Some(label) = label_of_slide(slide as u32) else { continue };
            let ranked: Vec<u32> = rank_votes(votes.iter().copied(), true)
                .into_iter()
                .take(SLIDES_RANKED)
                .filter_map(|(s, ..)| label_of_slide(s))
                .collect();
            slides += 1;
            p5 += ranked.iter().filter(|&&l| l == label).count() as f64 / SLIDES_RANKED as f64;
            let right = majority_label(&ranked, SLIDES_RANKED) == Some(label);
            mv += usize::from(right);
            let class = &mut per_class[label as usize];
            class.0 += 1;
            class.1 += usize::from(right);
        }
        let classes: Vec<f64> = per_class.iter().filter(|c| c.0 > 0).map(|&(n, r)| r as f64 / n as f64).collect();
        SlideReport {
            slides,
            p_at_5: p5 / slides.max(1) as f64,
            mv_at_5: mv as f64 / slides.max(1) as f64,
            m_mv_at_5: classes.iter().sum::<f64>() / classes.len().max(1) as f64,
        }
    }
}
