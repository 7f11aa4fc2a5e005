//! Argument parsing and dispatch; each subcommand lives in its own file.

mod bench;
mod build;
mod embed;
mod eval;
mod search;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tessera", version, about = "Histopathology tile search: embed, index, search, evaluate")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the embedding of one or more tile images.
    Embed(embed::EmbedArgs),
    /// Embed every tile of a folder or CSV manifest into a .npy matrix.
    EmbedDir(embed::EmbedDirArgs),
    /// Build a search index from tile folders, CSV manifests or slides.
    Build(build::BuildArgs),
    /// Search an index with a query tile (and optional positive/negative examples).
    Search(search::SearchArgs),
    /// Evaluate retrieval quality on labelled data.
    Eval(eval::EvalArgs),
    /// Benchmarks that print figures and write bench/results/*.json.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Embed(args) => embed::run_embed(args),
        Command::EmbedDir(args) => embed::run_embed_dir(args),
        Command::Build(args) => build::run(args),
        Command::Search(args) => search::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(cmd) => bench::run(cmd),
    }
}
