//! `wgd genkey`, `wgd genpsk` and `wgd pubkey` against wireguard-tools' `wg`: same keys, same
//! output format, same exit codes, same error text (with `wgd:` for `wg:`), same warning.
//!
//! Tests that need `wg` skip loudly without it, or fail with `CI=true`. The others pin down the
//! behaviour recorded from wireguard-tools v1.0.20210914 (Debian 12), so they still check
//! something where `wg` is missing.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use wgd::crypto::keys::{KEY_LEN_BASE64, decode_base64_key};

const WGD: &str = env!("CARGO_BIN_EXE_wgd");

const FORMAT_ERROR: &str = "Key is not the correct length or format";
const TRAILING_ERROR: &str = "Trailing characters found after key";
const WORLD_ACCESSIBLE_WARNING: &str = "Warning: writing to world accessible file.\nConsider setting the umask to 077 and trying again.\n";

/// The all-zero private key and its public key, as `wg pubkey` prints it.
const ZERO_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const ZERO_KEY_PUB: &str = "L+V9o0fNYkMVKNqsX7spBzD/9oSvxM/C7ZCZX1jLO3Q=";

#[derive(Debug, PartialEq, Eq)]
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `program args` with `input` on stdin and stdout/stderr captured.
fn run(program: &str, args: &[&str], input: &[u8]) -> Output {
    run_to(program, args, input, Stdio::piped())
}

/// Runs `program args` with `input` on stdin, `stdout` as its stdout, stderr captured.
fn run_to(program: &str, args: &[&str], input: &[u8], stdout: Stdio) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    // A writer thread so a large input cannot deadlock against captured output. The child may
    // exit before reading everything (e.g. at the first trailing character): ignore EPIPE.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for child");
    writer.join().expect("stdin writer thread");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn wgd(args: &[&str], input: &[u8]) -> Output {
    run(WGD, args, input)
}

fn wg(args: &[&str], input: &[u8]) -> Output {
    run("wg", args, input)
}

/// True if `wg` can be run. If not: with `CI=true`, panics; otherwise prints a loud
/// `SKIPPED <test>` to the process's stderr (not through libtest's capture) and returns false.
fn wg_or_skip(test: &str) -> bool {
    let reason = match Command::new("wg").arg("--version").output() {
        Ok(o) if o.status.success() => return true,
        Ok(o) => format!("`wg --version` failed with {}", o.status),
        Err(e) => format!("`wg` cannot be run: {e}"),
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: CI=true but {reason}; CI must install wireguard-tools (see .ci/run)");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n==================== SKIPPED {test}: {reason} ====================\n"
    );
    false
}

/// `wg`'s stderr as `wgd` should print it: `wg: ` at the start of a line becomes `wgd: `.
fn as_wgd_stderr(wg_stderr: &str) -> String {
    wg_stderr
        .split_inclusive('\n')
        .map(|line| match line.strip_prefix("wg: ") {
            Some(rest) => format!("wgd: {rest}"),
            None => line.to_string(),
        })
        .collect()
}

/// Runs `wg args` and `wgd args` on the same input and asserts the same exit code, stdout and
/// (modulo the program name) stderr. Returns `wgd`'s output.
fn assert_same_as_wg(what: &str, args: &[&str], input: &[u8]) -> Output {
    let theirs = wg(args, input);
    let ours = wgd(args, input);
    assert_eq!(
        ours.code, theirs.code,
        "{what}: exit code; wg {theirs:?}, wgd {ours:?}"
    );
    assert_eq!(ours.stdout, theirs.stdout, "{what}: stdout");
    assert_eq!(ours.stderr, as_wgd_stderr(&theirs.stderr), "{what}: stderr");
    ours
}

/// Checks that `line` is one base64 key and a newline, and returns the key.
fn key_line(what: &str, line: &str) -> String {
    assert_eq!(line.len(), KEY_LEN_BASE64 + 1, "{what}: {line:?}");
    let key = line
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("{what}: no newline: {line:?}"));
    assert!(key.ends_with('='), "{what}: {key:?}");
    assert!(decode_base64_key(key).is_ok(), "{what}: not a key: {key:?}");
    key.to_string()
}

fn wgd_key(cmd: &str) -> String {
    let out = wgd(&[cmd], b"");
    assert_eq!(out.code, Some(0), "wgd {cmd}: {out:?}");
    assert_eq!(out.stderr, "", "wgd {cmd}");
    key_line(&format!("wgd {cmd}"), &out.stdout)
}

