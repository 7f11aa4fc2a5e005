//! `tessera search`: embed a query tile (and example tiles), search an index, print hits.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use tessera::collection::Collection;
use tessera::partitioned::{Fetch, PartitionedIndex};
use tessera::search::{Example, Filter, Hit, Query, SearchOptions, SlideHit, SlideOptions};

use super::remote::{Source, Transfer};
use super::tiles::read_tile;
use super::EmbeddingArgs;

#[derive(clap::Args)]
pub struct SearchArgs {
    /// Index written by `tessera build` (or `tessera partition`): a file, or an http(s)://
    /// URL (a partitioned index is then read by Range requests, as the browser does).
    index: String,
    /// The query tile (JPEG, PNG or WebP).
    image: PathBuf,
    /// Number of hits.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// At most one hit per value of this metadata column: slide, case, or any column;
    /// `none` for no limit.
    #[arg(long, default_value = "none")]
    unique_by: String,
    /// Keep only hits with this label (repeatable).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Drop hits with this label (repeatable).
    #[arg(long = "exclude-label")]
    exclude_labels: Vec<String>,
    /// Keep only hits whose COLUMN equals VALUE, as COLUMN=VALUE (repeatable).
    #[arg(long = "where", value_name = "COLUMN=VALUE")]
    where_equal: Vec<String>,
    /// Drop hits whose COLUMN equals VALUE, as COLUMN=VALUE (repeatable).
    #[arg(long = "where-not", value_name = "COLUMN=VALUE")]
    where_not: Vec<String>,
    /// More tiles like the ones wanted (repeatable); ranked by their mean similarity.
    #[arg(long = "positive")]
    positives: Vec<PathBuf>,
    /// Tiles whose look is unwanted (repeatable); hits resembling any of them drop.
    #[arg(long = "negative")]
    negatives: Vec<PathBuf>,
    /// How strongly negatives push hits down (β in mean cos(pos) − β·max cos(neg)).
    #[arg(long, default_value_t = SearchOptions::default().negative_weight)]
    negative_weight: f32,
    /// MMR diversity: λ in [0, 1], 1 = plain ranking, lower = more varied hits.
    #[arg(long)]
    mmr: Option<f32>,
    /// Graph beam width (default: the index's).
    #[arg(long)]
    ef: Option<usize>,
    /// Exact (brute-force) search even if the index has a graph.
    #[arg(long)]
    exact: bool,
    /// Partitions a partitioned index probes (default: the index's).
    #[arg(long)]
    nprobe: Option<usize>,
    /// Rank slides instead of tiles: the query's nearest tiles vote for their slides
    /// (score-weighted); `--k` slides are printed.
    #[arg(long)]
    slides: bool,
    /// With --slides: the metadata column naming a tile's slide.
    #[arg(long, default_value_t = SlideOptions::default().key)]
    slide_key: String,
    /// With --slides: nearest tiles that vote.
    #[arg(long, default_value_t = SlideOptions::default().neighbours)]
    votes: usize,
    /// With --slides: rank by the number of votes instead of their summed scores.
    #[arg(long)]
    count_votes: bool,
    /// Query expansion: also describe this many variants of each query tile (mirror, then
    /// stain re-weightings; at most 5) and score by the mean similarity over them.
    #[arg(long, default_value_t = 0)]
    expand: usize,
    /// Print the hits as a JSON array: rank, id, score and every metadata column.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: EmbeddingArgs,
}

/// An index opened for searching, and where a partitioned one's partitions are read from.
pub struct Opened {
    pub collection: Collection,
    source: Source,
}

/// Bytes read first: enough for a small partitioned index's directory in one request.
const FIRST_READ: u64 = 64 << 10;

impl Opened {
    pub fn open(location: &str, transfer: &mut Transfer) -> anyhow::Result<Opened> {
        let mut source = Source::new(location);
        let prefix = source.read_range(0..FIRST_READ, transfer).with_context(|| format!("{location}: cannot read"))?;
        let bytes = if !PartitionedIndex::is_partitioned(&prefix) {
            if (prefix.len() as u64) < FIRST_READ { prefix } else { source.read_all(transfer)? }
        } else {
            let length = PartitionedIndex::directory_length(&prefix).with_context(|| format!("{location}: cannot load the index"))?;
            if length <= prefix.len() { prefix } else { source.read_range(0..length as u64, transfer)? }
        };
        let collection = Collection::from_bytes(&bytes).with_context(|| format!("{location}: cannot load the index"))?;
        Ok(Opened { collection, source })
    }

    /// Reads the partitions (and re-ranking rows) `query` needs (none for a whole index);
    /// returns how many partitions.
    pub fn fetch_for(&mut self, query: &Query, options: &SearchOptions, transfer: &mut Transfer) -> anyhow::Result<usize> {
        let mut fetched = 0;
        loop {
            let needed = self.collection.needed(query, options)?;
            let Collection::Partitioned(index) = &mut self.collection else { return Ok(0) };
            if needed.is_empty() {
                return Ok(fetched);
            }
            fetched += needed.iter().filter(|f| matches!(f, Fetch::Partition(_))).count();
            self.source.read_into(index, needed, transfer)?;
        }
    }

