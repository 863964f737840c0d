//! The graceful-restart machine of the receiving speaker (RFC 4724 §4.2, RFC 8538, RFC 9494)
//! and the stale marking of enhanced route refresh (RFC 7313 §4), one small machine per
//! known AFI/SAFI beside the session FSM (STYLE 5).
//!
//! The session feeds it four events (session lost, session back, End-of-RIB, BoRR/EoRR) and
//! its timers; it answers with [`Action::RetainStale`], [`Action::PurgeStale`] and
//! [`Action::MarkLlgrStale`], which the RIB carries out. The restarting-speaker side (our R
//! and F bits, our deferred End-of-RIB) is in the session, because it concerns what we send.
//!
//! ```text
//!  receiving speaker, one machine per AFI/SAFI
//!
//!         session lost, GR applies (*)              restart timer fires, no LLGR
//!  Fresh -----------------------------> Retained ---------------------------------> Fresh
//!   |  ^                                  |    \                                    (purge)
//!   |  |                                  |     \ restart timer fires,
//!   |  |                   session back,  |      \ LLGR for the family
//!   |  |                      F bit set   |       v
//!   |  |                                  |    LongLived --- LLGR stale time ---> Fresh
//!   |  |                                  |       |                               (purge)
//!   |  |                                  v       | session back, F bit set
//!   |  +--- End-of-RIB or stale timer --- Stale <-+
//!   |            (purge)
//!   |  BoRR                  EoRR or refresh timer
//!   +------> Refresh ----------------------------------> Fresh (purge)
//!
//!  session back with the F bit clear, the family not negotiated by both sides, or no GR
//!  capability in the new OPEN:  Retained / LongLived --> Fresh (purge at once)
//!
//!  session lost, LLGR for the family but no GR restart time for it:  Fresh --> LongLived
//!
//!  (*) TCP loss; with the N bit on both sides (RFC 8538) also hold timer expiry and any
//!      NOTIFICATION except Cease/Hard Reset. The family must be negotiated by both sides and
//!      listed in the peer's GR capability; Hard Reset, administrative stop and configuration
//!      change never retain.
//! ```
//!
//! Timing rule: once a family's routes went stale, they stay at most the peer's restart time
//! plus our stale time from that moment, however many times the peer restarts in between
//! (a second restart keeps them stale but does not extend their life). Long-lived stale routes
//! are the exception RFC 9494 defines: they live for the long-lived stale time after the
//! restart timer.

use std::time::Duration;

use bgp_wire::{AfiSafi, AfiSafiSet};

use crate::config::GracefulRestartConfig;
use crate::image::{GrFamilyImage, ResumeError};
use crate::negotiated::Negotiated;
use crate::session::Action;
use crate::time::Time;
use crate::timer::{Timer, Timers};

/// Where one family's routes from the peer are, as far as staleness goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Phase {
    /// Nothing stale.
    #[default]
    Fresh,
    /// The session is down; routes kept as stale until the restart timer fires.
    Retained,
    /// The session is back; stale routes wait for End-of-RIB or the stale timer.
    Stale,
    /// Long-lived stale (RFC 9494), after the restart timer.
    LongLived,
    /// Marked stale by the peer's BoRR; waiting for its EoRR (RFC 7313 §4).
    Refresh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
struct FamilyState {
    phase: Phase,
    /// When this phase ends (by the timer of its kind).
    deadline: Option<Time>,
    /// When the routes first went stale, across restarts.
    since: Option<Time>,
    /// The latest a GR-stale route may live: `since` + restart time + stale time.
    cap: Option<Time>,
    /// The long-lived stale time to use when the restart timer fires.
    llgr: Option<Duration>,
}

/// The receiving speaker's graceful-restart state for the four known families.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct GrMachine {
    families: [FamilyState; 4],
}

/// Why a session went down, as far as route retention is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retention {
    /// Keep the routes stale (GR applies to this loss).
    Retain,
    /// Let them go.
    Purge,
}

impl GrMachine {
    /// The phase of a family (unknown families are always fresh).
    pub fn phase(&self, family: AfiSafi) -> Phase {
        self.state(family).map(|s| s.phase).unwrap_or_default()
    }

