//! Hand-over: a running speaker gives its live sessions to a new process, so that a restart
//! (an upgrade, say) is invisible to the peers: their sessions never leave Established, they
//! send nothing again and receive nothing because of it.
//!
//! A session is data ([`bgp_fsm::SessionImage`]), and Linux passes a live TCP socket from
//! one process to another over a Unix socket (`SCM_RIGHTS`). The running speaker listens on
//! a Unix socket ([`crate::GlobalSettings::hand_over_socket`]); a new process connects to
//! it ([`crate::Speaker::take_over`]). Then:
//!
//! 1. The old process stops reading every session at a message boundary (what was read and
//!    not yet processed goes along), lets the core take in what the sessions produced,
//!    writes into each session's write buffer everything its Adj-RIB-Out owes, and stops
//!    writing (what is not written yet goes along). Each peer now holds exactly the export of
//!    the Loc-RIB.
//! 2. It sends the image: a fixed prelude with the sockets attached (the listening sockets
//!    too, so that no connection attempt is refused), a JSON document (peers, the embedder's
//!    announcements, flags, what each peer holds per family), and binary parts: per session
//!    its [`bgp_fsm::SessionImage`] and the unread and unwritten bytes.
//! 3. The new process checks the image and sets its speaker up, then answers `ACK` (or
//!    `REFUSE reason`). It starts nothing before the old one confirms with `RELEASED`: until
//!    then the old one owns the sessions.
//! 4. On `ACK` the old process lets go of its copies of the sockets without closing the
//!    connections; the new one resumes every session in Established at once (keepalives on
//!    the same schedule). The pause ends here.
//! 5. The old process then sends each session's Adj-RIB-In
//!    ([`bgp_rib::Rib::adj_in_image`]) and ends; the new one restores them behind the running
//!    sessions (what the peers send meanwhile waits for the core), then marks the sessions
//!    up with nothing owed. Routes that do not come (the old process died) are asked for
//!    again with a route refresh.
//!
//! If the new process fails, dies or does not answer in time, the old one writes `ROLLBACK`
//! (when it still can) and resumes the sessions itself: nothing was read or written in the
//! meantime, so the byte streams are intact. If both are gone, the connections close and the
//! peers' graceful restart keeps our routes. A new process that cannot read the image (a
//! format version it does not know) answers `REFUSE`: the old process then stops for a
//! graceful restart (restart-state file, no Hard Reset) and closes the Unix socket, and the
//! new one starts as a restarting speaker.
//!
//! The prelude's layout is fixed for every version: `"BGPHOVER"`, the format version (u32),
//! the JSON document's length (u32), the binary parts' total length (u64) and the number of
//! sockets (u32), all big-endian. Sockets beyond the first 250 follow in one-octet
//! messages (`F`) of up to 250 each.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bgp_wire::{AfiSafi, AfiSafiSet, Community, ExtCommunity, LargeCommunity, Origin};
use bytes::Bytes;
use ipnet::IpNet;
use sendfd::{RecvWithFd, SendWithFd};
use serde::{Deserialize, Serialize};

use crate::core::Announcement;

/// The version of the hand-over format this build writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;

/// The first octets of a hand-over.
pub const MAGIC: [u8; 8] = *b"BGPHOVER";

/// How long either side waits for the other at each step, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const PRELUDE_LEN: usize = 28;
const FDS_PER_MESSAGE: usize = 250;
/// The largest JSON document accepted.
const MAX_META: u32 = 64 << 20;
/// The most sockets accepted.
const MAX_FDS: u32 = 65_536;
/// The longest answer line accepted.
const MAX_LINE: usize = 4096;