    /// Reads the details (per-tile columns, thumbnails) of tiles `ids` (hits to show) that a
    /// partitioned index keeps apart from its partitions; `metadata(id)` then has them all.
    pub fn fetch_details(&mut self, ids: &[u32], transfer: &mut Transfer) -> anyhow::Result<()> {
        let Collection::Partitioned(index) = &mut self.collection else { return Ok(()) };
        let needed = index.needed_details(ids);
        self.source.read_into(index, needed, transfer)
    }
}

pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    let mut transfer = Transfer::default();
    let mut index = Opened::open(&args.index, &mut transfer)?;
    let describer = index.collection.describer(args.model.load()?)
        .with_context(|| format!("{}: cannot query this index", args.index))?;

    let embed = |path: &Path| -> anyhow::Result<Example> {
        let vector = describer.describe_expanded(&read_tile(path)?, args.expand).with_context(|| format!("{}: cannot embed", path.display()))?;
        Ok(Example::Vector(vector))
    };
    let query = Query {
        positives: std::iter::once(&args.image).chain(&args.positives).map(|p| embed(p)).collect::<Result<_, _>>()?,
        negatives: args.negatives.iter().map(|p| embed(p)).collect::<Result<_, _>>()?,
    };
    let options = options(&args)?;
    let slide_options = SlideOptions { k: args.k, key: args.slide_key.clone(), neighbours: args.votes, weighted: !args.count_votes };
    let directory_transfer = transfer;
    let needs = if args.slides { tessera::search::slide_tile_options(&slide_options, &options) } else { options.clone() };
    let fetched = index.fetch_for(&query, &needs, &mut transfer)?;
    let report = |index: &Opened, transfer: &Transfer| {
        if let Collection::Partitioned(p) = &index.collection {
            eprintln!(
                "partitioned index: {} partitions, directory {} bytes; this query read {fetched} partitions, {} bytes in {} requests",
                p.partitions().len(),
                directory_transfer.bytes,
                transfer.bytes - directory_transfer.bytes,
                transfer.requests - directory_transfer.requests,
            );
        }
    };
    let mut out = std::io::stdout().lock();
    if args.slides {
        let mut slides = index.collection.search_slides(&query, &options, &slide_options)?;
        index.fetch_details(&slides.iter().map(|s| s.best_tile).collect::<Vec<_>>(), &mut transfer)?;
        for slide in &mut slides {
            slide.metadata = index.collection.metadata(slide.best_tile);
        }
        report(&index, &transfer);
        if args.json {
            serde_json::to_writer_pretty(&mut out, &slides)?;
            writeln!(out)?;
        } else {
            print_slides(&mut out, &slides, &slide_options.key)?;
        }
        return Ok(());
    }
    let mut hits = index.collection.search(&query, &options)?;
    index.fetch_details(&hits.iter().map(|h| h.id).collect::<Vec<_>>(), &mut transfer)?;
    for hit in &mut hits {
        hit.metadata = index.collection.metadata(hit.id);
    }
    report(&index, &transfer);
    if args.json {
        serde_json::to_writer_pretty(&mut out, &hits)?;
        writeln!(out)?;
    } else {
        print_table(&mut out, &hits)?;
    }
    Ok(())
}

fn options(args: &SearchArgs) -> anyhow::Result<SearchOptions> {
    let mut filters = Vec::new();
    if !args.labels.is_empty() || !args.exclude_labels.is_empty() {
        filters.push(Filter { key: "label".into(), include: args.labels.clone(), exclude: args.exclude_labels.clone() });
    }
    for (spec, include) in args.where_equal.iter().map(|s| (s, true)).chain(args.where_not.iter().map(|s| (s, false))) {
        let (key, value) = spec.split_once('=').with_context(|| format!("`{spec}`: expected COLUMN=VALUE"))?;
        let (inc, exc) = if include { (vec![value.to_string()], vec![]) } else { (vec![], vec![value.to_string()]) };
        filters.push(Filter { key: key.to_string(), include: inc, exclude: exc });
    }
    Ok(SearchOptions {
        k: args.k,
        unique_by: (args.unique_by != "none").then(|| args.unique_by.clone()),
        filters,
        mmr: args.mmr,
        negative_weight: args.negative_weight,
        ef: args.ef,
        exact: args.exact,
        nprobe: args.nprobe,
        ..SearchOptions::default()
    })
}

/// One line per slide: rank, summed score, votes, the slide (as `key=value`), its best tile's label.
fn print_slides(out: &mut impl Write, slides: &[SlideHit], key: &str) -> std::io::Result<()> {
    if slides.is_empty() {
        return writeln!(out, "no slides");
    }
    for s in slides {
        let label = s.metadata.get("label").map_or(String::new(), |l| format!("  label={l}"));
        writeln!(out, "{:>3}  {:.4}  votes={}  {key}={}  best tile {} ({:.4}){label}", s.rank, s.score, s.votes, s.slide, s.best_tile, s.best_score)?;
    }
    Ok(())
}

/// One line per hit: rank, score, then every metadata column as key=value.
fn print_table(out: &mut impl Write, hits: &[Hit]) -> std::io::Result<()> {
    if hits.is_empty() {
        return writeln!(out, "no hits");
    }
    for hit in hits {
        let columns: Vec<String> = hit.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(out, "{:>3}  {:.4}  id={}  {}", hit.rank, hit.score, hit.id, columns.join("  "))?;
    }
    Ok(())
}
