//! `wgd check`, `wgd show` and `wgd down`, run as the binary.
//!
//! `check` needs nothing special: good, bad and suspicious files, exit codes, messages naming
//! the file and line, and that checking has no side effect. `show` and `down` against a live
//! daemon need root (network namespaces, TUN): `wgd -f IFACE` is started here, in a namespace,
//! as our own child, configured with `wg setconf`, read back with `wgd show` (human, compared
//! with `wg show`; JSON, parsed and checked value by value; all interfaces), and stopped with
//! `wgd down`. Those tests gate on `privileged_or_skip`.

mod common;

use common::netns::{Netns, WG_RUN_DIR, privileged_or_skip, unique_iface};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand_core::OsRng;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};
use wgd::crypto::keys::{PresharedKey, PrivateKey};

const WGD: &str = env!("CARGO_BIN_EXE_wgd");
/// The longest any one `wgd` command here may take.
const CMD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `wgd -f IFACE` may take to accept connections on its socket.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the daemon may take to exit after `wgd down` returned (it should be gone already).
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `program args` with stdin closed; killed (it is our child) after [`CMD_TIMEOUT`].
fn run(program: &str, args: &[&str]) -> Out {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut pipes = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .map(|p| {
        let mut p = p.expect("piped");
        thread::spawn(move || {
            let mut b = Vec::new();
            let _ = p.read_to_end(&mut b);
            String::from_utf8_lossy(&b).into_owned()
        })
    })
    .into_iter();
    let deadline = Instant::now() + CMD_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} still running after {CMD_TIMEOUT:?}; killed");
        }
        thread::sleep(Duration::from_millis(2));
    };
    let stdout = pipes.next().unwrap().join().expect("stdout reader");
    let stderr = pipes.next().unwrap().join().expect("stderr reader");
    Out {
        code: status.code(),
        stdout,
        stderr,
    }
}

fn wgd(args: &[&str]) -> Out {
    run(WGD, args)
}

