//! `genkey`, `genpsk` and `pubkey`: the same input rules, output and error messages as
//! wireguard-tools' `wg genkey`, `wg genpsk` and `wg pubkey` (`genkey.c`, `pubkey.c`).
//!
//! Secrets never pass through std's buffered stdin/stdout (whose buffers live as long as the
//! process and are never wiped): we read and write duplicates of fds 0 and 1 directly, and every
//! buffer that holds key material is [`Zeroizing`].

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;

use anyhow::Context;
use rand_core::{CryptoRng, OsRng, RngCore};
use wgd::crypto::keys::{KEY_LEN_BASE64, KeyFormatError, PresharedKey, PrivateKey};
use zeroize::Zeroizing;

/// `wg pubkey`'s complaint about anything but whitespace or NUL after the 44 key characters.
#[derive(Debug, thiserror::Error)]
#[error("Trailing characters found after key")]
pub struct TrailingCharactersError;

/// Exactly the text `wg genkey`/`wg genpsk` print, to stderr, before writing the key to a regular
/// file that "other" users have any permission on.
const WORLD_ACCESSIBLE_WARNING: &str = "Warning: writing to world accessible file.\nConsider setting the umask to 077 and trying again.\n";

/// `wgd genkey`: a fresh, clamped private key in base64 on stdout.
pub fn genkey() -> anyhow::Result<()> {
    let mut out = stdout_file()?;
    warn_if_world_accessible(&out);
    let mut rng = CheckedOsRng::default();
    let key = PrivateKey::generate(&mut rng);
    rng.check()?;
    write_key_line(&mut out, &key.to_base64())
}

/// `wgd genpsk`: a fresh preshared key in base64 on stdout.
pub fn genpsk() -> anyhow::Result<()> {
    let mut out = stdout_file()?;
    warn_if_world_accessible(&out);
    let mut rng = CheckedOsRng::default();
    let key = PresharedKey::generate(&mut rng);
    rng.check()?;
    write_key_line(&mut out, &key.to_base64())
}

/// `wgd pubkey`: reads a private key from stdin, prints its public key.
pub fn pubkey() -> anyhow::Result<()> {
    let stdin = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("Unable to read stdin")?;
    let key = read_private_key(File::from(stdin))?;
    let mut out = stdout_file()?;
    write_key_line(&mut out, &key.public_key().to_base64())
}

/// Reads one private key the way `wg pubkey` does:
/// 1. exactly the first 44 bytes are the key; fewer (including a read error) is a format error,
///    so leading whitespace is not skipped but shifts the key into "trailing characters";
/// 2. everything after must be ASCII whitespace (`\t \n \v \f \r` and space) or NUL, up to
///    end of input or a read error (`getc` makes both `EOF`), else "Trailing characters";
/// 3. only then are the 44 bytes checked as a key ("Key is not the correct length or format").
pub fn read_private_key(mut input: impl Read) -> anyhow::Result<PrivateKey> {
    let mut b64 = Zeroizing::new([0u8; KEY_LEN_BASE64]);
    if read_up_to(&mut input, &mut b64[..]) != KEY_LEN_BASE64 {
        return Err(KeyFormatError.into());
    }
    skip_trailing_space(&mut input)?;
    let s = std::str::from_utf8(&b64[..]).map_err(|_| KeyFormatError)?;
    Ok(s.parse::<PrivateKey>()?)
}

/// Fills `buf` from `input` like `fread`: stops early only at end of input or on an error.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
        match input.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    filled
}

/// Consumes the rest of `input`, failing at the first byte that is neither NUL nor whitespace.
fn skip_trailing_space(input: &mut impl Read) -> Result<(), TrailingCharactersError> {
    // Whatever follows the key may be secret too (another key, say).
    let mut buf = Zeroizing::new([0u8; 256]);
    loop {
        let n = match input.read(&mut buf[..]) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(()),
        };
        // read() returns at most buf.len().
        let read = buf.get(..n).unwrap_or_default();
        if !read.iter().all(|&c| c == 0 || is_wg_space(c)) {
            return Err(TrailingCharactersError);
        }
    }
}

/// wireguard-tools' `char_is_space`: `\t`, `\n`, `\v`, `\f`, `\r` and space (C `isspace` in the
/// "C" locale). Not `u8::is_ascii_whitespace`, which leaves out `\v`.
fn is_wg_space(c: u8) -> bool {
    matches!(c, b'\t'..=b'\r' | b' ')
}

/// Stdout as an unbuffered `File` (a duplicate of fd 1), so the key is never copied into std's
/// stdout buffer.
fn stdout_file() -> anyhow::Result<File> {
    let fd = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context("Unable to write to stdout")?;
    Ok(File::from(fd))
}

