//! NOTIFICATION messages (RFC 4271 §4.5) with the codes and subcodes of RFC 4271, RFC 4486,
//! RFC 6608, RFC 7313 and RFC 9234, shutdown communication (RFC 9003) and Hard Reset (RFC 8538).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, ErrorKind};

/// NOTIFICATION error codes (RFC 4271 §4.5, IANA "BGP Error (Notification) Codes").
pub mod code {
    /// Message Header Error.
    pub const MESSAGE_HEADER: u8 = 1;
    /// OPEN Message Error.
    pub const OPEN_MESSAGE: u8 = 2;
    /// UPDATE Message Error.
    pub const UPDATE_MESSAGE: u8 = 3;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// Cease.
    pub const CEASE: u8 = 6;
    /// ROUTE-REFRESH Message Error (RFC 7313).
    pub const ROUTE_REFRESH: u8 = 7;
    /// Send Hold Timer Expired (RFC 9687).
    pub const SEND_HOLD_TIMER_EXPIRED: u8 = 8;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header_subcode {
    /// Connection Not Synchronized.
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    /// Bad Message Length.
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    /// Bad Message Type.
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492, RFC 9234).
pub mod open_subcode {
    /// Unspecific (used for malformed OPEN messages and capabilities).
    pub const UNSPECIFIC: u8 = 0;
    /// Unsupported Version Number.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    /// Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// Unsupported Capability (RFC 5492).
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    /// Role Mismatch (RFC 9234).
    pub const ROLE_MISMATCH: u8 = 11;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update_subcode {
    /// Malformed Attribute List.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// Unrecognized Well-known Attribute.
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    /// Missing Well-known Attribute.
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    /// Attribute Flags Error.
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    /// Attribute Length Error.
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    /// Invalid ORIGIN Attribute.
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    /// Invalid NEXT_HOP Attribute.
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    /// Optional Attribute Error.
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    /// Invalid Network Field.
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    /// Malformed AS_PATH.
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608).
pub mod fsm_subcode {
    /// Unspecified Error.
    pub const UNSPECIFIED: u8 = 0;
    /// Receive Unexpected Message in OpenSent State.
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    /// Receive Unexpected Message in OpenConfirm State.
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    /// Receive Unexpected Message in Established State.
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 8538).
pub mod cease_subcode {
    /// Maximum Number of Prefixes Reached.
    pub const MAX_PREFIXES: u8 = 1;
    /// Administrative Shutdown.
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Administrative Reset.
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    /// Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Other Configuration Change.
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    /// Connection Collision Resolution.
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    /// Out of Resources.
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// Hard Reset (RFC 8538).
    pub const HARD_RESET: u8 = 9;
    /// BFD Down (RFC 9384).
    pub const BFD_DOWN: u8 = 10;
}

/// ROUTE-REFRESH Message Error subcodes (RFC 7313).
pub mod route_refresh_subcode {
    /// Invalid Message Length.
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// The longest shutdown communication, in octets (RFC 9003 §2).
pub const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

/// A NOTIFICATION message (RFC 4271 §4.5). Code and subcode are kept as numbers so that every
/// value, known or not, decodes and re-encodes unchanged; constants for the known ones are in
/// [`code`] and the `*_subcode` modules.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code.
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Diagnostic data, whose meaning depends on code and subcode.
    pub data: Bytes,
}

impl Notification {
    /// A NOTIFICATION with no data.
    pub fn new(code: u8, subcode: u8) -> Self {
        Notification {
            code,
            subcode,
            data: Bytes::new(),
        }
    }

    /// A NOTIFICATION with data.
    pub fn with_data(code: u8, subcode: u8, data: impl Into<Bytes>) -> Self {
        Notification {
            code,
            subcode,
            data: data.into(),
        }
    }

    /// A Cease NOTIFICATION with the given subcode (RFC 4486).
    pub fn cease(subcode: u8) -> Self {
        Notification::new(code::CEASE, subcode)
    }

    /// A Cease with an RFC 9003 shutdown communication: Administrative Shutdown or Reset.
    /// The message is cut at a UTF-8 boundary so that it fits 255 octets.
    pub fn shutdown(subcode: u8, message: &str) -> Self {
        let mut end = message.len().min(MAX_SHUTDOWN_COMMUNICATION);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = BytesMut::with_capacity(end + 1);
        data.put_u8(end as u8);
        data.put_slice(&message.as_bytes()[..end]);
        Notification::with_data(code::CEASE, subcode, data.freeze())
    }