/// A temporary directory of our own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("wgdt-cliops-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir(&p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).expect("chmod dir");
        TempDir(p)
    }

    /// Writes `name` with `text` and `mode`; returns its path as a string.
    fn file(&self, name: &str, text: &str, mode: u32) -> String {
        let p = self.0.join(name);
        fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        p.to_string_lossy().into_owned()
    }

    /// The names in the directory, sorted.
    fn listing(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn b64_private() -> (String, String) {
    let k = PrivateKey::generate(&mut OsRng);
    (k.to_base64().to_string(), k.public_key().to_base64())
}

fn b64_public() -> String {
    PrivateKey::generate(&mut OsRng).public_key().to_base64()
}

// ---------------------------------------------------------------------------------------------
// wgd check
// ---------------------------------------------------------------------------------------------

/// A file's state, to show that `wgd check` changed nothing.
#[derive(Debug, PartialEq, Eq)]
struct FileState {
    bytes: Vec<u8>,
    mode: u32,
    mtime: SystemTime,
}

fn file_state(path: &str) -> FileState {
    let m = fs::metadata(path).expect("stat");
    FileState {
        bytes: fs::read(path).expect("read"),
        mode: m.permissions().mode(),
        mtime: m.modified().expect("mtime"),
    }
}

/// Runs `wgd check FILE` and asserts it had no side effect: the file is unchanged, nothing new
/// appeared next to it, and no interface or UAPI socket named after it exists.
fn check(dir: &TempDir, path: &str) -> Out {
    let before = (file_state(path), dir.listing());
    let out = wgd(&["check", path]);
    assert_eq!(
        (file_state(path), dir.listing()),
        before,
        "wgd check changed {path}"
    );
    let stem = Path::new(path).file_stem().unwrap().to_string_lossy();
    assert!(
        !Path::new(WG_RUN_DIR).join(format!("{stem}.sock")).exists(),
        "wgd check made a UAPI socket for {stem}"
    );
    assert!(
        !Path::new("/sys/class/net").join(&*stem).exists(),
        "wgd check made an interface {stem}"
    );
    out
}

/// Asserts `wgd check` rejected the file with exactly one `wgd: PATH:LINE: ...` line containing
/// `needle`, and nothing on stdout.
fn assert_rejected(out: &Out, path: &str, line: usize, needle: &str) {
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    let prefix = format!("wgd: {path}:{line}: ");
    assert!(
        out.stderr.starts_with(&prefix) && out.stderr.contains(needle),
        "expected `{prefix}...{needle}...`, got {:?}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
}

#[test]
fn check_accepts_a_good_file_without_warnings() {
    let dir = TempDir::new("good");
    let (sk, _) = b64_private();
    let psk = PresharedKey::generate(&mut OsRng);
    let name = format!("{}.conf", unique_iface("wgc"));
    let text = format!(
        "# a comment\n[Interface]\nPrivateKey = {sk}\nListenPort = 51820\nAddress = 198.19.0.1/24, \
         2001:db8:1::1/64\n\n[Peer]\nPublicKey = {}\nPresharedKey = {}\n\
         AllowedIPs = 198.19.0.2/32, 2001:db8:1::2/128\nEndpoint = [2001:db8::2]:51820\n\n\
         [Peer]\nPublicKey = {}\nAllowedIPs = 198.19.0.3/32\nEndpoint = 198.18.0.3:51820\n\
         PersistentKeepalive = 25\n",
        b64_public(),
        psk.to_base64().as_str(),
        b64_public()
    );
    let path = dir.file(&name, &text, 0o600);
    let out = check(&dir, &path);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    assert_eq!(out.stdout, format!("{path}: OK (2 peers, 0 warnings)\n"));
    assert!(!out.stdout.contains(&sk));
}

#[test]
fn check_rejects_bad_files_naming_file_line_and_key() {
    let dir = TempDir::new("bad");
    let (sk, _) = b64_private();
    let peer = b64_public();
    // A 44-character base64 string that is not a key (bad padding): must not be echoed.
    let not_a_key = format!("{}=", "A".repeat(42)) + "B";
    let cases: Vec<(&str, String, usize, String)> = vec![
        (
            "bad public key",
            format!("[Interface]\nPrivateKey = {sk}\n\n[Peer]\nPublicKey = abc\n"),
            5,
            "PublicKey: Key is not the correct length or format".into(),
        ),
        (
            "bad private key",
            format!("[Interface]\nPrivateKey = {not_a_key}\n"),
            2,
            "PrivateKey: Key is not the correct length or format".into(),
        ),
        (
            "unknown section",
            format!("[Interface]\nPrivateKey = {sk}\n\n[Peers]\nPublicKey = {peer}\n"),
            4,
            "unknown section `[Peers]'".into(),
        ),
        (
            "unknown key",
            format!("[Interface]\nPrivateKey = {sk}\nListenPrt = 51820\n"),
            3,
            "unknown key `ListenPrt' in [Interface]".into(),
        ),
        (
            "duplicate peer",
            format!(
                "[Interface]\nPrivateKey = {sk}\n\n[Peer]\nPublicKey = {peer}\n\
                 AllowedIPs = 198.19.0.2/32\n\n[Peer]\nPublicKey = {peer}\n"
            ),
            9,
            format!("PublicKey: peer {peer} is already defined on line 5"),
        ),
        (
            "port out of range",
            format!("[Interface]\nPrivateKey = {sk}\nListenPort = 65536\n"),
            3,
            "ListenPort: `65536' is not a port number".into(),
        ),
        (
            "key outside a section",
            format!("PrivateKey = {sk}\n"),
            1,
            "outside of any section".into(),
        ),
    ];
    for (i, (what, text, line, needle)) in cases.iter().enumerate() {
        let path = dir.file(&format!("bad{i}.conf"), text, 0o600);
        let out = check(&dir, &path);
        assert_rejected(&out, &path, *line, needle);
        assert!(!out.stderr.contains(&sk), "{what}: secret echoed: {out:?}");
        assert!(
            !out.stderr.contains(&not_a_key),
            "{what}: secret echoed: {out:?}"
        );
    }

    let out = check(&dir, &dir.file("empty-ok.conf", "", 0o600));
    // An empty file is a valid (if useless) configuration: it only warns.
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("warning: ") && out.stderr.contains("has no PrivateKey"));

    let missing = dir.0.join("missing.conf").to_string_lossy().into_owned();
    let out = wgd(&["check", &missing]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.starts_with(&format!("wgd: {missing}: ")) && out.stderr.contains("No such file"),
        "{out:?}"
    );
    let out = wgd(&["check"]);
    assert_eq!(
        out.code,
        Some(1),
        "missing argument is a usage error: {out:?}"
    );
}

#[test]
fn check_warnings_keep_exit_status_zero() {
    let dir = TempDir::new("warn");
    let (sk, _) = b64_private();
    let (p1, p2) = (b64_public(), b64_public());
    let text = format!(
        "[Interface]\nPrivateKey = {sk}\nListenPort = 1\nListenPort = 2\n\n\
         [Peer]\nPublicKey = {p1}\nAllowedIPs = 198.19.0.0/24, 198.19.0.2/32\n\n\
         [Peer]\nPublicKey = {p2}\nAllowedIPs = 198.19.0.2/32, 198.19.0.5/24\n"
    );
    let path = dir.file("warn.conf", &text, 0o644);
    let out = check(&dir, &path);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.starts_with(&format!("{path}: OK (2 peers, ")));
    let warnings: Vec<&str> = out.stderr.lines().collect();
    assert!(
        warnings.iter().all(|w| w.starts_with("warning: ")),
        "{out:?}"
    );
    let has = |needle: &str| warnings.iter().any(|w| w.contains(needle));
    assert!(
        has(&format!(
            "{path}:4: ListenPort: given again (before on line 3)"
        )),
        "{out:?}"
    );
    assert!(has(&format!(
        "{path}:12: AllowedIPs: 198.19.0.5/24 has a nonzero host part"
    )));
    assert!(has("AllowedIPs 198.19.0.2/32 is in peer 1"), "{out:?}");
    assert!(
        has(&format!("{path}: world-readable key file: mode 0644")),
        "{out:?}"
    );
    assert_eq!(
        out.stdout,
        format!("{path}: OK (2 peers, {} warnings)\n", warnings.len())
    );
    assert!(!out.stderr.contains(&sk));

    // Group-readable only; a preshared key is a secret too; 0600 is quiet.
    let psk = PresharedKey::generate(&mut OsRng);
    let psk_only = format!(
        "[Interface]\nListenPort = 1\n[Peer]\nPublicKey = {p1}\nPresharedKey = {}\n\
         AllowedIPs = 198.19.0.2/32\n",
        psk.to_base64().as_str()
    );
    for (mode, expect) in [
        (
            0o640,
            Some("group-readable key file: mode 0640 lets other users read its PresharedKey"),
        ),
        (0o604, Some("world-readable key file: mode 0604")),
        (0o600, None),
        (0o400, None),
    ] {
        let path = dir.file(&format!("psk{mode:o}.conf"), &psk_only, mode);
        let out = check(&dir, &path);
        assert_eq!(out.code, Some(0), "{out:?}");
        let perm: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.contains("key file"))
            .collect();
        match expect {
            Some(needle) => assert!(
                perm.len() == 1 && perm[0].contains(needle),
                "mode {mode:o}: {out:?}"
            ),
            None => assert!(perm.is_empty(), "mode {mode:o}: {out:?}"),
        }
    }
    // No secret at all: a readable file is fine.
    let public = format!("[Peer]\nPublicKey = {p1}\nAllowedIPs = 198.19.0.2/32\n");
    let out = check(&dir, &dir.file("public.conf", &public, 0o644));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(!out.stderr.contains("key file"), "{out:?}");
}

