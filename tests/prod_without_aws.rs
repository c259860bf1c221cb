//! `devenv prod ...` in a build without the `aws` feature (the default): every subcommand
//! parses, and says in one line how to get a build with AWS support (exit code 4); the
//! `.gitpod.yml` step `allow-ip --if-configured` still skips silently without settings.
#![cfg(not(feature = "aws"))]

use std::process::{Command, Output, Stdio};

fn prod(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_devenv"))
        .arg("-C")
        .arg(dir)
        .arg("prod")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn every_chore_says_how_to_get_aws_support() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["allow-ip", "--ip", "192.0.2.1"][..],
        &["status", "--json"],
        &["create"],
        &["stop", "--wait", "--yes"],
        &["start", "--wait"],
    ] {
        let out = prod(
            dir.path(),
            args,
            &[("DB_SG_ID", "sg-1"), ("DB_SG_RULE_ID", "sgr-1")],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
        assert_eq!(
            err,
            "error: this build of devenv has no AWS support (`devenv prod`): install \
             one with `cargo install --path . --features aws`\n",
            "{args:?}"
        );
    }
}

#[test]
fn allow_ip_if_configured_is_silent_without_settings() {
    let dir = tempfile::tempdir().unwrap();
    let out = prod(dir.path(), &["allow-ip", "--if-configured"], &[]);
    assert!(out.status.success());
    assert!(out.stderr.is_empty() && out.stdout.is_empty());
}
