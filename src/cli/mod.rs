//! The command line: one [`Command`] per subcommand, named and behaving like `wg(8)`'s.

mod check;
mod down;
mod foreground;
mod iface;
mod keys;
mod show;
mod up;

use clap::{Parser, Subcommand};

/// Top-level arguments.
#[derive(Debug, Parser)]
#[command(
    name = "wgd",
    version,
    about = "A userspace WireGuard daemon",
    long_about = "A userspace WireGuard daemon.\n\n\
        The key subcommands read and write keys exactly as wg(8) does (base64, 44 characters), so \
        keys move freely between wgd and wireguard-tools.\n\n\
        Create a key pair for an interface:\n    \
        umask 077\n    \
        wgd genkey > private.key\n    \
        wgd pubkey < private.key > public.key",
    arg_required_else_help = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// Run interface IFACE with no configuration and its UAPI socket, for `wg`/`wg-quick`
    /// (the invocation wireguard-go has: WG_QUICK_USERSPACE_IMPLEMENTATION=wgd wg-quick up wg0)
    #[arg(value_name = "IFACE")]
    pub iface: Option<String>,
    /// With IFACE: stay in the foreground instead of detaching once the interface is ready
    #[arg(short, long)]
    pub foreground: bool,
    /// More logs on stderr: -v for info, -vv for debug, -vvv for trace (RUST_LOG overrides)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Once the interface, its UDP sockets and UAPI socket exist, run as USER (and GROUP, else
    /// USER's groups) keeping only CAP_NET_ADMIN (and CAP_NET_BIND_SERVICE for a listen port
    /// below 1024). For `wgd IFACE` and `wgd up`; see docs/security.md for what still works
    #[arg(long, value_name = "USER[:GROUP]", global = true, env = "WGD_USER")]
    pub user: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a new private key and write it to stdout (like `wg genkey`)
    #[command(
        long_about = "Generate a new random Curve25519 private key and write it to stdout \
        in base64, followed by a newline (like `wg genkey`).\n\n\
        Anyone who reads this key can impersonate the interface: save it to a file only you can \
        read. A warning is printed if stdout is a regular file that other users can access.\n\n\
        Example:\n    \
        umask 077; wgd genkey > private.key"
    )]
    Genkey,

    /// Generate a new preshared key and write it to stdout (like `wg genpsk`)
    #[command(
        long_about = "Generate a new random 256-bit preshared key and write it to stdout \
        in base64, followed by a newline (like `wg genpsk`).\n\n\
        A preshared key is optional and adds a symmetric secret to the handshake (for \
        post-quantum resistance). Give the same key to both peers, as `PresharedKey` in their \
        `[Peer]` sections, over a channel you trust. A warning is printed if stdout is a regular \
        file that other users can access.\n\n\
        Example:\n    \
        umask 077; wgd genpsk > peer.psk"
    )]
    Genpsk,

    /// Read a private key from stdin and write its public key to stdout (like `wg pubkey`)
    #[command(
        long_about = "Read a base64 private key from stdin and write the matching public \
        key to stdout in base64, followed by a newline (like `wg pubkey`).\n\n\
        The input must be exactly one key: 44 characters of base64, optionally followed by \
        whitespace (a trailing newline is fine). Leading whitespace or anything after the key is \
        an error. The public key is not secret: give it to your peers as their `PublicKey`.\n\n\
        Examples:\n    \
        wgd pubkey < private.key > public.key\n    \
        wgd genkey | tee private.key | wgd pubkey"
    )]
    Pubkey,

    /// Run an interface in the foreground from a configuration file (wg(8) format)
    #[command(
        long_about = "Create the interface and run it in the foreground until SIGTERM or \
        SIGINT, or until the interface is deleted (ip link del). The argument is a configuration \
        file in the wg(8) format, or an interface name NAME meaning /etc/wireguard/NAME.conf; the \
        interface is named after the file unless --interface is given.\n\n\
        Examples:\n    \
        wgd up /etc/wireguard/wg0.conf\n    \
        wgd -v up wg0"
    )]
    Up(up::UpArgs),

    /// Show the state of running interfaces (like `wg show`), or --json for programs
    #[command(
        long_about = "Show the configuration and state of a running interface, or of every \
        interface with a UAPI socket in /var/run/wireguard, as `wg show` does: public key, \
        listening port, fwmark, and per peer its endpoint, allowed IPs, latest handshake, \
        transfer and persistent keepalive. Private and preshared keys are never printed.\n\n\
        With --json, prints {\"interfaces\": [...]}: keys in base64, numbers as numbers, \
        latest_handshake in Unix seconds (null: never), has_preshared_key instead of the key.\n\n\
        Examples:\n    \
        wgd show wg0\n    \
        wgd show --json"
    )]
    Show(show::ShowArgs),

    /// Stop the daemon running an interface (SIGTERM, then wait up to 5 s for it to exit)
    #[command(
        long_about = "Stop the daemon serving IFACE: the process at the other end of \
        /var/run/wireguard/IFACE.sock gets SIGTERM, and wgd waits (at most 5 s) until it has \
        exited and its socket is gone. The daemon removes its interface, routes and DNS \
        settings itself. Fails if the interface is not running.\n\n\
        Example:\n    \
        wgd down wg0"
    )]
    Down(down::DownArgs),

    /// Check a configuration file without applying it; print its warnings
    #[command(
        long_about = "Parse a configuration file as `wgd up` would, without creating \
        anything, and print every warning (overlapping AllowedIPs, keys given twice, a key file \
        other users can read, ...) as `warning: ...` on stderr. Exits 0 if the file is valid \
        (with or without warnings), 1 with the first error (FILE:LINE: Key: problem) if not.\n\n\
        Example:\n    \
        wgd check /etc/wireguard/wg0.conf"
    )]
    Check(check::CheckArgs),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.verbose);
    // Resolved before anything is created: an unknown user fails with nothing to undo.
    let user = match (&cli.user, &cli.command) {
        (Some(u), None | Some(Command::Up(_))) => Some(wgd::daemon::privdrop::resolve(u)?),
        _ => None,
    };
    let Some(command) = cli.command else {
        return match cli.iface {
            Some(iface) => iface::run(&iface, cli.foreground, user),
            None => anyhow::bail!("give an interface name or a command (see --help)"),
        };
    };
    match command {
        Command::Genkey => keys::genkey(),
        Command::Genpsk => keys::genpsk(),
        Command::Pubkey => keys::pubkey(),
        Command::Up(args) => up::up(args, user),
        Command::Show(args) => show::show(args),
        Command::Down(args) => down::down(args),
        Command::Check(args) => check::check(args),
    }
}

