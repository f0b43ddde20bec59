//! The binary's command line: configuration checking and refusal of bad settings.
//! (Being an integration test of this package also makes `cargo test` build the
//! binary that the end-to-end tests in `tests/` run.)

use std::path::Path;
use std::process::Command;

fn server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringkv-server"))
}

#[test]
fn check_config_accepts_the_example_file_and_prints_the_result() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("ringkv.example.toml");
    let out = server()
        .args([
            "--config",
            example.to_str().unwrap(),
            "--port",
            "7777",
            "--check-config",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("port = 7777"),
        "flags win over the file: {text}"
    );
    assert!(text.contains("maxclients = 10000"));
}

#[test]
fn unknown_config_keys_are_rejected() {
    let dir = std::env::temp_dir().join(format!("ringkv-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "portt = 1\n").unwrap();
    let out = server()
        .args(["--config", file.to_str().unwrap(), "--check-config"])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn invalid_values_are_rejected_with_a_reason() {
    let out = server()
        .args(["--proto-max-bulk-len", "10", "--check-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ringkv-server: invalid flag --proto-max-bulk-len: \
         argument must be between 1048576 and 9223372036854775807 inclusive\n"
    );
}

#[test]
fn version_flag_prints_the_version() {
    let out = server().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn the_file_and_the_flag_refuse_a_value_for_the_same_reason() {
    let dir = std::env::temp_dir().join(format!("ringkv-bin-same-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "maxmemory-samples = 65\n").unwrap();
    let from_file = server()
        .args(["--config", file.to_str().unwrap(), "--check-config"])
        .output()
        .unwrap();
    let from_flag = server()
        .args(["--maxmemory-samples", "65", "--check-config"])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!from_file.status.success() && !from_flag.status.success());
    let reason = "argument must be between 1 and 64 inclusive";
    let file_err = String::from_utf8_lossy(&from_file.stderr);
    assert!(
        file_err.ends_with(&format!("'maxmemory-samples' - {reason}\n")),
        "{file_err}"
    );
    assert_eq!(
        String::from_utf8_lossy(&from_flag.stderr),
        format!("ringkv-server: invalid flag --maxmemory-samples: {reason}\n")
    );
}
