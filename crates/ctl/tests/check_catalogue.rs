//! `bluegreen-ctl check-catalogue` says whether a catalogue is one the trigger accepts, and
//! names the bad entry when it is not.

use std::process::Command;

fn check(path: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bluegreen-ctl"))
        .arg("check-catalogue")
        .arg(path)
        .output()
        .expect("bluegreen-ctl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_sample_catalogue_passes_and_lists_its_deployments() {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/trigger/catalogue.json");
    let (ok, stdout, stderr) = check(&sample);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "orders: pushes of 123456789012.dkr.ecr.us-east-1.amazonaws.com/orders:v*|release-*"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("2 deployments, no problem"), "{stdout}");
}

#[test]
fn a_bad_entry_fails_the_check_with_its_name_and_field() {
    let dir = std::env::temp_dir().join(format!("ctl-catalogue-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"deployments": {"orders": {"repository": "r.example.com/orders", "cluster": "prod"}}}"#,
    )
    .expect("write");
    let (ok, stdout, stderr) = check(&bad);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("deployment \"orders\"") && stderr.contains("service"),
        "{stderr}"
    );
    let (ok, _, stderr) = check(&dir.join("missing.json"));
    assert!(!ok);
    assert!(stderr.contains("cannot be read"), "{stderr}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
