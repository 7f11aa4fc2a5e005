//! The HNSW graph: built by `instant-distance` or by our batch-parallel builder
//! (`hnsw_batched`), stored in our own compact layout.
//!
//! instant-distance keeps every layer-0 node as a fixed array of 2·M = 64 u32 neighbour
//! slots (256 bytes per tile, M is a const in the crate) and keeps the points inside the
//! graph. We build with it, read its layers out through its serde form, drop the empty
//! slots, optionally cap the layer-0 degree, and bit-pack the ids (20 bits each for a
//! million tiles). The search below is the standard HNSW descent over that layout,
//! scoring through a closure so it works on any stored vector encoding.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use super::bytes::{PackedInts, Reader, Writer};
use super::IndexError;

/// Graph construction parameters, recorded in the file header.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Beam width while inserting.
    pub ef_construction: usize,
    /// Default beam width while searching; a query may ask for more.
    pub ef_search: usize,
    /// Seed for the random layer assignment: same seed and input, same graph.
    pub seed: u64,
    /// Layer-0 neighbours kept per tile (both builders build with up to 64).
    pub max_degree: usize,
    /// Fraction of a layer's tiles that also appear in the layer above (instant-distance's
    /// `ml`). Its default, 1/ln(32) ≈ 0.29, puts 29% of tiles in layer 1; the HNSW paper's
    /// 1/M = 1/32 keeps upper layers ~10× smaller at the same recall (measured in
    /// `tessera bench search`).
    pub layer_ratio: f32,
    /// instant-distance's "keep pruned" heuristic option: fill neighbour lists back up to
    /// 64 with candidates the diversity heuristic rejected. Off keeps lists short.
    pub keep_pruned: bool,
    /// Which construction made the graph. Files from before this field was recorded were
    /// all built by instant-distance.
    #[serde(default = "GraphConstruction::instant_distance")]
    pub construction: GraphConstruction,
}

/// How the graph is constructed. Both give the same graph for the same input and seed
/// whatever the thread count; they differ in speed and in which graph that is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GraphConstruction {
    /// instant-distance's builder on a pool of one thread.
    InstantDistance,
    /// Batches searched in parallel and linked in a fixed order (`hnsw_batched`).
    Batched,
}

impl GraphConstruction {
    fn instant_distance() -> Self {
        GraphConstruction::InstantDistance
    }
}

impl std::str::FromStr for GraphConstruction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "instant-distance" => Ok(GraphConstruction::InstantDistance),
            "batched" => Ok(GraphConstruction::Batched),
            _ => Err(format!("unknown graph construction `{s}` (expected instant-distance or batched)")),
        }
    }
}

impl std::fmt::Display for GraphConstruction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GraphConstruction::InstantDistance => "instant-distance",
            GraphConstruction::Batched => "batched",
        })
    }
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            ef_construction: 100,
            ef_search: 64,
            seed: 0x7e55e7a,
            max_degree: 32,
            layer_ratio: 1.0 / 32.0,
            keep_pruned: false,
            // `tessera bench graph` at 100k tiles: the same recall and query time as
            // instant-distance, built 1.4× faster on one thread and 2.4× on two.
            construction: GraphConstruction::Batched,
        }
    }
}

/// One layer's sorted members (`None` for layer 0: every tile) and a neighbour list per
/// member, as a builder hands them over.
pub(super) type LayerAdjacency = (Option<Vec<u32>>, Vec<Vec<u32>>);

/// One layer as adjacency lists over tile ids.
#[derive(Debug, Clone, PartialEq)]
struct Layer {
    /// Sorted tile ids present in this layer; `None` for layer 0, which holds every tile.
    members: Option<PackedInts>,
    /// `members + 1` offsets into `edges`.
    offsets: PackedInts,
    edges: PackedInts,
}