/// A 10,000-line file: valid, then with the error on its last line, then in its middle. Each
/// run is timed (printed with --nocapture).
#[test]
fn check_10000_line_file() {
    const LINES: usize = 10_000;
    let dir = TempDir::new("big");
    let (sk, _) = b64_private();
    let mut lines = vec![
        "[Interface]".to_owned(),
        format!("PrivateKey = {sk}"),
        "[Peer]".to_owned(),
        format!("PublicKey = {}", b64_public()),
    ];
    let mut n = 0u32;
    while lines.len() < LINES {
        // Distinct /32s from 198.18.0.0/15 (198.18.0.0 - 198.19.255.255).
        let a = 0xc612_0000u32 + n;
        n += 1;
        lines.push(format!(
            "AllowedIPs = {}.{}.{}.{}/32 # line {}",
            a >> 24,
            (a >> 16) & 0xff,
            (a >> 8) & 0xff,
            a & 0xff,
            lines.len() + 1
        ));
    }
    let good = lines.join("\n") + "\n";
    assert_eq!(good.lines().count(), LINES);
    let path = dir.file("big.conf", &good, 0o600);
    let t = Instant::now();
    let out = check(&dir, &path);
    let took_ok = t.elapsed();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    assert_eq!(out.stdout, format!("{path}: OK (1 peer, 0 warnings)\n"));

    for bad_line in [LINES, LINES / 2] {
        let mut l = lines.clone();
        l[bad_line - 1] = "AllowedIPs = 198.18.0.1/33".to_owned();
        let path = dir.file(
            &format!("big{bad_line}.conf"),
            &(l.join("\n") + "\n"),
            0o600,
        );
        let t = Instant::now();
        let out = check(&dir, &path);
        let took = t.elapsed();
        assert_rejected(&out, &path, bad_line, "AllowedIPs: ");
        eprintln!("wgd check, {LINES} lines, error on line {bad_line}: {took:?}");
    }
    eprintln!("wgd check, {LINES} lines, valid: {took_ok:?}");
}

