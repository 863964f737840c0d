//! Capabilities advertisement (RFC 5492) and every capability a modern speaker exchanges.
//!
//! A capability is a TLV inside an OPEN's Capabilities optional parameter (type 2): a code
//! octet, a length octet and `length` octets of value (RFC 5492 §4). Every capability this
//! crate knows decodes into a typed variant of [`Capability`]; every other code is kept as
//! [`Capability::Unknown`] and re-encodes unchanged.
//!
//! # Malformed capabilities
//!
//! RFC 5492 does not say what to do with a known capability whose value has the wrong length
//! (a 4-octet AS capability of 3 octets, a graceful-restart capability of 5). We treat it as an
//! error in the OPEN: [`ErrorKind::MalformedOpen`] (NOTIFICATION OPEN Message Error /
//! Unspecific) with the offset of the capability's code octet. Ignoring it instead would let a
//! session come up with, say, a 2-octet AS the peer never meant, which is worse than refusing
//! the session with a precise error.
//!
//! # Round trips
//!
//! Decoding then encoding gives back the same octets, with one exception: the reserved octet of
//! the multiprotocol capability (RFC 4760 §8, "SHOULD be set to 0 by the sender and ignored by
//! the receiver") is re-encoded as zero.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError, ErrorKind};
use crate::reader::Reader;
use crate::types::{Afi, AfiSafi, Asn, Safi};

/// Capability codes (IANA "Capability Codes").
pub mod code {
    /// Multiprotocol Extensions (RFC 4760).
    pub const MULTIPROTOCOL: u8 = 0x01;
    /// Route Refresh (RFC 2918).
    pub const ROUTE_REFRESH: u8 = 0x02;
    /// Extended Next Hop Encoding (RFC 8950).
    pub const EXTENDED_NEXT_HOP: u8 = 0x05;
    /// BGP Extended Message (RFC 8654).
    pub const EXTENDED_MESSAGE: u8 = 0x06;
    /// BGP Role (RFC 9234).
    pub const ROLE: u8 = 0x09;
    /// Graceful Restart (RFC 4724).
    pub const GRACEFUL_RESTART: u8 = 0x40;
    /// Support for 4-octet AS number (RFC 6793).
    pub const FOUR_OCTET_AS: u8 = 0x41;
    /// ADD-PATH (RFC 7911).
    pub const ADD_PATH: u8 = 0x45;
    /// Enhanced Route Refresh (RFC 7313).
    pub const ENHANCED_ROUTE_REFRESH: u8 = 0x46;
    /// Long-Lived Graceful Restart (RFC 9494).
    pub const LONG_LIVED_GRACEFUL_RESTART: u8 = 0x47;
    /// FQDN (draft-walton-bgp-hostname-capability).
    pub const FQDN: u8 = 0x49;

    /// Every code that decodes into a typed [`super::Capability`] variant.
    pub const KNOWN: [u8; 11] = [
        MULTIPROTOCOL,
        ROUTE_REFRESH,
        EXTENDED_NEXT_HOP,
        EXTENDED_MESSAGE,
        ROLE,
        GRACEFUL_RESTART,
        FOUR_OCTET_AS,
        ADD_PATH,
        ENHANCED_ROUTE_REFRESH,
        LONG_LIVED_GRACEFUL_RESTART,
        FQDN,
    ];
}

/// One capability (RFC 5492 §4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Multiprotocol Extensions for one AFI/SAFI (RFC 4760 §8). Any AFI/SAFI values.
    Multiprotocol(AfiSafi),
    /// Route Refresh (RFC 2918 §3).
    RouteRefresh,
    /// Extended Next Hop Encoding (RFC 8950 §3).
    ExtendedNextHop(ExtendedNextHop),
    /// BGP Extended Message (RFC 8654 §3).
    ExtendedMessage,
    /// BGP Role (RFC 9234 §4.1).
    Role(Role),
    /// Graceful Restart (RFC 4724 §3, RFC 8538 §2).
    GracefulRestart(GracefulRestart),
    /// Support for 4-octet AS numbers, carrying the speaker's ASN (RFC 6793 §3).
    FourOctetAs(Asn),
    /// ADD-PATH (RFC 7911 §4).
    AddPath(AddPath),
    /// Enhanced Route Refresh (RFC 7313 §3).
    EnhancedRouteRefresh,
    /// Long-Lived Graceful Restart (RFC 9494 §3).
    LongLivedGracefulRestart(LongLivedGracefulRestart),
    /// Hostname and domain name (draft-walton-bgp-hostname-capability §3).
    Fqdn(Fqdn),
    /// Any other capability, kept as it came. A value built with a known code encodes as
    /// given but decodes as the typed variant.
    Unknown {
        /// The capability code.
        code: u8,
        /// The capability value.
        data: Bytes,
    },
}

/// The Extended Next Hop Encoding capability value (RFC 8950 §3): which NLRI families may
/// carry next hops of which address family.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct ExtendedNextHop {
    /// The tuples, in wire order.
    pub entries: Vec<ExtendedNextHopEntry>,
}

