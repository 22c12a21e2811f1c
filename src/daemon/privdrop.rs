//! Least privilege: `--user USER[:GROUP]`. Once the interface, the UDP sockets and the UAPI
//! socket exist, the daemon becomes that user and keeps one capability, `CAP_NET_ADMIN`
//! (plus `CAP_NET_BIND_SERVICE` when its listen port is below 1024). See `docs/security.md` for
//! what still works afterwards and what does not.
//!
//! The order matters and is the usual one for a process that keeps capabilities across a
//! change of uid:
//! 1. `PR_SET_KEEPCAPS` so the permitted set survives leaving uid 0;
//! 2. every capability but the kept ones leaves the bounding set (this needs `CAP_SETPCAP`, so
//!    it happens while still root), the ambient set is cleared;
//! 3. `setgroups`, `setresgid`, `setresuid` (all three ids, so none can be switched back);
//! 4. `PR_SET_KEEPCAPS` off; permitted and effective become exactly the kept set; inheritable
//!    and ambient hold `CAP_NET_ADMIN` only, so the `ip` commands `wgd up` runs to undo its
//!    rules at shutdown (and the PreDown/PostDown hooks) keep it;
//! 5. `PR_SET_NO_NEW_PRIVS`: no set-uid binary or file capability can raise anything again;
//! 6. verification: the ids, the five capability sets read back from `/proc/self/status`, and
//!    `setresuid(0, 0, 0)` must fail.
//!
//! Capabilities are per thread: the drop refuses to run if the process has more than one.

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Group, Uid, User};
use std::ffi::CString;

/// Why a privilege drop could not be prepared or done.
#[derive(Debug, thiserror::Error)]
pub enum PrivDropError {
    /// The `--user` value is empty or has an empty part.
    #[error("--user {0:?}: expected USER or USER:GROUP")]
    BadSpec(String),
    /// No such user in the password database.
    #[error("--user: unknown user {0:?}")]
    UnknownUser(String),
    /// No such group in the group database.
    #[error("--user: unknown group {0:?}")]
    UnknownGroup(String),
    /// The user database lookup itself failed.
    #[error("--user: looking up {what} {name:?}: {source}")]
    Lookup {
        /// "user" or "group".
        what: &'static str,
        /// The name looked up.
        name: String,
        /// The error from getpwnam_r/getgrnam_r.
        source: nix::Error,
    },
    /// Dropping to uid 0 would drop nothing.
    #[error("--user {0:?} is root: give an unprivileged user")]
    IsRoot(String),
    /// Only root can change to another user.
    #[error("--user needs wgd to start as root (it runs as uid {0})")]
    NotRoot(u32),
    /// Capabilities are per thread; a second thread would keep them.
    #[error("cannot drop privileges: the process has {0} threads (needs exactly one)")]
    Threads(usize),
    /// A system call failed.
    #[error("dropping privileges: {op}: {source}")]
    Sys {
        /// What was attempted.
        op: &'static str,
        /// The errno.
        source: nix::Error,
    },
    /// A capability set could not be changed.
    #[error("dropping privileges: {op}: {source}")]
    Caps {
        /// What was attempted.
        op: &'static str,
        /// The error from the caps crate.
        source: caps::errors::CapsError,
    },
    /// The state after the drop is not the one asked for.
    #[error("privilege drop did not hold: {0}")]
    Verify(String),
}

/// The user and group to run as, resolved before anything is created (so that an unknown user
/// fails before the interface exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The `--user` value as given.
    pub spec: String,
    /// User id.
    pub uid: u32,
    /// Primary group id (the user's, or GROUP when given).
    pub gid: u32,
    /// Supplementary groups: the user's groups from the group database when no GROUP was
    /// given, otherwise GROUP alone.
    pub groups: Vec<u32>,
}