// ---------------------------------------------------------------------------------------------
// wgd show / wgd down without a daemon (no privileges needed)
// ---------------------------------------------------------------------------------------------

#[test]
fn show_and_down_refuse_an_interface_that_is_not_running() {
    let iface = unique_iface("wgn");
    let expected =
        format!("wgd: interface {iface} is not running (no {WG_RUN_DIR}/{iface}.sock)\n");
    for args in [
        vec!["down", iface.as_str()],
        vec!["show", iface.as_str()],
        vec!["show", iface.as_str(), "--json"],
    ] {
        let out = wgd(&args);
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert_eq!(out.stdout, "", "{args:?}");
        assert_eq!(out.stderr, expected, "{args:?}");
    }
    for bad in ["../../etc/passwd", "", "a-name-that-is-too-long"] {
        let out = wgd(&["down", bad]);
        assert_eq!(out.code, Some(1), "{bad:?}: {out:?}");
        assert!(
            out.stderr.starts_with("wgd: invalid interface name"),
            "{out:?}"
        );
    }
    assert_eq!(wgd(&["down"]).code, Some(1), "IFACE is required");
}

// ---------------------------------------------------------------------------------------------
// A minimal JSON reader, to take `wgd show --json` apart (no JSON crate in the dependencies)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    /// The number as written (checked to be JSON syntax).
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