/// A file under the target's temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, mode: u32) -> (Self, File) {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cli_keys-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create temp file");
        // Set after creation, so the umask does not interfere.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .expect("chmod temp file");
        (TempFile(path), file)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn wgd_genkey_then_wgd_pubkey_matches_wg_pubkey() {
    if !wg_or_skip("wgd_genkey_then_wgd_pubkey_matches_wg_pubkey") {
        return;
    }
    for _ in 0..4 {
        let private = wgd_key("genkey");
        let input = format!("{private}\n");
        let ours = wgd(&["pubkey"], input.as_bytes());
        let theirs = wg(&["pubkey"], input.as_bytes());
        assert_eq!(ours.code, Some(0), "{ours:?}");
        assert_eq!(theirs.code, Some(0), "{theirs:?}");
        key_line("wgd pubkey", &ours.stdout);
        assert_eq!(ours.stdout, theirs.stdout, "public key of {private}");
        assert_ne!(ours.stdout, input, "public key equals private key");
    }
}

#[test]
fn wg_genkey_then_wgd_pubkey_matches_wg_pubkey() {
    if !wg_or_skip("wg_genkey_then_wgd_pubkey_matches_wg_pubkey") {
        return;
    }
    for _ in 0..4 {
        let generated = wg(&["genkey"], b"");
        assert_eq!(generated.code, Some(0), "{generated:?}");
        let private = key_line("wg genkey", &generated.stdout);
        assert_same_as_wg(
            &format!("pubkey of {private}"),
            &["pubkey"],
            generated.stdout.as_bytes(),
        );
    }
}

#[test]
fn wgd_pubkey_of_wg_genpsk_output_matches_wg() {
    // An unclamped 32-byte value is still a valid private key for `wg pubkey`.
    if !wg_or_skip("wgd_pubkey_of_wg_genpsk_output_matches_wg") {
        return;
    }
    let psk = wg(&["genpsk"], b"");
    assert_eq!(psk.code, Some(0), "{psk:?}");
    assert_same_as_wg("pubkey of a psk", &["pubkey"], psk.stdout.as_bytes());
}

#[test]
fn genkey_prints_one_clamped_key_and_newline() {
    for _ in 0..8 {
        let key = wgd_key("genkey");
        let bytes = decode_base64_key(&key).expect("valid key");
        assert_eq!(bytes[0] & 7, 0, "{key} not clamped");
        assert_eq!(bytes[31] & 0xc0, 0x40, "{key} not clamped");
    }
}

#[test]
fn genpsk_prints_one_key_and_newline() {
    let out = wgd(&["genpsk"], b"");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    assert_eq!(out.stdout.len(), 45, "{:?}", out.stdout);
    assert!(out.stdout.ends_with("=\n"), "{:?}", out.stdout);
    key_line("wgd genpsk", &out.stdout);
}

#[test]
fn keys_differ_between_runs() {
    let keys: Vec<String> = ["genkey", "genkey", "genkey", "genpsk", "genpsk", "genpsk"]
        .iter()
        .map(|cmd| wgd_key(cmd))
        .collect();
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            assert_ne!(a, b, "two runs printed the same key");
        }
    }
}

/// Recorded from `wg` v1.0.20210914, so checked even where `wg` is not installed.
#[test]
fn pubkey_known_answers() {
    let ok = format!("{ZERO_KEY_PUB}\n");
    for (input, stdout, stderr) in [
        (format!("{ZERO_KEY}\n"), ok.as_str(), ""),
        (ZERO_KEY.to_string(), ok.as_str(), ""),
        (format!("{ZERO_KEY}\r\n\t \x0b\x0c\0\n"), ok.as_str(), ""),
        (String::new(), "", FORMAT_ERROR),
        (format!("{}\n", &ZERO_KEY[..43]), "", FORMAT_ERROR),
        (format!("{}A\n", &ZERO_KEY[..43]), "", FORMAT_ERROR),
        (
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n".to_string(),
            "",
            FORMAT_ERROR,
        ),
        (format!("{ZERO_KEY}x"), "", TRAILING_ERROR),
        (format!(" {ZERO_KEY}\n"), "", TRAILING_ERROR),
        (format!("{ZERO_KEY}\n{ZERO_KEY}\n"), "", TRAILING_ERROR),
        (
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=x".to_string(),
            "",
            TRAILING_ERROR,
        ),
    ] {
        let out = wgd(&["pubkey"], input.as_bytes());
        let want_stderr = if stderr.is_empty() {
            String::new()
        } else {
            format!("wgd: {stderr}\n")
        };
        let want = Output {
            code: Some(if stderr.is_empty() { 0 } else { 1 }),
            stdout: stdout.to_string(),
            stderr: want_stderr,
        };
        assert_eq!(out, want, "input {input:?}");
    }
}

