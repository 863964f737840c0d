//! The session's timers as a small table of deadlines indexed by [`Timer`] (STYLE 3), and the
//! jitter of RFC 4271 §10 from an injected seed.

use std::time::Duration;

use crate::time::Time;

/// Every timer of a session: the RFC 4271 §8 timers, RFC 9687's send hold timer and the
/// graceful-restart timers (the GR ones hold the earliest deadline of their kind over the
/// families; the per-family deadlines live in the GR machine).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// ConnectRetryTimer (RFC 4271 §8).
    ConnectRetry,
    /// HoldTimer (RFC 4271 §4.4, §8).
    Hold,
    /// KeepaliveTimer (RFC 4271 §4.4, §8).
    Keepalive,
    /// DelayOpenTimer (RFC 4271 §8, optional attribute DelayOpen).
    DelayOpen,
    /// IdleHoldTimer (RFC 4271 §8, optional attribute DampPeerOscillations).
    IdleHold,
    /// SendHoldTimer (RFC 9687 §3).
    SendHold,
    /// Our End-of-RIB deferral (RFC 4724 §4.1 selection deferral, seen from the sender).
    Deferral,
    /// The peer's restart time, for families retained after it went down (RFC 4724 §4.2).
    Restart,
    /// The stale-path timer after the peer came back (RFC 4724 §4.2).
    Stale,
    /// The long-lived stale time (RFC 9494 §4.2).
    LlgrStale,
    /// Waiting for the peer's End of Route Refresh (RFC 7313 §4).
    RefreshStale,
}

impl Timer {
    /// Every timer, in table order.
    pub const ALL: [Timer; 11] = [
        Timer::ConnectRetry,
        Timer::Hold,
        Timer::Keepalive,
        Timer::DelayOpen,
        Timer::IdleHold,
        Timer::SendHold,
        Timer::Deferral,
        Timer::Restart,
        Timer::Stale,
        Timer::LlgrStale,
        Timer::RefreshStale,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Whether the graceful-restart machine owns this timer.
    pub fn is_gr(self) -> bool {
        matches!(
            self,
            Timer::Restart | Timer::Stale | Timer::LlgrStale | Timer::RefreshStale
        )
    }
}

/// A table of deadlines, one slot per [`Timer`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timers {
    deadlines: [Option<Time>; Timer::ALL.len()],
}

impl Timers {
    /// Sets (or moves) a timer's deadline.
    pub fn set(&mut self, t: Timer, at: Time) {
        if let Some(slot) = self.deadlines.get_mut(t.index()) {
            *slot = Some(at);
        }
    }

    /// Sets a timer's deadline, or stops it when `at` is `None`.
    pub fn set_opt(&mut self, t: Timer, at: Option<Time>) {
        if let Some(slot) = self.deadlines.get_mut(t.index()) {
            *slot = at;
        }
    }

    /// Stops a timer.
    pub fn stop(&mut self, t: Timer) {
        self.set_opt(t, None);
    }

    /// A timer's deadline, if it runs.
    pub fn deadline(&self, t: Timer) -> Option<Time> {
        self.deadlines.get(t.index()).copied().flatten()
    }

    /// Whether a timer runs.
    pub fn is_running(&self, t: Timer) -> bool {
        self.deadline(t).is_some()
    }

    /// The earliest deadline and its timer.
    pub fn next(&self) -> Option<(Time, Timer)> {
        Timer::ALL
            .into_iter()
            .filter_map(|t| self.deadline(t).map(|d| (d, t)))
            .min()
    }

    /// Every running timer with its deadline.
    pub fn iter(&self) -> impl Iterator<Item = (Timer, Time)> + '_ {
        Timer::ALL
            .into_iter()
            .filter_map(|t| self.deadline(t).map(|d| (t, d)))
    }
}

/// A tiny xorshift64* generator for timer jitter: deterministic from its seed, no `rand`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// A generator from a seed (any value; zero is replaced by a constant).
    pub fn new(seed: u64) -> Self {
        Jitter {
            state: if seed == 0 {
                0x9e37_79b9_7f4a_7c15
            } else {
                seed
            },
        }
    }

    /// The generator's state, to carry it to another process ([`crate::SessionImage`]).
    pub fn state(&self) -> u64 {
        self.state
    }

    /// A generator that continues from a [`Jitter::state`] (zero is replaced as in
    /// [`Jitter::new`]).
    pub fn from_state(state: u64) -> Self {
        Jitter::new(state)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `d` times a random factor between 0.75 and 1.0 (RFC 4271 §10).
    pub fn apply(&mut self, d: Duration) -> Duration {
        let permille = 750 + (self.next_u64() % 251) as u32;
        d * permille / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_gives_the_earliest() {
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Hold, Time::from_secs(9));
        t.set(Timer::Keepalive, Time::from_secs(3));
        assert_eq!(t.next(), Some((Time::from_secs(3), Timer::Keepalive)));
        t.stop(Timer::Keepalive);
        assert_eq!(t.next(), Some((Time::from_secs(9), Timer::Hold)));
        assert_eq!(t.iter().count(), 1);
    }

    #[test]
    fn jitter_stays_within_three_quarters_and_one() {
        let mut j = Jitter::new(42);
        let d = Duration::from_secs(120);
        for _ in 0..1000 {
            let x = j.apply(d);
            assert!(x >= Duration::from_secs(90) && x <= d, "{x:?}");
        }
        let (mut a, mut b) = (Jitter::new(7), Jitter::new(7));
        assert_eq!(a.apply(d), b.apply(d));
    }
}
