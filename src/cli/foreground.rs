//! The one way the CLI runs a daemon: a single-threaded tokio runtime (the crypto workers are
//! threads of their own), until SIGTERM/SIGINT or the interface is deleted. `wgd up` and
//! `wgd IFACE` both go through [`run_daemon`].

use anyhow::{Context, Result};
use wgd::conf::Config;
use wgd::daemon::{self, Options, Started};

/// Runs the daemon for `cfg` and `opts`; `on_ready` runs once the interface carries traffic
/// (after the "is up" log line).
pub(crate) fn run_daemon(
    cfg: Config,
    opts: Options,
    on_ready: impl FnOnce(&Started),
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let stats = rt.block_on(async {
        let stop = daemon::termination()?;
        daemon::run(
            cfg,
            opts,
            |s| {
                tracing::info!("{} is up, listening on UDP port {}", s.iface, s.port);
                on_ready(s);
            },
            stop,
        )
        .await
    })?;
    tracing::debug!(?stats, "exit");
    Ok(())
}
