//! Decode and encode errors. Every decode error knows the NOTIFICATION it calls for
//! (RFC 4271 §6) and, for UPDATE attribute errors, its RFC 7606 disposition.

use bytes::Bytes;

use crate::notification::{
    Notification, code, header_subcode, open_subcode, route_refresh_subcode, update_subcode,
};

/// What RFC 7606 §2 prescribes for an error found in an UPDATE (and what every other
/// message error implies: a session reset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rfc7606Action {
    /// Drop the attribute and process the UPDATE as if it had not been there.
    AttributeDiscard,
    /// Withdraw every prefix the UPDATE carries (NLRI and MP_REACH_NLRI); keep the session.
    TreatAsWithdraw,
    /// Send the NOTIFICATION and close the session.
    SessionReset,
}

/// What went wrong, in RFC terms. Each kind maps to one NOTIFICATION code and subcode.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The marker is not all ones (RFC 4271 §6.1: Connection Not Synchronized).
    #[error("marker is not all ones")]
    ConnectionNotSynchronized,
    /// The length field is out of bounds for the message or its type.
    #[error("bad message length {0}")]
    BadMessageLength(u16),
    /// The type field is not a known message type.
    #[error("bad message type {0}")]
    BadMessageType(u8),
    /// The message ended before a field it announces.
    #[error("message truncated")]
    Truncated,
    /// OPEN version other than 4.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// The peer's AS is not what is configured.
    #[error("bad peer AS")]
    BadPeerAs,
    /// The BGP identifier is zero, ours, or otherwise unacceptable.
    #[error("bad BGP identifier")]
    BadBgpIdentifier,
    /// An OPEN optional parameter of an unknown type.
    #[error("unsupported optional parameter {0}")]
    UnsupportedOptionalParameter(u8),
    /// Hold time 1 or 2 seconds (or otherwise refused).
    #[error("unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    /// A capability we require and the peer lacks, or one we refuse (RFC 5492).
    #[error("unsupported capability")]
    UnsupportedCapability,
    /// RFC 9234 role mismatch.
    #[error("role mismatch")]
    RoleMismatch,
    /// An OPEN or capability that is malformed in a way with no dedicated subcode.
    #[error("malformed OPEN: {0}")]
    MalformedOpen(&'static str),
    /// The UPDATE's lengths are inconsistent, or MP_REACH/MP_UNREACH are repeated.
    #[error("malformed attribute list")]
    MalformedAttributeList,
    /// A well-known attribute we do not know (optional bit clear, unknown type).
    #[error("unrecognized well-known attribute {0}")]
    UnrecognizedWellKnownAttribute(u8),
    /// ORIGIN, AS_PATH or NEXT_HOP missing where NLRI are present.
    #[error("missing well-known attribute {0}")]
    MissingWellKnownAttribute(u8),
    /// The optional/transitive flags contradict the attribute's definition.
    #[error("attribute flags error (type {0})")]
    AttributeFlags(u8),
    /// The attribute's length is wrong for its type.
    #[error("attribute length error (type {0})")]
    AttributeLength(u8),
    /// ORIGIN value other than IGP, EGP, INCOMPLETE.
    #[error("invalid ORIGIN value {0}")]
    InvalidOrigin(u8),
    /// NEXT_HOP (or an MP_REACH next hop) that is syntactically wrong.
    #[error("invalid NEXT_HOP")]
    InvalidNextHop,
    /// An optional attribute whose value is malformed.
    #[error("optional attribute error (type {0})")]
    OptionalAttribute(u8),
    /// A prefix whose length is too long for its family, or NLRI that end mid-prefix.
    #[error("invalid network field")]
    InvalidNetworkField,
    /// AS_PATH with a bad segment type or a segment that overruns.
    #[error("malformed AS_PATH")]
    MalformedAsPath,
    /// A ROUTE-REFRESH with a length other than 23 (RFC 7313 §5).
    #[error("invalid ROUTE-REFRESH length {0}")]
    RouteRefreshLength(u16),
}

