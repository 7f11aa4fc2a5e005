//! `tessera bench embed` (stub).

#[derive(clap::Args)]
pub struct BenchEmbedArgs {}

pub fn run(_args: BenchEmbedArgs) -> anyhow::Result<()> {
    anyhow::bail!("`tessera bench embed` is not implemented yet")
}