/// One (NLRI AFI, NLRI SAFI, next-hop AFI) tuple of RFC 8950 §3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtendedNextHopEntry {
    /// The NLRI's address family.
    pub nlri_afi: Afi,
    /// The NLRI's SAFI, a 16-bit field on the wire (RFC 8950 §3).
    pub nlri_safi: u16,
    /// The address family of the next hop.
    pub next_hop_afi: Afi,
}

impl ExtendedNextHopEntry {
    /// The NLRI family, when the 16-bit SAFI field holds an 8-bit SAFI.
    pub fn afi_safi(&self) -> Option<AfiSafi> {
        let safi = u8::try_from(self.nlri_safi).ok()?;
        Some(AfiSafi::new(self.nlri_afi, Safi(safi)))
    }
}

/// A BGP Role (RFC 9234 §4.1). Unknown values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Provider (0).
    Provider,
    /// Route Server (1).
    RouteServer,
    /// Route Server Client (2).
    RouteServerClient,
    /// Customer (3).
    Customer,
    /// Lateral Peer (4).
    Peer,
    /// A value RFC 9234 does not define.
    Unknown(u8),
}

impl Role {
    /// The wire value.
    pub fn value(self) -> u8 {
        match self {
            Role::Provider => 0,
            Role::RouteServer => 1,
            Role::RouteServerClient => 2,
            Role::Customer => 3,
            Role::Peer => 4,
            Role::Unknown(v) => v,
        }
    }

    /// The role for a wire value.
    pub fn from_value(v: u8) -> Role {
        match v {
            0 => Role::Provider,
            1 => Role::RouteServer,
            2 => Role::RouteServerClient,
            3 => Role::Customer,
            4 => Role::Peer,
            v => Role::Unknown(v),
        }
    }

    /// The role the peer must have when we have this one (RFC 9234 §4.2, Table 2), or `None`
    /// for an unknown role.
    pub fn expected_peer_role(self) -> Option<Role> {
        Some(match self {
            Role::Provider => Role::Customer,
            Role::Customer => Role::Provider,
            Role::RouteServer => Role::RouteServerClient,
            Role::RouteServerClient => Role::RouteServer,
            Role::Peer => Role::Peer,
            Role::Unknown(_) => return None,
        })
    }
}

/// The Graceful Restart capability value (RFC 4724 §3, RFC 8538 §2).
///
/// The four restart flag bits and the per-family flag octets are kept whole, so that bits
/// defined later survive a round trip; accessors read the ones defined today.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct GracefulRestart {
    /// The 4-bit Restart Flags field (the high nibble of the first octet), `0..=0xf`:
    /// [`GracefulRestart::RESTART_STATE`] (R) and [`GracefulRestart::NOTIFICATION`] (N).
    pub flags: u8,
    /// The 12-bit Restart Time in seconds, `0..=0xfff`.
    pub restart_time: u16,
    /// Families whose state is preserved, in wire order.
    pub families: Vec<GracefulRestartFamily>,
}

impl GracefulRestart {
    /// The Restart State (R) bit of the Restart Flags (RFC 4724 §3).
    pub const RESTART_STATE: u8 = 0x8;
    /// The Graceful Notification (N) bit of the Restart Flags (RFC 8538 §2).
    pub const NOTIFICATION: u8 = 0x4;
    /// The largest restart time the 12-bit field holds.
    pub const MAX_RESTART_TIME: u16 = 0xfff;

    /// Whether the R bit is set: the sender has restarted (RFC 4724 §3).
    pub fn restart_state(&self) -> bool {
        self.flags & Self::RESTART_STATE != 0
    }

    /// Whether the N bit is set: the sender supports RFC 8538 (NOTIFICATIONs and Hard Reset).
    pub fn notification(&self) -> bool {
        self.flags & Self::NOTIFICATION != 0
    }

    /// The entry for a family, if the sender listed it.
    pub fn family(&self, f: AfiSafi) -> Option<&GracefulRestartFamily> {
        self.families.iter().find(|e| e.afi_safi == f)
    }
}

/// One AFI/SAFI entry of the Graceful Restart capability (RFC 4724 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// The family.
    pub afi_safi: AfiSafi,
    /// The "Flags for Address Family" octet: [`GracefulRestartFamily::FORWARDING_STATE`] and
    /// seven reserved bits, kept as received.
    pub flags: u8,
}

impl GracefulRestartFamily {
    /// The Forwarding State (F) bit (RFC 4724 §3).
    pub const FORWARDING_STATE: u8 = 0x80;

    /// An entry with only the F bit as given.
    pub fn new(afi_safi: AfiSafi, forwarding_state: bool) -> Self {
        let flags = if forwarding_state {
            Self::FORWARDING_STATE
        } else {
            0
        };
        GracefulRestartFamily { afi_safi, flags }
    }

    /// Whether forwarding state was preserved for the family (the F bit).
    pub fn forwarding_state(&self) -> bool {
        self.flags & Self::FORWARDING_STATE != 0
    }
}

