//! `tessera build` (stub: filled in by its issue).

#[derive(clap::Args)]
pub struct BuildArgs {}

pub fn run(_args: BuildArgs) -> anyhow::Result<()> {
    anyhow::bail!("`tessera build` is not implemented yet")
}