impl Json {
    /// Parses a whole document (RFC 8259, strictly: no trailing commas, no leading zeros, no
    /// raw control characters in strings, no duplicate keys, nothing after the value).
    fn try_parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at byte {}", p.i));
        }
        Ok(v)
    }
    fn parse(text: &str) -> Json {
        Json::try_parse(text).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{text}"))
    }
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(m) => m
                .get(key)
                .unwrap_or_else(|| panic!("no key {key:?} in {self:?}")),
            _ => panic!("not an object: {self:?}"),
        }
    }
    fn keys(&self) -> Vec<&str> {
        match self {
            Json::Obj(m) => m.keys().map(String::as_str).collect(),
            _ => panic!("not an object: {self:?}"),
        }
    }
    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            _ => panic!("not an array: {self:?}"),
        }
    }
    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            _ => panic!("not a string: {self:?}"),
        }
    }
    fn u64(&self) -> u64 {
        match self {
            Json::Num(n) => n.parse().unwrap_or_else(|_| panic!("not a u64: {n}")),
            _ => panic!("not a number: {self:?}"),
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && b" \t\r\n".contains(&self.s[self.i]) {
            self.i += 1;
        }
    }
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }
    fn next(&mut self) -> Result<u8, String> {
        let c = *self.s.get(self.i).ok_or("unexpected end")?;
        self.i += 1;
        Ok(c)
    }
    fn peek(&mut self) -> Result<u8, String> {
        self.ws();
        self.s
            .get(self.i)
            .copied()
            .ok_or_else(|| "unexpected end".into())
    }
    fn eat(&mut self, c: u8) -> Result<(), String> {
        if self.peek()? != c {
            return self.err(&format!("expected {:?}", c as char));
        }
        self.i += 1;
        Ok(())
    }
    fn lit(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if !self.s[self.i..].starts_with(word.as_bytes()) {
            return self.err("bad literal");
        }
        self.i += word.len();
        Ok(v)
    }
    fn value(&mut self) -> Result<Json, String> {
        match self.peek()? {
            b'n' => self.lit("null", Json::Null),
            b't' => self.lit("true", Json::Bool(true)),
            b'f' => self.lit("false", Json::Bool(false)),
            b'"' => Ok(Json::Str(self.string()?)),
            b'[' => {
                self.eat(b'[')?;
                let mut v = Vec::new();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Ok(Json::Arr(v));
                }
                loop {
                    v.push(self.value()?);
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Ok(Json::Arr(v));
                        }
                        _ => return self.err("expected , or ]"),
                    }
                }
            }
            b'{' => {
                self.eat(b'{')?;
                let mut m = BTreeMap::new();
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Ok(Json::Obj(m));
                }
                loop {
                    self.peek()?;
                    let k = self.string()?;
                    self.eat(b':')?;
                    let v = self.value()?;
                    if m.insert(k.clone(), v).is_some() {
                        return self.err(&format!("duplicate key {k:?}"));
                    }
                    match self.peek()? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Ok(Json::Obj(m));
                        }
                        _ => return self.err("expected , or }"),
                    }
                }
            }
            _ => {
                let start = self.i;
                while self.i < self.s.len() && b"+-0123456789.eE".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                let n = std::str::from_utf8(&self.s[start..self.i])
                    .unwrap()
                    .to_owned();
                let digits = n.strip_prefix('-').unwrap_or(&n);
                let ok = digits.as_bytes().first().is_some_and(u8::is_ascii_digit)
                    && (digits == "0" || !digits.starts_with('0') || digits.starts_with("0."))
                    && n.parse::<f64>().is_ok();
                if !ok {
                    return self.err(&format!("bad number {n:?}"));
                }
                Ok(Json::Num(n))
            }
        }
    }
    fn string(&mut self) -> Result<String, String> {
        self.eat(b'"')?;
        let start = self.i;
        let mut out = String::new();
        loop {
            match self.next()? {
                b'"' => return Ok(out),
                b'\\' => match self.next()? {
                    e @ (b'"' | b'\\' | b'/') => out.push(e as char),
                    b'n' => out.push('\n'),
                    b't' => out.push('\t'),
                    b'r' => out.push('\r'),
                    b'b' => out.push('\u{8}'),
                    b'f' => out.push('\u{c}'),
                    b'u' => {
                        let h = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
                        self.i += 4;
                        let c = std::str::from_utf8(h)
                            .ok()
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .and_then(char::from_u32)
                            .ok_or("bad \\u escape (surrogates are not needed here)")?;
                        out.push(c);
                    }
                    _ => return self.err("bad escape"),
                },
                c if c < 0x20 => return self.err("raw control character in a string"),
                _ => {
                    // Copy the rest of one UTF-8 sequence.
                    let from = self.i - 1;
                    while self.i < self.s.len() && (self.s[self.i] & 0xc0) == 0x80 {
                        self.i += 1;
                    }
                    let chunk = std::str::from_utf8(&self.s[from..self.i])
                        .map_err(|_| format!("bad UTF-8 in the string at {start}"))?;
                    out.push_str(chunk);
                }
            }
        }
    }
}

