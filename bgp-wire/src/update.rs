//! UPDATE messages (RFC 4271 §4.3, RFC 4760, RFC 7606). Placeholder: being written.

use bytes::{Bytes, BytesMut};

use crate::context::Context;
use crate::error::{DecodeError, EncodeError};
use crate::types::AfiSafi;

/// An UPDATE message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {}

impl Update {
    /// Decodes the body.
    pub fn decode(_body: Bytes, _offset: usize, _ctx: &Context) -> Result<Self, DecodeError> {
        Ok(Update {})
    }

    /// The family whose End-of-RIB marker this UPDATE is (RFC 4724 §2), if it is one.
    pub fn end_of_rib(&self) -> Option<AfiSafi> {
        None
    }

    /// The End-of-RIB marker for a family (RFC 4724 §2).
    pub fn end_of_rib_marker(_family: AfiSafi) -> Update {
        Update {}
    }

    /// Writes the body.
    pub fn encode_body(&self, _ctx: &Context, _out: &mut BytesMut) -> Result<(), EncodeError> {
        Ok(())
    }
}