    /// The deadline of a family's current phase.
    pub fn deadline(&self, family: AfiSafi) -> Option<Time> {
        self.state(family).and_then(|s| s.deadline)
    }

    /// When a family's routes first went stale, if they are stale.
    pub fn stale_since(&self, family: AfiSafi) -> Option<Time> {
        self.state(family).and_then(|s| s.since)
    }

    /// The families that are not fresh.
    pub fn stale_families(&self) -> AfiSafiSet {
        AfiSafi::KNOWN
            .into_iter()
            .filter(|f| self.phase(*f) != Phase::Fresh)
            .collect()
    }

    fn state(&self, f: AfiSafi) -> Option<&FamilyState> {
        self.families.get(f.index()?)
    }

    fn state_mut(&mut self, f: AfiSafi) -> Option<&mut FamilyState> {
        self.families.get_mut(f.index()?)
    }

    fn purge(&mut self, f: AfiSafi, out: &mut Vec<Action>) {
        if let Some(s) = self.state_mut(f) {
            *s = FamilyState::default();
            out.push(Action::PurgeStale(f));
        }
    }

    /// The session left Established. With [`Retention::Retain`], every family that both sides
    /// negotiated and the peer listed in its GR capability is retained for the peer's restart
    /// time, clamped to our bounds (RFC 4724 §4.2); with LLGR and no (or a zero) restart time
    /// it goes long-lived at once (RFC 9494 §4.2). Other families are dropped with the session
    /// (its `SessionDown` purges them).
    pub(crate) fn session_down(
        &mut self,
        now: Time,
        neg: &Negotiated,
        cfg: &GracefulRestartConfig,
        retention: Retention,
        out: &mut Vec<Action>,
    ) {
        let gr_families = neg.peer_gr_families();
        let restart = neg.peer_gr.as_ref().map_or(0, |g| {
            g.restart_time
                .max(cfg.min_restart_time)
                .min(cfg.max_restart_time)
        });
        let restart = Duration::from_secs(u64::from(restart));
        for f in AfiSafi::KNOWN {
            let llgr = neg
                .llgr_stale_time(f)
                .map(|t| Duration::from_secs(u64::from(t.min(cfg.max_llgr_stale_time))));
            let Some(s) = self.state_mut(f) else {
                continue;
            };
            if retention == Retention::Purge || !cfg.enabled {
                // Routes still stale from an earlier restart go with this session too.
                let was_stale = s.phase != Phase::Fresh;
                *s = FamilyState::default();
                if was_stale {
                    out.push(Action::PurgeStale(f));
                }
                continue;
            }
            if gr_families.contains(f) && !restart.is_zero() {
                // A second restart keeps the first moment the routes went stale (routes that
                // came back from long-lived staleness start over: RFC 9494 gave them a life
                // of their own).
                let carried = match s.phase {
                    Phase::Retained | Phase::Stale if s.cap.is_some() => s.since,
                    Phase::Refresh => s.since,
                    _ => None,
                };
                let since = carried.unwrap_or(now);
                let cap = since + restart + cfg.stale_time;
                *s = FamilyState {
                    phase: Phase::Retained,
                    // Routes already past their life go at once (never a deadline in the past).
                    deadline: Some((now + restart).min(cap).max(now)),
                    since: Some(since),
                    cap: Some(cap),
                    llgr,
                };
                out.push(Action::RetainStale(f));
            } else if let Some(ll) = llgr {
                *s = FamilyState {
                    phase: Phase::LongLived,
                    deadline: Some(now + ll),
                    since: Some(s.since.unwrap_or(now)),
                    cap: None,
                    llgr: None,
                };
                out.push(Action::RetainStale(f));
                out.push(Action::MarkLlgrStale(f));
            } else {
                let was_stale = s.phase != Phase::Fresh;
                *s = FamilyState::default();
                if was_stale {
                    out.push(Action::PurgeStale(f));
                }
            }
        }
    }

