//! Virtual time: the only clock the state machine knows.
//!
//! `Time` is a [`Duration`] since an epoch of the driver's choosing (typically the moment it
//! started: `Time::from(instant - epoch)`). We chose this over `std::time::Instant` because a
//! session is data that can be read out, compared and restored (DESIGN.md), and tests can
//! build any time they like without a real clock. The library never reads a clock.

use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time: a [`Duration`] since the driver's epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(Duration);

impl Time {
    /// The epoch.
    pub const ZERO: Time = Time(Duration::ZERO);

    /// The time `d` after the epoch.
    pub const fn from_duration(d: Duration) -> Self {
        Time(d)
    }

    /// The time `s` seconds after the epoch.
    pub const fn from_secs(s: u64) -> Self {
        Time(Duration::from_secs(s))
    }

    /// The time `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Time(Duration::from_millis(ms))
    }

    /// How long after the epoch this is.
    pub const fn since_epoch(self) -> Duration {
        self.0
    }

    /// The time elapsed since `earlier`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl From<Duration> for Time {
    fn from(d: Duration) -> Self {
        Time(d)
    }
}

impl Add<Duration> for Time {
    type Output = Time;

    /// Saturates at the largest representable time instead of overflowing.
    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d))
    }
}

impl Sub<Time> for Time {
    type Output = Duration;

    /// Saturates at zero.
    fn sub(self, earlier: Time) -> Duration {
        self.saturating_since(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Time::from_secs(5);
        assert_eq!(t + Duration::from_secs(2), Time::from_secs(7));
        assert_eq!(Time::from_secs(7) - t, Duration::from_secs(2));
        assert_eq!(t - Time::from_secs(7), Duration::ZERO);
        assert_eq!(
            Time::from_duration(Duration::MAX) + Duration::from_secs(1),
            Time::from_duration(Duration::MAX)
        );
    }
}
