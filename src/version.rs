//! What built this program: the crate version and the commit recorded at build time (build.rs).

/// The commit of this crate's checkout when the binary was built (`+modified` when tracked
/// files differed from it), or "unknown" for a build outside a checkout (a tarball).
pub const GIT_COMMIT: &str = env!("RESNET_AUDIT_GIT_COMMIT");

/// `<version> (git <commit>)`, as `--version` prints it after the program's name.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("RESNET_AUDIT_GIT_COMMIT"), ")");

/// `resnet-audit <version> (git <commit>)`, as the report's manifest records it.
pub fn software_version() -> String {
    format!("resnet-audit {VERSION}")
}
