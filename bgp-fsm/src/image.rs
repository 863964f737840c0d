//! An Established session as plain data, for a hitless upgrade: the running process takes a
//! [`SessionImage`] with [`Session::image`](crate::Session::image), hands it (with the TCP
//! socket) to the new process, which continues the session with
//! [`Session::resume`](crate::Session::resume). The peer sees nothing: no OPEN, no
//! KEEPALIVE beyond what the timers send anyway.
//!
//! Every point in time is carried relative to the moment of the image: a deadline as the time
//! *remaining*, a past moment as the time *ago*. The new process has its own clock and epoch;
//! [`Session::resume`](crate::Session::resume) adds the remaining times to its `now`. The time
//! the hand-over itself takes is not counted (deadlines move later by that much), and a past
//! moment older than the new process's epoch is clamped to the epoch (see
//! [`SessionImage::oldest`]).
//!
//! # Encoding
//!
//! [`SessionImage::encode`] writes a versioned binary form, [`SessionImage::decode`] reads it
//! back from untrusted bytes. All integers are big-endian. Layout of version 1
//! ([`IMAGE_VERSION`]):
//!
//! ```text
//! u16  version (1)
//! msg  our OPEN          u16 length, then the whole BGP OPEN message (header included)
//! msg  the peer's OPEN   same
//! u16  negotiated keepalive interval (seconds)
//! dur  established for   u64 seconds, u32 nanoseconds (< 10^9)
//! set  eor_pending       u8 count, then count × (u16 AFI, u8 SAFI), known families only
//! u8   timer count, then count × (u8 timer code, dur remaining), each timer at most once
//! u8   GR family count, then count × (u16 AFI, u8 SAFI, u8 phase,
//!                                     odur remaining, odur stale for, odur cap, odur llgr)
//!                          odur: u8 0 (none) or 1 then dur
//! u32  connect_retry_counter
//! u32  failures
//! u8   flags: 0x01 started, 0x02 passive, 0x04 restarting, 0x08 limit_stopped
//! set  forwarding
//! u8   last down reason: 0 none, 1 NOTIFICATION sent (then msg), 2 NOTIFICATION received
//!      (then msg), 3 hold timer expired, 4 send hold timer expired, 5 TCP error,
//!      6 administrative stop, 7 configuration change
//! u8   jitter: 0 (reseed from the configuration) or 1 then u64 generator state
//! u16  buffered bytes length, then the bytes
//! ```
//!
//! Nothing may follow. Timer codes: 0 ConnectRetry, 1 Hold, 2 Keepalive, 3 DelayOpen,
//! 4 IdleHold, 5 SendHold, 6 Deferral, 7 Restart, 8 Stale, 9 LlgrStale, 10 RefreshStale.
//! Phase codes: 0 Fresh, 1 Retained, 2 Stale, 3 LongLived, 4 Refresh.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use bgp_wire::context::{MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN};
use bgp_wire::{
    Afi, AfiSafi, AfiSafiSet, Asn, Context, DecodeError, EncodeError, Message, Notification, Open,
    Safi,
};

use crate::gr::Phase;
use crate::session::DownReason;
use crate::timer::Timer;

/// The version of the encoding written by [`SessionImage::encode`].
pub const IMAGE_VERSION: u16 = 1;

/// The most buffered bytes an image carries: the largest message size (RFC 8654). A session
/// buffers less, since only a partial message stays in its buffer.
pub const MAX_BUFFERED: usize = MAX_EXTENDED_MESSAGE_LEN;

/// Everything an Established [`Session`](crate::Session) needs to continue in another
/// process, except its configuration (the new process has its own [`SessionConfig`]).
///
/// [`SessionConfig`]: crate::SessionConfig
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionImage {
    /// The OPEN we sent (RFC 4271 §4.2), as sent.
    pub local_open: Open,
    /// The OPEN the peer sent, as received.
    pub peer_open: Open,
    /// The negotiated keepalive interval in seconds. With both OPENs it makes the
    /// negotiation exact: [`Negotiated::new`](crate::Negotiated::new)`(local, peer,
    /// Some(keepalive_time))` gives back what the session negotiated.
    pub keepalive_time: u16,
    /// How long the session has been Established.
    pub established_for: Duration,
    /// Families whose End-of-RIB we have not sent yet.
    pub eor_pending: AfiSafiSet,
    /// Every running timer of the session's table but the graceful-restart ones, with the
    /// time remaining until its deadline (zero for one that is due). The graceful-restart
    /// timers follow from [`SessionImage::graceful_restart`]; entries for them are ignored.
    pub timers: BTreeMap<Timer, Duration>,
    /// The graceful-restart machine: every family that is not [`Phase::Fresh`].
    pub graceful_restart: Vec<GrFamilyImage>,
    /// The ConnectRetryCounter of RFC 4271 §8.
    pub connect_retry_counter: u32,
    /// Consecutive failures, for the idle hold back-off (DampPeerOscillations).
    pub failures: u32,
    /// The session was started (restarts by itself after an error).
    pub started: bool,
    /// The session was last started passive.
    pub passive: bool,
    /// We restarted and our End-of-RIB is still to be sent (the R bit, RFC 4724 §3).
    pub restarting: bool,
    /// Families whose forwarding state survived our restart (the F bits), as last set by
    /// [`Input::RestartState`](crate::Input::RestartState).
    pub forwarding: AfiSafiSet,
    /// The session was stopped by a prefix limit without automatic restart.
    pub limit_stopped: bool,
    /// Why the session last went to Idle, before it came up.
    pub last_down: Option<DownReason>,
    /// The jitter generator's state, so that the resumed session draws the same intervals;
    /// `None` reseeds it from the new configuration.
    pub jitter: Option<u64>,
    /// Bytes received but not yet a whole message.
    pub rx: Bytes,
}

