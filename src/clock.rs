//! The clock: maps tokio's [`Instant`] to the [`Time`] of `bgp-fsm`.
//!
//! A [`Time`] is the duration since a base instant taken when the speaker starts. Because the
//! base and `now` both come from tokio's clock, tests that run with
//! `#[tokio::test(start_paused = true)]` get virtual time throughout.

use std::time::Duration;

use bgp_fsm::Time;
use tokio::time::Instant;

/// Converts between tokio instants and session [`Time`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    base: Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        Clock {
            base: Instant::now(),
        }
    }

    /// A clock whose epoch is `base`.
    pub fn starting_at(base: Instant) -> Self {
        Clock { base }
    }

    /// The epoch.
    pub fn base(&self) -> Instant {
        self.base
    }

    /// The current time.
    pub fn now(&self) -> Time {
        Time::from(Instant::now().saturating_duration_since(self.base))
    }

    /// The instant of `t`; a time too far away for the platform becomes about thirty years
    /// from the epoch (a deadline that never comes).
    pub fn instant(&self, t: Time) -> Instant {
        self.base
            .checked_add(t.since_epoch())
            .unwrap_or_else(|| self.base + Duration::from_secs(86_400 * 365 * 30))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn virtual_time_maps_both_ways() {
        let c = Clock::new();
        assert_eq!(c.now(), Time::ZERO);
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(c.now(), Time::from_secs(90));
        assert_eq!(c.instant(Time::from_secs(90)), Instant::now());
        let far = c.instant(Time::from_duration(Duration::MAX));
        assert!(far > Instant::now());
    }
}