impl Layer {
    /// Position of tile `id` in this layer.
    fn slot(&self, id: u32) -> Option<usize> {
        match &self.members {
            None => Some(id as usize),
            Some(members) => {
                let (mut lo, mut hi) = (0usize, members.len());
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    match members.get(mid).cmp(&id) {
                        Ordering::Less => lo = mid + 1,
                        Ordering::Greater => hi = mid,
                        Ordering::Equal => return Some(mid),
                    }
                }
                None
            }
        }
    }

    fn neighbours(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        let range = match self.slot(id) {
            Some(s) => self.offsets.get(s) as usize..self.offsets.get(s + 1) as usize,
            None => 0..0,
        };
        range.map(move |e| self.edges.get(e))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Graph {
    entry: u32,
    /// `layers[0]` is the bottom layer.
    layers: Vec<Layer>,
}

/// A point as instant-distance sees it during construction: a borrowed decoded vector.
/// Its serde form is empty: we serialize the graph only to read its layers back out.
#[derive(Clone)]
struct BuildPoint<'a>(&'a [f32]);

impl instant_distance::Point for BuildPoint<'_> {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - super::quant::dot_f32(self.0, other.0)
    }
}

impl Serialize for BuildPoint<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

/// Neighbours per tile while building: instant-distance's fixed array sizes (its const
/// M = 32; layer 0 has 2·M), which the batched build keeps too.
pub(super) const UPPER_SLOTS: usize = 32;
pub(super) const ZERO_SLOTS: usize = 64;
const INVALID: u32 = u32::MAX;

