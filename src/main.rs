//! The `tessera` command line: a thin face over the core modules.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    one_malloc_arena();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// glibc gives every thread its own malloc arena; the embedding threads' freed tile buffers
/// stayed in theirs, so a whole-slide build's peak memory grew ~10 kB per tile beyond what
/// it holds (docs/reliability.md). One arena also peaked lower than jemalloc and mimalloc on
/// the same slide build. Called before any thread starts.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc tuning parameter; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