/// One family's graceful-restart state (see [`crate::gr`]), with its times relative to the
/// moment of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GrFamilyImage {
    /// The family (one of [`AfiSafi::KNOWN`]).
    pub family: AfiSafi,
    /// Where the family's routes are.
    pub phase: Phase,
    /// The time until the phase's deadline.
    pub remaining: Option<Duration>,
    /// How long ago the routes first went stale.
    pub stale_for: Option<Duration>,
    /// The time until the latest moment GR-stale routes may live (zero once past).
    pub cap_remaining: Option<Duration>,
    /// The long-lived stale time to use when the restart timer fires (RFC 9494).
    pub llgr: Option<Duration>,
}

/// Why an image could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The image was written by a version of the format we do not know.
    #[error("unknown image version {0} (this build reads {IMAGE_VERSION})")]
    UnknownVersion(u16),
    /// The bytes end inside a field.
    #[error("image truncated in {field} at offset {offset}")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where it starts.
        offset: usize,
    },
    /// Bytes follow the last field.
    #[error("{len} trailing bytes at offset {offset}")]
    TrailingBytes {
        /// Where they start.
        offset: usize,
        /// How many.
        len: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("invalid {field} at offset {offset}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Where it starts.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// An embedded BGP message does not decode.
    #[error("{field} at offset {offset}: {source}")]
    Message {
        /// The field.
        field: &'static str,
        /// Where the message starts.
        offset: usize,
        /// The codec's error.
        source: DecodeError,
    },
    /// An embedded BGP message does not encode.
    #[error("cannot encode {field}: {source}")]
    Encode {
        /// The field.
        field: &'static str,
        /// The codec's error.
        source: EncodeError,
    },
    /// A value is too large for its length or count field.
    #[error("{field} too large to encode ({len})")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// Its length or count.
        len: usize,
    },
}

impl SessionImage {
    /// The longest time ago the image refers to (how long the session has been up, or how
    /// long ago routes went stale). A driver that wants those moments exact resumes at a
    /// `now` at least this far from its epoch; earlier ones are clamped to the epoch.
    pub fn oldest(&self) -> Duration {
        self.graceful_restart
            .iter()
            .filter_map(|g| g.stale_for)
            .fold(self.established_for, Duration::max)
    }

