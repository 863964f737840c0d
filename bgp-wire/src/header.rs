//! The fixed message header (RFC 4271 §4.1) and framing of a byte stream into messages.

use bytes::{BufMut, Bytes, BytesMut};

use crate::context::HEADER_LEN;
use crate::error::{DecodeError, EncodeError, ErrorKind};

/// BGP message types (RFC 4271 §4.1, RFC 2918).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// OPEN (1).
    Open,
    /// UPDATE (2).
    Update,
    /// NOTIFICATION (3).
    Notification,
    /// KEEPALIVE (4).
    Keepalive,
    /// ROUTE-REFRESH (5).
    RouteRefresh,
}

impl MessageType {
    /// The type code.
    pub fn code(self) -> u8 {
        match self {
            MessageType::Open => 1,
            MessageType::Update => 2,
            MessageType::Notification => 3,
            MessageType::Keepalive => 4,
            MessageType::RouteRefresh => 5,
        }
    }

    /// The type for a code, if known.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }

    /// The smallest valid message of this type, header included (RFC 4271 §6.1).
    pub fn min_len(self) -> usize {
        match self {
            MessageType::Open => 29,
            MessageType::Update => 23,
            MessageType::Notification => 21,
            MessageType::Keepalive => 19,
            MessageType::RouteRefresh => 23,
        }
    }
}

/// A checked header: the type and the whole message's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The message type.
    pub kind: MessageType,
    /// The whole message's length, header included.
    pub len: usize,
}

/// Checks the header at the start of `buf` and tells how long the message is.
///
/// Returns `Ok(None)` when fewer than 19 bytes are buffered. Marker, length bounds
/// (19..=`max_len`), type, and the type's own length rules are all checked here, before the
/// caller waits for or allocates the body (STYLE 8). ROUTE-REFRESH messages of a wrong length
/// are let through so that the RFC 7313 §5 error can be reported by the body decoder.
#[inline]
pub fn check_header(buf: &[u8], max_len: usize) -> Result<Option<Header>, DecodeError> {
    let Some(h) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    // The fast path accepts exactly what `check_header_slow` accepts; anything else goes
    // there for the error, reported in the same order.
    let marker = h.first_chunk::<16>().copied().unwrap_or_default();
    let len = usize::from(u16::from_be_bytes([h[16], h[17]]));
    if u128::from_ne_bytes(marker) == u128::MAX && (HEADER_LEN..=max_len).contains(&len) {
        if let Some(kind) = MessageType::from_code(h[18]) {
            let fine = match kind {
                MessageType::Update | MessageType::Notification => len >= kind.min_len(),
                _ => false,
            };
            if fine {
                return Ok(Some(Header { kind, len }));
            }
        }
    }
    check_header_slow(buf, max_len)
}

/// [`check_header`] for everything but a well-formed UPDATE or NOTIFICATION header: the
/// other types' length rules, and every error.
#[cold]
#[inline(never)]
fn check_header_slow(buf: &[u8], max_len: usize) -> Result<Option<Header>, DecodeError> {
    let Some(h) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let marker = h.first_chunk::<16>().copied().unwrap_or_default();
    if u128::from_ne_bytes(marker) != u128::MAX {
        return Err(DecodeError::header(
            ErrorKind::ConnectionNotSynchronized,
            "header marker",
            0,
        ));
    }
    let len16 = u16::from_be_bytes([h[16], h[17]]);
    let len = usize::from(len16);
    let bad_len = || DecodeError::header(ErrorKind::BadMessageLength(len16), "header length", 16);
    if !(HEADER_LEN..=max_len).contains(&len) {
        return Err(bad_len());
    }
    let Some(kind) = MessageType::from_code(h[18]) else {
        return Err(DecodeError::header(
            ErrorKind::BadMessageType(h[18]),
            "header type",
            18,
        ));
    };
    let too_short = len < kind.min_len();
    let keepalive_long = kind == MessageType::Keepalive && len != HEADER_LEN;
    let open_long = kind == MessageType::Open && len > crate::context::MAX_MESSAGE_LEN;
    if too_short && kind != MessageType::RouteRefresh || keepalive_long || open_long {
        return Err(bad_len());
    }
    Ok(Some(Header { kind, len }))
}

