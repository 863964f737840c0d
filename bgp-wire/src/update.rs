//! UPDATE messages (RFC 4271 §4.3, RFC 4760, RFC 7606). Placeholder: being written.

use bytes::{Bytes, BytesMut};

use crate::context::Context;
use crate::error::{DecodeError, EncodeError};

/// An UPDATE message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {}

impl Update {
    /// Decodes the body.
    pub fn decode(_body: Bytes, _offset: usize, _ctx: &Context) -> Result<Self, DecodeError> {
        Ok(Update {})
    }

    /// Writes the body.
    pub fn encode_body(&self, _ctx: &Context, _out: &mut BytesMut) -> Result<(), EncodeError> {
        Ok(())
    }
}