/// The Long-Lived Graceful Restart capability value (RFC 9494 §3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct LongLivedGracefulRestart {
    /// The families, in wire order.
    pub families: Vec<LlgrFamily>,
}

impl LongLivedGracefulRestart {
    /// The entry for a family, if the sender listed it.
    pub fn family(&self, f: AfiSafi) -> Option<&LlgrFamily> {
        self.families.iter().find(|e| e.afi_safi == f)
    }
}

/// One AFI/SAFI entry of the Long-Lived Graceful Restart capability (RFC 9494 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LlgrFamily {
    /// The family.
    pub afi_safi: AfiSafi,
    /// The flags octet: [`LlgrFamily::FORWARDING_STATE`] and seven reserved bits, kept.
    pub flags: u8,
    /// The 24-bit Long-Lived Stale Time in seconds, `0..=0xff_ffff`.
    pub stale_time: u32,
}

impl LlgrFamily {
    /// The Forwarding State (F) bit (RFC 9494 §3).
    pub const FORWARDING_STATE: u8 = 0x80;
    /// The largest stale time the 24-bit field holds.
    pub const MAX_STALE_TIME: u32 = 0xff_ffff;

    /// Whether forwarding state was preserved for the family (the F bit).
    pub fn forwarding_state(&self) -> bool {
        self.flags & Self::FORWARDING_STATE != 0
    }
}

/// The ADD-PATH capability value (RFC 7911 §4).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct AddPath {
    /// The families, in wire order.
    pub families: Vec<AddPathFamily>,
}

impl AddPath {
    /// The mode for a family, if the sender listed it.
    pub fn mode(&self, f: AfiSafi) -> Option<AddPathMode> {
        self.families
            .iter()
            .find(|e| e.afi_safi == f)
            .map(|e| e.mode)
    }
}

/// One AFI/SAFI entry of the ADD-PATH capability (RFC 7911 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddPathFamily {
    /// The family.
    pub afi_safi: AfiSafi,
    /// Whether the sender can send, receive or both.
    pub mode: AddPathMode,
}

/// The Send/Receive field of ADD-PATH (RFC 7911 §4). Other values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddPathMode {
    /// The sender can receive multiple paths (1).
    Receive,
    /// The sender can send multiple paths (2).
    Send,
    /// Both (3).
    Both,
    /// A value RFC 7911 does not define; RFC 7911 §4 says to ignore such an entry.
    Other(u8),
}

impl AddPathMode {
    /// The wire value.
    pub fn value(self) -> u8 {
        match self {
            AddPathMode::Receive => 1,
            AddPathMode::Send => 2,
            AddPathMode::Both => 3,
            AddPathMode::Other(v) => v,
        }
    }

    /// The mode for a wire value.
    pub fn from_value(v: u8) -> Self {
        match v {
            1 => AddPathMode::Receive,
            2 => AddPathMode::Send,
            3 => AddPathMode::Both,
            v => AddPathMode::Other(v),
        }
    }

    /// Whether the sender can receive multiple paths.
    pub fn can_receive(self) -> bool {
        matches!(self, AddPathMode::Receive | AddPathMode::Both)
    }

    /// Whether the sender can send multiple paths.
    pub fn can_send(self) -> bool {
        matches!(self, AddPathMode::Send | AddPathMode::Both)
    }
}

/// The FQDN capability value (draft-walton-bgp-hostname-capability §3): a length-prefixed
/// hostname and a length-prefixed domain name. The octets are kept as sent, UTF-8 or not.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Fqdn {
    /// The hostname octets (at most 255).
    pub hostname: Bytes,
    /// The domain name octets (at most 255; may be empty).
    pub domain: Bytes,
}

impl Fqdn {
    /// A value from strings.
    pub fn new(hostname: &str, domain: &str) -> Self {
        Fqdn {
            hostname: Bytes::copy_from_slice(hostname.as_bytes()),
            domain: Bytes::copy_from_slice(domain.as_bytes()),
        }
    }

    /// The hostname as text, invalid UTF-8 replaced.
    pub fn hostname_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.hostname)
    }

    /// The domain name as text, invalid UTF-8 replaced.
    pub fn domain_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.domain)
    }
}

impl Capability {
    /// The capability code.
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
            Capability::Role(_) => code::ROLE,
            Capability::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Capability::AddPath(_) => code::ADD_PATH,
            Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Capability::LongLivedGracefulRestart(_) => code::LONG_LIVED_GRACEFUL_RESTART,
            Capability::Fqdn(_) => code::FQDN,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Decodes the value of a Capabilities optional parameter: zero or more capability TLVs
    /// (RFC 5492 §4). `offset` is the position of `value` in the message, for errors.
    ///
    /// A TLV whose length overruns the parameter, and a known capability whose value has the
    /// wrong length, are [`ErrorKind::MalformedOpen`] at the offset of the capability's code.
    pub fn decode_all(value: Bytes, offset: usize) -> Result<Vec<Capability>, DecodeError> {
        let mut r = Reader::new(value, offset);
        // Every capability takes at least 2 octets: the count is bounded by the input.
        let mut caps = Vec::with_capacity(r.remaining() / 2);
        while !r.is_empty() {
            caps.push(Self::decode_one(&mut r)?);
        }
        Ok(caps)
    }