/// Logs go to stderr (journald under systemd); quiet by default (warnings and errors only).
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_with_subcommands_and_interface_names() {
        let c = Cli::try_parse_from(["wgd", "-v", "up", "wg0.conf"]).unwrap();
        assert_eq!(c.verbose, 1);
        assert!(matches!(c.command, Some(Command::Up(_))));
        let c = Cli::try_parse_from(["wgd", "up", "wg0.conf", "-vv"]).unwrap();
        assert_eq!(c.verbose, 2);
        let c = Cli::try_parse_from(["wgd", "-f", "wg0"]).unwrap();
        assert!(c.foreground && c.command.is_none());
        assert_eq!(c.iface.as_deref(), Some("wg0"));
        let c = Cli::try_parse_from(["wgd", "wg0"]).unwrap();
        assert!(!c.foreground && c.iface.as_deref() == Some("wg0"));
        assert!(Cli::try_parse_from(["wgd", "genkey", "extra"]).is_err());
    }

    #[test]
    fn user_is_global() {
        let c = Cli::try_parse_from(["wgd", "--user", "nobody", "-f", "wg0"]).unwrap();
        assert_eq!(c.user.as_deref(), Some("nobody"));
        assert_eq!(c.iface.as_deref(), Some("wg0"));
        let c = Cli::try_parse_from(["wgd", "up", "wg0.conf", "--user", "nobody:nogroup"]).unwrap();
        assert_eq!(c.user.as_deref(), Some("nobody:nogroup"));
        let c = Cli::try_parse_from(["wgd", "--user=nobody", "up", "wg0.conf"]).unwrap();
        assert_eq!(c.user.as_deref(), Some("nobody"));
    }
}