/// Splits one whole message off the front of `buf` if it is all there: the header check of
/// [`check_header`], then the message as a zero-copy `Bytes` (header included).
pub fn split_message(
    buf: &mut BytesMut,
    max_len: usize,
) -> Result<Option<(Header, Bytes)>, DecodeError> {
    match check_header(buf, max_len)? {
        Some(h) if buf.len() >= h.len => Ok(Some((h, buf.split_to(h.len).freeze()))),
        _ => Ok(None),
    }
}

/// Writes a header with a length placeholder; returns the position to back-patch.
pub(crate) fn begin(out: &mut BytesMut, kind: MessageType) -> usize {
    let start = out.len();
    out.put_slice(&[0xff; 16]);
    out.put_u16(0);
    out.put_u8(kind.code());
    start
}

/// Back-patches the length of the message that starts at `start`, checking `max_len`. On
/// error the partial message is removed again, so `out` is left as it was.
pub(crate) fn finish(out: &mut BytesMut, start: usize, max_len: usize) -> Result<(), EncodeError> {
    let len = out.len() - start;
    if len > max_len {
        out.truncate(start);
        return Err(EncodeError::TooLong { len, max: max_len });
    }
    out[start + 16..start + 18].copy_from_slice(&(len as u16).to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(len: u16, ty: u8) -> Vec<u8> {
        let mut v = vec![0xff; 16];
        v.extend_from_slice(&len.to_be_bytes());
        v.push(ty);
        v
    }

    #[test]
    fn waits_for_a_whole_header() {
        assert_eq!(check_header(&[0xff; 18], 4096), Ok(None));
    }

    #[test]
    fn keepalive_ok() {
        let h = check_header(&hdr(19, 4), 4096).unwrap();
        assert_eq!(
            h,
            Some(Header {
                kind: MessageType::Keepalive,
                len: 19
            })
        );
    }

    #[test]
    fn bad_marker() {
        let mut v = hdr(19, 4);
        v[3] = 0;
        let n = check_header(&v, 4096).unwrap_err().notification();
        assert_eq!((n.code, n.subcode), (1, 1));
    }

    #[test]
    fn length_bounds_carry_the_length_as_data() {
        for (len, max) in [(18u16, 4096), (4097, 4096), (0, 4096), (5000, 4096)] {
            let e = check_header(&hdr(len, 2), max).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadMessageLength(len));
            assert_eq!(e.offset, 16);
            assert_eq!(&e.notification().data[..], &len.to_be_bytes());
        }
        assert!(check_header(&hdr(5000, 2), 65535).is_ok());
    }

    #[test]
    fn length_per_type() {
        assert!(check_header(&hdr(20, 4), 4096).is_err());
        assert!(check_header(&hdr(28, 1), 4096).is_err());
        assert!(check_header(&hdr(5000, 1), 65535).is_err());
        assert!(check_header(&hdr(22, 2), 4096).is_err());
        assert!(check_header(&hdr(20, 3), 4096).is_err());
        assert!(check_header(&hdr(24, 5), 4096).is_ok());
    }

    #[test]
    fn bad_type() {
        let e = check_header(&hdr(19, 9), 4096).unwrap_err();
        let n = e.notification();
        assert_eq!((n.code, n.subcode, &n.data[..]), (1, 3, &[9u8][..]));
    }

    #[test]
    fn encode_back_patches_and_refuses_oversize() {
        let mut out = BytesMut::new();
        let s = begin(&mut out, MessageType::Keepalive);
        finish(&mut out, s, 4096).unwrap();
        assert_eq!(&out[..], &hdr(19, 4)[..]);
        let s = begin(&mut out, MessageType::Update);
        out.put_slice(&[0; 5000]);
        assert!(finish(&mut out, s, 4096).is_err());
        assert_eq!(out.len(), 19);
    }
}
