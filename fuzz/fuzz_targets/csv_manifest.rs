//! CSV tile manifests (`tessera build tiles.csv`): rows, quoting, ragged lines, UTF-8.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rows) = tessera::manifest::parse(data, "fuzz input") {
        // The CLI joins every row's `path` onto the manifest's folder.
        assert!(rows.iter().all(|row| row.contains_key("path")), "a parsed row has no path");
    }
});
