//! The injected clock. The protocol core never reads a clock: every call that needs the time takes
//! a [`Now`], built by the daemon from `std::time::Instant` and `SystemTime`, or by a test.

use std::time::Duration;

/// A point on a monotonic clock, in nanoseconds since an origin the caller chooses.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    /// An instant `nanos` after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }
    /// An instant `d` after the origin (saturating).
    pub fn from_duration(d: Duration) -> Self {
        Instant(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// `self + d`, saturating at the far future.
    pub fn plus(self, d: Duration) -> Self {
        Instant(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
    /// `self - earlier`, or zero if `earlier` is later.
    pub fn since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
    /// The kernel's `wg_birthdate_has_expired`: true once `now >= self + expiration`.
    pub fn has_expired(self, expiration: Duration, now: Instant) -> bool {
        self.plus(expiration) <= now
    }
}

/// The time as the protocol sees it: a monotonic instant for every timer, and the wall clock
/// (since the Unix epoch) only for TAI64N timestamps and `last_handshake_time`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Now {
    /// Monotonic time.
    pub mono: Instant,
    /// Wall-clock time since 1970-01-01 UTC.
    pub wall: Duration,
}

impl Now {
    /// A test/simulation clock: monotonic `mono`, wall clock = `wall_origin + mono`.
    pub fn simulated(mono: Duration, wall_origin: Duration) -> Self {
        Now {
            mono: Instant::from_duration(mono),
            wall: wall_origin + mono,
        }
    }
    /// The same clock `d` later.
    pub fn after(self, d: Duration) -> Self {
        Now {
            mono: self.mono.plus(d),
            wall: self.wall + d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_inclusive_like_the_kernel() {
        let birth = Instant::from_nanos(1_000);
        let exp = Duration::from_nanos(500);
        assert!(!birth.has_expired(exp, Instant::from_nanos(1_499)));
        assert!(birth.has_expired(exp, Instant::from_nanos(1_500)));
    }

    #[test]
    fn saturates() {
        let far = Instant::from_nanos(u64::MAX - 1);
        assert_eq!(far.plus(Duration::from_secs(5)).as_nanos(), u64::MAX);
        assert_eq!(Instant::ZERO.since(far), Duration::ZERO);
    }
}
