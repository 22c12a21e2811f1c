//! Running wgd's daemon for one interface inside your own program, on your own tokio runtime,
//! with your own rule for when to stop.
//!
//! [`wgd::daemon::run`] is what `wgd up` runs: it creates the TUN interface and the UDP
//! sockets, applies the configuration (plus the wg-quick steps the file asks for: `Address`,
//! routes for the AllowedIPs, `DNS`, the `PreUp`/`PostUp` hooks, ...), serves the UAPI socket
//! (`/var/run/wireguard/IFACE.sock`, so `wg show IFACE` and `wg set IFACE ...` work while it
//! runs) and moves packets until the `shutdown` future completes. Then it undoes all of that
//! and returns the daemon's drop counters.
//!
//! Here `shutdown` is Ctrl-C or a timer, whichever comes first. SIGHUP re-reads the
//! configuration file (as `wg syncconf` would apply it), because `config_path` is set below.
//!
//! Run it as root (it creates a network interface), with a wg-quick style configuration; the
//! interface is named after the file, as wg-quick does:
//!
//! ```text
//! cargo build --example embedded_daemon
//! sudo target/debug/examples/embedded_daemon /etc/wireguard/wg0.conf 60
//! sudo wg show wg0        # in another terminal, while it runs
//! ```
//!
//! The second argument is how many seconds to run (default 60). Logs go to stderr (`RUST_LOG`
//! sets the level; info by default). `cargo test` compiles this example but does not run it.

use std::path::PathBuf;
use std::process::exit;
use std::time::Duration;
use wgd::conf::Config;
use wgd::daemon::{Options, Started};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: embedded_daemon CONFIG_FILE [SECONDS]");
        eprintln!("  e.g. sudo embedded_daemon /etc/wireguard/wg0.conf 60");
        exit(2);
    }
    let path = PathBuf::from(&args[1]);
    let seconds: u64 = match args.get(2).map(|s| s.parse()) {
        None => 60,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("embedded_daemon: SECONDS must be a whole number");
            exit(2);
        }
    };

    // The daemon logs through `tracing`; without a subscriber those logs go nowhere.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    // The configuration, as `wgd up` and wg-quick read it. Errors name the file and line.
    let config = match Config::from_file(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("embedded_daemon: {e}");
            exit(1);
        }
    };

    // The interface is named after the file ("wg0.conf" -> "wg0"), as wg-quick does.
    let Some(iface) = path.file_stem().and_then(|s| s.to_str()) else {
        eprintln!(
            "embedded_daemon: cannot name an interface after {}",
            path.display()
        );
        exit(2);
    };

    let options = Options {
        iface: iface.to_string(),
        // The file's `MTU`, or WireGuard's default of 1420.
        // None: as wg-quick picks it (the route MTU to the endpoints, minus 80).
        mtu: config.interface.mtu,
        // Re-read on SIGHUP. `None`: SIGHUP is ignored (and SaveConfig has nowhere to write).
        config_path: Some(path.clone()),
        // Stay root. To drop to another user once the interface and sockets exist:
        // `Some(wgd::daemon::privdrop::resolve("nobody")?)`.
        user: None,
        // Crypto worker threads: `None` picks the default for this host (or `WGD_CRYPTO_THREADS`).
        crypto_threads: None,
        wg_quick: true,
    };

    // Our own runtime. The daemon is one task that waits on everything at once, so a
    // current-thread runtime is enough (it is what `wgd up` uses); a multi-thread one works too.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("embedded_daemon: starting the tokio runtime: {e}");
            exit(1);
        }
    };

    // Called once, when the interface, the sockets and the configuration are in place.
    let on_ready = |started: &Started| {
        println!(
            "{} is up, listening on UDP port {}; stopping in {seconds} s or on Ctrl-C",
            started.iface, started.port
        );
    };

    // Our shutdown rule: whichever comes first, Ctrl-C or the timer. (`wgd::daemon::termination`
    // is the CLI's rule: SIGTERM or SIGINT.)
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => println!("Ctrl-C: stopping"),
            _ = tokio::time::sleep(Duration::from_secs(seconds)) => println!("time is up: stopping"),
        }
    };

    // Runs until `shutdown` completes (or the interface is deleted from outside); everything
    // it created is gone when it returns.
    let result = runtime.block_on(wgd::daemon::run(config, options, on_ready, shutdown));
    match result {
        Ok(stats) => {
            println!("{iface} is down.");
            println!(
                "dropped: {} packets for no peer, {} with a bad inner source, {} bad datagrams",
                stats.tx.no_peer, stats.rx.bad_source, stats.rx.dropped
            );
        }
        Err(e) => {
            // `{:#}` prints the whole chain: "creating TUN interface wg0: ...".
            eprintln!("embedded_daemon: {e:#}");
            exit(1);
        }
    }
}