    /// Appends the encoded image to `out` (layout in the [module docs](self)). On error `out`
    /// is left as it was.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), ImageError> {
        let start = out.len();
        let r = self.encode_fields(out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn encode_fields(&self, out: &mut BytesMut) -> Result<(), ImageError> {
        out.put_u16(IMAGE_VERSION);
        put_message(out, "local OPEN", &Message::Open(self.local_open.clone()))?;
        put_message(out, "peer OPEN", &Message::Open(self.peer_open.clone()))?;
        out.put_u16(self.keepalive_time);
        put_duration(out, self.established_for);
        put_set(out, self.eor_pending);
        put_count(out, "timers", self.timers.len())?;
        for (t, d) in &self.timers {
            out.put_u8(timer_code(*t));
            put_duration(out, *d);
        }
        put_count(out, "graceful restart", self.graceful_restart.len())?;
        for g in &self.graceful_restart {
            put_family(out, g.family);
            out.put_u8(phase_code(g.phase));
            for d in [g.remaining, g.stale_for, g.cap_remaining, g.llgr] {
                put_opt_duration(out, d);
            }
        }
        out.put_u32(self.connect_retry_counter);
        out.put_u32(self.failures);
        let mut flags = 0;
        for (bit, on) in [
            (FLAG_STARTED, self.started),
            (FLAG_PASSIVE, self.passive),
            (FLAG_RESTARTING, self.restarting),
            (FLAG_LIMIT_STOPPED, self.limit_stopped),
        ] {
            if on {
                flags |= bit;
            }
        }
        out.put_u8(flags);
        put_set(out, self.forwarding);
        put_down_reason(out, self.last_down.as_ref())?;
        match self.jitter {
            None => out.put_u8(0),
            Some(j) => {
                out.put_u8(1);
                out.put_u64(j);
            }
        }
        if self.rx.len() > MAX_BUFFERED {
            return Err(ImageError::TooLarge {
                field: "buffered bytes",
                len: self.rx.len(),
            });
        }
        put_len(out, "buffered bytes", self.rx.len())?;
        out.put_slice(&self.rx);
        Ok(())
    }

    /// Decodes an image written by [`SessionImage::encode`]. The bytes are untrusted: every
    /// length is checked before use, and nothing may follow the image.
    pub fn decode(bytes: &[u8]) -> Result<SessionImage, ImageError> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.u16("version")?;
        if version != IMAGE_VERSION {
            return Err(ImageError::UnknownVersion(version));
        }
        let local_open = r.open("local OPEN")?;
        let peer_open = r.open("peer OPEN")?;
        let keepalive_time = r.u16("keepalive time")?;
        let established_for = r.duration("established for")?;
        let eor_pending = r.set("eor_pending")?;
        let mut timers = BTreeMap::new();
        for _ in 0..r.u8("timer count")? {
            let at = r.pos;
            let t = timer_from_code(r.u8("timer")?).ok_or(ImageError::Invalid {
                field: "timer",
                offset: at,
                reason: "unknown timer code",
            })?;
            let d = r.duration("timer remaining")?;
            if timers.insert(t, d).is_some() {
                return Err(ImageError::Invalid {
                    field: "timer",
                    offset: at,
                    reason: "timer listed twice",
                });
            }
        }
        // At most one entry per known family: the count is bounded before allocating.
        let at = r.pos;
        let n = usize::from(r.u8("graceful restart count")?);
        if n > AfiSafi::KNOWN.len() {
            return Err(ImageError::Invalid {
                field: "graceful restart count",
                offset: at,
                reason: "more families than are known",
            });
        }
        let mut graceful_restart = Vec::with_capacity(n);
        let mut seen = AfiSafiSet::EMPTY;
        for _ in 0..n {
            let at = r.pos;
            let family = r.family("graceful restart family")?;
            if seen.contains(family) || !seen.insert(family) {
                return Err(ImageError::Invalid {
                    field: "graceful restart family",
                    offset: at,
                    reason: "unknown family or listed twice",
                });
            }
            let at = r.pos;
            let phase = phase_from_code(r.u8("phase")?).ok_or(ImageError::Invalid {
                field: "phase",
                offset: at,
                reason: "unknown phase code",
            })?;
            graceful_restart.push(GrFamilyImage {
                family,
                phase,
                remaining: r.opt_duration("phase remaining")?,
                stale_for: r.opt_duration("stale for")?,
                cap_remaining: r.opt_duration("stale cap remaining")?,
                llgr: r.opt_duration("long-lived stale time")?,
            });
        }
        let connect_retry_counter = r.u32("connect retry counter")?;
        let failures = r.u32("failures")?;
        let at = r.pos;
        let flags = r.u8("flags")?;
        if flags & !FLAGS_ALL != 0 {
            return Err(ImageError::Invalid {
                field: "flags",
                offset: at,
                reason: "unknown flag bits",
            });
        }
        let forwarding = r.set("forwarding")?;
        let last_down = r.down_reason()?;
        let at = r.pos;
        let jitter = match r.u8("jitter")? {
            0 => None,
            1 => Some(r.u64("jitter state")?),
            _ => {
                return Err(ImageError::Invalid {
                    field: "jitter",
                    offset: at,
                    reason: "neither 0 nor 1",
                });
            }
        };
        let len = usize::from(r.u16("buffered bytes length")?);
        let rx = Bytes::copy_from_slice(r.take("buffered bytes", len)?);
        if r.pos != bytes.len() {
            return Err(ImageError::TrailingBytes {
                offset: r.pos,
                len: bytes.len() - r.pos,
            });
        }
        Ok(SessionImage {
            local_open,
            peer_open,
            keepalive_time,
            established_for,
            eor_pending,
            timers,
            graceful_restart,
            connect_retry_counter,
            failures,
            started: flags & FLAG_STARTED != 0,
            passive: flags & FLAG_PASSIVE != 0,
            restarting: flags & FLAG_RESTARTING != 0,
            forwarding,
            limit_stopped: flags & FLAG_LIMIT_STOPPED != 0,
            last_down,
            jitter,
            rx,
        })
    }
}