    fn decode_one(r: &mut Reader) -> Result<Capability, DecodeError> {
        let at = r.offset();
        let malformed = |what| DecodeError::new(ErrorKind::MalformedOpen(what), "capability", at);
        let code = r.u8("capability code")?;
        let len = r
            .u8("capability length")
            .map_err(|_| malformed("capability header truncated"))?;
        let value = r
            .sub(usize::from(len), "capability value")
            .map_err(|_| malformed("capability length overruns the optional parameter"))?;
        Self::decode_value(code, value).ok_or_else(|| malformed(Self::length_rule(code)))
    }

    /// What the length of a known capability must be, for its error message.
    fn length_rule(code: u8) -> &'static str {
        match code {
            code::MULTIPROTOCOL => "multiprotocol capability length is not 4",
            code::ROUTE_REFRESH => "route refresh capability length is not 0",
            code::EXTENDED_NEXT_HOP => "extended next hop capability length is not a multiple of 6",
            code::EXTENDED_MESSAGE => "extended message capability length is not 0",
            code::ROLE => "role capability length is not 1",
            code::GRACEFUL_RESTART => "graceful restart capability length is not 2 + 4n",
            code::FOUR_OCTET_AS => "4-octet AS capability length is not 4",
            code::ADD_PATH => "ADD-PATH capability length is not a multiple of 4",
            code::ENHANCED_ROUTE_REFRESH => "enhanced route refresh capability length is not 0",
            code::LONG_LIVED_GRACEFUL_RESTART => {
                "long-lived graceful restart capability length is not a multiple of 7"
            }
            code::FQDN => "FQDN capability lengths are inconsistent",
            _ => "malformed capability",
        }
    }

    /// Decodes one value; `None` when a known capability's value is malformed. All reads are
    /// bounds-checked by `Reader`, and each list is allocated only after its length was found
    /// to be an exact multiple of the entry size.
    fn decode_value(code: u8, mut v: Reader) -> Option<Capability> {
        let len = v.remaining();
        let cap = match code {
            code::MULTIPROTOCOL if len == 4 => {
                let afi = Afi(v.u16("").ok()?);
                let _reserved = v.u8("").ok()?;
                Capability::Multiprotocol(AfiSafi::new(afi, Safi(v.u8("").ok()?)))
            }
            code::ROUTE_REFRESH if len == 0 => Capability::RouteRefresh,
            code::EXTENDED_NEXT_HOP if len % 6 == 0 => {
                let mut entries = Vec::with_capacity(len / 6);
                while !v.is_empty() {
                    entries.push(ExtendedNextHopEntry {
                        nlri_afi: Afi(v.u16("").ok()?),
                        nlri_safi: v.u16("").ok()?,
                        next_hop_afi: Afi(v.u16("").ok()?),
                    });
                }
                Capability::ExtendedNextHop(ExtendedNextHop { entries })
            }
            code::EXTENDED_MESSAGE if len == 0 => Capability::ExtendedMessage,
            code::ROLE if len == 1 => Capability::Role(Role::from_value(v.u8("").ok()?)),
            code::GRACEFUL_RESTART if len >= 2 && (len - 2) % 4 == 0 => {
                let head = v.u16("").ok()?;
                let mut families = Vec::with_capacity((len - 2) / 4);
                while !v.is_empty() {
                    families.push(GracefulRestartFamily {
                        afi_safi: read_afi_safi(&mut v)?,
                        flags: v.u8("").ok()?,
                    });
                }
                Capability::GracefulRestart(GracefulRestart {
                    flags: (head >> 12) as u8,
                    restart_time: head & GracefulRestart::MAX_RESTART_TIME,
                    families,
                })
            }
            code::FOUR_OCTET_AS if len == 4 => Capability::FourOctetAs(Asn(v.u32("").ok()?)),
            code::ADD_PATH if len % 4 == 0 => {
                let mut families = Vec::with_capacity(len / 4);
                while !v.is_empty() {
                    families.push(AddPathFamily {
                        afi_safi: read_afi_safi(&mut v)?,
                        mode: AddPathMode::from_value(v.u8("").ok()?),
                    });
                }
                Capability::AddPath(AddPath { families })
            }
            code::ENHANCED_ROUTE_REFRESH if len == 0 => Capability::EnhancedRouteRefresh,
            code::LONG_LIVED_GRACEFUL_RESTART if len % 7 == 0 => {
                let mut families = Vec::with_capacity(len / 7);
                while !v.is_empty() {
                    let afi_safi = read_afi_safi(&mut v)?;
                    let flags = v.u8("").ok()?;
                    let [a, b, c] = v.array::<3>("").ok()?;
                    families.push(LlgrFamily {
                        afi_safi,
                        flags,
                        stale_time: u32::from_be_bytes([0, a, b, c]),
                    });
                }
                Capability::LongLivedGracefulRestart(LongLivedGracefulRestart { families })
            }
            code::FQDN => {
                let hl = v.u8("").ok()?;
                let hostname = v.take(usize::from(hl), "").ok()?;
                let dl = v.u8("").ok()?;
                let domain = v.take(usize::from(dl), "").ok()?;
                if !v.is_empty() {
                    return None;
                }
                Capability::Fqdn(Fqdn { hostname, domain })
            }
            c if code::KNOWN.contains(&c) => return None,
            code => Capability::Unknown {
                code,
                data: v.take_rest(),
            },
        };
        Some(cap)
    }

    /// Appends the capability TLV (code, length, value) to `out`. A value longer than 255
    /// octets, or a field value too large for its bits (restart time, flags, stale time), is
    /// an error and leaves `out` as it was.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u8(self.code());
        out.put_u8(0);
        if let Err(e) = self.encode_value(out) {
            out.truncate(start);
            return Err(e);
        }
        let len = out.len() - start - 2;
        let Ok(len8) = u8::try_from(len) else {
            out.truncate(start);
            return Err(EncodeError::FieldTooLong {
                field: "capability value",
                len,
            });
        };
        if let Some(b) = out.get_mut(start + 1) {
            *b = len8;
        }
        Ok(())
    }

    /// The encoded length of the TLV, header included.
    pub fn encoded_len(&self) -> usize {
        2 + match self {
            Capability::Multiprotocol(_) | Capability::FourOctetAs(_) => 4,
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => 0,
            Capability::ExtendedNextHop(e) => 6 * e.entries.len(),
            Capability::Role(_) => 1,
            Capability::GracefulRestart(g) => 2 + 4 * g.families.len(),
            Capability::AddPath(a) => 4 * a.families.len(),
            Capability::LongLivedGracefulRestart(l) => 7 * l.families.len(),
            Capability::Fqdn(f) => 2 + f.hostname.len() + f.domain.len(),
            Capability::Unknown { data, .. } => data.len(),
        }
    }

    fn encode_value(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Capability::Multiprotocol(f) => {
                out.put_u16(f.afi.0);
                out.put_u8(0);
                out.put_u8(f.safi.0);
            }
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => {}
            Capability::ExtendedNextHop(e) => {
                for t in &e.entries {
                    out.put_u16(t.nlri_afi.0);
                    out.put_u16(t.nlri_safi);
                    out.put_u16(t.next_hop_afi.0);
                }
            }
            Capability::Role(r) => out.put_u8(r.value()),
            Capability::GracefulRestart(g) => {
                if g.flags > 0xf {
                    return Err(EncodeError::Invalid("graceful restart flags above 4 bits"));
                }
                if g.restart_time > GracefulRestart::MAX_RESTART_TIME {
                    return Err(EncodeError::Invalid("graceful restart time above 4095"));
                }
                out.put_u16(u16::from(g.flags) << 12 | g.restart_time);
                for f in &g.families {
                    put_afi_safi(out, f.afi_safi);
                    out.put_u8(f.flags);
                }
            }
            Capability::FourOctetAs(asn) => out.put_u32(asn.0),
            Capability::AddPath(a) => {
                for f in &a.families {
                    put_afi_safi(out, f.afi_safi);
                    out.put_u8(f.mode.value());
                }
            }
            Capability::LongLivedGracefulRestart(l) => {
                for f in &l.families {
                    if f.stale_time > LlgrFamily::MAX_STALE_TIME {
                        return Err(EncodeError::Invalid("long-lived stale time above 24 bits"));
                    }
                    put_afi_safi(out, f.afi_safi);
                    out.put_u8(f.flags);
                    out.put_slice(&f.stale_time.to_be_bytes()[1..]);
                }
            }
            Capability::Fqdn(f) => {
                for (field, v) in [("FQDN hostname", &f.hostname), ("FQDN domain", &f.domain)] {
                    let len = u8::try_from(v.len()).map_err(|_| EncodeError::FieldTooLong {
                        field,
                        len: v.len(),
                    })?;
                    out.put_u8(len);
                    out.put_slice(v);
                }
            }
            Capability::Unknown { data, .. } => out.put_slice(data),
        }
        Ok(())
    }
}

