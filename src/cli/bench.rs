//! `tessera bench ...`: figures, not timed tests. Each benchmark prints a table and
//! writes `bench/results/<name>.json`.

mod embed;
mod python;
mod search;
mod slide;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Per-tile embedding latency: tract int8/fp32, 1 and all threads, vs onnxruntime.
    Embed(embed::BenchEmbedArgs),
    /// Index build/search at scale on synthetic vectors, vs faiss and hnswlib.
    Search(search::BenchSearchArgs),
    /// `tessera build` on generated whole slides of growing size: peak memory and tiles/s.
    Slide(slide::BenchSlideArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Embed(args) => embed::run(args),
        BenchCommand::Search(args) => search::run(args),
        BenchCommand::Slide(args) => slide::run(args),
    }
}