/// Why an image cannot continue under the new process's configuration: resuming would need a
/// session reset ([`SessionConfig::requires_reset`](crate::SessionConfig::requires_reset)
/// seen from the OPENs), or the image is inconsistent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// Our AS number differs from the one in our OPEN.
    #[error("local AS {config} in the configuration, {image} in the session's OPEN")]
    LocalAsn {
        /// In the image's OPEN.
        image: Asn,
        /// In the configuration.
        config: Asn,
    },
    /// Our BGP Identifier differs from the one in our OPEN.
    #[error("BGP identifier {config} in the configuration, {image} in the session's OPEN")]
    BgpId {
        /// In the image's OPEN.
        image: Ipv4Addr,
        /// In the configuration.
        config: Ipv4Addr,
    },
    /// The configured peer AS is not the peer's AS.
    #[error("peer AS {config} in the configuration, the peer is AS {image}")]
    PeerAsn {
        /// The peer's AS in its OPEN.
        image: Asn,
        /// The configured one.
        config: Asn,
    },
    /// The hold time we propose differs from our OPEN's.
    #[error("hold time {config} s in the configuration, {image} s in the session's OPEN")]
    HoldTime {
        /// In the image's OPEN.
        image: u16,
        /// In the configuration.
        config: u16,
    },
    /// The configured keepalive interval negotiates a different one.
    #[error("keepalive interval {config} s under the configuration, {image} s in the session")]
    KeepaliveTime {
        /// The session's.
        image: u16,
        /// What the configuration would negotiate.
        config: u16,
    },
    /// The OPEN we would send under the configuration differs from the session's in its
    /// capabilities (families, route refresh, ADD-PATH, graceful restart, role, ...).
    #[error("the configuration changes the capabilities of our OPEN")]
    Capabilities,
    /// The configuration refuses the peer's OPEN with this NOTIFICATION (required
    /// capabilities, strict role, ...).
    #[error("the configuration refuses the peer's OPEN: {0}")]
    PeerRejected(Notification),
    /// The graceful-restart state lists a family that is not known, or one twice.
    #[error("graceful-restart state for {0}, unknown or listed twice")]
    GrFamily(AfiSafi),
    /// The buffered bytes hold a whole (or malformed) message, or exceed a message.
    #[error("the buffered bytes are not a partial message")]
    Buffered,
}

const FLAG_STARTED: u8 = 0x01;
const FLAG_PASSIVE: u8 = 0x02;
const FLAG_RESTARTING: u8 = 0x04;
const FLAG_LIMIT_STOPPED: u8 = 0x08;
const FLAGS_ALL: u8 = FLAG_STARTED | FLAG_PASSIVE | FLAG_RESTARTING | FLAG_LIMIT_STOPPED;

/// The context for embedded messages: the largest size, so that a NOTIFICATION received on a
/// session with extended messages fits (OPENs are held to 4096 octets by the codec anyway).
fn message_context() -> Context {
    Context {
        max_message_len: MAX_EXTENDED_MESSAGE_LEN,
        ..Context::default()
    }
}

/// Explicit codes, so that the format does not depend on the enum's order.
fn timer_code(t: Timer) -> u8 {
    match t {
        Timer::ConnectRetry => 0,
        Timer::Hold => 1,
        Timer::Keepalive => 2,
        Timer::DelayOpen => 3,
        Timer::IdleHold => 4,
        Timer::SendHold => 5,
        Timer::Deferral => 6,
        Timer::Restart => 7,
        Timer::Stale => 8,
        Timer::LlgrStale => 9,
        Timer::RefreshStale => 10,
    }
}

fn timer_from_code(c: u8) -> Option<Timer> {
    Timer::ALL.into_iter().find(|t| timer_code(*t) == c)
}

fn phase_code(p: Phase) -> u8 {
    match p {
        Phase::Fresh => 0,
        Phase::Retained => 1,
        Phase::Stale => 2,
        Phase::LongLived => 3,
        Phase::Refresh => 4,
    }
}

fn phase_from_code(c: u8) -> Option<Phase> {
    [
        Phase::Fresh,
        Phase::Retained,
        Phase::Stale,
        Phase::LongLived,
        Phase::Refresh,
    ]
    .into_iter()
    .find(|p| phase_code(*p) == c)
}

fn put_len(out: &mut BytesMut, field: &'static str, len: usize) -> Result<(), ImageError> {
    let n = u16::try_from(len).map_err(|_| ImageError::TooLarge { field, len })?;
    out.put_u16(n);
    Ok(())
}

