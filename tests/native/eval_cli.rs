//! `tessera eval` end to end on the shared data, histogram only (the ViT path embeds
//! 3,439 tiles per input size: that run belongs to the CLI, not to CI).

use std::process::Command;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

#[test]
fn histogram_eval_prints_tables_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("eval.json");
    let output = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "eval",
            "--hist-only",
            "--no-recall",
            "--data",
            DATA,
            "--json",
        ])
        .arg(&json_path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let markdown = String::from_utf8(output.stdout).unwrap();
    for heading in [
        "exclude_same_group",
        "all_others",
        "leave_one_slide_out",
        "leave_one_site_out",
        "Per class",
    ] {
        assert!(
            markdown.contains(heading),
            "no {heading} table in:\n{markdown}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let results = json["results"].as_array().unwrap();
    // One descriptor (hist) × two protocols × two datasets.
    assert_eq!(results.len(), 4);
    let lc = results
        .iter()
        .find(|r| r["dataset"] == "lc25000" && r["report"]["protocol"] == "exclude_same_group")
        .unwrap();
    assert_eq!(lc["report"]["queries"], 2959);
    let p5 = lc["report"]["overall"]["p_at_5"].as_f64().unwrap();
    assert!((p5 - 0.936).abs() < 0.01, "{p5}");
    let monuseg = json["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "monuseg")
        .unwrap();
    assert_eq!(monuseg["tiles"], 480);
    // MoNuSeg tiles name their slides: slide-level voting is reported (30 fields).
    let site_out = results.iter().find(|r| r["report"]["protocol"] == "leave_one_site_out").unwrap();
    assert_eq!(site_out["report"]["slides"]["slides"], 30);
    assert!(lc["report"]["slides"].is_null(), "LC25000 tiles name no slide");
    // The held-out-collection experiment ran the build path for the histogram.
    assert_eq!(json["held_out"][0]["descriptor"], "hist");
    assert_eq!(json["held_out"][0]["queries"], 2959);
    assert!(json["provenance"]["date"].as_str().unwrap().starts_with("20"), "{}", json["provenance"]);
    assert!(json["provenance"]["command"].as_str().unwrap().contains("--hist-only"));
}

#[test]
fn bad_arguments_are_reported() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .output()
            .unwrap()
    };
    let missing = run(&["eval", "--hist-only", "--data", "/nonexistent"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("lc25000-lung.csv"));
    let weight = run(&[
        "eval",
        "--hist-only",
        "--data",
        DATA,
        "--fuse-weight",
        "1.5",
    ]);
    assert!(!weight.status.success());
    assert!(String::from_utf8_lossy(&weight.stderr).contains("1.5"));
    // A fine-tuned network is compared with the model: refused without one, and refused
    // before any embedding when it cannot be loaded.
    let hist_only = run(&["eval", "--hist-only", "--data", DATA, "--finetuned", "ft.onnx"]);
    assert!(!hist_only.status.success());
    assert!(String::from_utf8_lossy(&hist_only.stderr).contains("--hist-only"));
    let missing_network = run(&["eval", "--data", DATA, "--finetuned", "/nonexistent/ft.onnx"]);
    assert!(!missing_network.status.success());
    let stderr = String::from_utf8_lossy(&missing_network.stderr);
    assert!(stderr.contains("/nonexistent/ft.onnx") && !stderr.contains("embedding at"), "{stderr}");
}