impl ErrorKind {
    /// The NOTIFICATION code and subcode for this kind (RFC 4271 §6).
    pub fn code_subcode(&self) -> (u8, u8) {
        use ErrorKind::*;
        match self {
            ConnectionNotSynchronized => (
                code::MESSAGE_HEADER,
                header_subcode::CONNECTION_NOT_SYNCHRONIZED,
            ),
            BadMessageLength(_) | Truncated => {
                (code::MESSAGE_HEADER, header_subcode::BAD_MESSAGE_LENGTH)
            }
            BadMessageType(_) => (code::MESSAGE_HEADER, header_subcode::BAD_MESSAGE_TYPE),
            UnsupportedVersion(_) => (code::OPEN_MESSAGE, open_subcode::UNSUPPORTED_VERSION),
            BadPeerAs => (code::OPEN_MESSAGE, open_subcode::BAD_PEER_AS),
            BadBgpIdentifier => (code::OPEN_MESSAGE, open_subcode::BAD_BGP_IDENTIFIER),
            UnsupportedOptionalParameter(_) => (
                code::OPEN_MESSAGE,
                open_subcode::UNSUPPORTED_OPTIONAL_PARAMETER,
            ),
            UnacceptableHoldTime(_) => (code::OPEN_MESSAGE, open_subcode::UNACCEPTABLE_HOLD_TIME),
            UnsupportedCapability => (code::OPEN_MESSAGE, open_subcode::UNSUPPORTED_CAPABILITY),
            RoleMismatch => (code::OPEN_MESSAGE, open_subcode::ROLE_MISMATCH),
            MalformedOpen(_) => (code::OPEN_MESSAGE, open_subcode::UNSPECIFIC),
            MalformedAttributeList => (
                code::UPDATE_MESSAGE,
                update_subcode::MALFORMED_ATTRIBUTE_LIST,
            ),
            UnrecognizedWellKnownAttribute(_) => (
                code::UPDATE_MESSAGE,
                update_subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
            ),
            MissingWellKnownAttribute(_) => (
                code::UPDATE_MESSAGE,
                update_subcode::MISSING_WELL_KNOWN_ATTRIBUTE,
            ),
            AttributeFlags(_) => (code::UPDATE_MESSAGE, update_subcode::ATTRIBUTE_FLAGS_ERROR),
            AttributeLength(_) => (code::UPDATE_MESSAGE, update_subcode::ATTRIBUTE_LENGTH_ERROR),
            InvalidOrigin(_) => (
                code::UPDATE_MESSAGE,
                update_subcode::INVALID_ORIGIN_ATTRIBUTE,
            ),
            InvalidNextHop => (
                code::UPDATE_MESSAGE,
                update_subcode::INVALID_NEXT_HOP_ATTRIBUTE,
            ),
            OptionalAttribute(_) => (
                code::UPDATE_MESSAGE,
                update_subcode::OPTIONAL_ATTRIBUTE_ERROR,
            ),
            InvalidNetworkField => (code::UPDATE_MESSAGE, update_subcode::INVALID_NETWORK_FIELD),
            MalformedAsPath => (code::UPDATE_MESSAGE, update_subcode::MALFORMED_AS_PATH),
            RouteRefreshLength(_) => (
                code::ROUTE_REFRESH,
                route_refresh_subcode::INVALID_MESSAGE_LENGTH,
            ),
        }
    }
}

/// A decode failure: what, where (field name and byte offset from the start of the message,
/// header included), the NOTIFICATION data to send, and the RFC 7606 disposition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} in {field} at byte {offset}")]
pub struct DecodeError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The field being read, e.g. `"OPEN hold time"` or `"UPDATE attribute ORIGIN"`.
    pub field: &'static str,
    /// Byte offset of the offending field from the start of the message.
    pub offset: usize,
    /// The NOTIFICATION data that RFC 4271 §6 prescribes (may be empty).
    pub data: Bytes,
    /// What RFC 7606 prescribes; [`Rfc7606Action::SessionReset`] for every non-UPDATE error.
    pub action: Rfc7606Action,
}

