//! Records the commit this binary is built from (`RESNET_AUDIT_GIT_COMMIT`), so that a report
//! and `--version` name the crate's own commit, not that of whatever repository a command runs
//! in. A build outside a checkout of this crate (a tarball, a vendored copy inside another
//! repository) records "unknown".

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let dir = Path::new(&manifest_dir);
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    // Only this crate's own checkout counts: its top level must be the manifest's folder.
    let own_checkout = git(dir, &["rev-parse", "--show-toplevel"])
        .and_then(|top| Path::new(&top).canonicalize().ok())
        .zip(dir.canonicalize().ok())
        .is_some_and(|(top, manifest)| top == manifest);
    if !own_checkout {
        println!("cargo:rustc-env=RESNET_AUDIT_GIT_COMMIT=unknown");
        return;
    }
    for name in ["HEAD", "index"] {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", name]) {
            println!("cargo:rerun-if-changed={}", dir.join(path).display());
        }
    }
    if let Some(reference) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &reference]) {
            println!("cargo:rerun-if-changed={}", dir.join(path).display());
        }
    }
    let commit = match git(dir, &["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            let modified = git(dir, &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            format!("{commit}{}", if modified { "+modified" } else { "" })
        }
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=RESNET_AUDIT_GIT_COMMIT={commit}");
}