/// Why a hand-over (old side) or a take-over (new side) did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HandOverError {
    /// Reading from or writing to the other process failed (it died, say).
    #[error("hand-over connection: {0}")]
    Io(#[from] io::Error),
    /// The other process did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The image is not one this build can read (a format version it does not know, say);
    /// the old process stops for a graceful restart instead.
    #[error("hand-over refused: {0}")]
    Refused(String),
    /// The old process resumed the sessions itself (it gave up waiting, say).
    #[error("the running process rolled back")]
    RolledBack,
    /// The image is malformed.
    #[error("bad hand-over image: {0}")]
    BadImage(String),
    /// The speaker cannot hand over now (its initial routes are not in yet, say).
    #[error("cannot hand over now: {0}")]
    NotNow(String),
    /// The new speaker could not be set up (a listener could not be bound, say).
    #[error(transparent)]
    Setup(#[from] crate::speaker::SpeakerError),
}

/// What one speaker hands to the next, apart from the sockets and the binary parts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// The package and version that wrote it.
    pub(crate) software: String,
    /// Our AS.
    pub(crate) asn: u32,
    /// Our BGP identifier.
    pub(crate) router_id: Option<Ipv4Addr>,
    /// The embedder said its initial routes are in.
    pub(crate) initial_routes_done: bool,
    /// Graceful shutdown (RFC 8326) is on.
    pub(crate) graceful_shutdown: bool,
    /// The embedder's routes.
    pub(crate) announcements: Vec<AnnouncementImage>,
    /// Listening sockets: address and socket index.
    pub(crate) listeners: Vec<(SocketAddr, usize)>,
    /// The sessions handed over.
    pub(crate) peers: Vec<PeerMeta>,
    /// The lengths of the binary parts, in order.
    pub(crate) blobs: Vec<u64>,
}

/// One session handed over.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct PeerMeta {
    pub(crate) address: Option<IpAddr>,
    pub(crate) port: u16,
    pub(crate) interface: Option<String>,
    /// Index of its socket.
    pub(crate) socket: usize,
    /// The peer's BGP identifier as the RIB knows it.
    pub(crate) router_id: Option<Ipv4Addr>,
    /// Indexes of the binary parts: session image, unread bytes, unwritten bytes. (Its
    /// routes follow the confirmation: [`send_routes`].)
    pub(crate) session: usize,
    pub(crate) read: usize,
    pub(crate) write: usize,
    /// Families kept stale by graceful restart, as (AFI, SAFI).
    pub(crate) stale: Vec<(u16, u8)>,
    /// Families whose prefix-limit warning was reported.
    pub(crate) limit_warned: Vec<(u16, u8)>,
    /// Families over their prefix limit.
    pub(crate) limit_exceeded: Vec<(u16, u8)>,
    /// What the peer holds from us, per family: (AFI, SAFI, prefixes); `None`: unknown.
    pub(crate) told: Option<Vec<(u16, u8, u64)>>,
}

/// An [`Announcement`] in the image.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct AnnouncementImage {
    pub(crate) prefix: Option<IpNet>,
    pub(crate) next_hop: Option<IpAddr>,
    pub(crate) origin: u8,
    pub(crate) med: Option<u32>,
    pub(crate) local_pref: Option<u32>,
    pub(crate) communities: Vec<u32>,
    pub(crate) large_communities: Vec<[u32; 3]>,
    pub(crate) ext_communities: Vec<[u8; 8]>,
    pub(crate) as_path_prepend: u8,
    pub(crate) peers: Vec<IpAddr>,
}

impl From<&Announcement> for AnnouncementImage {
    fn from(a: &Announcement) -> Self {
        AnnouncementImage {
            prefix: Some(a.prefix),
            next_hop: a.next_hop,
            origin: match a.origin {
                Origin::Igp => 0,
                Origin::Egp => 1,
                Origin::Incomplete => 2,
            },
            med: a.med,
            local_pref: a.local_pref,
            communities: a.communities.iter().map(|c| c.0).collect(),
            large_communities: a
                .large_communities
                .iter()
                .map(|c| [c.global, c.local1, c.local2])
                .collect(),
            ext_communities: a.ext_communities.iter().map(|c| c.0).collect(),
            as_path_prepend: a.as_path_prepend,
            peers: a.peers.clone(),
        }
    }
}