impl DecodeError {
    /// A session-reset error with no NOTIFICATION data.
    pub fn new(kind: ErrorKind, field: &'static str, offset: usize) -> Self {
        DecodeError {
            kind,
            field,
            offset,
            data: Bytes::new(),
            action: Rfc7606Action::SessionReset,
        }
    }

    /// A header-level error; for Bad Message Length the data is the length field, for Bad
    /// Message Type the type octet (RFC 4271 §6.1).
    pub fn header(kind: ErrorKind, field: &'static str, offset: usize) -> Self {
        let data = match kind {
            ErrorKind::BadMessageLength(l) => Bytes::copy_from_slice(&l.to_be_bytes()),
            ErrorKind::BadMessageType(t) => Bytes::copy_from_slice(&[t]),
            _ => Bytes::new(),
        };
        DecodeError::new(kind, field, offset).with_data(data)
    }

    /// Sets the NOTIFICATION data.
    pub fn with_data(mut self, data: Bytes) -> Self {
        self.data = data;
        self
    }

    /// Sets the RFC 7606 disposition.
    pub fn with_action(mut self, action: Rfc7606Action) -> Self {
        self.action = action;
        self
    }

    /// The type code of the path attribute this error is about, when the error's data is
    /// exactly that one whole attribute (flags, type, length, value: RFC 4271 §6.3), i.e. a
    /// malformed value or wrong flags; `None` for list-level errors such as an attribute that
    /// overruns the attribute block (RFC 7606 §4), whatever attribute the overrun started in.
    pub fn attribute_type(&self) -> Option<u8> {
        let d = &self.data[..];
        let (&flags, &code) = (d.first()?, d.get(1)?);
        let (len, header) = if flags & 0x10 != 0 {
            (usize::from(u16::from_be_bytes([*d.get(2)?, *d.get(3)?])), 4)
        } else {
            (usize::from(*d.get(2)?), 3)
        };
        (d.len() == header + len).then_some(code)
    }

    /// The NOTIFICATION this error calls for (RFC 4271 §6), whatever its RFC 7606 action.
    pub fn notification(&self) -> Notification {
        let (code, subcode) = self.kind.code_subcode();
        Notification::with_data(code, subcode, self.data.clone())
    }

    /// Whether the session must be reset.
    pub fn is_session_reset(&self) -> bool {
        self.action == Rfc7606Action::SessionReset
    }
}

/// An encode failure: a value that cannot be represented in the message or the context.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The message would exceed the negotiated maximum size.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLong {
        /// The length the message would have.
        len: usize,
        /// The negotiated maximum.
        max: usize,
    },
    /// A field's value does not fit its length field.
    #[error("{field} too long ({len} bytes)")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A value that cannot be encoded in this context (e.g. an IPv6 prefix in the IPv4 NLRI
    /// field, or an AS number that does not fit where it must).
    #[error("cannot encode {0}")]
    Invalid(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_type_only_for_one_whole_attribute() {
        let e = |data: &'static [u8]| {
            DecodeError::new(ErrorKind::AttributeLength(5), "t", 0).with_data(Bytes::from(data))
        };
        // LOCAL_PREF with a 3-octet value: the whole attribute.
        assert_eq!(e(&[0x40, 5, 3, 0, 0, 1]).attribute_type(), Some(5));
        // Extended length form.
        assert_eq!(e(&[0x50, 9, 0, 2, 1, 2]).attribute_type(), Some(9));
        // Declares 4 octets, 2 left in the block: an overrun, a list-level error.
        assert_eq!(e(&[0x40, 5, 4, 0, 0]).attribute_type(), None);
        assert_eq!(e(&[0x40]).attribute_type(), None);
    }
}
