//! Tessera: histopathology tile search that runs in the browser.
//!
//! The core modules (`preprocess`, `model`, `gpu`, `backend`, `descriptor`, `index`, `search`, `eval`,
//! `slide`, `tissue`, `scan`) are plain Rust and know nothing of JS or terminals; `wasm` (browser) and the
//! `tessera` binary (`cli`) are thin faces over them. See `../shared/ARCHITECTURE.md`.

pub mod adapter;
pub mod backend;
pub mod collection;
pub mod descriptor;
#[cfg(feature = "cli")]
pub mod dzi;
pub mod error;
pub mod eval;
pub mod expand;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod index;
#[cfg(feature = "cli")]
pub mod manifest;
pub mod model;
pub mod partitioned;
pub mod preprocess;
pub mod scan;
pub mod search;
pub mod vector;
#[cfg(feature = "cli")]
pub mod slide;
pub mod tissue;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