impl AnnouncementImage {
    pub(crate) fn to_announcement(&self) -> Result<Announcement, HandOverError> {
        let prefix = self
            .prefix
            .ok_or_else(|| HandOverError::BadImage("announcement without a prefix".into()))?;
        let mut a = Announcement::new(prefix);
        a.next_hop = self.next_hop;
        a.origin = match self.origin {
            0 => Origin::Igp,
            1 => Origin::Egp,
            2 => Origin::Incomplete,
            o => return Err(HandOverError::BadImage(format!("ORIGIN {o}"))),
        };
        a.med = self.med;
        a.local_pref = self.local_pref;
        a.communities = self.communities.iter().map(|c| Community(*c)).collect();
        a.large_communities = self
            .large_communities
            .iter()
            .map(|[g, l1, l2]| LargeCommunity {
                global: *g,
                local1: *l1,
                local2: *l2,
            })
            .collect();
        a.ext_communities = self
            .ext_communities
            .iter()
            .map(|c| ExtCommunity(*c))
            .collect();
        a.as_path_prepend = self.as_path_prepend;
        a.peers.clone_from(&self.peers);
        Ok(a)
    }
}

/// A set of families as (AFI, SAFI) pairs.
pub(crate) fn families_out(set: AfiSafiSet) -> Vec<(u16, u8)> {
    set.iter().map(|f| (f.afi.0, f.safi.0)).collect()
}

/// The known families among (AFI, SAFI) pairs.
pub(crate) fn families_in(list: &[(u16, u8)]) -> AfiSafiSet {
    let mut set = AfiSafiSet::EMPTY;
    for f in AfiSafi::KNOWN {
        if list.contains(&(f.afi.0, f.safi.0)) {
            set.insert(f);
        }
    }
    set
}

/// Per-family counts as (AFI, SAFI, count).
pub(crate) fn counts_out(counts: &[(AfiSafi, usize)]) -> Vec<(u16, u8, u64)> {
    counts
        .iter()
        .map(|(f, n)| (f.afi.0, f.safi.0, *n as u64))
        .collect()
}

/// The known families' counts among (AFI, SAFI, count) triples.
pub(crate) fn counts_in(list: &[(u16, u8, u64)]) -> Vec<(AfiSafi, usize)> {
    AfiSafi::KNOWN
        .into_iter()
        .filter_map(|f| {
            let (_, _, n) = list
                .iter()
                .find(|(a, s, _)| (*a, *s) == (f.afi.0, f.safi.0))?;
            Some((f, usize::try_from(*n).ok()?))
        })
        .collect()
}

/// A whole image: the document, the binary parts and the sockets.
#[derive(Debug, Default)]
pub(crate) struct Image {
    pub(crate) meta: Meta,
    pub(crate) blobs: Vec<Bytes>,
    pub(crate) sockets: Vec<OwnedFd>,
}

impl Image {
    /// Adds a binary part; returns its index.
    pub(crate) fn blob(&mut self, b: Bytes) -> usize {
        self.meta.blobs.push(b.len() as u64);
        self.blobs.push(b);
        self.blobs.len() - 1
    }

    /// Adds a socket; returns its index.
    pub(crate) fn socket(&mut self, fd: OwnedFd) -> usize {
        self.sockets.push(fd);
        self.sockets.len() - 1
    }

    /// A binary part by index (empty when out of range, which [`Image::check`] rules out).
    pub(crate) fn part(&self, i: usize) -> Bytes {
        self.blobs.get(i).cloned().unwrap_or_default()
    }

    /// Checks that every index in the document points at a part or a socket.
    pub(crate) fn check(&self) -> Result<(), HandOverError> {
        let bad = |what: &str| Err(HandOverError::BadImage(format!("{what} out of range")));
        let (nb, ns) = (self.blobs.len(), self.sockets.len());
        for (_, s) in &self.meta.listeners {
            if *s >= ns {
                return bad("listening socket");
            }
        }
        for p in &self.meta.peers {
            if p.socket >= ns {
                return bad("socket");
            }
            if [p.session, p.read, p.write].iter().any(|i| *i >= nb) {
                return bad("binary part");
            }
            if p.address.is_none() {
                return Err(HandOverError::BadImage("peer without an address".into()));
            }
        }
        Ok(())
    }
}