fn put_count(out: &mut BytesMut, field: &'static str, len: usize) -> Result<(), ImageError> {
    let n = u8::try_from(len).map_err(|_| ImageError::TooLarge { field, len })?;
    out.put_u8(n);
    Ok(())
}

fn put_message(out: &mut BytesMut, field: &'static str, m: &Message) -> Result<(), ImageError> {
    let mut buf = BytesMut::new();
    m.encode(&message_context(), &mut buf)
        .map_err(|source| ImageError::Encode { field, source })?;
    put_len(out, field, buf.len())?;
    out.put_slice(&buf);
    Ok(())
}

fn put_duration(out: &mut BytesMut, d: Duration) {
    out.put_u64(d.as_secs());
    out.put_u32(d.subsec_nanos());
}

fn put_opt_duration(out: &mut BytesMut, d: Option<Duration>) {
    match d {
        None => out.put_u8(0),
        Some(d) => {
            out.put_u8(1);
            put_duration(out, d);
        }
    }
}

fn put_family(out: &mut BytesMut, f: AfiSafi) {
    out.put_u16(f.afi.0);
    out.put_u8(f.safi.0);
}

fn put_set(out: &mut BytesMut, s: AfiSafiSet) {
    // At most the four known families: the count fits.
    out.put_u8(s.iter().count() as u8);
    for f in s.iter() {
        put_family(out, f);
    }
}

fn put_down_reason(out: &mut BytesMut, r: Option<&DownReason>) -> Result<(), ImageError> {
    let (tag, n) = match r {
        None => (0, None),
        Some(DownReason::NotificationSent(n)) => (1, Some(n)),
        Some(DownReason::NotificationReceived(n)) => (2, Some(n)),
        Some(DownReason::HoldTimerExpired) => (3, None),
        Some(DownReason::SendHoldTimerExpired) => (4, None),
        Some(DownReason::TcpError) => (5, None),
        Some(DownReason::AdminStop) => (6, None),
        Some(DownReason::ConfigChange) => (7, None),
    };
    out.put_u8(tag);
    if let Some(n) = n {
        put_message(
            out,
            "last down NOTIFICATION",
            &Message::Notification(n.clone()),
        )?;
    }
    Ok(())
}

