//! The version a report and `--version` show is the commit this crate was built from, never the
//! commit of whatever repository the command happens to run in.

use std::process::Command;

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn version_names_the_build_commit_even_inside_another_repository() {
    let other = tempfile::tempdir().unwrap();
    git(other.path(), &["init", "-q"]);
    git(other.path(), &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"]);
    let other_commit = git(other.path(), &["rev-parse", "--short=12", "HEAD"]);

    let out =
        Command::new(env!("CARGO_BIN_EXE_resnet-audit")).arg("--version").current_dir(other.path()).output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success());
    assert_eq!(printed, format!("resnet-audit {}", resnet_audit::version::VERSION));
    assert!(!printed.contains(&other_commit), "{printed} names the repository it ran in");
    // A build from a checkout records a 12-digit commit; a tarball build says so.
    let commit = resnet_audit::version::GIT_COMMIT;
    let hex = commit.trim_end_matches("+modified");
    assert!(commit == "unknown" || (hex.len() == 12 && hex.chars().all(|c| c.is_ascii_hexdigit())), "{commit}");
}
