//! OPEN messages (RFC 4271 §4.2, RFC 9072). Placeholder: being written.

use bytes::{Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError, ErrorKind};

/// An OPEN message (RFC 4271 §4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {}

impl Open {
    /// Decodes the body of an OPEN.
    pub fn decode(_body: Bytes, offset: usize) -> Result<Self, DecodeError> {
        Err(DecodeError::new(
            ErrorKind::MalformedOpen("unimplemented"),
            "OPEN",
            offset,
        ))
    }

    /// Writes the body of an OPEN.
    pub fn encode_body(&self, _out: &mut BytesMut) -> Result<(), EncodeError> {
        Err(EncodeError::Invalid("OPEN"))
    }
}