/// A cursor over untrusted bytes: every read checks the length first.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], ImageError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let s = end.and_then(|e| self.buf.get(self.pos..e));
        match s {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(ImageError::Truncated {
                field,
                offset: self.pos,
            }),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ImageError> {
        let at = self.pos;
        self.take(field, N)?
            .try_into()
            .map_err(|_| ImageError::Truncated { field, offset: at })
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, ImageError> {
        Ok(u8::from_be_bytes(self.array(field)?))
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, ImageError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, ImageError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, ImageError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    fn duration(&mut self, field: &'static str) -> Result<Duration, ImageError> {
        let secs = self.u64(field)?;
        let at = self.pos;
        let nanos = self.u32(field)?;
        if nanos >= 1_000_000_000 {
            return Err(ImageError::Invalid {
                field,
                offset: at,
                reason: "nanoseconds of a second or more",
            });
        }
        Ok(Duration::new(secs, nanos))
    }

    fn opt_duration(&mut self, field: &'static str) -> Result<Option<Duration>, ImageError> {
        let at = self.pos;
        match self.u8(field)? {
            0 => Ok(None),
            1 => self.duration(field).map(Some),
            _ => Err(ImageError::Invalid {
                field,
                offset: at,
                reason: "presence flag neither 0 nor 1",
            }),
        }
    }

    fn family(&mut self, field: &'static str) -> Result<AfiSafi, ImageError> {
        let afi = Afi(self.u16(field)?);
        let safi = Safi(self.u8(field)?);
        Ok(AfiSafi::new(afi, safi))
    }

    fn set(&mut self, field: &'static str) -> Result<AfiSafiSet, ImageError> {
        let mut s = AfiSafiSet::EMPTY;
        for _ in 0..self.u8(field)? {
            let at = self.pos;
            let f = self.family(field)?;
            if s.contains(f) || !s.insert(f) {
                return Err(ImageError::Invalid {
                    field,
                    offset: at,
                    reason: "unknown family or listed twice",
                });
            }
        }
        Ok(s)
    }

    /// A length-prefixed whole BGP message, checked against `max` before it is copied.
    fn message(&mut self, field: &'static str, max: usize) -> Result<Message, ImageError> {
        let at = self.pos;
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(ImageError::Invalid {
                field,
                offset: at,
                reason: "message longer than the maximum",
            });
        }
        let offset = self.pos;
        let bytes = Bytes::copy_from_slice(self.take(field, len)?);
        Message::decode(bytes, &message_context()).map_err(|source| ImageError::Message {
            field,
            offset,
            source,
        })
    }

    fn open(&mut self, field: &'static str) -> Result<Open, ImageError> {
        let at = self.pos;
        match self.message(field, MAX_MESSAGE_LEN)? {
            Message::Open(o) => Ok(o),
            _ => Err(ImageError::Invalid {
                field,
                offset: at,
                reason: "not an OPEN message",
            }),
        }
    }

    fn notification(&mut self, field: &'static str) -> Result<Notification, ImageError> {
        let at = self.pos;
        match self.message(field, MAX_EXTENDED_MESSAGE_LEN)? {
            Message::Notification(n) => Ok(n),
            _ => Err(ImageError::Invalid {
                field,
                offset: at,
                reason: "not a NOTIFICATION message",
            }),
        }
    }

    fn down_reason(&mut self) -> Result<Option<DownReason>, ImageError> {
        const FIELD: &str = "last down reason";
        let at = self.pos;
        Ok(Some(match self.u8(FIELD)? {
            0 => return Ok(None),
            1 => DownReason::NotificationSent(self.notification(FIELD)?),
            2 => DownReason::NotificationReceived(self.notification(FIELD)?),
            3 => DownReason::HoldTimerExpired,
            4 => DownReason::SendHoldTimerExpired,
            5 => DownReason::TcpError,
            6 => DownReason::AdminStop,
            7 => DownReason::ConfigChange,
            _ => {
                return Err(ImageError::Invalid {
                    field: FIELD,
                    offset: at,
                    reason: "unknown reason code",
                });
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use bgp_wire::capability::{
        Capability, GracefulRestart, GracefulRestartFamily, LlgrFamily, LongLivedGracefulRestart,
        code,
    };
    use proptest::prelude::*;

    use super::*;

    const V4: AfiSafi = AfiSafi::IPV4_UNICAST;
    const V6: AfiSafi = AfiSafi::IPV6_UNICAST;

    fn open(asn: u32, id: u8) -> Open {
        Open::new(
            Asn(asn),
            90,
            Ipv4Addr::new(10, 0, 0, id),
            vec![
                Capability::Multiprotocol(V4),
                Capability::Multiprotocol(V6),
                Capability::RouteRefresh,
                Capability::GracefulRestart(GracefulRestart {
                    flags: GracefulRestart::NOTIFICATION,
                    restart_time: 120,
                    families: vec![GracefulRestartFamily::new(V4, true)],
                }),
            ],
        )
    }

    fn sample() -> SessionImage {
        SessionImage {
            local_open: open(65001, 1),
            peer_open: open(65002, 2),
            keepalive_time: 30,
            established_for: Duration::from_millis(12_345),
            eor_pending: [V6].into_iter().collect(),
            timers: [
                (Timer::Hold, Duration::from_secs(88)),
                (Timer::Keepalive, Duration::from_millis(25_500)),
            ]
            .into_iter()
            .collect(),
            graceful_restart: vec![GrFamilyImage {
                family: V4,
                phase: Phase::Stale,
                remaining: Some(Duration::from_secs(300)),
                stale_for: Some(Duration::from_secs(70)),
                cap_remaining: Some(Duration::from_secs(410)),
                llgr: None,
            }],
            connect_retry_counter: 2,
            failures: 1,
            started: true,
            passive: false,
            restarting: true,
            forwarding: [V4].into_iter().collect(),
            limit_stopped: false,
            last_down: Some(DownReason::NotificationReceived(Notification::with_data(
                6,
                4,
                vec![1, 2, 3],
            ))),
            jitter: Some(0x1234_5678_9abc_def0),
            rx: Bytes::from_static(&[0xff; 7]),
        }
    }

    fn encoded(i: &SessionImage) -> Vec<u8> {
        let mut out = BytesMut::new();
        i.encode(&mut out).expect("encodes");
        out.to_vec()
    }

    #[test]
    fn sample_round_trips_and_starts_with_the_version() {
        let i = sample();
        let b = encoded(&i);
        assert_eq!(b[..2], IMAGE_VERSION.to_be_bytes());
        assert_eq!(SessionImage::decode(&b), Ok(i));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let b = encoded(&sample());
        for n in 0..b.len() {
            let e = SessionImage::decode(&b[..n]).expect_err("truncated");
            assert!(
                matches!(e, ImageError::Truncated { .. } | ImageError::Message { .. }),
                "{n}: {e:?}"
            );
        }
    }

    #[test]
    fn unknown_version_is_refused() {
        let mut b = encoded(&sample());
        b[..2].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(SessionImage::decode(&b), Err(ImageError::UnknownVersion(2)));
        assert_eq!(
            SessionImage::decode(&[0, 0]),
            Err(ImageError::UnknownVersion(0))
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut b = encoded(&sample());
        let len = b.len();
        b.push(0);
        assert_eq!(
            SessionImage::decode(&b),
            Err(ImageError::TrailingBytes {
                offset: len,
                len: 1
            })
        );
    }

    #[test]
    fn an_embedded_message_that_is_not_an_open_is_refused() {
        let mut b = BytesMut::new();
        b.put_u16(IMAGE_VERSION);
        put_message(&mut b, "x", &Message::Keepalive).expect("encodes");
        assert_eq!(
            SessionImage::decode(&b),
            Err(ImageError::Invalid {
                field: "local OPEN",
                offset: 2,
                reason: "not an OPEN message"
            })
        );
    }

    #[test]
    fn an_oversized_message_length_is_refused_before_reading() {
        let mut b = BytesMut::new();
        b.put_u16(IMAGE_VERSION);
        b.put_u16(0xffff);
        assert_eq!(
            SessionImage::decode(&b),
            Err(ImageError::Invalid {
                field: "local OPEN",
                offset: 2,
                reason: "message longer than the maximum"
            })
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(SessionImage::decode(&[]).is_err());
        assert!(SessionImage::decode(&[0xff; 64]).is_err());
        let mut b = BytesMut::new();
        b.put_u16(IMAGE_VERSION);
        b.put_slice(&[0; 40]);
        assert!(matches!(
            SessionImage::decode(&b),
            Err(ImageError::Message { .. } | ImageError::Invalid { .. })
        ));
    }

    /// Replaces the byte at `at` in a valid image and expects the given field refused.
    fn corrupt(at: usize, value: u8) -> ImageError {
        let mut b = encoded(&sample());
        b[at] = value;
        SessionImage::decode(&b).expect_err("corrupted")
    }

    #[test]
    fn out_of_range_codes_are_refused() {
        let b = encoded(&sample());
        let opens = 2 + 2 + usize::from(u16::from_be_bytes([b[2], b[3]]));
        let opens = opens + 2 + usize::from(u16::from_be_bytes([b[opens], b[opens + 1]]));
        // keepalive (2), established for (12), eor_pending (1 + 3), timer count.
        let timers = opens + 2 + 12 + 4;
        assert!(matches!(
            corrupt(timers + 1, 11),
            ImageError::Invalid { field: "timer", .. }
        ));
        // The second timer listed as the first one again.
        assert!(matches!(
            corrupt(timers + 1 + 13, 1),
            ImageError::Invalid { field: "timer", .. }
        ));
        // Nanoseconds of the first timer.
        let e = corrupt(timers + 1 + 9, 0xff);
        assert!(matches!(e, ImageError::Invalid { reason, .. } if reason.contains("nano")));
        let gr = timers + 1 + 2 * 13;
        assert!(matches!(
            corrupt(gr, 5),
            ImageError::Invalid {
                field: "graceful restart count",
                ..
            }
        ));
        assert!(matches!(
            corrupt(gr + 1 + 2, 9),
            ImageError::Invalid {
                field: "graceful restart family",
                ..
            }
        ));
        assert!(matches!(
            corrupt(gr + 1 + 3, 5),
            ImageError::Invalid { field: "phase", .. }
        ));
        assert!(matches!(
            corrupt(gr + 1 + 4, 2),
            ImageError::Invalid {
                field: "phase remaining",
                ..
            }
        ));
    }

    fn family() -> impl Strategy<Value = AfiSafi> {
        prop::sample::select(AfiSafi::KNOWN.to_vec())
    }

    fn set() -> impl Strategy<Value = AfiSafiSet> {
        prop::collection::vec(family(), 0..4).prop_map(|v| v.into_iter().collect())
    }

    fn duration() -> impl Strategy<Value = Duration> {
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n))
    }

    fn capability() -> impl Strategy<Value = Capability> {
        let any_family =
            (any::<u16>(), any::<u8>()).prop_map(|(a, s)| AfiSafi::new(Afi(a), Safi(s)));
        prop_oneof![
            any_family.prop_map(Capability::Multiprotocol),
            Just(Capability::RouteRefresh),
            Just(Capability::EnhancedRouteRefresh),
            Just(Capability::ExtendedMessage),
            (
                0u8..=0xf,
                0u16..=0xfff,
                prop::collection::vec((family(), any::<bool>()), 0..4)
            )
                .prop_map(|(flags, restart_time, f)| {
                    Capability::GracefulRestart(GracefulRestart {
                        flags,
                        restart_time,
                        families: f
                            .into_iter()
                            .map(|(f, fwd)| GracefulRestartFamily::new(f, fwd))
                            .collect(),
                    })
                }),
            prop::collection::vec((family(), any::<u8>(), 0u32..=0xff_ffff), 0..4).prop_map(|f| {
                Capability::LongLivedGracefulRestart(LongLivedGracefulRestart {
                    families: f
                        .into_iter()
                        .map(|(afi_safi, flags, stale_time)| LlgrFamily {
                            afi_safi,
                            flags,
                            stale_time,
                        })
                        .collect(),
                })
            }),
            (any::<u8>(), prop::collection::vec(any::<u8>(), 0..16))
                .prop_filter("unknown codes only", |(c, _)| !code::KNOWN.contains(c))
                .prop_map(|(code, d)| Capability::Unknown {
                    code,
                    data: Bytes::from(d),
                }),
        ]
    }

    fn any_open() -> impl Strategy<Value = Open> {
        (
            1u32..,
            any::<u16>(),
            any::<u32>(),
            prop::collection::vec(capability(), 0..8),
        )
            .prop_map(|(asn, hold, id, caps)| Open::new(Asn(asn), hold, Ipv4Addr::from(id), caps))
    }

    fn notification() -> impl Strategy<Value = Notification> {
        (
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..32),
        )
            .prop_map(|(c, s, d)| Notification::with_data(c, s, d))
    }

    fn down_reason() -> impl Strategy<Value = Option<DownReason>> {
        prop_oneof![
            Just(None),
            notification().prop_map(|n| Some(DownReason::NotificationSent(n))),
            notification().prop_map(|n| Some(DownReason::NotificationReceived(n))),
            Just(Some(DownReason::HoldTimerExpired)),
            Just(Some(DownReason::SendHoldTimerExpired)),
            Just(Some(DownReason::TcpError)),
            Just(Some(DownReason::AdminStop)),
            Just(Some(DownReason::ConfigChange)),
        ]
    }

    fn gr_families() -> impl Strategy<Value = Vec<GrFamilyImage>> {
        let phase = prop::sample::select(vec![
            Phase::Fresh,
            Phase::Retained,
            Phase::Stale,
            Phase::LongLived,
            Phase::Refresh,
        ]);
        let opt = || prop::option::of(duration());
        prop::collection::vec((phase, opt(), opt(), opt(), opt()), 4).prop_flat_map(|states| {
            let all: Vec<_> = AfiSafi::KNOWN.into_iter().zip(states).collect();
            prop::sample::subsequence(all, 0..=4).prop_map(|v| {
                v.into_iter()
                    .map(
                        |(family, (phase, remaining, stale_for, cap_remaining, llgr))| {
                            GrFamilyImage {
                                family,
                                phase,
                                remaining,
                                stale_for,
                                cap_remaining,
                                llgr,
                            }
                        },
                    )
                    .collect()
            })
        })
    }

    fn image() -> impl Strategy<Value = SessionImage> {
        let timers = prop::collection::btree_map(
            prop::sample::select(Timer::ALL.to_vec()),
            duration(),
            0..=11,
        );
        (
            (
                any_open(),
                any_open(),
                any::<u16>(),
                duration(),
                set(),
                timers,
            ),
            (
                gr_families(),
                any::<u32>(),
                any::<u32>(),
                any::<[bool; 4]>(),
                set(),
                down_reason(),
            ),
            (
                prop::option::of(any::<u64>()),
                prop::collection::vec(any::<u8>(), 0..64),
            ),
        )
            .prop_map(
                |(
                    (local_open, peer_open, keepalive_time, established_for, eor_pending, timers),
                    (graceful_restart, crc, failures, flags, forwarding, last_down),
                    (jitter, rx),
                )| SessionImage {
                    local_open,
                    peer_open,
                    keepalive_time,
                    established_for,
                    eor_pending,
                    timers,
                    graceful_restart,
                    connect_retry_counter: crc,
                    failures,
                    started: flags[0],
                    passive: flags[1],
                    restarting: flags[2],
                    forwarding,
                    limit_stopped: flags[3],
                    last_down,
                    jitter,
                    rx: Bytes::from(rx),
                },
            )
    }

    proptest! {
        #[test]
        fn images_round_trip(i in image()) {
            let b = encoded(&i);
            prop_assert_eq!(SessionImage::decode(&b), Ok(i));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = SessionImage::decode(&b);
        }

        #[test]
        fn corrupted_images_never_panic(i in image(), at in any::<prop::sample::Index>(), v in any::<u8>()) {
            let mut b = encoded(&i);
            let at = at.index(b.len());
            b[at] = v;
            let _ = SessionImage::decode(&b);
        }
    }
}
