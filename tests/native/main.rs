//! The native integration tests, one module per concern, in one test binary: each file
//! as its own binary was compiled and linked against tract, wgpu and the CLI on its own
//! (30 links; one binary rebuilds in 4 min 16 s of CPU instead of 5 min 05 s).
//! `tests/index_fuzz.rs` stays apart: its counting global allocator must not count other
//! tests' allocations. Run one module with `cargo test --release --test native MODULE::`.

mod common;
mod index_support;

mod adapter;
mod bad_input;
mod bench_search_vectors;
mod build_resume;
mod build_shards;
mod demo_index;
mod descriptor_hist;
mod dzi;
mod error_kinds;
mod eval_cli;
mod eval_hist_shared_data;
mod eval_metrics;
mod fuzz_regressions;
mod fuzz_seeds;
mod gpu_backend;
mod gpu_kernels;
mod gpu_parity;
mod index_format;
mod model_parity;
mod partitioned;
mod search_cli;
mod search_model;
mod search_real;
mod slide_bad_input;
mod slide_cmu;
mod slide_pyramid;
mod slide_search;
mod ts_types;