/// Warns, as `wg genkey` does, if `out` is a regular file with any permission bit for "other"
/// (mode & 0o007): a pipe, a terminal or `/dev/null` never warns, nor does a group-readable file.
/// If `fstat` fails there is no warning, as in `wg`.
fn warn_if_world_accessible(out: &File) {
    let Ok(meta) = out.metadata() else { return };
    if meta.file_type().is_file() && meta.permissions().mode() & 0o007 != 0 {
        let _ = io::stderr().write_all(WORLD_ACCESSIBLE_WARNING.as_bytes());
    }
}

/// Writes `key` and a newline in one `write_all`, from a zeroized buffer.
///
/// Unlike `wg`, which ignores errors from `puts` and exits 0 even when the key went nowhere
/// (e.g. `> /dev/full`), a failed write is an error: a script must not go on with an empty key.
fn write_key_line(out: &mut File, key: &str) -> anyhow::Result<()> {
    let mut line = Zeroizing::new(Vec::with_capacity(key.len() + 1));
    line.extend_from_slice(key.as_bytes());
    line.push(b'\n');
    out.write_all(&line).context("Unable to write to stdout")
}

/// [`OsRng`] that records a failure instead of panicking: `OsRng::fill_bytes` panics if the OS
/// cannot supply randomness, and the key generators only take infallible `fill_bytes`. Check
/// [`CheckedOsRng::check`] after use; on failure the output must be discarded.
#[derive(Default)]
struct CheckedOsRng {
    error: Option<rand_core::Error>,
}

impl CheckedOsRng {
    /// `Err` if any fill failed (`wg` prints `perror("getrandom")` and exits 1).
    fn check(self) -> anyhow::Result<()> {
        match self.error {
            None => Ok(()),
            Some(e) => Err(anyhow::anyhow!("getrandom: {e}")),
        }
    }
}

impl RngCore for CheckedOsRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if let Err(e) = OsRng.try_fill_bytes(dest) {
            self.error.get_or_insert(e);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        OsRng.try_fill_bytes(dest)
    }
}

impl CryptoRng for CheckedOsRng {}

#[cfg(test)]
mod tests {
    use super::*;

    const ZERO_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    /// `printf 'AAAA…A=\n' | wg pubkey` (wireguard-tools v1.0.20210914).
    const ZERO_KEY_PUB: &str = "L+V9o0fNYkMVKNqsX7spBzD/9oSvxM/C7ZCZX1jLO3Q=";

    fn read(input: &[u8]) -> Result<String, String> {
        read_private_key(input)
            .map(|k| k.public_key().to_base64())
            .map_err(|e| e.to_string())
    }

    const FORMAT: &str = "Key is not the correct length or format";
    const TRAILING: &str = "Trailing characters found after key";

    #[test]
    fn reads_like_wg_pubkey() {
        let ok = Ok(ZERO_KEY_PUB.to_string());
        assert_eq!(read(ZERO_KEY.as_bytes()), ok);
        assert_eq!(read(format!("{ZERO_KEY}\n").as_bytes()), ok);
        assert_eq!(
            read(format!("{ZERO_KEY}\r\n \t\x0b\x0c\0\n").as_bytes()),
            ok
        );
        assert_eq!(read(b""), Err(FORMAT.into()));
        assert_eq!(read(&ZERO_KEY.as_bytes()[..43]), Err(FORMAT.into()));
        assert_eq!(
            read(format!("{}\n", &ZERO_KEY[..43]).as_bytes()),
            Err(FORMAT.into())
        );
        assert_eq!(
            read(format!("{ZERO_KEY}x").as_bytes()),
            Err(TRAILING.into())
        );
        assert_eq!(
            read(format!(" {ZERO_KEY}").as_bytes()),
            Err(TRAILING.into())
        );
        assert_eq!(
            read(format!("{ZERO_KEY}\0x").as_bytes()),
            Err(TRAILING.into())
        );
        // The trailing check comes before the key check.
        let bad = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=";
        assert_eq!(read(bad.as_bytes()), Err(FORMAT.into()));
        assert_eq!(read(format!("{bad}x").as_bytes()), Err(TRAILING.into()));
        let mut non_utf8 = ZERO_KEY.as_bytes().to_vec();
        non_utf8[0] = 0xff;
        assert_eq!(read(&non_utf8), Err(FORMAT.into()));
    }

    #[test]
    fn wg_space_is_c_isspace() {
        for c in 0..=255u8 {
            assert_eq!(is_wg_space(c), b"\t\n\x0b\x0c\r ".contains(&c), "{c:#x}");
        }
    }

    #[test]
    fn checked_rng_fills() {
        let mut rng = CheckedOsRng::default();
        let a = PresharedKey::generate(&mut rng);
        let b = PresharedKey::generate(&mut rng);
        assert!(rng.check().is_ok());
        assert_ne!(a, b);
    }
}