/// Writes an image (old side). The sockets go with the prelude.
pub(crate) fn send(stream: &mut UnixStream, image: &Image) -> Result<(), HandOverError> {
    let json =
        serde_json::to_vec(&image.meta).map_err(|e| HandOverError::BadImage(e.to_string()))?;
    let json_len = u32::try_from(json.len())
        .ok()
        .filter(|n| *n <= MAX_META)
        .ok_or_else(|| HandOverError::BadImage("document too large".into()))?;
    let blobs_len: u64 = image.blobs.iter().map(|b| b.len() as u64).sum();
    let fds: Vec<RawFd> = image.sockets.iter().map(AsRawFd::as_raw_fd).collect();
    let fd_count =
        u32::try_from(fds.len()).map_err(|_| HandOverError::BadImage("too many sockets".into()))?;
    let mut prelude = Vec::with_capacity(PRELUDE_LEN);
    prelude.extend_from_slice(&MAGIC);
    prelude.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    prelude.extend_from_slice(&json_len.to_be_bytes());
    prelude.extend_from_slice(&blobs_len.to_be_bytes());
    prelude.extend_from_slice(&fd_count.to_be_bytes());
    let first = fds.len().min(FDS_PER_MESSAGE);
    let sent = match fds.get(..first) {
        Some(f) if !f.is_empty() => stream.send_with_fd(&prelude, f)?,
        _ => 0,
    };
    stream.write_all(prelude.get(sent..).unwrap_or_default())?;
    for chunk in fds.get(first..).unwrap_or_default().chunks(FDS_PER_MESSAGE) {
        if stream.send_with_fd(b"F", chunk)? != 1 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "socket batch not sent").into());
        }
    }
    stream.write_all(&json)?;
    for b in &image.blobs {
        stream.write_all(b)?;
    }
    stream.flush()?;
    Ok(())
}

/// What [`receive`] found.
#[derive(Debug)]
pub(crate) enum Received {
    /// An image this build reads.
    Image(Image),
    /// A format version this build does not know (the rest was read and dropped).
    Unknown(u32),
    /// The running speaker cannot hand over now, for this reason.
    Declined(String),
}

/// Tells the new process that this speaker cannot hand over now (old side): a prelude of
/// version 0 followed by the reason.
pub(crate) fn decline(stream: &mut UnixStream, reason: &str) -> io::Result<()> {
    let reason = reason.as_bytes();
    let len = u32::try_from(reason.len().min(MAX_LINE)).unwrap_or(0);
    let mut prelude = Vec::with_capacity(PRELUDE_LEN + reason.len());
    prelude.extend_from_slice(&MAGIC);
    prelude.extend_from_slice(&0u32.to_be_bytes());
    prelude.extend_from_slice(&len.to_be_bytes());
    prelude.extend_from_slice(&0u64.to_be_bytes());
    prelude.extend_from_slice(&0u32.to_be_bytes());
    prelude.extend_from_slice(reason.get(..len as usize).unwrap_or_default());
    stream.write_all(&prelude)?;
    stream.flush()
}

