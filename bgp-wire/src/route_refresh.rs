//! ROUTE-REFRESH messages (RFC 2918 §3) with the Message Subtype of enhanced route refresh
//! (RFC 7313 §3.2).

use bytes::{BufMut, Bytes, BytesMut};

use crate::context::HEADER_LEN;
use crate::error::{DecodeError, ErrorKind};
use crate::header::MessageType;
use crate::types::{Afi, AfiSafi, Safi};

/// A ROUTE-REFRESH message (RFC 2918 §3, RFC 7313 §3.2): AFI (2 octets), Message Subtype
/// (1 octet, "Reserved" in RFC 2918), SAFI (1 octet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// The family to refresh.
    pub afi_safi: AfiSafi,
    /// Request, Beginning or End of Route Refresh.
    pub subtype: RouteRefreshSubtype,
}

/// The Message Subtype of RFC 7313 §3.2. Other values are kept; RFC 7313 §5 says a message
/// with one of them is ignored, which is for the session to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteRefreshSubtype {
    /// 0: a normal route refresh request (RFC 2918), or one with enhanced route refresh.
    Request,
    /// 1: Beginning of Route Refresh (BoRR).
    BeginningOfRefresh,
    /// 2: End of Route Refresh (EoRR).
    EndOfRefresh,
    /// Any other value (255 is reserved).
    Unknown(u8),
}

impl RouteRefreshSubtype {
    /// The wire value.
    pub fn value(self) -> u8 {
        match self {
            RouteRefreshSubtype::Request => 0,
            RouteRefreshSubtype::BeginningOfRefresh => 1,
            RouteRefreshSubtype::EndOfRefresh => 2,
            RouteRefreshSubtype::Unknown(v) => v,
        }
    }

    /// The subtype for a wire value.
    pub fn from_value(v: u8) -> Self {
        match v {
            0 => RouteRefreshSubtype::Request,
            1 => RouteRefreshSubtype::BeginningOfRefresh,
            2 => RouteRefreshSubtype::EndOfRefresh,
            v => RouteRefreshSubtype::Unknown(v),
        }
    }
}

impl RouteRefresh {
    /// The length of the body.
    pub const BODY_LEN: usize = 4;

    /// A route refresh request for a family (RFC 2918 §3).
    pub fn request(afi_safi: AfiSafi) -> Self {
        RouteRefresh {
            afi_safi,
            subtype: RouteRefreshSubtype::Request,
        }
    }

    /// A Beginning of Route Refresh marker (RFC 7313 §4).
    pub fn borr(afi_safi: AfiSafi) -> Self {
        RouteRefresh {
            afi_safi,
            subtype: RouteRefreshSubtype::BeginningOfRefresh,
        }
    }

    /// An End of Route Refresh marker (RFC 7313 §4).
    pub fn eorr(afi_safi: AfiSafi) -> Self {
        RouteRefresh {
            afi_safi,
            subtype: RouteRefreshSubtype::EndOfRefresh,
        }
    }

    /// Decodes the body of a ROUTE-REFRESH; `offset` is the body's position in the message.
    ///
    /// A body that is not exactly 4 octets is [`ErrorKind::RouteRefreshLength`] with the
    /// message length, at the offset of the header's length field, and with the whole
    /// message (rebuilt from the header and `body`) as NOTIFICATION data (RFC 7313 §5).
    pub fn decode(body: Bytes, offset: usize) -> Result<Self, DecodeError> {
        let (Some(afi), Some(&subtype), Some(&safi), 4) =
            (body.get(..2), body.get(2), body.get(3), body.len())
        else {
            return Err(Self::length_error(&body, offset));
        };
        Ok(RouteRefresh {
            afi_safi: AfiSafi::new(Afi(u16::from_be_bytes([afi[0], afi[1]])), Safi(safi)),
            subtype: RouteRefreshSubtype::from_value(subtype),
        })
    }

    fn length_error(body: &Bytes, offset: usize) -> DecodeError {
        let len = u16::try_from(HEADER_LEN + body.len()).unwrap_or(u16::MAX);
        let mut msg = BytesMut::with_capacity(HEADER_LEN + body.len());
        msg.put_slice(&[0xff; 16]);
        msg.put_u16(len);
        msg.put_u8(MessageType::RouteRefresh.code());
        msg.put_slice(body);
        DecodeError::new(
            ErrorKind::RouteRefreshLength(len),
            "ROUTE-REFRESH length",
            offset.saturating_sub(3),
        )
        .with_data(msg.freeze())
    }

    /// Writes the body.
    pub fn encode_body(&self, out: &mut BytesMut) {
        out.put_u16(self.afi_safi.afi.0);
        out.put_u8(self.subtype.value());
        out.put_u8(self.afi_safi.safi.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::message::Message;
    use crate::notification::{code, route_refresh_subcode};
    use proptest::prelude::*;

    fn wire(body: &[u8]) -> Vec<u8> {
        let mut v = vec![0xff; 16];
        v.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        v.push(5);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn request_both_ways_rfc2918() {
        let ctx = Context::default();
        let m = Message::RouteRefresh(RouteRefresh::request(AfiSafi::IPV6_UNICAST));
        let w = wire(&[0, 2, 0, 1]);
        assert_eq!(m.to_bytes(&ctx).unwrap(), w);
        assert_eq!(Message::decode(Bytes::from(w), &ctx).unwrap(), m);
    }

    #[test]
    fn borr_eorr_and_unknown_subtypes_rfc7313() {
        let ctx = Context::default();
        for (v, rr) in [
            (1, RouteRefresh::borr(AfiSafi::IPV4_UNICAST)),
            (2, RouteRefresh::eorr(AfiSafi::IPV4_UNICAST)),
            (
                0xff,
                RouteRefresh {
                    afi_safi: AfiSafi::IPV4_UNICAST,
                    subtype: RouteRefreshSubtype::Unknown(0xff),
                },
            ),
        ] {
            let w = wire(&[0, 1, v, 1]);
            assert_eq!(Message::from(rr).to_bytes(&ctx).unwrap(), w);
            assert_eq!(
                Message::decode(Bytes::from(w), &ctx).unwrap(),
                Message::RouteRefresh(rr)
            );
        }
    }

    #[test]
    fn wrong_length_rfc7313_section5() {
        let ctx = Context::default();
        for body in [&[0u8, 1, 0][..], &[0, 1, 0, 1, 0], &[]] {
            let w = wire(body);
            let e = Message::decode(Bytes::from(w.clone()), &ctx).unwrap_err();
            assert_eq!(e.kind, ErrorKind::RouteRefreshLength(w.len() as u16));
            assert_eq!(e.offset, 16);
            let n = e.notification();
            assert_eq!(
                (n.code, n.subcode),
                (
                    code::ROUTE_REFRESH,
                    route_refresh_subcode::INVALID_MESSAGE_LENGTH
                )
            );
            assert_eq!(&n.data[..], &w[..]);
        }
    }

    proptest! {
        #[test]
        fn route_refresh_round_trip(afi in any::<u16>(), safi in any::<u8>(), sub in any::<u8>()) {
            let ctx = Context::default();
            let m = Message::RouteRefresh(RouteRefresh {
                afi_safi: AfiSafi::new(Afi(afi), Safi(safi)),
                subtype: RouteRefreshSubtype::from_value(sub),
            });
            let b = m.to_bytes(&ctx).unwrap();
            prop_assert_eq!(b.len(), 23);
            prop_assert_eq!(Message::decode(b, &ctx).unwrap(), m);
        }
    }
}