/// Parses `USER[:GROUP]` (names, or numeric ids) and looks them up.
pub fn resolve(spec: &str) -> Result<Target, PrivDropError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err(PrivDropError::BadSpec(spec.to_string()));
    }
    let lookup_err = |what, source| PrivDropError::Lookup {
        what,
        name: user.to_string(),
        source,
    };
    let entry = match User::from_name(user).map_err(|e| lookup_err("user", e))? {
        Some(u) => Some(u),
        None => match user.parse::<u32>() {
            Ok(n) => User::from_uid(Uid::from_raw(n)).map_err(|e| lookup_err("user", e))?,
            Err(_) => return Err(PrivDropError::UnknownUser(user.to_string())),
        },
    };
    // A numeric uid without a password entry is allowed when a group is given.
    let (uid, user_gid, name) = match (&entry, user.parse::<u32>()) {
        (Some(u), _) => (u.uid.as_raw(), Some(u.gid.as_raw()), Some(u.name.clone())),
        (None, Ok(n)) => (n, None, None),
        (None, Err(_)) => return Err(PrivDropError::UnknownUser(user.to_string())),
    };
    if uid == 0 {
        return Err(PrivDropError::IsRoot(spec.to_string()));
    }
    let (gid, groups) = match group {
        Some(g) => {
            let gid = resolve_group(g)?;
            (gid, vec![gid])
        }
        None => {
            let Some(gid) = user_gid else {
                return Err(PrivDropError::UnknownUser(user.to_string()));
            };
            let groups = match name.as_deref().map(CString::new) {
                Some(Ok(c)) => nix::unistd::getgrouplist(&c, Gid::from_raw(gid))
                    .map_err(|e| lookup_err("the groups of user", e))?
                    .into_iter()
                    .map(Gid::as_raw)
                    .collect(),
                _ => vec![gid],
            };
            (gid, groups)
        }
    };
    if gid == 0 {
        return Err(PrivDropError::IsRoot(spec.to_string()));
    }
    Ok(Target {
        spec: spec.to_string(),
        uid,
        gid,
        groups,
    })
}

fn resolve_group(g: &str) -> Result<u32, PrivDropError> {
    let err = |source| PrivDropError::Lookup {
        what: "group",
        name: g.to_string(),
        source,
    };
    if let Some(gr) = Group::from_name(g).map_err(err)? {
        return Ok(gr.gid.as_raw());
    }
    match g.parse::<u32>() {
        Ok(n) => Ok(n),
        Err(_) => Err(PrivDropError::UnknownGroup(g.to_string())),
    }
}

/// The capabilities kept after the drop for a daemon listening on `listen_port`:
/// `CAP_NET_ADMIN` always (SO_MARK, the forced socket buffers, `wgd up`'s rule removal),
/// `CAP_NET_BIND_SERVICE` only when the port is privileged (below 1024), so that re-binding it
/// keeps working.
pub fn kept_caps(listen_port: u16) -> CapsHashSet {
    let mut keep = CapsHashSet::new();
    keep.insert(Capability::CAP_NET_ADMIN);
    if listen_port != 0 && listen_port < 1024 {
        keep.insert(Capability::CAP_NET_BIND_SERVICE);
    }
    keep
}

/// The capabilities passed on to programs the daemon runs after the drop (inheritable and
/// ambient): `CAP_NET_ADMIN` only.
pub fn inherited_caps() -> CapsHashSet {
    let mut s = CapsHashSet::new();
    s.insert(Capability::CAP_NET_ADMIN);
    s
}

/// A capability set as the bit mask `/proc/PID/status` prints.
pub fn mask(set: &CapsHashSet) -> u64 {
    set.iter().fold(0u64, |m, c| m | c.bitmask())
}

fn sys(op: &'static str) -> impl FnOnce(nix::Error) -> PrivDropError {
    move |source| PrivDropError::Sys { op, source }
}

fn capserr(op: &'static str) -> impl FnOnce(caps::errors::CapsError) -> PrivDropError {
    move |source| PrivDropError::Caps { op, source }
}

