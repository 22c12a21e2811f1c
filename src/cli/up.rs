//! `wgd up FILE|IFACE`: run one interface in the foreground from a wg(8)-style configuration.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use wgd::conf::Config;
use wgd::daemon::Options;

/// Arguments of `wgd up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// A configuration file, or an interface name meaning /etc/wireguard/NAME.conf
    pub config: String,
    /// Interface name (default: the configuration file's name without ".conf", as wg-quick)
    #[arg(long, short = 'i')]
    pub interface: Option<String>,
}

/// Where the configuration is and what the interface is called.
fn locate(args: &UpArgs) -> Result<(PathBuf, String)> {
    let given = Path::new(&args.config);
    let path = if args.config.contains('/') || args.config.ends_with(".conf") {
        given.to_path_buf()
    } else {
        Path::new("/etc/wireguard").join(format!("{}.conf", args.config))
    };
    let iface = match &args.interface {
        Some(i) => i.clone(),
        None => path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
            .with_context(|| format!("cannot derive an interface name from {}", path.display()))?,
    };
    wgd::conf::check_interface_name(&iface)?;
    Ok((path, iface))
}

/// Runs the daemon until SIGTERM/SIGINT or until the interface is deleted.
pub fn up(args: UpArgs, user: Option<wgd::daemon::privdrop::Target>) -> Result<()> {
    let (path, iface) = locate(&args)?;
    let (cfg, warnings) = Config::from_file_with_warnings(&path, wgd::conf::Dialect::WgQuick)
        .map_err(anyhow::Error::new)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    if let Some(u) = &user {
        if cfg.interface.save_config {
            tracing::warn!(
                "SaveConfig with --user {}: {} is written at shutdown, after the privilege drop; \
                 it fails unless that user may write its directory",
                u.spec,
                path.display()
            );
        }
    }
    let mtu = cfg.interface.mtu;
    let opts = Options {
        iface,
        mtu,
        config_path: Some(path.clone()),
        user,
        crypto_threads: None,
        wg_quick: true,
    };
    super::foreground::run_daemon(cfg, opts, |_| {})
}
