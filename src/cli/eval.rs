//! `tessera eval` (stub: filled in by its issue).

#[derive(clap::Args)]
pub struct EvalArgs {}

pub fn run(_args: EvalArgs) -> anyhow::Result<()> {
    anyhow::bail!("`tessera eval` is not implemented yet")
}