/// Becomes `target`, keeping [`kept_caps`]`(listen_port)`, and checks that root cannot be
/// regained. Must run in a single-threaded process that is root.
pub fn drop_privileges(target: &Target, listen_port: u16) -> Result<(), PrivDropError> {
    let euid = nix::unistd::geteuid().as_raw();
    if euid != 0 {
        return Err(PrivDropError::NotRoot(euid));
    }
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1);
    if threads != 1 {
        return Err(PrivDropError::Threads(threads));
    }
    let keep = kept_caps(listen_port);
    let inherit = inherited_caps();

    nix::sys::prctl::set_keepcaps(true).map_err(sys("prctl(PR_SET_KEEPCAPS, 1)"))?;
    drop_bounding_except(&keep)?;
    caps::clear(None, CapSet::Ambient).map_err(capserr("clearing the ambient set"))?;

    let groups: Vec<Gid> = target.groups.iter().copied().map(Gid::from_raw).collect();
    nix::unistd::setgroups(&groups).map_err(sys("setgroups"))?;
    let g = Gid::from_raw(target.gid);
    nix::unistd::setresgid(g, g, g).map_err(sys("setresgid"))?;
    let u = Uid::from_raw(target.uid);
    nix::unistd::setresuid(u, u, u).map_err(sys("setresuid"))?;
    nix::sys::prctl::set_keepcaps(false).map_err(sys("prctl(PR_SET_KEEPCAPS, 0)"))?;

    caps::set(None, CapSet::Permitted, &keep).map_err(capserr("setting the permitted set"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(capserr("setting the effective set"))?;
    caps::set(None, CapSet::Inheritable, &inherit)
        .map_err(capserr("setting the inheritable set"))?;
    for c in &inherit {
        caps::raise(None, CapSet::Ambient, *c).map_err(capserr("raising an ambient capability"))?;
    }
    nix::sys::prctl::set_no_new_privs().map_err(sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;

    verify(target, &keep, &inherit)?;
    tracing::info!(
        uid = target.uid,
        gid = target.gid,
        caps = ?keep,
        "dropped privileges to {}",
        target.spec
    );
    Ok(())
}

/// Drops every capability the kernel knows, except `keep`, from the bounding set. By number
/// (`PR_CAPBSET_DROP` until the kernel says EINVAL), so capabilities newer than the `caps`
/// crate go too.
fn drop_bounding_except(keep: &CapsHashSet) -> Result<(), PrivDropError> {
    let kept = mask(keep);
    for n in 0..64u32 {
        if kept & (1u64 << n) != 0 {
            continue;
        }
        // SAFETY: prctl(PR_CAPBSET_DROP, n) takes two integers and touches no memory.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(n), 0, 0, 0) };
        if r != 0 {
            let e = nix::Error::last();
            if e == nix::Error::EINVAL {
                break; // past the last capability this kernel has
            }
            return Err(PrivDropError::Sys {
                op: "prctl(PR_CAPBSET_DROP)",
                source: e,
            });
        }
    }
    Ok(())
}

/// The capability masks of this process as the kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapMasks {
    /// CapInh.
    pub inheritable: u64,
    /// CapPrm.
    pub permitted: u64,
    /// CapEff.
    pub effective: u64,
    /// CapBnd.
    pub bounding: u64,
    /// CapAmb.
    pub ambient: u64,
    /// NoNewPrivs.
    pub no_new_privs: bool,
}

/// Parses the `Cap*:` and `NoNewPrivs:` lines of a `/proc/PID/status` text.
pub fn parse_status(text: &str) -> CapMasks {
    let mut m = CapMasks::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        let hex = || u64::from_str_radix(v, 16).unwrap_or(u64::MAX);
        match k {
            "CapInh" => m.inheritable = hex(),
            "CapPrm" => m.permitted = hex(),
            "CapEff" => m.effective = hex(),
            "CapBnd" => m.bounding = hex(),
            "CapAmb" => m.ambient = hex(),
            "NoNewPrivs" => m.no_new_privs = v == "1",
            _ => {}
        }
    }
    m
}

