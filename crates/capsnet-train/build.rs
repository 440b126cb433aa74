//! Embeds the git revision the binary is built from (`CAPSNET_BUILD_REVISION`): records say
//! what ran, not what checkout happens to be in the working directory when it runs (a binary
//! copied to a GPU machine runs far from its checkout), and with the `tch` feature the libtorch
//! version it was built against (`CAPSNET_LIBTORCH_VERSION`, set by scripts/gpu/prepare.sh).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let revision = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(sha) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{sha}-dirty") } else { sha }
        }
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=CAPSNET_BUILD_REVISION={revision}");
    // Rebuilt (this crate only) when HEAD moves or the index changes (a commit, a checkout, a
    // staged edit); an unstaged edit elsewhere is caught when that crate's sources change.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        for file in ["HEAD", "index"] {
            println!("cargo:rerun-if-changed={dir}/{file}");
        }
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{head}");
        }
    }
    // With the tch backend: the libtorch (PyTorch) version it is built against, as
    // scripts/gpu/prepare.sh states it, for the summaries' accelerator record.
    println!("cargo:rerun-if-env-changed=CAPSNET_LIBTORCH_VERSION");
    if std::env::var_os("CARGO_FEATURE_TCH").is_some()
        && let Ok(version) = std::env::var("CAPSNET_LIBTORCH_VERSION")
    {
        println!("cargo:rustc-env=CAPSNET_LIBTORCH_VERSION={version}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
