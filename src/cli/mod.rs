//! Argument parsing and dispatch; each subcommand lives in its own file.

mod bench;
mod build;
mod dzi;
mod embed;
mod eval;
mod partition;
mod remote;
mod search;
mod serve;
mod tiles;

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tessera::backend::{BackendChoice, EmbeddingBackend};
#[cfg(feature = "gpu")]
use tessera::backend::Notice;
use tessera::model::Embedder;

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
    /// Join the shards of a build (`tessera build … --shard K/N`) into its index.
    Merge(build::shard::MergeArgs),
    /// Search an index with a query tile (and optional positive/negative examples).
    Search(search::SearchArgs),
    /// Split an index into partitions that a browser reads by HTTP Range requests.
    Partition(partition::PartitionArgs),
    /// Cut an image into a Deep Zoom (DZI) pyramid for OpenSeadragon and slide portals.
    Dzi(dzi::DziArgs),
    /// Serve a folder over HTTP with Range support (to try partitioned indexes locally).
    Serve(serve::ServeArgs),
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
        Command::Merge(args) => build::shard::run_merge(args),
        Command::Search(args) => search::run(args),
        Command::Partition(args) => partition::run(args),
        Command::Dzi(args) => dzi::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(cmd) => bench::run(cmd),
    }
}

/// Which model to embed with (defaults: the crate's `models/vit-s14-int8.*`).
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// ONNX model file.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The model's JSON manifest (SHA-256, input size, normalization, ...).
    #[arg(long)]
    model_manifest: Option<PathBuf>,
}

/// The model and what runs it (`build`, `search`).
#[derive(clap::Args, Clone, Debug)]
pub struct EmbeddingArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// What runs the model: auto (a hardware GPU when one starts and matches tract on a
    /// test tile, else tract), gpu (any GPU adapter, even a software one, or an error),
    /// cpu (tract).
    #[arg(long, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
}

impl EmbeddingArgs {
    /// The model on the backend asked for, saying which runs (and, once, why not the GPU).
    pub fn load(&self) -> anyhow::Result<EmbeddingBackend> {
        let tract = self.model.load()?;
        if self.backend == BackendChoice::Cpu {
            return Ok(tract.into());
        }
        #[cfg(feature = "gpu")]
        {
            let path = self.model.paths().0;
            let bytes = std::fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
            let notice: Notice = std::sync::Arc::new(|message| eprintln!("tessera: {message}"));
            let backend = pollster::block_on(EmbeddingBackend::start(tract, &bytes, self.backend, notice))?;
            eprintln!("embedding with {}", backend.name());
            Ok(backend)
        }
        // A build without the `gpu` feature (e.g. the fuzz targets') has tract only.
        #[cfg(not(feature = "gpu"))]
        match self.backend {
            BackendChoice::Gpu => anyhow::bail!("--backend gpu: this tessera was built without the `gpu` feature"),
            _ => Ok(tract.into()),
        }
    }
}

impl ModelArgs {
    fn paths(&self) -> (PathBuf, PathBuf) {
        let (model, manifest) = Embedder::default_files();
        let model = self.model.clone().unwrap_or(model);
        // A model given without a manifest: look for the manifest beside it.
        let manifest = match (&self.model_manifest, &self.model) {
            (Some(m), _) => m.clone(),
            (None, Some(m)) => m.with_extension("json"),
            (None, None) => manifest,
        };
        (model, manifest)
    }

    pub fn load(&self) -> anyhow::Result<Embedder> {
        let (model, manifest) = self.paths();
        Ok(Embedder::from_files(&model, &manifest)?)
    }
}

/// Where a result file came from: written into every `bench/results/*.json`.
#[derive(Debug, serde::Serialize)]
pub struct Provenance {
    pub command: String,
    pub date: String,
    pub machine: String,
    pub tessera: &'static str,
    pub git_commit: Option<String>,
}

impl Provenance {
    pub fn now() -> Provenance {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
            .unwrap_or_else(|| "unknown CPU".into());
        let git_commit = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        Provenance {
            command: std::env::args().collect::<Vec<_>>().join(" "),
            date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            machine: format!("{cpu}, {} threads available", std::thread::available_parallelism().map_or(1, |n| n.get())),
            tessera: env!("CARGO_PKG_VERSION"),
            git_commit,
        }
    }
}

/// Writes `path` through a temporary file in the same folder and renames it into place,
/// so an interrupted or failed write never leaves a partial file behind.
pub fn write_atomically(path: &Path, write: impl FnOnce(&mut File) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("{}: cannot create a file here", dir.display()))?;
    write(tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    // Temp files are created owner-only; the result is an ordinary file (a static site
    // serves indexes as they are).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).with_context(|| format!("{}: cannot move the finished file into place", path.display()))?;
    Ok(())
}
