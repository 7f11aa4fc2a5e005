//! How much of a descriptor's similarity is the hospital: for each query, its 5 nearest
//! tiles among *other slides of the same class* (organ or diagnosis), and the share of
//! them that come from the query's own site. A descriptor that sees only histology picks
//! those neighbours regardless of site, so the share sits near chance (the share of such
//! candidates that are from the query's site); stain and scanner pull it up. Lower is
//! better; it is measured where the protocol lets same-site tiles compete (not under
//! leave-one-site-out, which removes them).

use serde::Serialize;

use super::{exact, MetaField, Protocol, TileKeys};

/// Neighbours per query.
const NEIGHBOURS: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub struct SiteBias {
    /// Queries with at least [`NEIGHBOURS`] same-class tiles on other slides.
    pub queries: usize,
    /// Mean share of those nearest tiles from the query's own site.
    pub own_site_at_5: f64,
    /// Mean share of all the query's same-class other-slide candidates from its own site:
    /// what a descriptor blind to the site would score.
    pub chance: f64,
}

pub(crate) struct SiteBiasTally {
    site: Vec<u32>,
    slide: Vec<u32>,
    queries: usize,
    own: f64,
    chance: f64,
}

impl SiteBiasTally {
    /// Present when the tiles name their site and slide and `protocol` keeps same-site
    /// candidates.
    pub(crate) fn new(keys: &TileKeys, protocol: Protocol) -> Option<SiteBiasTally> {
        if protocol.excluded_fields().contains(&MetaField::Site) {
            return None;
        }
        let (site, slide) = (keys.field(MetaField::Site)?.clone(), keys.field(MetaField::Slide)?.clone());
        Some(SiteBiasTally { site, slide, queries: 0, own: 0.0, chance: 0.0 })
    }

    /// Counts `query`, scored by `cosines`, among the candidates `allowed` also admits.
    pub(crate) fn add(&mut self, keys: &TileKeys, query: usize, cosines: &[f32], allowed: impl Fn(usize) -> bool) {
        let eligible = |c: usize| keys.label[c] == keys.label[query] && self.slide[c] != self.slide[query] && allowed(c);
        let nearest = exact::top_k_where(cosines, NEIGHBOURS, eligible);
        if nearest.len() < NEIGHBOURS {
            return;
        }
        let own_site = |c: &usize| self.site[*c] == self.site[query];
        let (mut candidates, mut same) = (0usize, 0usize);
        for c in (0..cosines.len()).filter(|&c| eligible(c)) {
            candidates += 1;
            same += usize::from(own_site(&c));
        }
        self.queries += 1;
        self.own += nearest.iter().filter(|c| own_site(c)).count() as f64 / NEIGHBOURS as f64;
        self.chance += same as f64 / candidates as f64;
    }

    pub(crate) fn report(self) -> SiteBias {
        let n = self.queries.max(1) as f64;
        SiteBias { queries: self.queries, own_site_at_5: self.own / n, chance: self.chance / n }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{evaluate, TileMeta, VectorSet};
    use super::*;

    fn tile(label: &str, slide: &str, site: &str) -> TileMeta {
        TileMeta {
            label: label.into(),
            group: slide.into(),
            slide: Some(slide.into()),
            case: Some(slide.into()),
            site: Some(site.into()),
        }
    }

    /// Twelve slides of one organ, six per site, two tiles each, and a descriptor that is
    /// only the site: every query's nearest same-class tiles are from its own site.
    #[test]
    fn a_site_only_descriptor_scores_its_own_site_and_chance_is_the_candidate_share() {
        let mut meta = Vec::new();
        let mut vectors = Vec::new();
        for slide in 0..12 {
            let site = if slide < 6 { "A" } else { "B" };
            for _ in 0..2 {
                meta.push(tile("lung", &format!("s{slide}"), site));
                vectors.extend(if site == "A" { [1.0f32, 0.0] } else { [0.0, 1.0] });
            }
        }
        let set = VectorSet::new(&vectors, 2).unwrap();
        let reports = evaluate(&set, &meta, &[Protocol::LeaveOneSlideOut, Protocol::LeaveOneSiteOut]).unwrap();
        let bias = reports[0].site_bias.as_ref().expect("slide-out keeps same-site tiles");
        assert_eq!(bias.queries, 24);
        // 10 same-site tiles on other slides outrank every other-site tile.
        assert!((bias.own_site_at_5 - 1.0).abs() < 1e-9, "{bias:?}");
        // Of the 22 candidates on other slides, 10 share the site.
        assert!((bias.chance - 10.0 / 22.0).abs() < 1e-9, "{bias:?}");
        assert!(reports[1].site_bias.is_none(), "site-out leaves no same-site candidate");
    }
}