#[test]
fn json_reader_self_check() {
    let v = Json::parse(r#" {"a": [1, -2.5e3, 0.5, true, null, "x\"\\\u0041é"], "b": {}} "#);
    assert_eq!(v.get("a").arr().len(), 6);
    assert_eq!(v.get("a").arr()[5].str(), "x\"\\Aé");
    assert_eq!(v.get("b"), &Json::Obj(BTreeMap::new()));
    for bad in [
        "",
        "{",
        "[1,]",
        "01",
        "-",
        "{\"a\" 1}",
        "[1] x",
        "\"\u{1}\"",
        "{\"a\":1,\"a\":2}",
        "nul",
        "\"\\x\"",
    ] {
        assert!(Json::try_parse(bad).is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// wgd show / wgd down against running daemons (root)
// ---------------------------------------------------------------------------------------------

/// `wgd -f IFACE` in a namespace, our own child. Drop: if still running, SIGTERM to its PID,
/// SIGKILL after 2 s, bounded waits; the log is printed if the test is failing.
struct Daemon {
    iface: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Daemon {
    fn start(ns: &Netns, iface: &str, dir: &TempDir) -> Daemon {
        let log = dir.0.join(format!("{iface}.log"));
        let f = fs::File::create(&log).expect("log file");
        let child = ns
            .exec_command(&[WGD, "-f", iface])
            .env("RUST_LOG", "wgd=debug")
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("dup"))
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start wgd -f {iface}: {e}"));
        let mut d = Daemon {
            iface: iface.to_owned(),
            child,
            log,
            status: None,
        };
        let sock = socket(iface);
        let deadline = Instant::now() + SOCKET_TIMEOUT;
        while UnixStream::connect(&sock).is_err() {
            assert!(
                d.try_status().is_none(),
                "wgd -f {iface} exited: {}",
                d.log()
            );
            assert!(
                Instant::now() < deadline,
                "{} does not accept connections after {SOCKET_TIMEOUT:?}: {}",
                sock.display(),
                d.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
        d
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.try_status() {
                return Some((s, start.elapsed()));
            }
            if start.elapsed() >= limit {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            if let Ok(pid) = i32::try_from(self.child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            if self.wait_exit(Duration::from_secs(2)).is_none() {
                let _ = self.child.kill();
                let _ = self.wait_exit(Duration::from_secs(5));
            }
        }
        if thread::panicking() {
            eprintln!("--- log of wgd -f {} ---\n{}", self.iface, self.log());
        }
    }
}

fn socket(iface: &str) -> PathBuf {
    Path::new(WG_RUN_DIR).join(format!("{iface}.sock"))
}

/// A socket file nobody listens on (a daemon that died without cleaning up), removed on drop.
struct StaleSocket(PathBuf);

impl StaleSocket {
    fn new(iface: &str) -> StaleSocket {
        let p = socket(iface);
        fs::create_dir_all(WG_RUN_DIR).expect("socket dir");
        drop(UnixListener::bind(&p).expect("bind a stale socket"));
        assert!(p.exists());
        StaleSocket(p)
    }
}

impl StaleSocket {
    /// Binds it again if something removed it meanwhile.
    fn recreate(&self) {
        if !self.0.exists() {
            drop(UnixListener::bind(&self.0).expect("bind a stale socket"));
        }
    }
}

impl Drop for StaleSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// `wg show` / `wgd show` output as a set of blocks (interface, then each peer), minus the
/// lines that change by the second (handshake, transfer). Peers with equal handshake times may
/// come in any order.
fn blocks(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .split("\n\n")
        .map(|b| {
            b.lines()
                .filter(|l| !l.contains("latest handshake:") && !l.contains("transfer:"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|b| !b.is_empty())
        .collect();
    v.sort();
    v
}

#[test]
fn show_json_show_all_and_down_on_running_daemons() {
    if !privileged_or_skip("show_json_show_all_and_down_on_running_daemons") {
        return;
    }
    let dir = TempDir::new("live");
    // Drop order: daemons and the stale socket first (declared last), then the namespace.
    let ns = Netns::new();
    let (if1, if2, if_stale) = (
        unique_iface("wgo"),
        unique_iface("wgo"),
        unique_iface("wgo"),
    );
    let mut d1 = Daemon::start(&ns, &if1, &dir);
    let mut d2 = Daemon::start(&ns, &if2, &dir);
    let stale = StaleSocket::new(&if_stale);

    let own = PrivateKey::generate(&mut OsRng);
    let own_b64 = own.to_base64().to_string();
    let psk = PresharedKey::generate(&mut OsRng);
    let psk_b64 = psk.to_base64().to_string();
    let (peer_a, peer_b) = (b64_public(), b64_public());
    let conf = format!(
        "[Interface]\nPrivateKey = {own_b64}\nListenPort = 51820\nFwMark = 0x1234\n\n\
         [Peer]\nPublicKey = {peer_a}\nPresharedKey = {psk_b64}\n\
         AllowedIPs = 198.19.0.2/32, 2001:db8:1::2/128\nEndpoint = 198.18.0.2:51820\n\
         PersistentKeepalive = 25\n\n\
         [Peer]\nPublicKey = {peer_b}\nAllowedIPs = 198.19.0.3/32\n"
    );
    let conf_path = dir.file("wgo.conf", &conf, 0o600);
    ns.run(&["wg", "setconf", &if1, &conf_path]);
    let secrets = [
        own_b64.clone(),
        own.to_hex().to_string(),
        psk_b64.clone(),
        psk.to_hex().to_string(),
    ];
    let no_secret = |what: &str, text: &str| {
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "{what} shows a secret key:\n{text}"
            );
        }
    };

    // Human output, field by field and against `wg show`.
    let t = Instant::now();
    let out = wgd(&["show", &if1]);
    let took_show = t.elapsed();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    no_secret("wgd show", &out.stdout);
    let own_pub = own.public_key().to_base64();
    for line in [
        format!("interface: {if1}\n"),
        format!("  public key: {own_pub}\n"),
        "  private key: (hidden)\n".to_owned(),
        "  listening port: 51820\n".to_owned(),
        "  fwmark: 0x1234\n".to_owned(),
        format!(
            "\npeer: {peer_a}\n  preshared key: (hidden)\n  endpoint: 198.18.0.2:51820\n  \
                 allowed ips: 198.19.0.2/32, 2001:db8:1::2/128\n"
        ),
        "  persistent keepalive: every 25 seconds\n".to_owned(),
        format!("\npeer: {peer_b}\n  allowed ips: 198.19.0.3/32\n"),
    ] {
        assert!(
            out.stdout.contains(&line),
            "missing {line:?} in:\n{}",
            out.stdout
        );
    }
    let wg = run("wg", &["show", &if1]);
    assert_eq!(wg.code, Some(0), "{wg:?}");
    assert_eq!(
        blocks(&out.stdout),
        blocks(&wg.stdout),
        "wgd show vs wg show"
    );

    // JSON, parsed back.
    let out = wgd(&["show", &if1, "--json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    no_secret("wgd show --json", &out.stdout);
    let doc = Json::parse(&out.stdout);
    assert_eq!(doc.keys(), ["interfaces"]);
    let ifs = doc.get("interfaces").arr();
    assert_eq!(ifs.len(), 1);
    let i = &ifs[0];
    assert_eq!(
        i.keys(),
        [
            "counters",
            "fwmark",
            "listen_port",
            "name",
            "peers",
            "public_key"
        ]
    );
    // The live counters (#13): wgd answers `wgd-stats=1`, so they are an object.
    assert_eq!(i.get("counters").get("rx_bad_source").u64(), 0);
    assert_eq!(i.get("name").str(), if1);
    assert_eq!(i.get("public_key").str(), own_pub);
    assert_eq!(i.get("listen_port").u64(), 51820);
    assert_eq!(i.get("fwmark").u64(), 0x1234);
    let peers = i.get("peers").arr();
    assert_eq!(peers.len(), 2);
    let by_key: BTreeMap<&str, &Json> = peers
        .iter()
        .map(|p| (p.get("public_key").str(), p))
        .collect();
    let a = by_key[peer_a.as_str()];
    assert_eq!(
        a.keys(),
        [
            "allowed_ips",
            "counters",
            "endpoint",
            "has_preshared_key",
            "latest_handshake",
            "persistent_keepalive",
            "public_key",
            "rx_bytes",
            "tx_bytes"
        ]
    );
    assert_eq!(a.get("counters").get("replayed").u64(), 0);
    assert_eq!(a.get("has_preshared_key"), &Json::Bool(true));
    assert_eq!(a.get("endpoint").str(), "198.18.0.2:51820");
    let ips: Vec<&str> = a.get("allowed_ips").arr().iter().map(Json::str).collect();
    assert_eq!(ips, ["198.19.0.2/32", "2001:db8:1::2/128"]);
    assert_eq!(a.get("persistent_keepalive").u64(), 25);
    assert_eq!(
        a.get("latest_handshake"),
        &Json::Null,
        "no peer to shake hands with"
    );
    assert_eq!(a.get("rx_bytes").u64(), 0);
    let _ = a.get("tx_bytes").u64(); // initiations to an unreachable endpoint may count
    let b = by_key[peer_b.as_str()];
    assert_eq!(b.get("has_preshared_key"), &Json::Bool(false));
    assert_eq!(b.get("endpoint"), &Json::Null);
    assert_eq!(b.get("persistent_keepalive"), &Json::Null);
    assert_eq!(b.get("latest_handshake"), &Json::Null);
    assert_eq!((b.get("rx_bytes").u64(), b.get("tx_bytes").u64()), (0, 0));

    // Every interface: ours are there (other test binaries may run daemons of their own, which
    // come and go; their errors are not ours), the stale socket is skipped and left in place.
    let out = wgd(&["show"]);
    no_secret("wgd show (all)", &out.stdout);
    for iface in [&if1, &if2] {
        assert!(
            out.stdout.contains(&format!("interface: {iface}\n")),
            "{out:?}"
        );
        assert!(!out.stderr.contains(iface.as_str()), "{out:?}");
    }
    assert!(
        out.stdout
            .contains(&format!("interface: {if2}\n  listening port: ")),
        "an unconfigured daemon shows no key: {out:?}"
    );
    assert!(
        !out.stdout.contains(&if_stale) && !out.stderr.contains(&if_stale),
        "{out:?}"
    );
    // Any `wg` run on the machine (other tests run `wg` and `wg-quick`) removes sockets that
    // refuse connections, so one disappearance proves nothing: `wgd show` must leave it at
    // least once in three tries.
    let left_in_place = (0..3).any(|_| {
        stale.recreate();
        let out = wgd(&["show"]);
        assert!(!out.stdout.contains(&if_stale) && !out.stderr.contains(&if_stale));
        stale.0.exists()
    });
    assert!(left_in_place, "wgd show removes stale sockets");
    let out = wgd(&["show", "--json"]);
    let doc = Json::parse(&out.stdout);
    let names: Vec<&str> = doc
        .get("interfaces")
        .arr()
        .iter()
        .map(|i| i.get("name").str())
        .collect();
    assert!(
        names.contains(&if1.as_str()) && names.contains(&if2.as_str()),
        "{names:?}"
    );
    assert!(!names.contains(&if_stale.as_str()));
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "interfaces sorted by name");
    let i2 = doc
        .get("interfaces")
        .arr()
        .iter()
        .find(|i| i.get("name").str() == if2)
        .unwrap();
    assert_eq!(i2.get("public_key"), &Json::Null);
    assert_eq!(i2.get("fwmark"), &Json::Null);
    assert_eq!(i2.get("peers").arr().len(), 0);

    // A stale socket: `down` and `show` say so.
    for args in [["down", if_stale.as_str()], ["show", if_stale.as_str()]] {
        stale.recreate();
        let out = wgd(&args);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(
            out.stderr
                .starts_with(&format!("wgd: interface {if_stale} is not running (")),
            "{out:?}"
        );
    }

    // Down: our child exits with status 0, its socket and interface are gone, quickly.
    let t = Instant::now();
    let out = wgd(&["down", &if1]);
    let took_down = t.elapsed();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
    let (status, after) = d1
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("wgd -f {if1} still running {EXIT_TIMEOUT:?} after wgd down"));
    assert!(
        status.success(),
        "wgd -f {if1} exited with {status}: {}",
        d1.log()
    );
    assert!(!socket(&if1).exists(), "socket left behind");
    let link = ns.run_unchecked(&["ip", "link", "show", "dev", &if1]);
    assert!(!link.status.success(), "{if1} still exists after wgd down");
    assert!(d2.try_status().is_none(), "the other daemon must still run");

    // Again: not running.
    let out = wgd(&["down", &if1]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        format!("wgd: interface {if1} is not running (no {WG_RUN_DIR}/{if1}.sock)\n")
    );

    // A large reply (1000 peers, 2000 prefixes, about 250 KB): the same as `wg show`, and
    // every peer in the JSON.
    let mut big = format!(
        "[Interface]\nPrivateKey = {}\n",
        PrivateKey::generate(&mut OsRng).to_base64().as_str()
    );
    for n in 0..1000u32 {
        big += &format!(
            "[Peer]\nPublicKey = {}\nAllowedIPs = 198.18.{}.{}/32, 2001:db8:{n:x}::/48\n",
            b64_public(),
            n / 256,
            n % 256
        );
    }
    let big_path = dir.file("big.conf", &big, 0o600);
    ns.run(&["wg", "setconf", &if2, &big_path]);
    let t = Instant::now();
    let out = wgd(&["show", &if2]);
    let took_big = t.elapsed();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let wg = run("wg", &["show", &if2]);
    assert_eq!(
        blocks(&out.stdout),
        blocks(&wg.stdout),
        "1000 peers: wgd show vs wg show"
    );
    let out = wgd(&["show", &if2, "--json"]);
    let doc = Json::parse(&out.stdout);
    let peers = doc.get("interfaces").arr()[0].get("peers").arr();
    assert_eq!(peers.len(), 1000);
    assert!(peers.iter().all(|p| p.get("allowed_ips").arr().len() == 2));

    let out = wgd(&["down", &if2]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let (status, _) = d2.wait_exit(EXIT_TIMEOUT).expect("second daemon exits");
    assert!(status.success());
    eprintln!(
        "wgd show: {took_show:?}; with 1000 peers: {took_big:?}; wgd down: {took_down:?} \
         (daemon reaped {after:?} after it returned)"
    );
}
