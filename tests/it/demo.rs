//! `aviso demo`: the main job on embedded defaults, and its workspace left for
//! inspection with every command working on it.

use crate::support::Workspace;

#[test]
fn the_demo_runs_the_programme_and_leaves_a_workspace_that_answers() {
    let ws = Workspace::new();
    let out = ws.ok(&["demo", "--dir", "demo"]);
    assert!(out.contains("6. Indicators"), "{out}");
    let config = ws.path().join("demo/aviso.toml").display().to_string();
    // The demo's own configuration wins over the workspace's database variable.
    let status = std::process::Command::new(crate::support::aviso_bin())
        .args(["--config", &config, "campaign", "status", "--json"])
        .current_dir(ws.path())
        .env_remove("AVISO_DATABASE_URL")
        .output()
        .unwrap();
    assert!(status.status.success());
    let all: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let campaigns = all.as_array().unwrap();
    assert_eq!(campaigns.len(), 5);
    for c in campaigns {
        let counts = c["counts"].as_object().unwrap();
        let sum: i64 = counts.values().map(|v| v.as_i64().unwrap()).sum();
        assert_eq!(sum, c["total"].as_i64().unwrap(), "{c}");
        assert_eq!(c["counts"]["queued"], 0, "everything went: {c}");
    }
    let carpeta = campaigns
        .iter()
        .find(|c| c["template"] == "carpeta_mensual")
        .unwrap();
    assert_eq!(
        carpeta["runs"], 4,
        "one packet a month, September to December"
    );
    let report = std::process::Command::new(crate::support::aviso_bin())
        .args([
            "--config",
            &config,
            "report",
            "indicators",
            "--format",
            "json",
        ])
        .env_remove("AVISO_DATABASE_URL")
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let carpeta = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["activity"] == "CARPETA")
        .unwrap();
    assert_eq!(
        (carpeta["programmed"].as_i64(), carpeta["sent"].as_i64()),
        (Some(680), Some(680))
    );
    // A second demo replaces the first; a directory that is not a demo is left alone.
    ws.ok(&["demo", "--dir", "demo"]);
    std::fs::create_dir(ws.path().join("mine")).unwrap();
    std::fs::write(ws.path().join("mine/notes.txt"), "keep").unwrap();
    ws.fails(&["demo", "--dir", "mine"], 1);
    assert!(ws.path().join("mine/notes.txt").exists());
}