/// Reads AFI (2 octets) and SAFI (1 octet), the layout shared by RFC 4724, 7911 and 9494.
fn read_afi_safi(r: &mut Reader) -> Option<AfiSafi> {
    let afi = Afi(r.u16("").ok()?);
    Some(AfiSafi::new(afi, Safi(r.u8("").ok()?)))
}

fn put_afi_safi(out: &mut BytesMut, f: AfiSafi) {
    out.put_u16(f.afi.0);
    out.put_u8(f.safi.0);
}

/// proptest strategies for capabilities, shared with the OPEN tests.
#[cfg(test)]
pub(crate) mod arb {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    pub(crate) fn afi_safi() -> impl Strategy<Value = AfiSafi> {
        prop_oneof![
            3 => proptest::sample::select(AfiSafi::KNOWN.to_vec()),
            1 => (any::<u16>(), any::<u8>()).prop_map(|(a, s)| AfiSafi::new(Afi(a), Safi(s))),
        ]
    }

    fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
        vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
    }

    pub(crate) fn capability() -> impl Strategy<Value = Capability> {
        prop_oneof![
            afi_safi().prop_map(Capability::Multiprotocol),
            Just(Capability::RouteRefresh),
            vec(
                (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(a, s, n)| {
                    ExtendedNextHopEntry {
                        nlri_afi: Afi(a),
                        nlri_safi: s,
                        next_hop_afi: Afi(n),
                    }
                }),
                0..5
            )
            .prop_map(|entries| Capability::ExtendedNextHop(ExtendedNextHop { entries })),
            Just(Capability::ExtendedMessage),
            any::<u8>().prop_map(|v| Capability::Role(Role::from_value(v))),
            (
                0u8..=0xf,
                0u16..=0xfff,
                vec(
                    (afi_safi(), any::<u8>())
                        .prop_map(|(afi_safi, flags)| GracefulRestartFamily { afi_safi, flags }),
                    0..5
                )
            )
                .prop_map(|(flags, restart_time, families)| {
                    Capability::GracefulRestart(GracefulRestart {
                        flags,
                        restart_time,
                        families,
                    })
                }),
            any::<u32>().prop_map(|a| Capability::FourOctetAs(Asn(a))),
            vec(
                (afi_safi(), any::<u8>()).prop_map(|(afi_safi, m)| AddPathFamily {
                    afi_safi,
                    mode: AddPathMode::from_value(m)
                }),
                0..5
            )
            .prop_map(|families| Capability::AddPath(AddPath { families })),
            Just(Capability::EnhancedRouteRefresh),
            vec(
                (afi_safi(), any::<u8>(), 0u32..=0xff_ffff).prop_map(
                    |(afi_safi, flags, stale_time)| LlgrFamily {
                        afi_safi,
                        flags,
                        stale_time
                    }
                ),
                0..5
            )
            .prop_map(|families| Capability::LongLivedGracefulRestart(
                LongLivedGracefulRestart { families }
            )),
            (bytes(64), bytes(64))
                .prop_map(|(hostname, domain)| Capability::Fqdn(Fqdn { hostname, domain })),
            (
                any::<u8>().prop_filter("unknown code", |c| !code::KNOWN.contains(c)),
                bytes(40)
            )
                .prop_map(|(code, data)| Capability::Unknown { code, data }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::{code as ncode, open_subcode};
    use proptest::prelude::*;

    fn enc(c: &Capability) -> Vec<u8> {
        let mut out = BytesMut::new();
        c.encode(&mut out).unwrap();
        assert_eq!(out.len(), c.encoded_len());
        out.to_vec()
    }

    /// Decodes one TLV and encodes it back: both directions against the same vector.
    fn both_ways(wire: &[u8], cap: Capability) {
        let got = Capability::decode_all(Bytes::copy_from_slice(wire), 0).unwrap();
        assert_eq!(got, vec![cap.clone()]);
        assert_eq!(enc(&cap), wire);
    }

    fn malformed_at(wire: &[u8], offset: usize) {
        let e = Capability::decode_all(Bytes::copy_from_slice(wire), 30).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::MalformedOpen(_)), "{e:?}");
        assert_eq!(e.offset, 30 + offset);
        let n = e.notification();
        assert_eq!(
            (n.code, n.subcode, n.data.len()),
            (ncode::OPEN_MESSAGE, open_subcode::UNSPECIFIC, 0)
        );
    }

    #[test]
    fn multiprotocol_rfc4760() {
        both_ways(
            &[0x01, 0x04, 0x00, 0x02, 0x00, 0x01],
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
        );
        // Unknown AFI/SAFI values round-trip (here L2VPN EVPN, 25/70).
        both_ways(
            &[0x01, 0x04, 0x00, 0x19, 0x00, 0x46],
            Capability::Multiprotocol(AfiSafi::new(Afi(25), Safi(70))),
        );
    }

    #[test]
    fn multiprotocol_reserved_octet_is_ignored() {
        let got = Capability::decode_all(Bytes::from_static(&[1, 4, 0, 1, 0xaa, 1]), 0).unwrap();
        assert_eq!(got, vec![Capability::Multiprotocol(AfiSafi::IPV4_UNICAST)]);
    }

    #[test]
    fn empty_capabilities() {
        both_ways(&[0x02, 0x00], Capability::RouteRefresh);
        both_ways(&[0x06, 0x00], Capability::ExtendedMessage);
        both_ways(&[0x46, 0x00], Capability::EnhancedRouteRefresh);
    }

    #[test]
    fn four_octet_as_rfc6793() {
        both_ways(
            &[0x41, 0x04, 0xfa, 0x56, 0xea, 0x01],
            Capability::FourOctetAs(Asn(4_200_000_001)),
        );
    }

    #[test]
    fn role_rfc9234() {
        for (v, r) in [
            (0, Role::Provider),
            (1, Role::RouteServer),
            (2, Role::RouteServerClient),
            (3, Role::Customer),
            (4, Role::Peer),
            (9, Role::Unknown(9)),
        ] {
            both_ways(&[0x09, 0x01, v], Capability::Role(r));
        }
        assert_eq!(Role::Provider.expected_peer_role(), Some(Role::Customer));
        assert_eq!(Role::Peer.expected_peer_role(), Some(Role::Peer));
        assert_eq!(Role::Unknown(7).expected_peer_role(), None);
    }

    #[test]
    fn graceful_restart_rfc4724_rfc8538() {
        // R and N set, restart time 120, IPv4 unicast with F, IPv6 unicast without.
        let wire = [
            0x40, 0x0a, 0xc0, 0x78, 0x00, 0x01, 0x01, 0x80, 0x00, 0x02, 0x01, 0x00,
        ];
        let gr = GracefulRestart {
            flags: GracefulRestart::RESTART_STATE | GracefulRestart::NOTIFICATION,
            restart_time: 120,
            families: vec![
                GracefulRestartFamily::new(AfiSafi::IPV4_UNICAST, true),
                GracefulRestartFamily::new(AfiSafi::IPV6_UNICAST, false),
            ],
        };
        assert!(gr.restart_state() && gr.notification());
        assert_eq!(
            gr.family(AfiSafi::IPV4_UNICAST)
                .map(|f| f.forwarding_state()),
            Some(true)
        );
        assert_eq!(
            gr.family(AfiSafi::IPV6_UNICAST)
                .map(|f| f.forwarding_state()),
            Some(false)
        );
        both_ways(&wire, Capability::GracefulRestart(gr));
        // Restart time uses all 12 bits; unknown flag bits are kept (flags 0x3, F + 0x01).
        both_ways(
            &[0x40, 0x06, 0x3f, 0xff, 0x00, 0x01, 0x01, 0x81],
            Capability::GracefulRestart(GracefulRestart {
                flags: 0x3,
                restart_time: 4095,
                families: vec![GracefulRestartFamily {
                    afi_safi: AfiSafi::IPV4_UNICAST,
                    flags: 0x81,
                }],
            }),
        );
        // Helper-only: no families.
        both_ways(
            &[0x40, 0x02, 0x00, 0x5a],
            Capability::GracefulRestart(GracefulRestart {
                flags: 0,
                restart_time: 90,
                families: vec![],
            }),
        );
    }

    #[test]
    fn llgr_rfc9494() {
        both_ways(
            &[0x47, 0x07, 0x00, 0x01, 0x01, 0x80, 0x01, 0x51, 0x80],
            Capability::LongLivedGracefulRestart(LongLivedGracefulRestart {
                families: vec![LlgrFamily {
                    afi_safi: AfiSafi::IPV4_UNICAST,
                    flags: 0x80,
                    stale_time: 86400,
                }],
            }),
        );
    }

    #[test]
    fn add_path_rfc7911() {
        let ap = AddPath {
            families: vec![
                AddPathFamily {
                    afi_safi: AfiSafi::IPV4_UNICAST,
                    mode: AddPathMode::Both,
                },
                AddPathFamily {
                    afi_safi: AfiSafi::IPV6_UNICAST,
                    mode: AddPathMode::Receive,
                },
                AddPathFamily {
                    afi_safi: AfiSafi::IPV4_MULTICAST,
                    mode: AddPathMode::Other(7),
                },
            ],
        };
        assert_eq!(ap.mode(AfiSafi::IPV6_UNICAST), Some(AddPathMode::Receive));
        both_ways(
            &[0x45, 0x0c, 0, 1, 1, 3, 0, 2, 1, 1, 0, 1, 2, 7],
            Capability::AddPath(ap),
        );
    }

    #[test]
    fn extended_next_hop_rfc8950() {
        // IPv4 unicast and IPv4 VPN (SAFI 128) over IPv6 next hops.
        both_ways(
            &[
                0x05, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x02, 0x00, 0x01, 0x00, 0x80, 0x00, 0x02,
            ],
            Capability::ExtendedNextHop(ExtendedNextHop {
                entries: vec![
                    ExtendedNextHopEntry {
                        nlri_afi: Afi::IPV4,
                        nlri_safi: 1,
                        next_hop_afi: Afi::IPV6,
                    },
                    ExtendedNextHopEntry {
                        nlri_afi: Afi::IPV4,
                        nlri_safi: 128,
                        next_hop_afi: Afi::IPV6,
                    },
                ],
            }),
        );
        let e = ExtendedNextHopEntry {
            nlri_afi: Afi::IPV4,
            nlri_safi: 0x100,
            next_hop_afi: Afi::IPV6,
        };
        assert_eq!(e.afi_safi(), None);
    }

    #[test]
    fn fqdn() {
        both_ways(
            b"\x49\x0c\x04frr1\x06lab.io",
            Capability::Fqdn(Fqdn::new("frr1", "lab.io")),
        );
        both_ways(b"\x49\x04\x02r1\x00", Capability::Fqdn(Fqdn::new("r1", "")));
        let f = Fqdn {
            hostname: Bytes::from_static(b"r\xff"),
            domain: Bytes::new(),
        };
        assert_eq!(f.hostname_lossy(), "r\u{fffd}");
        both_ways(b"\x49\x04\x02r\xff\x00", Capability::Fqdn(f));
    }

    #[test]
    fn unknown_kept() {
        both_ways(
            &[0x80, 0x00],
            Capability::Unknown {
                code: 0x80,
                data: Bytes::new(),
            },
        );
        both_ways(
            &[0x83, 0x03, 1, 2, 3],
            Capability::Unknown {
                code: 0x83,
                data: Bytes::from_static(&[1, 2, 3]),
            },
        );
    }

    #[test]
    fn several_in_one_parameter() {
        let got = Capability::decode_all(
            Bytes::from_static(&[2, 0, 0x41, 4, 0, 0, 0xfd, 0xe8, 6, 0]),
            0,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                Capability::RouteRefresh,
                Capability::FourOctetAs(Asn(65000)),
                Capability::ExtendedMessage
            ]
        );
    }

    #[test]
    fn wrong_lengths_are_malformed_open_at_the_capability() {
        malformed_at(&[1, 3, 0, 1, 0], 0);
        malformed_at(&[1, 5, 0, 1, 0, 1, 0], 0);
        malformed_at(&[2, 0, 2, 1, 0], 2);
        malformed_at(&[6, 1, 0], 0);
        malformed_at(&[0x46, 1, 0], 0);
        malformed_at(&[9, 0], 0);
        malformed_at(&[9, 2, 0, 0], 0);
        malformed_at(&[0x41, 3, 0, 0, 1], 0);
        malformed_at(&[0x40, 1, 0], 0);
        malformed_at(&[0x40, 5, 0, 0, 0, 1, 1], 0);
        malformed_at(&[0x45, 3, 0, 1, 1], 0);
        malformed_at(&[0x47, 6, 0, 1, 1, 0, 0, 0], 0);
        malformed_at(&[5, 4, 0, 1, 0, 1], 0);
        // FQDN: hostname length overruns; domain length missing; trailing octet.
        malformed_at(&[0x49, 2, 5, b'a'], 0);
        malformed_at(&[0x49, 2, 1, b'a'], 0);
        malformed_at(&[0x49, 4, 1, b'a', 0, 0], 0);
    }

    #[test]
    fn truncated_tlvs_are_malformed_open() {
        // Length octet missing.
        malformed_at(&[2, 0, 0x41], 2);
        // Length overruns the parameter.
        malformed_at(&[0x41, 4, 0, 0], 0);
        malformed_at(&[0x80, 9], 0);
    }

    #[test]
    fn encode_refuses_what_does_not_fit() {
        let mut out = BytesMut::from(&b"x"[..]);
        let too_long = Capability::Unknown {
            code: 0x80,
            data: Bytes::from(vec![0; 256]),
        };
        assert_eq!(
            too_long.encode(&mut out),
            Err(EncodeError::FieldTooLong {
                field: "capability value",
                len: 256
            })
        );
        let gr = Capability::GracefulRestart(GracefulRestart {
            flags: 0,
            restart_time: 4096,
            families: vec![],
        });
        assert!(gr.encode(&mut out).is_err());
        let gr = Capability::GracefulRestart(GracefulRestart {
            flags: 0x10,
            restart_time: 1,
            families: vec![],
        });
        assert!(gr.encode(&mut out).is_err());
        let llgr = Capability::LongLivedGracefulRestart(LongLivedGracefulRestart {
            families: vec![LlgrFamily {
                afi_safi: AfiSafi::IPV4_UNICAST,
                flags: 0,
                stale_time: 1 << 24,
            }],
        });
        assert!(llgr.encode(&mut out).is_err());
        let fqdn = Capability::Fqdn(Fqdn {
            hostname: Bytes::from(vec![b'a'; 256]),
            domain: Bytes::new(),
        });
        assert!(fqdn.encode(&mut out).is_err());
        assert_eq!(&out[..], b"x");
    }

    proptest! {
        #[test]
        fn capability_round_trip(caps in proptest::collection::vec(arb::capability(), 0..6)) {
            let mut out = BytesMut::new();
            for c in &caps {
                c.encode(&mut out).unwrap();
            }
            let len: usize = caps.iter().map(Capability::encoded_len).sum();
            prop_assert_eq!(out.len(), len);
            prop_assert_eq!(Capability::decode_all(out.freeze(), 0).unwrap(), caps);
        }

        #[test]
        fn capability_decode_never_panics(v in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Capability::decode_all(Bytes::from(v), 0);
        }
    }
}
