//! `wgd check FILE`: parses a configuration (wg-quick dialect, as `wgd up` reads it) without
//! doing anything with it, and reports what is wrong or suspicious. Exit status 0 if `wgd up`
//! would accept the file (warnings or not), 1 with the parser's error (`FILE:LINE: Key: ...`)
//! otherwise.

use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use wgd::conf::{Config, Dialect};

/// Arguments of `wgd check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The configuration file (wg(8) format, wg-quick(8) keys allowed)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// A warning if `mode` lets other users read a file that holds secret keys.
fn mode_warning(path: &Path, mode: u32, secrets: &str) -> Option<String> {
    let who = if mode & 0o004 != 0 {
        "world-readable"
    } else if mode & 0o040 != 0 {
        "group-readable"
    } else {
        return None;
    };
    Some(format!(
        "{}: {who} key file: mode {:04o} lets other users read its {secrets} (chmod 600 it)",
        path.display(),
        mode & 0o7777
    ))
}

/// Every warning about the file, in order: the parser's (with file and line), then the
/// configuration's (overlapping AllowedIPs, no PrivateKey, ...), then the file's permissions.
fn warnings(path: &Path, cfg: &Config, parser_warnings: Vec<String>) -> Result<Vec<String>> {
    let mut all = parser_warnings;
    all.extend(
        cfg.warnings()
            .into_iter()
            .map(|w| format!("{}: {w}", path.display())),
    );
    let mut secrets = Vec::new();
    if cfg.interface.private_key.is_some() {
        secrets.push("PrivateKey");
    }
    if cfg.peers.iter().any(|p| p.preshared_key.is_some()) {
        secrets.push("PresharedKey");
    }
    if !secrets.is_empty() {
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        let mode = meta.permissions().mode();
        all.extend(mode_warning(path, mode, &secrets.join(" and ")));
    }
    Ok(all)
}

/// Runs `wgd check`.
pub fn check(args: CheckArgs) -> Result<()> {
    let path = args.file.as_path();
    let (cfg, parser_warnings) =
        Config::from_file_with_warnings(path, Dialect::WgQuick).map_err(anyhow::Error::new)?;
    let warnings = warnings(path, &cfg, parser_warnings)?;
    let mut err = std::io::stderr().lock();
    for w in &warnings {
        let _ = writeln!(err, "warning: {w}");
    }
    drop(err);
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: OK ({}, {})",
        path.display(),
        plural(cfg.peers.len(), "peer"),
        plural(warnings.len(), "warning")
    )
    .and_then(|()| out.flush())
    .context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_bits() {
        let p = Path::new("wg0.conf");
        assert_eq!(mode_warning(p, 0o100600, "PrivateKey"), None);
        assert_eq!(mode_warning(p, 0o100700, "PrivateKey"), None);
        let w = mode_warning(p, 0o100644, "PrivateKey").unwrap();
        assert!(
            w.starts_with("wg0.conf: world-readable key file: mode 0644"),
            "{w}"
        );
        let w = mode_warning(p, 0o100640, "PrivateKey").unwrap();
        assert!(w.contains("group-readable key file"), "{w}");
        assert!(mode_warning(p, 0o100604, "PrivateKey").is_some());
    }
}