    /// A Cease/Hard Reset (RFC 8538 §3) wrapping the NOTIFICATION that caused it: the data is
    /// the inner code and subcode followed by the inner data.
    pub fn hard_reset(inner: &Notification) -> Self {
        let mut data = BytesMut::with_capacity(2 + inner.data.len());
        data.put_u8(inner.code);
        data.put_u8(inner.subcode);
        data.put_slice(&inner.data);
        Notification::with_data(code::CEASE, cease_subcode::HARD_RESET, data.freeze())
    }

    /// Whether this is a Cease/Hard Reset (RFC 8538): routes must be flushed even under GR.
    pub fn is_hard_reset(&self) -> bool {
        self.code == code::CEASE && self.subcode == cease_subcode::HARD_RESET
    }

    /// The NOTIFICATION inside a Hard Reset, if this is one and it carries one.
    pub fn hard_reset_inner(&self) -> Option<Notification> {
        if !self.is_hard_reset() || self.data.len() < 2 {
            return None;
        }
        Some(Notification::with_data(
            self.data[0],
            self.data[1],
            self.data.slice(2..),
        ))
    }

    /// The RFC 9003 shutdown communication of an Administrative Shutdown or Reset, if the data
    /// holds a well-formed one (length octet, then that many octets of UTF-8).
    pub fn shutdown_communication(&self) -> Option<&str> {
        if self.code != code::CEASE
            || !matches!(
                self.subcode,
                cease_subcode::ADMINISTRATIVE_SHUTDOWN | cease_subcode::ADMINISTRATIVE_RESET
            )
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok()
    }

    /// The RFC names of code and subcode, e.g. `("Cease", "Hard Reset")`.
    pub fn names(&self) -> (&'static str, &'static str) {
        let code = match self.code {
            code::MESSAGE_HEADER => "Message Header Error",
            code::OPEN_MESSAGE => "OPEN Message Error",
            code::UPDATE_MESSAGE => "UPDATE Message Error",
            code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            code::FSM => "Finite State Machine Error",
            code::CEASE => "Cease",
            code::ROUTE_REFRESH => "ROUTE-REFRESH Message Error",
            code::SEND_HOLD_TIMER_EXPIRED => "Send Hold Timer Expired",
            _ => "Unknown",
        };
        let sub = match (self.code, self.subcode) {
            (_, 0) => "Unspecific",
            (code::MESSAGE_HEADER, 1) => "Connection Not Synchronized",
            (code::MESSAGE_HEADER, 2) => "Bad Message Length",
            (code::MESSAGE_HEADER, 3) => "Bad Message Type",
            (code::OPEN_MESSAGE, 1) => "Unsupported Version Number",
            (code::OPEN_MESSAGE, 2) => "Bad Peer AS",
            (code::OPEN_MESSAGE, 3) => "Bad BGP Identifier",
            (code::OPEN_MESSAGE, 4) => "Unsupported Optional Parameter",
            (code::OPEN_MESSAGE, 6) => "Unacceptable Hold Time",
            (code::OPEN_MESSAGE, 7) => "Unsupported Capability",
            (code::OPEN_MESSAGE, 11) => "Role Mismatch",
            (code::UPDATE_MESSAGE, 1) => "Malformed Attribute List",
            (code::UPDATE_MESSAGE, 2) => "Unrecognized Well-known Attribute",
            (code::UPDATE_MESSAGE, 3) => "Missing Well-known Attribute",
            (code::UPDATE_MESSAGE, 4) => "Attribute Flags Error",
            (code::UPDATE_MESSAGE, 5) => "Attribute Length Error",
            (code::UPDATE_MESSAGE, 6) => "Invalid ORIGIN Attribute",
            (code::UPDATE_MESSAGE, 8) => "Invalid NEXT_HOP Attribute",
            (code::UPDATE_MESSAGE, 9) => "Optional Attribute Error",
            (code::UPDATE_MESSAGE, 10) => "Invalid Network Field",
            (code::UPDATE_MESSAGE, 11) => "Malformed AS_PATH",
            (code::FSM, 1) => "Receive Unexpected Message in OpenSent State",
            (code::FSM, 2) => "Receive Unexpected Message in OpenConfirm State",
            (code::FSM, 3) => "Receive Unexpected Message in Established State",
            (code::CEASE, 1) => "Maximum Number of Prefixes Reached",
            (code::CEASE, 2) => "Administrative Shutdown",
            (code::CEASE, 3) => "Peer De-configured",
            (code::CEASE, 4) => "Administrative Reset",
            (code::CEASE, 5) => "Connection Rejected",
            (code::CEASE, 6) => "Other Configuration Change",
            (code::CEASE, 7) => "Connection Collision Resolution",
            (code::CEASE, 8) => "Out of Resources",
            (code::CEASE, 9) => "Hard Reset",
            (code::CEASE, 10) => "BFD Down",
            (code::ROUTE_REFRESH, 1) => "Invalid Message Length",
            _ => "Unknown",
        };
        (code, sub)
    }