/// Reads an image (new side). Allocates as the bytes arrive, never by a declared length
/// alone.
pub(crate) fn receive(stream: &mut UnixStream) -> Result<Received, HandOverError> {
    let mut prelude = [0u8; PRELUDE_LEN];
    let mut fd_buf = [0 as RawFd; FDS_PER_MESSAGE];
    let (n, nfds) = stream.recv_with_fd(&mut prelude, &mut fd_buf)?;
    let mut sockets = Vec::new();
    for fd in fd_buf.iter().take(nfds) {
        sockets.push(crate::sockopt::received_fd(*fd)?);
    }
    if n == 0 {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
    }
    stream.read_exact(prelude.get_mut(n..).unwrap_or_default())?;
    let field = |r: std::ops::Range<usize>| prelude.get(r).unwrap_or_default().to_vec();
    if field(0..8) != MAGIC {
        return Err(HandOverError::BadImage("not a hand-over (magic)".into()));
    }
    let u32_at = |i: usize| {
        let b = field(i..i + 4);
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    };
    let version = u32_at(8);
    let json_len = u32_at(12);
    let b = field(16..24);
    let blobs_len = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let fd_count = u32_at(24);
    if json_len > MAX_META || fd_count > MAX_FDS {
        return Err(HandOverError::BadImage(
            "declared sizes out of bounds".into(),
        ));
    }
    while sockets.len() < fd_count as usize {
        let mut one = [0u8; 1];
        let (n, nfds) = stream.recv_with_fd(&mut one, &mut fd_buf)?;
        for fd in fd_buf.iter().take(nfds) {
            sockets.push(crate::sockopt::received_fd(*fd)?);
        }
        if n != 1 || one[0] != b'F' || nfds == 0 {
            return Err(HandOverError::BadImage("socket batch expected".into()));
        }
    }
    if sockets.len() != fd_count as usize {
        return Err(HandOverError::BadImage("socket count differs".into()));
    }
    if version == 0 {
        let mut why = Vec::new();
        (&mut *stream)
            .take(u64::from(json_len.min(MAX_LINE as u32)))
            .read_to_end(&mut why)?;
        return Ok(Received::Declined(
            String::from_utf8_lossy(&why).into_owned(),
        ));
    }
    if version != FORMAT_VERSION {
        // Read and drop the rest, so that the writer is not left blocked.
        let rest = u64::from(json_len).saturating_add(blobs_len);
        io::copy(&mut (&mut *stream).take(rest), &mut io::sink())?;
        return Ok(Received::Unknown(version));
    }
    let mut json = Vec::new();
    (&mut *stream)
        .take(u64::from(json_len))
        .read_to_end(&mut json)?;
    if json.len() != json_len as usize {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
    }
    let meta: Meta =
        serde_json::from_slice(&json).map_err(|e| HandOverError::BadImage(e.to_string()))?;
    let declared: u64 = meta.blobs.iter().sum();
    if declared != blobs_len {
        return Err(HandOverError::BadImage("part lengths do not add up".into()));
    }
    let mut blobs = Vec::with_capacity(meta.blobs.len().min(1 << 16));
    for len in &meta.blobs {
        let mut b = Vec::new();
        (&mut *stream).take(*len).read_to_end(&mut b)?;
        if b.len() as u64 != *len {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        blobs.push(Bytes::from(b));
    }
    let image = Image {
        meta,
        blobs,
        sockets,
    };
    image.check()?;
    Ok(Received::Image(image))
}

/// The end of the routes.
const ROUTES_END: u32 = u32::MAX;
/// The largest routes part accepted for one session (a full table is about 25 MB).
const MAX_ROUTES: u64 = 16 << 30;

/// Writes one session's routes (old side, after `RELEASED`): its index in the document's
/// peers, the length (u64) and the Adj-RIB-In image.
pub(crate) fn send_routes(stream: &mut UnixStream, peer: u32, routes: &[u8]) -> io::Result<()> {
    stream.write_all(&peer.to_be_bytes())?;
    stream.write_all(&(routes.len() as u64).to_be_bytes())?;
    stream.write_all(routes)
}

/// Ends the routes (old side).
pub(crate) fn end_routes(stream: &mut UnixStream) -> io::Result<()> {
    stream.write_all(&ROUTES_END.to_be_bytes())?;
    stream.flush()
}

/// Reads one session's routes (new side): `None` after the last.
pub(crate) fn receive_routes(
    stream: &mut UnixStream,
) -> Result<Option<(u32, Bytes)>, HandOverError> {
    let mut peer = [0u8; 4];
    stream.read_exact(&mut peer)?;
    let peer = u32::from_be_bytes(peer);
    if peer == ROUTES_END {
        return Ok(None);
    }
    let mut len = [0u8; 8];
    stream.read_exact(&mut len)?;
    let len = u64::from_be_bytes(len);
    if len > MAX_ROUTES {
        return Err(HandOverError::BadImage(format!(
            "routes part of {len} octets"
        )));
    }
    let mut b = Vec::new();
    (&mut *stream).take(len).read_to_end(&mut b)?;
    if b.len() as u64 != len {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
    }
    Ok(Some((peer, Bytes::from(b))))
}

/// Writes one answer line.
pub(crate) fn say(stream: &mut UnixStream, line: &str) -> io::Result<()> {
    stream.write_all(line.as_bytes())?;
    stream.write_all(b"\n")?;
    stream.flush()
}

/// Reads one answer line (without its newline); `None` at the end of the stream.
pub(crate) fn hear(stream: &mut UnixStream) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte)? {
            0 if line.is_empty() => return Ok(None),
            0 => break,
            _ if byte[0] == b'\n' => break,
            _ => {
                if line.len() >= MAX_LINE {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
                }
                line.push(byte[0]);
            }
        }
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// The new process's answer to an image.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// It takes the sessions.
    Ack,
    /// It cannot (the reason).
    Refuse(String),
}