#[test]
fn pubkey_bad_and_odd_input_matches_wg() {
    if !wg_or_skip("pubkey_bad_and_odd_input_matches_wg") {
        return;
    }
    let good = wgd_key("genkey");
    let g = good.as_str();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("only a newline", b"\n".to_vec()),
        ("only whitespace", b" \t\n\n   \n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n".to_vec()),
        ("43 chars", g.as_bytes()[..43].to_vec()),
        ("43 chars and newline", format!("{}\n", &g[..43]).into_bytes()),
        ("no padding", format!("{}A\n", &g[..43]).into_bytes()),
        ("45 chars", format!("{g}=\n").into_bytes()),
        ("no newline", g.as_bytes().to_vec()),
        ("CRLF", format!("{g}\r\n").into_bytes()),
        ("trailing whitespace", format!("{g} \t\x0b\x0c\r\n\n  ").into_bytes()),
        ("trailing NULs", format!("{g}\0\0\n").into_bytes()),
        ("trailing garbage", format!("{g}x").into_bytes()),
        ("garbage on the next line", format!("{g}\nx\n").into_bytes()),
        ("garbage after NUL", format!("{g}\0x").into_bytes()),
        ("garbage after lots of space", format!("{g}{}x", " ".repeat(10_000)).into_bytes()),
        ("two keys", format!("{g}\n{g}\n").into_bytes()),
        ("leading space", format!(" {g}\n").into_bytes()),
        ("leading newline", format!("\n{g}\n").into_bytes()),
        ("comment after key", format!("{g} # mine\n").into_bytes()),
        ("NUL inside", format!("{}\0{}\n", &g[..4], &g[5..]).into_bytes()),
        ("space inside", format!("{} {}\n", &g[..4], &g[5..]).into_bytes()),
        ("non-UTF-8 byte", [&[0xffu8][..], &g.as_bytes()[1..], b"\n"].concat()),
        ("URL-safe alphabet", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-E=\n".as_bytes().to_vec()),
        ("'==' padding", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n".as_bytes().to_vec()),
        ("'=' in the middle", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA=AAAAAAAAAAAAAE=\n".as_bytes().to_vec()),
        ("non-canonical last char", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n".as_bytes().to_vec()),
        ("non-canonical with garbage", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=x".as_bytes().to_vec()),
        ("canonical last char", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=\n".as_bytes().to_vec()),
        ("all-zero key", format!("{ZERO_KEY}\n").into_bytes()),
        ("all-ones key", "//////////////////////////////////////////8=\n".as_bytes().to_vec()),
    ];
    for (what, input) in &cases {
        assert_same_as_wg(what, &["pubkey"], input);
    }
}

/// Every character at the last data position (where canonical base64 must have zero low bits),
/// plus some that are not base64 at all.
#[test]
fn pubkey_last_data_character_matches_wg() {
    if !wg_or_skip("pubkey_last_data_character_matches_wg") {
        return;
    }
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let prefix = &ZERO_KEY.as_bytes()[..42];
    let mut accepted = 0;
    for &c in alphabet.iter().chain(b"-_=.* \0\x7f\x80") {
        let input = [prefix, &[c], b"=\n"].concat();
        let out = assert_same_as_wg(&format!("last char {:?}", c as char), &["pubkey"], &input);
        accepted += usize::from(out.code == Some(0));
    }
    // Only A, E, I, ... (low two bits clear) are canonical: 16 of 64.
    assert_eq!(accepted, 16);
}

/// `wg genkey`/`genpsk` warn iff stdout is a regular file with any "other" permission bit
/// (`S_ISREG && mode & S_IRWXO`); group bits do not count, `pubkey` never warns. The key is
/// written either way.
#[test]
fn world_accessible_warning_matches_wg() {
    let with_wg = wg_or_skip("world_accessible_warning_matches_wg (wg half)");
    for mode in [
        0o600, 0o640, 0o660, 0o700, 0o770, 0o400, 0o000, 0o644, 0o604, 0o602, 0o601, 0o666, 0o707,
        0o004,
    ] {
        for cmd in ["genkey", "genpsk", "pubkey"] {
            let want = if cmd != "pubkey" && mode & 0o007 != 0 {
                WORLD_ACCESSIBLE_WARNING
            } else {
                ""
            };
            let input = format!("{ZERO_KEY}\n");
            let programs: &[&str] = if with_wg { &[WGD, "wg"] } else { &[WGD] };
            for &program in programs {
                let what = format!("{program} {cmd} > file with mode {mode:03o}");
                let (tmp, file) = TempFile::new(&format!("{cmd}-{mode:o}"), mode);
                let out = run_to(program, &[cmd], input.as_bytes(), Stdio::from(file));
                assert_eq!(out.code, Some(0), "{what}: {out:?}");
                assert_eq!(out.stderr, want, "{what}");
                let written = std::fs::read_to_string(&tmp.0).expect("read back");
                key_line(&what, &written);
            }
        }
    }
    // Not regular files: never a warning.
    for cmd in ["genkey", "genpsk"] {
        let devnull = File::options()
            .write(true)
            .open("/dev/null")
            .expect("/dev/null");
        let out = run_to(WGD, &[cmd], b"", Stdio::from(devnull));
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (Some(0), ""),
            "{cmd} > /dev/null"
        );
        let out = wgd(&[cmd], b"");
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (Some(0), ""),
            "{cmd} | pipe"
        );
    }
}

/// `wg` exits 1 on usage errors (printing only `Usage: wg genkey`); `wgd` prints clap's usage
/// error but also exits 1, so scripts see the same status.
#[test]
fn usage_errors_exit_1_like_wg() {
    let with_wg = wg_or_skip("usage_errors_exit_1_like_wg (wg half)");
    for args in [
        &["genkey", "extra"][..],
        &["genpsk", "extra"],
        &["pubkey", "extra"],
        &["genkey", "--bogus"],
    ] {
        let ours = wgd(args, b"");
        assert_eq!(ours.code, Some(1), "wgd {args:?}: {ours:?}");
        assert_eq!(ours.stdout, "", "wgd {args:?}");
        assert!(ours.stderr.contains("Usage: wgd"), "wgd {args:?}: {ours:?}");
        if with_wg {
            let theirs = wg(args, b"");
            assert_eq!(theirs.code, Some(1), "wg {args:?}: {theirs:?}");
        }
    }
    // (A bare word is an interface name, as with wireguard-go: `wgd IFACE` is what wg-quick
    // runs. So usage errors are unknown flags and extra arguments.)
    let ours = wgd(&["--no-such-flag"], b"");
    assert_eq!(ours.code, Some(1), "{ours:?}");
    let ours = wgd(&["genkey", "extra"], b"");
    assert_eq!(ours.code, Some(1), "{ours:?}");
    let ours = wgd(&[], b"");
    assert_eq!(ours.code, Some(1), "{ours:?}");
    assert!(ours.stderr.contains("genkey"), "{ours:?}");
}

#[test]
fn help_lists_the_key_commands() {
    let out = wgd(&["--help"], b"");
    assert_eq!(out.code, Some(0), "{out:?}");
    for cmd in ["genkey", "genpsk", "pubkey"] {
        assert!(
            out.stdout.contains(cmd),
            "--help lacks {cmd}: {}",
            out.stdout
        );
        let sub = wgd(&[cmd, "--help"], b"");
        assert_eq!(sub.code, Some(0), "{cmd} --help: {sub:?}");
        assert!(
            sub.stdout.contains("stdout"),
            "{cmd} --help: {}",
            sub.stdout
        );
    }
}

/// Deliberately unlike `wg`, which ignores `puts` failing and exits 0 with the key lost:
/// `wgd genkey > /dev/full` fails, so a script does not carry on with an empty key file.
#[test]
fn write_failure_is_an_error() {
    let Ok(full) = File::options().write(true).open("/dev/full") else {
        let _ = writeln!(
            std::io::stderr(),
            "\n==================== SKIPPED write_failure_is_an_error: no /dev/full ====================\n"
        );
        return;
    };
    let out = run_to(WGD, &["genkey"], b"", Stdio::from(full));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("wgd: Unable to write to stdout: "),
        "{out:?}"
    );
}