    /// The session is established again. Retained and long-lived families whose F bit the
    /// peer set again, in a session that negotiated them and GR, wait for End-of-RIB under
    /// the stale timer; the others are purged at once (RFC 4724 §4.2: F bit clear, family
    /// missing, or no GR capability; RFC 9494 §4.2 for the LLGR F bit).
    pub(crate) fn session_up(
        &mut self,
        now: Time,
        neg: &Negotiated,
        cfg: &GracefulRestartConfig,
        out: &mut Vec<Action>,
    ) {
        for f in AfiSafi::KNOWN {
            let phase = self.phase(f);
            let negotiated = neg.families.contains(f);
            let keep = match phase {
                Phase::Retained => {
                    negotiated && neg.graceful_restart() && neg.peer_forwarding_state(f)
                }
                Phase::LongLived => {
                    negotiated
                        && (neg.peer_llgr_forwarding_state(f)
                            || (neg.graceful_restart() && neg.peer_forwarding_state(f)))
                }
                Phase::Fresh => continue,
                // Cannot be pending while the session was down; start afresh.
                Phase::Stale | Phase::Refresh => false,
            };
            if !keep {
                self.purge(f, out);
                continue;
            }
            if let Some(s) = self.state_mut(f) {
                let end = now + cfg.stale_time;
                s.deadline = Some(match (phase, s.cap) {
                    (Phase::Retained, Some(cap)) => end.min(cap),
                    _ => end,
                });
                s.phase = Phase::Stale;
            }
        }
    }

    /// End-of-RIB from the peer: what is still stale in that family goes (RFC 4724 §4.2).
    pub(crate) fn end_of_rib(&mut self, f: AfiSafi, out: &mut Vec<Action>) {
        if self.phase(f) == Phase::Stale {
            self.purge(f, out);
        }
    }

    /// The peer's BoRR: mark the family's routes stale until its EoRR (RFC 7313 §4). A family
    /// still stale from a restart is left to the GR timers.
    pub(crate) fn begin_refresh(
        &mut self,
        now: Time,
        f: AfiSafi,
        cfg: &GracefulRestartConfig,
        out: &mut Vec<Action>,
    ) {
        let Some(s) = self.state_mut(f) else {
            return;
        };
        if !matches!(s.phase, Phase::Fresh | Phase::Refresh) {
            return;
        }
        let since = if s.phase == Phase::Refresh {
            s.since.unwrap_or(now)
        } else {
            now
        };
        *s = FamilyState {
            phase: Phase::Refresh,
            deadline: Some(now + cfg.refresh_stale_time),
            since: Some(since),
            cap: None,
            llgr: None,
        };
        out.push(Action::RetainStale(f));
    }

    /// The peer's EoRR: what it did not re-send goes (RFC 7313 §4).
    pub(crate) fn end_refresh(&mut self, f: AfiSafi, out: &mut Vec<Action>) {
        if self.phase(f) == Phase::Refresh {
            self.purge(f, out);
        }
    }

    /// Everything stale goes (administrative stop, Hard Reset).
    pub(crate) fn purge_all(&mut self, out: &mut Vec<Action>) {
        for f in AfiSafi::KNOWN {
            if self.phase(f) != Phase::Fresh {
                self.purge(f, out);
            }
        }
    }

    /// Runs every per-family deadline at or before `now`.
    pub(crate) fn handle_timeout(&mut self, now: Time, out: &mut Vec<Action>) {
        for f in AfiSafi::KNOWN {
            let Some(s) = self.state_mut(f) else {
                continue;
            };
            if s.deadline.is_none_or(|d| d > now) {
                continue;
            }
            match (s.phase, s.llgr) {
                // RFC 9494 §4.2: the restart timer ran out; go long-lived instead of purging.
                (Phase::Retained, Some(ll)) => {
                    s.phase = Phase::LongLived;
                    s.deadline = Some(now + ll);
                    s.cap = None;
                    s.llgr = None;
                    out.push(Action::MarkLlgrStale(f));
                }
                _ => self.purge(f, out),
            }
        }
    }

    /// Every family that is not in its default state, with times relative to `now`.
    pub(crate) fn image(&self, now: Time) -> Vec<GrFamilyImage> {
        AfiSafi::KNOWN
            .into_iter()
            .filter_map(|f| {
                let s = self.state(f)?;
                (*s != FamilyState::default()).then(|| GrFamilyImage {
                    family: f,
                    phase: s.phase,
                    remaining: s.deadline.map(|d| d.saturating_since(now)),
                    stale_for: s.since.map(|t| now.saturating_since(t)),
                    cap_remaining: s.cap.map(|d| d.saturating_since(now)),
                    llgr: s.llgr,
                })
            })
            .collect()
    }

