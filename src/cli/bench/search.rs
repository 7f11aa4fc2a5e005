//! `tessera bench search` (stub).

#[derive(clap::Args)]
pub struct BenchSearchArgs {}

pub fn run(_args: BenchSearchArgs) -> anyhow::Result<()> {
    anyhow::bail!("`tessera bench search` is not implemented yet")
}