impl Graph {
    /// Builds the graph over `vectors` (`n * dim`, decoded, unit length).
    ///
    /// instant-distance inserts the points of each lower layer in parallel on the current
    /// rayon pool, which makes the graph depend on thread timing; we run it on a pool of one
    /// thread so the same input and seed always give the same graph (WASM has one thread anyway).
    pub(crate) fn build(vectors: &[f32], dim: usize, params: &HnswParams) -> Result<Graph, IndexError> {
        if params.construction == GraphConstruction::Batched {
            return Ok(super::hnsw_batched::build(vectors, dim, params));
        }
        let points: Vec<BuildPoint> = vectors.chunks_exact(dim).map(BuildPoint).collect();
        let n = points.len();
        let heuristic = instant_distance::Heuristic { extend_candidates: false, keep_pruned: params.keep_pruned };
        let builder = instant_distance::Builder::default()
            .ef_construction(params.ef_construction)
            .ef_search(params.ef_search)
            .select_heuristic(Some(heuristic))
            .ml(params.layer_ratio)
            .seed(params.seed);
        let build = move || builder.build_hnsw(points);
        let (hnsw, ids) = if rayon::current_num_threads() > 1 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .map_err(|e| IndexError::Build(format!("could not start the graph-build pool: {e}")))?;
            pool.install(build)
        } else {
            build()
        };
        // instant-distance renumbers points; `ids[tile]` is the tile's number in its graph.
        let mut tile_of = vec![0u32; n];
        for (tile, pid) in ids.iter().enumerate() {
            tile_of[pid.into_inner() as usize] = tile as u32;
        }
        let raw = bincode::serialize(&hnsw).map_err(|e| IndexError::Build(format!("reading the HNSW layers: {e}")))?;
        drop(hnsw);
        Graph::from_instant_distance(&raw, &tile_of, params.max_degree)
    }

    /// Parses instant-distance 0.6's bincode form: `ef_search: u64, points: [unit; n],
    /// zero: [[u32; 64]; n], layers: [[[u32; 32]; len_l]; L-1]`, ids in its own numbering.
    fn from_instant_distance(raw: &[u8], tile_of: &[u32], max_degree: usize) -> Result<Graph, IndexError> {
        let layout = |what: &str| IndexError::Build(format!("unexpected instant-distance layout: {what}"));
        let n = tile_of.len();
        let mut r = Reader::new(raw, "instant-distance");
        let _ef_search = r.u64().map_err(|_| layout("header"))?;
        if r.len().map_err(|_| layout("points"))? != n || r.len().map_err(|_| layout("zero layer"))? != n {
            return Err(layout("point counts"));
        }
        let mut lists: Vec<Vec<u32>> = Vec::with_capacity(n);
        for _ in 0..n {
            let mut list = Vec::new();
            for _ in 0..ZERO_SLOTS {
                let pid = r.u32().map_err(|_| layout("zero layer"))?;
                if pid != INVALID && list.len() < max_degree {
                    list.push(*tile_of.get(pid as usize).ok_or_else(|| layout("neighbour id"))?);
                }
            }
            lists.push(list);
        }
        // Bottom layer, indexed by tile id.
        let mut by_tile = vec![Vec::new(); n];
        for (pid, list) in lists.into_iter().enumerate() {
            by_tile[tile_of[pid] as usize] = list;
        }
        let mut layers = vec![Layer::from_lists(None, &by_tile)];
        let upper = r.len().map_err(|_| layout("layer count"))?;
        for _ in 0..upper {
            let len = r.len().map_err(|_| layout("layer size"))?;
            if len > n {
                return Err(layout("layer size"));
            }
            let mut nodes: Vec<(u32, Vec<u32>)> = Vec::with_capacity(len);
            for pid in 0..len {
                let mut list = Vec::new();
                for _ in 0..UPPER_SLOTS {
                    let nb = r.u32().map_err(|_| layout("upper layer"))?;
                    if nb != INVALID {
                        list.push(*tile_of.get(nb as usize).ok_or_else(|| layout("neighbour id"))?);
                    }
                }
                nodes.push((tile_of[pid], list));
            }
            nodes.sort_by_key(|(tile, _)| *tile);
            let members: Vec<u32> = nodes.iter().map(|(tile, _)| *tile).collect();
            let lists: Vec<Vec<u32>> = nodes.into_iter().map(|(_, list)| list).collect();
            layers.push(Layer::from_lists(Some(&members), &lists));
        }
        r.expect_end().map_err(|_| layout("trailing bytes"))?;
        // instant-distance's `layers[i]` is layer i + 1, so ours are already bottom-up;
        // its entry point is its point 0, present in every layer.
        Ok(Graph { entry: tile_of.first().copied().unwrap_or(0), layers })
    }

    /// A graph from per-layer neighbour lists, bottom layer first.
    pub(super) fn from_lists(entry: u32, layers: Vec<LayerAdjacency>) -> Graph {
        let layers = layers.iter().map(|(members, lists)| Layer::from_lists(members.as_deref(), lists)).collect();
        Graph { entry, layers }
    }

    pub(crate) fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// Average number of layer-0 neighbours per tile.
    pub(crate) fn mean_degree(&self) -> f64 {
        let zero = &self.layers[0];
        zero.edges.len() as f64 / zero.offsets.len().saturating_sub(1).max(1) as f64
    }

    /// Returns up to `ef` tiles nearest the query as (score, tile), best first. `score`
    /// gives the similarity of the query to a tile (higher is closer).
    pub(crate) fn search(&self, tiles: usize, ef: usize, mut score: impl FnMut(u32) -> f32) -> Vec<(f32, u32)> {
        if tiles == 0 {
            return Vec::new();
        }
        let mut current = self.entry;
        let mut best = score(current);
        for layer in self.layers[1..].iter().rev() {
            loop {
                let mut moved = false;
                for nb in layer.neighbours(current) {
                    let s = score(nb);
                    if s > best {
                        best = s;
                        current = nb;
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        let ef = ef.max(1);
        let mut visited = vec![0u64; tiles.div_ceil(64)];
        let mut mark = |id: u32| {
            let (w, b) = (id as usize / 64, id as usize % 64);
            let fresh = visited[w] & (1 << b) == 0;
            visited[w] |= 1 << b;
            fresh
        };
        mark(current);
        // `candidates` pops the closest unexpanded tile; `found` pops the worst kept one.
        let mut candidates = BinaryHeap::from([Scored(best, current)]);
        let mut found = BinaryHeap::from([std::cmp::Reverse(Scored(best, current))]);
        while let Some(Scored(s, id)) = candidates.pop() {
            let worst = found.peek().map_or(f32::NEG_INFINITY, |w| w.0 .0);
            if s < worst && found.len() >= ef {
                break;
            }
            for nb in self.layers[0].neighbours(id) {
                if !mark(nb) {
                    continue;
                }
                let s = score(nb);
                let worst = found.peek().map_or(f32::NEG_INFINITY, |w| w.0 .0);
                if found.len() < ef || s > worst {
                    candidates.push(Scored(s, nb));
                    found.push(std::cmp::Reverse(Scored(s, nb)));
                    if found.len() > ef {
                        found.pop();
                    }
                }
            }
        }
        let mut out: Vec<(f32, u32)> = found.into_iter().map(|std::cmp::Reverse(Scored(s, id))| (s, id)).collect();
        out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out
    }

    /// `GRPH` section: entry u32, layer count u32, then per layer (bottom first) an
    /// upper-layer flag u8, members (upper layers), offsets and edges as packed ints.
    pub(crate) fn write(&self, w: &mut Writer) {
        w.u32(self.entry);
        w.u32(self.layers.len() as u32);
        for layer in &self.layers {
            match &layer.members {
                None => w.u8(0),
                Some(members) => {
                    w.u8(1);
                    members.write(w);
                }
            }
            layer.offsets.write(w);
            layer.edges.write(w);
        }
    }

    /// Reads and fully validates a graph over `tiles` tiles: every id in range, offsets
    /// non-decreasing and inside the edge list, members sorted, so search can never index
    /// out of bounds.
    pub(crate) fn read(bytes: &[u8], tiles: usize) -> Result<Graph, IndexError> {
        let mut r = Reader::new(bytes, "GRPH");
        let bad = |r: &Reader, what: &'static str| IndexError::BadValue { section: "GRPH", offset: r.offset(), what };
        let entry = r.u32()?;
        if entry as usize >= tiles.max(1) {
            return Err(bad(&r, "entry point out of range"));
        }
        let count = r.u32()? as usize;
        if count == 0 || count > 64 {
            return Err(bad(&r, "layer count must be 1..=64"));
        }
        let mut layers = Vec::new();
        for level in 0..count {
            let has_members = r.u8()?;
            let members = match (level, has_members) {
                (0, 0) => None,
                (l, 1) if l > 0 => Some(PackedInts::read(&mut r)?),
                _ => return Err(bad(&r, "only layers above 0 list their members")),
            };
            if let Some(m) = &members {
                if m.len() > tiles {
                    return Err(bad(&r, "layer has more members than the index has tiles"));
                }
                let mut prev = None;
                for id in m.iter() {
                    if id as usize >= tiles || prev.is_some_and(|p| p >= id) {
                        return Err(bad(&r, "layer members unsorted or out of range"));
                    }
                    prev = Some(id);
                }
            }
            let nodes = members.as_ref().map_or(tiles, PackedInts::len);
            let offsets = PackedInts::read(&mut r)?;
            let edges = PackedInts::read(&mut r)?;
            // Built lists hold at most 64 neighbours; checked before walking edges.
            if offsets.len() != nodes + 1 || edges.len() > nodes.saturating_mul(ZERO_SLOTS) {
                return Err(bad(&r, "offset or edge count does not match node count"));
            }
            let mut prev = 0u32;
            for (i, o) in offsets.iter().enumerate() {
                if (i == 0 && o != 0) || o < prev || o as usize > edges.len() {
                    return Err(bad(&r, "offsets not increasing within the edge list"));
                }
                prev = o;
            }
            if prev as usize != edges.len() {
                return Err(bad(&r, "edge count does not match the last offset"));
            }
            if edges.iter().any(|e| e as usize >= tiles) {
                return Err(bad(&r, "neighbour id out of range"));
            }
            let layer = Layer { members, offsets, edges };
            if level > 0 && layer.slot(entry).is_none() {
                return Err(bad(&r, "entry point missing from an upper layer"));
            }
            layers.push(layer);
        }
        r.expect_end()?;
        Ok(Graph { entry, layers })
    }
}

impl Layer {
    fn from_lists(members: Option<&[u32]>, lists: &[Vec<u32>]) -> Layer {
        let mut offsets = Vec::with_capacity(lists.len() + 1);
        let mut edges = Vec::new();
        offsets.push(0u32);
        for list in lists {
            edges.extend_from_slice(list);
            offsets.push(edges.len() as u32);
        }
        Layer {
            members: members.map(PackedInts::from_values),
            offsets: PackedInts::from_values(&offsets),
            edges: PackedInts::from_values(&edges),
        }
    }
}

/// (score, tile) ordered by score, ties by tile id, so heaps are deterministic: equal
/// scores, the smaller id is greater.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Scored(pub(super) f32, pub(super) u32);

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}
