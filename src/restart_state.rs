//! The restart-state store: a small file that says how the speaker last stopped, so that a
//! restarted process sets the graceful-restart R and F bits (RFC 4724 §3) by itself, with no
//! command-line flag to get wrong.
//!
//! Stopping for restart writes the file with the deadline (stop time plus our advertised
//! restart time) and, per peer, the families that negotiated graceful restart. Starting
//! reads it: a peer found there, before the deadline, is told we are restarting (R bit) with
//! F bits for the families whose forwarding state survived. Stopping for good, or a file past
//! its deadline, means a cold start. The file is written atomically (a temporary file
//! renamed over it) and carries a format version; a file that cannot be read or is of an
//! unknown version is reported and treated as a cold start, never trusted.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bgp_wire::{AfiSafi, AfiSafiSet};
use serde::{Deserialize, Serialize};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The largest file we read: a few hundred bytes per peer; anything bigger is not ours.
const MAX_FILE_LEN: u64 = 4 << 20;

/// How the speaker stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopKind {
    /// For restart: graceful-restart helpers keep our routes until we are back.
    ForRestart,
    /// For good: peers were told (Cease) and dropped our routes.
    ForGood,
}

/// What is recorded per peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PeerRecord {
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's port.
    pub port: u16,
    /// Families that negotiated graceful restart with the peer when we stopped, by name.
    pub families: Vec<String>,
    /// Families whose forwarding state the embedder said it keeps across the restart.
    pub forwarding_preserved: Vec<String>,
}

/// The contents of the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RestartState {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// How we stopped.
    pub stopped: StopKind,
    /// When, in seconds since the Unix epoch.
    pub stopped_at: u64,
    /// Until when helpers keep our routes (stop time plus our restart time), in seconds
    /// since the Unix epoch.
    pub deadline: u64,
    /// The peers.
    pub peers: Vec<PeerRecord>,
}

/// What a starting speaker should tell one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restarting {
    /// Families to set the F bit for.
    pub forwarding: AfiSafiSet,
    /// Time left until the helper gives up on us.
    pub remaining: Duration,
}

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RestartStateError {
    /// Reading or writing failed.
    #[error("restart-state file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The contents are not a restart state of a version we know.
    #[error("restart-state file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl RestartState {
    /// A record of a stop at `now`, with our advertised restart time.
    pub fn new(stopped: StopKind, now: SystemTime, restart_time: Duration) -> Self {
        let at = unix_secs(now);
        RestartState {
            version: FORMAT_VERSION,
            stopped,
            stopped_at: at,
            deadline: at.saturating_add(restart_time.as_secs()),
            peers: Vec::new(),
        }
    }

    /// Records a peer's families.
    pub fn add_peer(
        &mut self,
        address: IpAddr,
        port: u16,
        families: AfiSafiSet,
        forwarding_preserved: AfiSafiSet,
    ) {
        let names = |s: AfiSafiSet| {
            s.iter()
                .filter_map(|f| f.name())
                .map(String::from)
                .collect()
        };
        self.peers.push(PeerRecord {
            address,
            port,
            families: names(families),
            forwarding_preserved: names(forwarding_preserved),
        });
    }

    /// Reads the file; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<RestartState>, RestartStateError> {
        let shown = path.display().to_string();
        let io = |source| RestartStateError::Io {
            path: shown.clone(),
            source,
        };
        let invalid = |message: String| RestartStateError::Invalid {
            path: shown.clone(),
            message,
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        if meta.len() > MAX_FILE_LEN {
            return Err(invalid(format!("{} bytes is too large", meta.len())));
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let state: RestartState =
            serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if state.version != FORMAT_VERSION {
            return Err(invalid(format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                state.version
            )));
        }
        Ok(Some(state))
    }

    /// Writes the file atomically: a temporary file beside it, synced, renamed over it.
    pub fn save(&self, path: &Path) -> Result<(), RestartStateError> {
        let io = |source| RestartStateError::Io {
            path: path.display().to_string(),
            source,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io)?;
        // On disk before the rename, so that a crash leaves the old file or the new one.
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// What to tell a peer when starting at `now`: `Some` when we stopped for restart, the
    /// deadline has not passed and the peer was recorded.
    pub fn restarting(&self, address: IpAddr, port: u16, now: SystemTime) -> Option<Restarting> {
        if self.stopped != StopKind::ForRestart {
            return None;
        }
        let now = unix_secs(now);
        if now >= self.deadline {
            return None;
        }
        let peer = self
            .peers
            .iter()
            .find(|p| p.address == address && p.port == port)?;
        let families: AfiSafiSet = peer
            .families
            .iter()
            .filter_map(|n| AfiSafi::from_name(n))
            .collect();
        let forwarding = peer
            .forwarding_preserved
            .iter()
            .filter_map(|n| AfiSafi::from_name(n))
            .collect::<AfiSafiSet>()
            .intersection(families);
        Some(Restarting {
            forwarding,
            remaining: Duration::from_secs(self.deadline - now),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn sample() -> RestartState {
        let mut s = RestartState::new(StopKind::ForRestart, at(1000), Duration::from_secs(120));
        let both: AfiSafiSet = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
            .into_iter()
            .collect();
        let v4: AfiSafiSet = [AfiSafi::IPV4_UNICAST].into_iter().collect();
        s.add_peer("127.0.0.2".parse().unwrap(), 179, both, v4);
        s
    }

    #[test]
    fn rfc4724_3_restart_within_the_deadline_sets_r_and_f_bits() {
        let s = sample();
        let r = s
            .restarting("127.0.0.2".parse().unwrap(), 179, at(1100))
            .unwrap();
        assert!(r.forwarding.contains(AfiSafi::IPV4_UNICAST));
        assert!(!r.forwarding.contains(AfiSafi::IPV6_UNICAST));
        assert_eq!(r.remaining, Duration::from_secs(20));
    }

    #[test]
    fn past_the_deadline_unknown_peer_or_stopped_for_good_is_a_cold_start() {
        let s = sample();
        let peer: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(s.restarting(peer, 179, at(1120)), None);
        assert_eq!(s.restarting(peer, 1790, at(1100)), None);
        assert_eq!(
            s.restarting("127.0.0.3".parse().unwrap(), 179, at(1100)),
            None
        );
        let good = RestartState {
            stopped: StopKind::ForGood,
            ..sample()
        };
        assert_eq!(good.restarting(peer, 179, at(1100)), None);
    }

    #[test]
    fn save_and_load_round_trip_and_refuse_what_is_not_ours() {
        let dir = std::env::temp_dir().join(format!("bgp-rs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state");
        assert!(RestartState::load(&path).unwrap().is_none());
        sample().save(&path).unwrap();
        assert_eq!(RestartState::load(&path).unwrap(), Some(sample()));

        let mut future = sample();
        future.version = 99;
        std::fs::write(&path, serde_json::to_string(&future).unwrap()).unwrap();
        let e = RestartState::load(&path).unwrap_err().to_string();
        assert!(e.contains("format version 99"), "{e}");

        std::fs::write(&path, "not json").unwrap();
        assert!(RestartState::load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