/// Reads the new process's answer (old side); a timeout or an error is an error.
pub(crate) fn answer(stream: &mut UnixStream, timeout: Duration) -> Result<Answer, HandOverError> {
    stream.set_read_timeout(Some(timeout))?;
    match hear(stream) {
        Ok(Some(l)) if l == "ACK" => Ok(Answer::Ack),
        Ok(Some(l)) => match l.strip_prefix("REFUSE") {
            Some(why) => Ok(Answer::Refuse(why.trim().to_string())),
            None => Err(HandOverError::BadImage(format!("unexpected answer {l:?}"))),
        },
        Ok(None) => Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(HandOverError::Timeout(timeout))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().unwrap()
    }

    fn sample() -> Image {
        let mut img = Image::default();
        img.meta.software = "test".into();
        img.meta.asn = 65001;
        let s = img.blob(Bytes::from_static(b"session"));
        let r = img.blob(Bytes::new());
        let w = img.blob(Bytes::from(vec![7u8; 100_000]));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = img.socket(OwnedFd::from(l));
        img.meta.peers.push(PeerMeta {
            address: Some("127.0.0.2".parse().unwrap()),
            port: 179,
            socket: fd,
            session: s,
            read: r,
            write: w,
            stale: families_out([AfiSafi::IPV6_UNICAST].into_iter().collect()),
            ..PeerMeta::default()
        });
        img
    }

    #[test]
    fn an_image_and_its_sockets_arrive_whole() {
        let (mut a, mut b) = pair();
        let img = sample();
        let t = std::thread::spawn(move || send(&mut a, &img).map(|()| a));
        let Received::Image(got) = receive(&mut b).unwrap() else {
            panic!("unknown version")
        };
        t.join().unwrap().unwrap();
        assert_eq!(got.meta.asn, 65001);
        assert_eq!(got.blobs.len(), 3);
        assert_eq!(got.part(2).len(), 100_000);
        assert_eq!(got.sockets.len(), 1);
        assert_eq!(
            families_in(&got.meta.peers[0].stale),
            [AfiSafi::IPV6_UNICAST].into_iter().collect()
        );
        // The socket is a working listener in this process too.
        let l = std::net::TcpListener::from(got.sockets.into_iter().next().unwrap());
        assert!(l.local_addr().unwrap().port() > 0);
    }

    #[test]
    fn hundreds_of_sockets_go_in_batches() {
        let (mut a, mut b) = pair();
        let mut img = Image::default();
        for _ in 0..600 {
            let (x, _y) = pair();
            img.socket(OwnedFd::from(x));
        }
        let t = std::thread::spawn(move || send(&mut a, &img));
        let Received::Image(got) = receive(&mut b).unwrap() else {
            panic!("unknown version")
        };
        t.join().unwrap().unwrap();
        assert_eq!(got.sockets.len(), 600);
    }

    #[test]
    fn a_decline_carries_its_reason() {
        let (mut a, mut b) = pair();
        decline(&mut a, "initial routes not in yet").unwrap();
        match receive(&mut b).unwrap() {
            Received::Declined(why) => assert_eq!(why, "initial routes not in yet"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_version_is_read_and_reported() {
        let (mut a, mut b) = pair();
        let mut prelude = MAGIC.to_vec();
        prelude.extend_from_slice(&99u32.to_be_bytes());
        prelude.extend_from_slice(&3u32.to_be_bytes());
        prelude.extend_from_slice(&5u64.to_be_bytes());
        prelude.extend_from_slice(&0u32.to_be_bytes());
        prelude.extend_from_slice(b"abcdefgh");
        a.write_all(&prelude).unwrap();
        assert!(matches!(receive(&mut b).unwrap(), Received::Unknown(99)));
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        for bytes in [
            b"NOTAHANDOVER-----------------".to_vec(),
            MAGIC.to_vec(),
            {
                let mut v = MAGIC.to_vec();
                v.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
                v.extend_from_slice(&u32::MAX.to_be_bytes());
                v.extend_from_slice(&0u64.to_be_bytes());
                v.extend_from_slice(&0u32.to_be_bytes());
                v
            },
            {
                let mut v = MAGIC.to_vec();
                v.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
                v.extend_from_slice(&2u32.to_be_bytes());
                v.extend_from_slice(&0u64.to_be_bytes());
                v.extend_from_slice(&0u32.to_be_bytes());
                v.extend_from_slice(b"{}");
                v
            },
        ] {
            let (mut a, mut b) = pair();
            a.write_all(&bytes).unwrap();
            drop(a);
            // `{}` is a valid document with no parts: that one reads.
            if let Ok(Received::Image(i)) = receive(&mut b) {
                assert!(i.meta.peers.is_empty());
            }
        }
    }

    #[test]
    fn an_image_pointing_outside_its_parts_is_refused() {
        let mut img = sample();
        img.meta.peers[0].write = 17;
        assert!(matches!(img.check(), Err(HandOverError::BadImage(_))));
    }

    #[test]
    fn routes_follow_one_session_at_a_time() {
        let (mut a, mut b) = pair();
        let t = std::thread::spawn(move || {
            send_routes(&mut a, 0, &[1, 2, 3]).unwrap();
            send_routes(&mut a, 7, &vec![9u8; 300_000]).unwrap();
            end_routes(&mut a).unwrap();
        });
        assert_eq!(
            receive_routes(&mut b).unwrap(),
            Some((0, Bytes::from_static(&[1, 2, 3])))
        );
        let (i, r) = receive_routes(&mut b).unwrap().unwrap();
        assert_eq!((i, r.len()), (7, 300_000));
        assert_eq!(receive_routes(&mut b).unwrap(), None);
        t.join().unwrap();
        // Cut short: an error, not a short part.
        let (mut a, mut b) = pair();
        a.write_all(&0u32.to_be_bytes()).unwrap();
        a.write_all(&10u64.to_be_bytes()).unwrap();
        a.write_all(&[1, 2]).unwrap();
        drop(a);
        assert!(receive_routes(&mut b).is_err());
    }

    #[test]
    fn answers_are_read_with_a_timeout() {
        let (mut a, mut b) = pair();
        say(&mut a, "REFUSE format version 2").unwrap();
        assert_eq!(
            answer(&mut b, Duration::from_secs(1)).unwrap(),
            Answer::Refuse("format version 2".into())
        );
        let e = answer(&mut b, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(e, HandOverError::Timeout(_)), "{e}");
        say(&mut a, "ACK").unwrap();
        assert_eq!(answer(&mut b, Duration::from_secs(1)).unwrap(), Answer::Ack);
        drop(a);
        assert!(answer(&mut b, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn announcements_survive_the_image() {
        let mut a = Announcement::new("198.51.100.0/24".parse().unwrap())
            .with_next_hop("192.0.2.1".parse().unwrap());
        a.med = Some(5);
        a.origin = Origin::Incomplete;
        a.communities = vec![Community(0x0001_0002)];
        a.large_communities = vec![LargeCommunity {
            global: 1,
            local1: 2,
            local2: 3,
        }];
        a.ext_communities = vec![ExtCommunity([0, 2, 0, 1, 0, 0, 0, 9])];
        a.as_path_prepend = 2;
        a.peers = vec!["10.0.0.1".parse().unwrap()];
        let json = serde_json::to_string(&AnnouncementImage::from(&a)).unwrap();
        let back: AnnouncementImage = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_announcement().unwrap(), a);
    }
}
