//! The five BGP messages as one enum, decoded from and encoded to whole messages.

use bytes::{Buf, Bytes, BytesMut};

use crate::context::{Context, HEADER_LEN, MAX_MESSAGE_LEN};
use crate::error::{DecodeError, EncodeError};
use crate::header::{self, Header, MessageType, check_header};
use crate::notification::Notification;
use crate::open::Open;
use crate::route_refresh::RouteRefresh;
use crate::update::Update;

/// A BGP message (RFC 4271 §4).
///
/// `Update` is by far the largest variant; it is kept inline because boxing it would cost an
/// allocation per received UPDATE, the hot path.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Message {
    /// OPEN (RFC 4271 §4.2).
    Open(Open),
    /// UPDATE (RFC 4271 §4.3).
    Update(Update),
    /// NOTIFICATION (RFC 4271 §4.5).
    Notification(Notification),
    /// KEEPALIVE (RFC 4271 §4.4).
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918, RFC 7313).
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The message's type.
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Decodes one whole message (header included), which must be exactly one message long.
    pub fn decode(msg: Bytes, ctx: &Context) -> Result<Message, DecodeError> {
        let header = match check_header(&msg, ctx.max_message_len)? {
            Some(h) => h,
            None => {
                return Err(DecodeError::header(
                    crate::error::ErrorKind::BadMessageLength(msg.len() as u16),
                    "header",
                    0,
                ));
            }
        };
        if header.len != msg.len() {
            return Err(DecodeError::header(
                crate::error::ErrorKind::BadMessageLength(header.len as u16),
                "header length",
                16,
            ));
        }
        let mut body = msg;
        body.advance(HEADER_LEN);
        Self::decode_body(header, body, ctx)
    }

    /// Decodes a body whose header was already checked by [`check_header`].
    pub fn decode_body(header: Header, body: Bytes, ctx: &Context) -> Result<Message, DecodeError> {
        // UPDATE first and through `map`: it is the hot path, and this keeps its large value
        // from being copied on the way out.
        if header.kind == MessageType::Update {
            // Decoded where it is returned, so the large value is not moved afterwards.
            let mut m = Ok(Message::Update(Update::new()));
            if let Ok(Message::Update(u)) = &mut m {
                u.decode_into(&body, HEADER_LEN, ctx)?;
            }
            return m;
        }
        Ok(match header.kind {
            MessageType::Open => Message::Open(Open::decode(body, HEADER_LEN)?),
            MessageType::Update => Message::Update(Update::decode(body, HEADER_LEN, ctx)?),
            MessageType::Notification => {
                Message::Notification(Notification::decode(body, HEADER_LEN)?)
            }
            MessageType::Keepalive => Message::Keepalive,
            MessageType::RouteRefresh => {
                Message::RouteRefresh(RouteRefresh::decode(body, HEADER_LEN)?)
            }
        })
    }

    /// Appends the encoded message to `out`. The length is back-patched and checked against
    /// the context's maximum (4096 for OPEN, always); on error `out` is left as it was.
    pub fn encode(&self, ctx: &Context, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = header::begin(out, self.kind());
        let body = match self {
            Message::Open(m) => m.encode_body(out),
            Message::Update(m) => m.encode_body(ctx, out),
            Message::Notification(m) => {
                m.encode_body(out);
                Ok(())
            }
            Message::Keepalive => Ok(()),
            Message::RouteRefresh(m) => {
                m.encode_body(out);
                Ok(())
            }
        };
        if let Err(e) = body {
            out.truncate(start);
            return Err(e);
        }
        let max = match self {
            Message::Open(_) => MAX_MESSAGE_LEN,
            _ => ctx.max_message_len,
        };
        header::finish(out, start, max)
    }

    /// Encodes into a fresh buffer.
    pub fn to_bytes(&self, ctx: &Context) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::new();
        self.encode(ctx, &mut out)?;
        Ok(out.freeze())
    }
}

impl From<Update> for Message {
    fn from(u: Update) -> Self {
        Message::Update(u)
    }
}

impl From<Open> for Message {
    fn from(o: Open) -> Self {
        Message::Open(o)
    }
}

impl From<Notification> for Message {
    fn from(n: Notification) -> Self {
        Message::Notification(n)
    }
}

impl From<RouteRefresh> for Message {
    fn from(r: RouteRefresh) -> Self {
        Message::RouteRefresh(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_both_ways() {
        let ctx = Context::default();
        let b = Message::Keepalive.to_bytes(&ctx).unwrap();
        assert_eq!(b.len(), 19);
        assert_eq!(Message::decode(b, &ctx).unwrap(), Message::Keepalive);
    }

    #[test]
    fn notification_both_ways() {
        let ctx = Context::default();
        let n = Notification::with_data(6, 2, Bytes::from_static(b"\x03bye"));
        let b = Message::from(n.clone()).to_bytes(&ctx).unwrap();
        assert_eq!(&b[16..], &[0, 25, 3, 6, 2, 3, b'b', b'y', b'e']);
        assert_eq!(Message::decode(b, &ctx).unwrap(), Message::Notification(n));
    }

    proptest::proptest! {
        /// Any bytes after a valid header decode to a message or a typed error, never a panic,
        /// in every context.
        #[test]
        fn decode_never_panics(
            ty in 1u8..=5,
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            as4 in proptest::prelude::any::<bool>(),
            add_path in proptest::prelude::any::<bool>(),
        ) {
            let mut ctx = if as4 { Context::default() } else { Context::legacy() };
            if add_path {
                ctx.add_path_receive = crate::AfiSafi::KNOWN.into_iter().collect();
            }
            let mut m = vec![0xff; 16];
            m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
            m.push(ty);
            m.extend_from_slice(&body);
            let _ = Message::decode(Bytes::from(m), &ctx);
        }
    }

    #[test]
    fn trailing_bytes_are_a_length_error() {
        let ctx = Context::default();
        let mut b = BytesMut::from(&Message::Keepalive.to_bytes(&ctx).unwrap()[..]);
        b.extend_from_slice(&[0]);
        let e = Message::decode(b.freeze(), &ctx).unwrap_err();
        assert_eq!(e.notification().subcode, 2);
    }
}