    /// Decodes the body of a NOTIFICATION (after the 19-octet header). `offset` is the body's
    /// position in the message, for error reporting.
    pub fn decode(body: Bytes, offset: usize) -> Result<Self, DecodeError> {
        if body.len() < 2 {
            return Err(DecodeError::header(
                ErrorKind::BadMessageLength((crate::context::HEADER_LEN + body.len()) as u16),
                "NOTIFICATION length",
                offset,
            ));
        }
        Ok(Notification {
            code: body[0],
            subcode: body[1],
            data: body.slice(2..),
        })
    }

    /// The body's encoded length.
    pub fn body_len(&self) -> usize {
        2 + self.data.len()
    }

    /// Writes the body (code, subcode, data).
    pub fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(self.code);
        out.put_u8(self.subcode);
        out.put_slice(&self.data);
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (c, s) = self.names();
        write!(f, "{c} / {s} ({}/{})", self.code, self.subcode)?;
        if let Some(msg) = self.shutdown_communication() {
            write!(f, ": \"{}\"", msg.escape_debug())?;
        }
        if let Some(inner) = self.hard_reset_inner() {
            write!(f, " [{inner}]")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_communication_round_trip_and_truncation() {
        let n = Notification::shutdown(cease_subcode::ADMINISTRATIVE_SHUTDOWN, "maintenance");
        assert_eq!(&n.data[..], b"\x0bmaintenance");
        assert_eq!(n.shutdown_communication(), Some("maintenance"));
        let long = "é".repeat(200);
        let n = Notification::shutdown(cease_subcode::ADMINISTRATIVE_RESET, &long);
        assert_eq!(n.data[0], 254);
        assert_eq!(n.shutdown_communication().map(str::len), Some(254));
    }

    #[test]
    fn hard_reset_wraps_inner() {
        let inner = Notification::new(code::HOLD_TIMER_EXPIRED, 0);
        let hr = Notification::hard_reset(&inner);
        assert!(hr.is_hard_reset());
        assert_eq!(hr.hard_reset_inner(), Some(inner));
        assert_eq!(
            hr.to_string(),
            "Cease / Hard Reset (6/9) [Hold Timer Expired / Unspecific (4/0)]"
        );
    }

    proptest::proptest! {
        #[test]
        fn round_trip_any_code_subcode_data(
            code in proptest::prelude::any::<u8>(),
            subcode in proptest::prelude::any::<u8>(),
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let ctx = crate::Context::default();
            let n = Notification::with_data(code, subcode, data);
            let m = crate::Message::Notification(n.clone());
            let back = crate::Message::decode(m.to_bytes(&ctx).unwrap(), &ctx).unwrap();
            proptest::prop_assert_eq!(back, m);
            // Display never panics, whatever the bytes.
            let _ = n.to_string();
        }

        #[test]
        fn shutdown_communication_always_fits_and_reads_back(msg in ".{0,300}") {
            let n = Notification::shutdown(cease_subcode::ADMINISTRATIVE_SHUTDOWN, &msg);
            let text = n.shutdown_communication().unwrap();
            proptest::prop_assert!(text.len() <= MAX_SHUTDOWN_COMMUNICATION);
            proptest::prop_assert!(msg.starts_with(text));
        }
    }

    #[test]
    fn decode_short_body_is_bad_length() {
        let e = Notification::decode(Bytes::from_static(&[6]), 19).unwrap_err();
        let n = e.notification();
        assert_eq!((n.code, n.subcode), (1, 2));
        assert_eq!(&n.data[..], &[0, 20]);
    }
}
