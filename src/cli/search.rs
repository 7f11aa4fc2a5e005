//! `tessera search` (stub: filled in by its issue).

#[derive(clap::Args)]
pub struct SearchArgs {}

pub fn run(_args: SearchArgs) -> anyhow::Result<()> {
    anyhow::bail!("`tessera search` is not implemented yet")
}
