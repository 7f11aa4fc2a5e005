//! Tessera: histopathology tile search that runs in the browser.
//!
//! The core modules (`preprocess`, `model`, `gpu`, `backend`, `descriptor`, `describer`, `index`, `search`, `eval`,
//! `slide`, `tissue`, `scan`) are plain Rust and know nothing of JS or terminals; `wasm` (browser) and the
//! `tessera` binary (`cli`) are thin faces over them. See `../shared/ARCHITECTURE.md`.

pub mod adapter;
#[cfg(feature = "model")]
pub mod backend;
pub mod collection;
pub mod descriptor;
#[cfg(feature = "model")]
pub mod describer;
#[cfg(feature = "cli")]
pub mod dzi;
pub mod error;
pub mod eval;
pub mod expand;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod index;
#[cfg(feature = "manifest")]
pub mod manifest;
pub mod model;
pub mod partitioned;
pub mod preprocess;
pub mod scan;
pub mod search;
pub mod vector;
#[cfg(feature = "slide")]
pub mod slide;
pub mod tissue;
#[cfg(all(target_arch = "wasm32", feature = "model"))]
pub mod wasm;
#[cfg(all(target_arch = "wasm32", not(feature = "model")))]
compile_error!("the browser engine needs the model runtime: build for wasm32 with feature `model`, `gpu` or `threads`");