    /// The machine an image describes, its times made absolute from `now` (a moment before
    /// the epoch is clamped to it).
    pub(crate) fn from_image(now: Time, families: &[GrFamilyImage]) -> Result<Self, ResumeError> {
        let mut g = GrMachine::default();
        let mut seen = AfiSafiSet::EMPTY;
        for i in families {
            if seen.contains(i.family) || !seen.insert(i.family) {
                return Err(ResumeError::GrFamily(i.family));
            }
            let s = g
                .state_mut(i.family)
                .ok_or(ResumeError::GrFamily(i.family))?;
            *s = FamilyState {
                phase: i.phase,
                deadline: i.remaining.map(|d| now + d),
                since: i
                    .stale_for
                    .map(|d| Time::from_duration(now.since_epoch().saturating_sub(d))),
                cap: i.cap_remaining.map(|d| now + d),
                llgr: i.llgr,
            };
        }
        Ok(g)
    }

    /// Writes the earliest deadline of each kind into the session's timer table.
    pub(crate) fn sync_timers(&self, timers: &mut Timers) {
        let earliest = |phase| {
            self.families
                .iter()
                .filter(|s| s.phase == phase)
                .filter_map(|s| s.deadline)
                .min()
        };
        timers.set_opt(Timer::Restart, earliest(Phase::Retained));
        timers.set_opt(Timer::Stale, earliest(Phase::Stale));
        timers.set_opt(Timer::LlgrStale, earliest(Phase::LongLived));
        timers.set_opt(Timer::RefreshStale, earliest(Phase::Refresh));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp_wire::Open;
    use bgp_wire::capability::{
        Capability, GracefulRestart, GracefulRestartFamily, LlgrFamily, LongLivedGracefulRestart,
    };
    use std::net::Ipv4Addr;

    const V4: AfiSafi = AfiSafi::IPV4_UNICAST;
    const V6: AfiSafi = AfiSafi::IPV6_UNICAST;

    fn gr_cap(restart: u16, fams: &[(AfiSafi, bool)]) -> Capability {
        Capability::GracefulRestart(GracefulRestart {
            flags: GracefulRestart::NOTIFICATION,
            restart_time: restart,
            families: fams
                .iter()
                .map(|(f, fwd)| GracefulRestartFamily::new(*f, *fwd))
                .collect(),
        })
    }

    fn llgr_cap(fams: &[AfiSafi], stale: u32) -> Capability {
        Capability::LongLivedGracefulRestart(LongLivedGracefulRestart {
            families: fams
                .iter()
                .map(|f| LlgrFamily {
                    afi_safi: *f,
                    flags: LlgrFamily::FORWARDING_STATE,
                    stale_time: stale,
                })
                .collect(),
        })
    }

    fn neg(local_extra: Vec<Capability>, peer_extra: Vec<Capability>) -> Negotiated {
        let mp = vec![Capability::Multiprotocol(V4), Capability::Multiprotocol(V6)];
        let mut l = mp.clone();
        l.push(gr_cap(120, &[]));
        l.extend(local_extra);
        let mut p = mp;
        p.extend(peer_extra);
        Negotiated::new(
            &Open::new(bgp_wire::Asn(1), 90, Ipv4Addr::new(1, 1, 1, 1), l),
            &Open::new(bgp_wire::Asn(2), 90, Ipv4Addr::new(2, 2, 2, 2), p),
            None,
        )
    }

    fn t(s: u64) -> Time {
        Time::from_secs(s)
    }

    fn down(g: &mut GrMachine, now: u64, n: &Negotiated) -> Vec<Action> {
        let mut out = vec![];
        g.session_down(
            t(now),
            n,
            &GracefulRestartConfig::default(),
            Retention::Retain,
            &mut out,
        );
        out
    }

    fn up(g: &mut GrMachine, now: u64, n: &Negotiated) -> Vec<Action> {
        let mut out = vec![];
        g.session_up(t(now), n, &GracefulRestartConfig::default(), &mut out);
        out
    }

    fn tick(g: &mut GrMachine, now: u64) -> Vec<Action> {
        let mut out = vec![];
        g.handle_timeout(t(now), &mut out);
        out
    }

    #[test]
    fn rfc4724_4_2_retain_listed_families_for_the_restart_time() {
        let n = neg(vec![], vec![gr_cap(100, &[(V4, true)])]);
        let mut g = GrMachine::default();
        assert_eq!(down(&mut g, 10, &n), vec![Action::RetainStale(V4)]);
        assert_eq!(g.phase(V4), Phase::Retained);
        assert_eq!(g.phase(V6), Phase::Fresh);
        assert_eq!(g.deadline(V4), Some(t(110)));
        let mut timers = Timers::default();
        g.sync_timers(&mut timers);
        assert_eq!(timers.deadline(Timer::Restart), Some(t(110)));
    }

    #[test]
    fn rfc4724_4_2_restart_timer_expiry_purges() {
        let n = neg(vec![], vec![gr_cap(100, &[(V4, true)])]);
        let mut g = GrMachine::default();
        let _ = down(&mut g, 10, &n);
        assert!(tick(&mut g, 109).is_empty());
        assert_eq!(tick(&mut g, 110), vec![Action::PurgeStale(V4)]);
        assert_eq!(g.stale_families(), AfiSafiSet::EMPTY);
    }

    #[test]
    fn rfc4724_4_2_f_bit_clear_on_return_purges_at_once() {
        let n = neg(vec![], vec![gr_cap(100, &[(V4, true), (V6, true)])]);
        let mut g = GrMachine::default();
        let _ = down(&mut g, 0, &n);
        let back = neg(vec![], vec![gr_cap(100, &[(V4, false), (V6, true)])]);
        assert_eq!(up(&mut g, 30, &back), vec![Action::PurgeStale(V4)]);
        assert_eq!(g.phase(V6), Phase::Stale);
        assert_eq!(g.deadline(V6), Some(t(30 + 360)));
    }

    #[test]
    fn rfc4724_4_2_family_missing_or_no_gr_on_return_purges() {
        let n = neg(vec![], vec![gr_cap(100, &[(V4, true), (V6, true)])]);
        let mut g = GrMachine::default();
        let _ = down(&mut g, 0, &n);
        let back = neg(vec![], vec![gr_cap(100, &[(V6, true)])]);
        assert_eq!(up(&mut g, 5, &back), vec![Action::PurgeStale(V4)]);
        let mut g = GrMachine::default();
        let _ = down(&mut g, 0, &n);
        let no_gr = neg(vec![], vec![]);
        assert_eq!(
            up(&mut g, 5, &no_gr),
            vec![Action::PurgeStale(V4), Action::PurgeStale(V6)]
        );
    }

    #[test]
    fn rfc4724_4_2_end_of_rib_purges_what_is_still_stale() {
        let n = neg(vec![], vec![gr_cap(100, &[(V4, true)])]);
        let mut g = GrMachine::default();
        let _ = down(&mut g, 0, &n);
        let _ = up(&mut g, 5, &n);
        let mut out = vec![];
        g.end_of_rib(V6, &mut out);
        assert!(out.is_empty());
        g.end_of_rib(V4, &mut out);
        assert_eq!(out, vec![Action::PurgeStale(V4)]);
    }

    #[test]
    fn rfc4724_4_2_stale_timer_expiry_purges() {
        let n = neg(vec![], vec![gr_cap(100, &[(V4, true)])]);
        let mut g = GrMachine::default();
        let _ = down(&mut g, 0, &n);
        let _ = up(&mut g, 5, &n);
        assert!(tick(&mut g, 364).is_empty());
        assert_eq!(tick(&mut g, 365), vec![Action::PurgeStale(V4)]);
    }

    #[test]
    fn rfc4724_second_restart_does_not_extend_stale_life() {
        // Restart 100 s, stale 360 s: routes stale at 0 live at most until 460.
        let n = neg(vec![], vec![gr_cap(100, &[(V4, true)])]);
        let mut g = GrMachine::default();
        let _ = down(&mut g, 0, &n);
        let _ = up(&mut g, 90, &n);
        assert_eq!(g.deadline(V4), Some(t(450)));
        assert_eq!(down(&mut g, 400, &n), vec![Action::RetainStale(V4)]);
        assert_eq!(g.stale_since(V4), Some(t(0)));
        assert_eq!(g.deadline(V4), Some(t(460)));
        let _ = up(&mut g, 420, &n);
        assert_eq!(g.deadline(V4), Some(t(460)));
        assert_eq!(tick(&mut g, 460), vec![Action::PurgeStale(V4)]);
    }

    #[test]
    fn restart_time_is_clamped() {
        let n = neg(vec![], vec![gr_cap(4000, &[(V4, true)])]);
        let mut g = GrMachine::default();
        let cfg = GracefulRestartConfig {
            max_restart_time: 300,
            ..GracefulRestartConfig::default()
        };
        let mut out = vec![];
        g.session_down(t(0), &n, &cfg, Retention::Retain, &mut out);
        assert_eq!(g.deadline(V4), Some(t(300)));
        let n = neg(vec![], vec![gr_cap(1, &[(V4, true)])]);
        let cfg = GracefulRestartConfig {
            min_restart_time: 30,
            ..cfg
        };
        g.session_down(t(0), &n, &cfg, Retention::Retain, &mut out);
        assert_eq!(g.deadline(V4), Some(t(30)));
    }

    #[test]
    fn purge_retention_and_disabled_gr_keep_nothing() {
        let n = neg(vec![], vec![gr_cap(100, &[(V4, true)])]);
        let mut g = GrMachine::default();
        let mut out = vec![];
        g.session_down(
            t(0),
            &n,
            &GracefulRestartConfig::default(),
            Retention::Purge,
            &mut out,
        );
        assert!(out.is_empty());
        let off = GracefulRestartConfig {
            enabled: false,
            ..GracefulRestartConfig::default()
        };
        g.session_down(t(0), &n, &off, Retention::Retain, &mut out);
        assert!(out.is_empty() && g.stale_families().is_empty());
    }

    #[test]
    fn only_families_negotiated_by_both_count() {
        // The peer lists IPv6 in GR but we never negotiated it (only IPv4 in our MP).
        let l = Open::new(
            bgp_wire::Asn(1),
            90,
            Ipv4Addr::new(1, 1, 1, 1),
            vec![Capability::Multiprotocol(V4), gr_cap(120, &[])],
        );
        let p = Open::new(
            bgp_wire::Asn(2),
            90,
            Ipv4Addr::new(2, 2, 2, 2),
            vec![
                Capability::Multiprotocol(V4),
                Capability::Multiprotocol(V6),
                gr_cap(120, &[(V4, true), (V6, true)]),
            ],
        );
        let n = Negotiated::new(&l, &p, None);
        let mut g = GrMachine::default();
        assert_eq!(down(&mut g, 0, &n), vec![Action::RetainStale(V4)]);
    }

    #[test]
    fn rfc9494_4_2_llgr_after_the_restart_timer() {
        let n = neg(
            vec![llgr_cap(&[V4], 1000)],
            vec![gr_cap(100, &[(V4, true), (V6, true)]), llgr_cap(&[V4], 500)],
        );
        let mut g = GrMachine::default();
        let _ = down(&mut g, 0, &n);
        assert_eq!(
            tick(&mut g, 100),
            vec![Action::MarkLlgrStale(V4), Action::PurgeStale(V6)]
        );
        assert_eq!(g.phase(V4), Phase::LongLived);
        assert_eq!(g.deadline(V4), Some(t(600)));
        assert_eq!(tick(&mut g, 600), vec![Action::PurgeStale(V4)]);
    }

    #[test]
    fn rfc9494_4_2_llgr_at_once_without_gr_restart_time() {
        let n = neg(
            vec![llgr_cap(&[V4], 1000)],
            vec![gr_cap(0, &[(V4, true)]), llgr_cap(&[V4], 500)],
        );
        let mut g = GrMachine::default();
        assert_eq!(
            down(&mut g, 0, &n),
            vec![Action::RetainStale(V4), Action::MarkLlgrStale(V4)]
        );
        // Back with the LLGR F bit: stale until End-of-RIB.
        assert!(up(&mut g, 50, &n).is_empty());
        assert_eq!(g.phase(V4), Phase::Stale);
    }

    #[test]
    fn rfc9494_second_loss_after_llgr_starts_a_new_stale_life() {
        // Found by the proptest: LLGR, back, lost again long after the first loss.
        let n = neg(
            vec![llgr_cap(&[V4], 1000)],
            vec![gr_cap(100, &[(V4, true)]), llgr_cap(&[V4], 500)],
        );
        let mut g = GrMachine::default();
        let _ = down(&mut g, 0, &n);
        assert_eq!(tick(&mut g, 100), vec![Action::MarkLlgrStale(V4)]);
        assert!(up(&mut g, 550, &n).is_empty());
        assert_eq!(g.phase(V4), Phase::Stale);
        assert_eq!(down(&mut g, 560, &n), vec![Action::RetainStale(V4)]);
        assert_eq!(g.stale_since(V4), Some(t(560)));
        assert_eq!(g.deadline(V4), Some(t(660)));
    }

    #[test]
    fn refresh_stale_routes_past_their_life_go_at_once_on_loss() {
        let cfg = GracefulRestartConfig {
            refresh_stale_time: Duration::from_secs(1000),
            ..GracefulRestartConfig::default()
        };
        let n = neg(vec![], vec![gr_cap(100, &[(V4, true)])]);
        let mut g = GrMachine::default();
        let mut out = vec![];
        g.begin_refresh(t(0), V4, &cfg, &mut out);
        g.session_down(t(900), &n, &cfg, Retention::Retain, &mut out);
        assert_eq!(g.deadline(V4), Some(t(900)));
        assert_eq!(tick(&mut g, 900), vec![Action::PurgeStale(V4)]);
    }

    #[test]
    fn rfc9494_llgr_stale_time_is_clamped() {
        let n = neg(
            vec![llgr_cap(&[V4], 1000)],
            vec![gr_cap(0, &[]), llgr_cap(&[V4], 0xff_ffff)],
        );
        let mut g = GrMachine::default();
        let cfg = GracefulRestartConfig {
            max_llgr_stale_time: 3600,
            ..GracefulRestartConfig::default()
        };
        let mut out = vec![];
        g.session_down(t(0), &n, &cfg, Retention::Retain, &mut out);
        assert_eq!(g.deadline(V4), Some(t(3600)));
    }

    #[test]
    fn rfc7313_4_borr_marks_eorr_purges() {
        let cfg = GracefulRestartConfig::default();
        let mut g = GrMachine::default();
        let mut out = vec![];
        g.begin_refresh(t(0), V4, &cfg, &mut out);
        assert_eq!(out, vec![Action::RetainStale(V4)]);
        out.clear();
        g.end_refresh(V6, &mut out);
        assert!(out.is_empty());
        g.end_refresh(V4, &mut out);
        assert_eq!(out, vec![Action::PurgeStale(V4)]);
        out.clear();
        g.begin_refresh(t(0), V4, &cfg, &mut out);
        assert_eq!(tick(&mut g, 360), vec![Action::PurgeStale(V4)]);
    }

    #[test]
    fn purge_all_purges_every_stale_family() {
        let n = neg(vec![], vec![gr_cap(100, &[(V4, true), (V6, true)])]);
        let mut g = GrMachine::default();
        let _ = down(&mut g, 0, &n);
        let mut out = vec![];
        g.purge_all(&mut out);
        assert_eq!(out, vec![Action::PurgeStale(V4), Action::PurgeStale(V6)]);
        out.clear();
        g.purge_all(&mut out);
        assert!(out.is_empty());
    }

    /// A session that ends without retention (a Hard Reset, RFC 8538 §5) while routes are
    /// still stale from an earlier restart: those go too, with a PurgeStale the RIB acts on.
    #[test]
    fn a_purging_down_during_an_earlier_restart_purges_what_is_still_stale() {
        let n = neg(vec![], vec![gr_cap(100, &[(V4, true)])]);
        let mut g = GrMachine::default();
        assert_eq!(down(&mut g, 0, &n), vec![Action::RetainStale(V4)]);
        // Back, waiting for End-of-RIB.
        let _ = up(&mut g, 10, &n);
        let mut out = vec![];
        g.session_down(
            Time::from_secs(20),
            &n,
            &GracefulRestartConfig::default(),
            Retention::Purge,
            &mut out,
        );
        assert_eq!(out, vec![Action::PurgeStale(V4)]);
        assert_eq!(g.phase(V4), Phase::Fresh);
    }
}
