//! ROUTE-REFRESH (RFC 2918, RFC 7313). Placeholder: being written.

use bytes::{Bytes, BytesMut};

use crate::error::DecodeError;

/// A ROUTE-REFRESH message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRefresh {}

impl RouteRefresh {
    /// Decodes the body.
    pub fn decode(_body: Bytes, _offset: usize) -> Result<Self, DecodeError> {
        Ok(RouteRefresh {})
    }

    /// Writes the body.
    pub fn encode_body(&self, _out: &mut BytesMut) {}
}
