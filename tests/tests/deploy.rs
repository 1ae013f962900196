//! The deploy kit (deploy/): `deploy/lint` passes (yamllint, kubernetes-validate --strict,
//! systemd-analyze verify, Dockerfile/compose/config structure). No container engine or
//! cluster runs here; the lint is what can be checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn the_deploy_kit_passes_its_lint() {
    let root = opensports_tests::workspace();
    let out = std::process::Command::new("bash")
        .arg(root.join("deploy/lint"))
        .output()
        .expect("bash deploy/lint (tests/run installs yamllint, kubernetes-validate, dockerfile-parse)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "deploy/lint failed:\n{text}");
    assert!(text.contains("deploy kit: all checks passed"), "{text}");
}
