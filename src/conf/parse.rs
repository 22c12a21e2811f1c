//! The parser: text (or a file) in, a [`Config`] and the parser's warnings out. The syntax rules
//! are in the documentation of [`crate::conf`].

use super::error::{ConfigError, LineProblem, ValueProblem, shown, shown_name};
use super::model::{Config, Dialect, InterfaceConfig, PeerConfig};
use super::values::{AllowedIp, parse_digits};
use crate::crypto::keys::{PresharedKey, PrivateKey, PublicKey};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use zeroize::Zeroizing;

/// The largest configuration accepted, in bytes (16 MiB).
pub const MAX_CONFIG_LEN: usize = 16 * 1024 * 1024;

/// The longest line accepted, in bytes (64 KiB). Long `AllowedIPs` lists can be split over
/// several lines: they accumulate.
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// `char_is_space` of wireguard-tools: the C locale's `isspace`.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Interface,
    Peer,
}

impl Section {
    fn name(self) -> &'static str {
        match self {
            Section::Interface => "Interface",
            Section::Peer => "Peer",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Field {
    PrivateKey,
    ListenPort,
    FwMark,
    Address,
    Dns,
    Mtu,
    Table,
    PreUp,
    PostUp,
    PreDown,
    PostDown,
    SaveConfig,
    PublicKey,
    PresharedKey,
    AllowedIps,
    Endpoint,
    PersistentKeepalive,
}

impl Field {
    const ALL: [Field; 17] = [
        Field::PrivateKey,
        Field::ListenPort,
        Field::FwMark,
        Field::Address,
        Field::Dns,
        Field::Mtu,
        Field::Table,
        Field::PreUp,
        Field::PostUp,
        Field::PreDown,
        Field::PostDown,
        Field::SaveConfig,
        Field::PublicKey,
        Field::PresharedKey,
        Field::AllowedIps,
        Field::Endpoint,
        Field::PersistentKeepalive,
    ];

    fn lookup(s: &str) -> Option<Field> {
        Field::ALL
            .iter()
            .copied()
            .find(|k| k.name().eq_ignore_ascii_case(s))
    }

    fn name(self) -> &'static str {
        match self {
            Field::PrivateKey => "PrivateKey",
            Field::ListenPort => "ListenPort",
            Field::FwMark => "FwMark",
            Field::Address => "Address",
            Field::Dns => "DNS",
            Field::Mtu => "MTU",
            Field::Table => "Table",
            Field::PreUp => "PreUp",
            Field::PostUp => "PostUp",
            Field::PreDown => "PreDown",
            Field::PostDown => "PostDown",
            Field::SaveConfig => "SaveConfig",
            Field::PublicKey => "PublicKey",
            Field::PresharedKey => "PresharedKey",
            Field::AllowedIps => "AllowedIPs",
            Field::Endpoint => "Endpoint",
            Field::PersistentKeepalive => "PersistentKeepalive",
        }
    }

    fn section(self) -> Section {
        match self {
            Field::PublicKey
            | Field::PresharedKey
            | Field::AllowedIps
            | Field::Endpoint
            | Field::PersistentKeepalive => Section::Peer,
            _ => Section::Interface,
        }
    }

    fn is_wg_quick(self) -> bool {
        matches!(
            self,
            Field::Address
                | Field::Dns
                | Field::Mtu
                | Field::Table
                | Field::PreUp
                | Field::PostUp
                | Field::PreDown
                | Field::PostDown
                | Field::SaveConfig
        )
    }

    /// Keys whose repetitions accumulate rather than override.
    fn accumulates(self) -> bool {
        matches!(
            self,
            Field::Address
                | Field::Dns
                | Field::PreUp
                | Field::PostUp
                | Field::PreDown
                | Field::PostDown
                | Field::AllowedIps
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The parser
// ---------------------------------------------------------------------------------------------

struct PeerDraft {
    header_line: usize,
    public_key: Option<(PublicKey, usize)>,
    peer_fields: PeerConfig,
    seen: HashMap<Field, usize>,
}

struct Parser<'a> {
    origin: &'a str,
    dialect: Dialect,
    section: Option<Section>,
    interface: InterfaceConfig,
    interface_line: Option<usize>,
    interface_seen: HashMap<Field, usize>,
    peer: Option<PeerDraft>,
    peers: Vec<PeerConfig>,
    peer_lines: HashMap<PublicKey, usize>,
    warnings: Vec<String>,
}

impl<'a> Parser<'a> {
    fn new(origin: &'a str, dialect: Dialect) -> Self {
        Parser {
            origin,
            dialect,
            section: None,
            interface: InterfaceConfig::default(),
            interface_line: None,
            interface_seen: HashMap::new(),
            peer: None,
            peers: Vec::new(),
            peer_lines: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    fn line_err(&self, line: usize, problem: LineProblem) -> ConfigError {
        ConfigError::Line {
            origin: self.origin.to_owned(),
            line,
            problem,
        }
    }

    fn warn(&mut self, line: usize, key: Field, msg: impl fmt::Display) {
        self.warnings
            .push(format!("{}:{line}: {}: {msg}", self.origin, key.name()));
    }

    fn run(mut self, text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (idx, raw) in text.split('\n').enumerate() {
            let line = idx + 1;
            if raw.len() > MAX_LINE_LEN {
                return Err(self.line_err(
                    line,
                    LineProblem::TooLong {
                        len: raw.len(),
                        limit: MAX_LINE_LEN,
                    },
                ));
            }
            self.line(line, raw)?;
        }
        self.finish_peer()?;
        let config = Config {
            interface: self.interface,
            peers: self.peers,
        };
        Ok((config, self.warnings))
    }

    fn line(&mut self, line: usize, raw: &str) -> Result<(), ConfigError> {
        let content = raw.split_once('#').map_or(raw, |(c, _)| c);
        // The line with all whitespace removed, as wg sees it. It may hold a secret.
        let compact: Zeroizing<String> =
            Zeroizing::new(content.chars().filter(|&c| !is_space(c)).collect());
        if compact.is_empty() {
            return Ok(());
        }
        if compact.starts_with('[') {
            return self.section_header(line, &compact);
        }
        let Some((key_str, value)) = compact.split_once('=') else {
            return Err(self.line_err(line, LineProblem::NoEquals));
        };
        let Some(section) = self.section else {
            return Err(self.line_err(line, LineProblem::OutsideSection(shown_name(key_str))));
        };
        let Some(key) = Field::lookup(key_str) else {
            return Err(self.line_err(
                line,
                LineProblem::UnknownKey {
                    key: shown_name(key_str),
                    section: section.name(),
                },
            ));
        };
        if key.section() != section {
            return Err(self.line_err(
                line,
                LineProblem::WrongSection {
                    key: key.name(),
                    expected: key.section().name(),
                    section: section.name(),
                },
            ));
        }
        if key.is_wg_quick() && self.dialect == Dialect::Wg {
            return Err(self.line_err(line, LineProblem::WgQuickOnly { key: key.name() }));
        }
        // wg-quick's view of the value: everything after the first '=', trimmed.
        let trimmed = content
            .split_once('=')
            .map_or("", |(_, v)| v.trim_matches(is_space));
        self.note_repeat(line, key);
        let result = match section {
            Section::Interface => self.interface_key(line, key, value, trimmed),
            Section::Peer => self.peer_key(line, key, value),
        };
        result.map_err(|problem| ConfigError::Value {
            origin: self.origin.to_owned(),
            line,
            key: key.name(),
            problem,
        })
    }

    fn section_header(&mut self, line: usize, compact: &str) -> Result<(), ConfigError> {
        if compact.eq_ignore_ascii_case("[Interface]") {
            self.finish_peer()?;
            if let Some(first) = self.interface_line {
                self.warnings.push(format!(
                    "{}:{line}: [Interface] appears again (first on line {first}); \
                     the sections are merged, later values override earlier ones",
                    self.origin
                ));
            } else {
                self.interface_line = Some(line);
            }
            self.section = Some(Section::Interface);
            Ok(())
        } else if compact.eq_ignore_ascii_case("[Peer]") {
            self.finish_peer()?;
            self.section = Some(Section::Peer);
            self.peer = Some(PeerDraft {
                header_line: line,
                public_key: None,
                // Placeholder key; replaced when the section is finished.
                peer_fields: PeerConfig::new(PublicKey::from_bytes([0; 32])),
                seen: HashMap::new(),
            });
            Ok(())
        } else {
            Err(self.line_err(line, LineProblem::UnknownSection(shown_name(compact))))
        }
    }

    /// Warns when a key that does not accumulate is given again in the same section.
    fn note_repeat(&mut self, line: usize, key: Field) {
        if key.accumulates() {
            return;
        }
        let seen = match (self.section, self.peer.as_mut()) {
            (Some(Section::Peer), Some(p)) => &mut p.seen,
            _ => &mut self.interface_seen,
        };
        if let Some(first) = seen.insert(key, line) {
            self.warn(
                line,
                key,
                format_args!("given again (before on line {first}); this value overrides"),
            );
        }
    }

    fn finish_peer(&mut self) -> Result<(), ConfigError> {
        let Some(draft) = self.peer.take() else {
            return Ok(());
        };
        let Some((key, key_line)) = draft.public_key else {
            return Err(self.line_err(draft.header_line, LineProblem::MissingPublicKey));
        };
        if let Some(&first_line) = self.peer_lines.get(&key) {
            return Err(ConfigError::Value {
                origin: self.origin.to_owned(),
                line: key_line,
                key: Field::PublicKey.name(),
                problem: ValueProblem::DuplicatePeer { key, first_line },
            });
        }
        self.peer_lines.insert(key, key_line);
        let mut peer = draft.peer_fields;
        peer.public_key = key;
        self.peers.push(peer);
        Ok(())
    }

    fn interface_key(
        &mut self,
        line: usize,
        key: Field,
        value: &str,
        trimmed: &str,
    ) -> Result<(), ValueProblem> {
        let needs_value = !matches!(
            key,
            Field::Address
                | Field::Dns
                | Field::Mtu
                | Field::Table
                | Field::PreUp
                | Field::PostUp
                | Field::PreDown
                | Field::PostDown
        );
        if needs_value && value.is_empty() {
            return Err(ValueProblem::Empty);
        }
        let iface = &mut self.interface;
        match key {
            Field::PrivateKey => {
                let k: PrivateKey = value.parse()?;
                if k.is_zero() {
                    iface.private_key = None;
                    self.warn(line, key, "all zeros, which means no private key");
                } else {
                    iface.private_key = Some(k);
                }
            }
            Field::ListenPort => {
                let port =
                    parse_digits::<u16>(value).ok_or_else(|| ValueProblem::Port(shown(value)))?;
                iface.listen_port = (port != 0).then_some(port);
            }
            Field::FwMark => {
                let mark = parse_fwmark(value).ok_or_else(|| ValueProblem::FwMark(shown(value)))?;
                iface.fwmark = (mark != 0).then_some(mark);
            }
            Field::Address => {
                for item in split_list(trimmed) {
                    iface.addresses.push(item.parse()?);
                }
            }
            Field::Dns => iface.dns.extend(split_list(trimmed).map(str::to_owned)),
            Field::Mtu => {
                iface.mtu = if value.is_empty() {
                    None
                } else {
                    Some(
                        parse_digits::<u32>(value)
                            .filter(|m| (68..=65535).contains(m))
                            .ok_or_else(|| ValueProblem::Mtu(shown(value)))?,
                    )
                };
            }
            Field::Table => {
                iface.table = if value.is_empty() {
                    None
                } else {
                    Some(value.parse()?)
                };
            }
            Field::PreUp | Field::PostUp | Field::PreDown | Field::PostDown => {
                let list = match key {
                    Field::PreUp => &mut iface.pre_up,
                    Field::PostUp => &mut iface.post_up,
                    Field::PreDown => &mut iface.pre_down,
                    _ => &mut iface.post_down,
                };
                if !trimmed.is_empty() {
                    list.push(trimmed.to_owned());
                }
            }
            Field::SaveConfig => {
                iface.save_config = if value.eq_ignore_ascii_case("true") {
                    true
                } else if value.eq_ignore_ascii_case("false") {
                    false
                } else {
                    return Err(ValueProblem::Bool(shown(value)));
                };
            }
            // Peer keys never reach here (checked by the caller).
            Field::PublicKey
            | Field::PresharedKey
            | Field::AllowedIps
            | Field::Endpoint
            | Field::PersistentKeepalive => {}
        }
        Ok(())
    }

    fn peer_key(&mut self, line: usize, key: Field, value: &str) -> Result<(), ValueProblem> {
        if value.is_empty() {
            return Err(ValueProblem::Empty);
        }
        let origin = self.origin;
        let Some(draft) = self.peer.as_mut() else {
            return Ok(());
        };
        let peer = &mut draft.peer_fields;
        match key {
            Field::PublicKey => draft.public_key = Some((value.parse()?, line)),
            Field::PresharedKey => {
                let psk: PresharedKey = value.parse()?;
                peer.preshared_key = (!psk.is_zero()).then_some(psk);
            }
            Field::AllowedIps => {
                for item in value.split(',') {
                    if item.starts_with(['+', '-']) {
                        return Err(ValueProblem::Incremental(shown(item)));
                    }
                    let ip: AllowedIp = item.parse()?;
                    let net = ip.network();
                    if net != ip {
                        self.warnings.push(format!(
                            "{origin}:{line}: AllowedIPs: {ip} has a nonzero host part; \
                             using {net}"
                        ));
                    }
                    peer.allowed_ips.push(net);
                }
            }
            Field::Endpoint => peer.endpoint = Some(value.parse()?),
            Field::PersistentKeepalive => {
                let secs = if value.eq_ignore_ascii_case("off") {
                    0
                } else {
                    parse_digits::<u16>(value)
                        .ok_or_else(|| ValueProblem::Keepalive(shown(value)))?
                };
                peer.persistent_keepalive = (secs != 0).then_some(secs);
            }
            _ => {}
        }
        Ok(())
    }
}

/// `FwMark` as `wg` parses it: `off`, decimal, or hexadecimal after a lowercase `0x`.
fn parse_fwmark(v: &str) -> Option<u32> {
    if v.eq_ignore_ascii_case("off") {
        return Some(0);
    }
    match v.strip_prefix("0x") {
        Some(hex) if !hex.is_empty() => {
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            // Leading zeros are fine; too many digits overflow and are refused.
            u32::from_str_radix(hex, 16).ok()
        }
        _ => parse_digits::<u32>(v),
    }
}

/// wg-quick's list splitting (`${value//,/ }`, then words): commas and whitespace separate.
fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(|c: char| c == ',' || is_space(c))
        .filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Config: entry points
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Parses a `wg-quick(8)` configuration (the `wg(8)` keys plus `Address`, `DNS`, `MTU`,
    /// `Table`, `PreUp`, `PostUp`, `PreDown`, `PostDown`, `SaveConfig`). `origin` names the
    /// text in errors (usually the file name).
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Self::parse_with_warnings(text, origin, Dialect::WgQuick).map(|(c, _)| c)
    }

    /// Parses a `wg(8)` configuration, refusing the `wg-quick` keys as `wg setconf` does.
    pub fn parse_wg_only(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Self::parse_with_warnings(text, origin, Dialect::Wg).map(|(c, _)| c)
    }

    /// Parses, also returning the warnings only the parser can see, each prefixed with
    /// `origin:line: Key:` (a nonzero host part in `AllowedIPs`, a repeated `[Interface]`, a
    /// key given twice, an all-zero `PrivateKey`). See [`Config::warnings`] for the rest.
    pub fn parse_with_warnings(
        text: &str,
        origin: &str,
        dialect: Dialect,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        if text.len() > MAX_CONFIG_LEN {
            return Err(ConfigError::TooLarge {
                origin: origin.to_owned(),
                limit: MAX_CONFIG_LEN,
            });
        }
        if let Some(pos) = text.bytes().position(|b| b == 0) {
            return Err(ConfigError::Line {
                origin: origin.to_owned(),
                line: line_of(text.as_bytes(), pos),
                problem: LineProblem::Nul,
            });
        }
        Parser::new(origin, dialect).run(text)
    }

    /// Parses raw bytes (a file's contents), refusing NUL bytes and invalid UTF-8 with the line
    /// they are on.
    pub fn parse_bytes(
        bytes: &[u8],
        origin: &str,
        dialect: Dialect,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        if bytes.len() > MAX_CONFIG_LEN {
            return Err(ConfigError::TooLarge {
                origin: origin.to_owned(),
                limit: MAX_CONFIG_LEN,
            });
        }
        if let Some(pos) = bytes.iter().position(|&b| b == 0) {
            return Err(ConfigError::Line {
                origin: origin.to_owned(),
                line: line_of(bytes, pos),
                problem: LineProblem::Nul,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| ConfigError::Line {
            origin: origin.to_owned(),
            line: line_of(bytes, e.valid_up_to()),
            problem: LineProblem::NotUtf8,
        })?;
        Self::parse_with_warnings(text, origin, dialect)
    }

    /// Reads and parses a `wg-quick(8)` configuration file (errors name the path).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Self::from_file_with_warnings(path, Dialect::WgQuick).map(|(c, _)| c)
    }

    /// Reads and parses a configuration file in the given dialect, with the parser's warnings.
    /// Files larger than [`MAX_CONFIG_LEN`] are refused without being read.
    pub fn from_file_with_warnings(
        path: impl AsRef<Path>,
        dialect: Dialect,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let io_err = |error| ConfigError::Io {
            origin: origin.clone(),
            error,
        };
        let too_large = || ConfigError::TooLarge {
            origin: origin.clone(),
            limit: MAX_CONFIG_LEN,
        };
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if meta.is_dir() {
            return Err(io_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory",
            )));
        }
        if meta.len() > MAX_CONFIG_LEN as u64 {
            return Err(too_large());
        }
        // The contents hold the private key: wipe them when done.
        let capacity = usize::try_from(meta.len()).unwrap_or(0).saturating_add(1);
        let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
        file.take(MAX_CONFIG_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        if bytes.len() > MAX_CONFIG_LEN {
            return Err(too_large());
        }
        Self::parse_bytes(&bytes, &origin, dialect)
    }
}

/// The 1-based line number of byte offset `pos`.
fn line_of(bytes: &[u8], pos: usize) -> usize {
    bytes
        .get(..pos)
        .unwrap_or(bytes)
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