fn verify(target: &Target, keep: &CapsHashSet, inherit: &CapsHashSet) -> Result<(), PrivDropError> {
    let fail = |what: String| Err(PrivDropError::Verify(what));
    let r = nix::unistd::getresuid().map_err(sys("getresuid"))?;
    if [r.real, r.effective, r.saved]
        .iter()
        .any(|x| x.as_raw() != target.uid)
    {
        return fail(format!("uids are {r:?}, wanted {}", target.uid));
    }
    let g = nix::unistd::getresgid().map_err(sys("getresgid"))?;
    if [g.real, g.effective, g.saved]
        .iter()
        .any(|x| x.as_raw() != target.gid)
    {
        return fail(format!("gids are {g:?}, wanted {}", target.gid));
    }
    let status = std::fs::read_to_string("/proc/thread-self/status")
        .or_else(|_| std::fs::read_to_string("/proc/self/status"))
        .map_err(|e| PrivDropError::Verify(format!("reading /proc/self/status: {e}")))?;
    let got = parse_status(&status);
    let want = CapMasks {
        inheritable: mask(inherit),
        permitted: mask(keep),
        effective: mask(keep),
        bounding: mask(keep),
        ambient: mask(inherit),
        no_new_privs: true,
    };
    if got != want {
        return fail(format!("capabilities are {got:x?}, wanted {want:x?}"));
    }
    // The saved uid is gone and CAP_SETUID with it: going back must fail.
    let root = Uid::from_raw(0);
    if nix::unistd::setresuid(root, root, root).is_ok() {
        return fail("setresuid(0, 0, 0) succeeded".to_string());
    }
    if caps::raise(None, CapSet::Effective, Capability::CAP_SETUID).is_ok() {
        return fail("CAP_SETUID could be raised again".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_errors_are_typed() {
        assert!(matches!(resolve(""), Err(PrivDropError::BadSpec(_))));
        assert!(matches!(resolve(":x"), Err(PrivDropError::BadSpec(_))));
        assert!(matches!(resolve("nobody:"), Err(PrivDropError::BadSpec(_))));
        assert!(matches!(
            resolve("no-such-user-wgd-test"),
            Err(PrivDropError::UnknownUser(_))
        ));
        assert!(matches!(
            resolve("nobody:no-such-group-wgd-test"),
            Err(PrivDropError::UnknownGroup(_))
        ));
        assert!(matches!(resolve("root"), Err(PrivDropError::IsRoot(_))));
        assert!(matches!(resolve("0"), Err(PrivDropError::IsRoot(_))));
        let e = resolve("no-such-user-wgd-test").unwrap_err().to_string();
        assert!(e.contains("unknown user"), "{e}");
    }

    #[test]
    fn nobody_resolves() {
        // Debian and most distributions have `nobody` (65534).
        let Ok(t) = resolve("nobody") else {
            return;
        };
        assert_ne!(t.uid, 0);
        assert_ne!(t.gid, 0);
        assert!(t.groups.contains(&t.gid));
        let by_number = resolve(&t.uid.to_string()).unwrap();
        assert_eq!((by_number.uid, by_number.gid), (t.uid, t.gid));
        let with_group = resolve(&format!("nobody:{}", t.gid)).unwrap();
        assert_eq!(with_group.groups, vec![t.gid]);
    }

    #[test]
    fn kept_capabilities() {
        assert_eq!(mask(&kept_caps(51820)), 1 << 12);
        assert_eq!(mask(&kept_caps(0)), 1 << 12);
        assert_eq!(mask(&kept_caps(443)), (1 << 12) | (1 << 10));
        assert_eq!(mask(&inherited_caps()), 1 << 12);
    }

    #[test]
    fn status_parsing() {
        let s = "Name:\twgd\nCapInh:\t0000000000001000\nCapPrm:\t0000000000001000\n\
                 CapEff:\t0000000000001000\nCapBnd:\t0000000000001400\n\
                 CapAmb:\t0000000000000000\nNoNewPrivs:\t1\n";
        let m = parse_status(s);
        assert_eq!(m.inheritable, 0x1000);
        assert_eq!(m.bounding, 0x1400);
        assert_eq!(m.ambient, 0);
        assert!(m.no_new_privs);
        assert_eq!(parse_status("CapEff:\tzz\n").effective, u64::MAX);
    }
}
