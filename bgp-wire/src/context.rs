//! The session context: what OPEN negotiated, passed to every decode and encode call (STYLE 7).

use crate::types::{AfiSafi, AfiSafiSet};

/// The RFC 4271 maximum message size.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The RFC 8654 maximum message size, once extended messages are negotiated.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;
/// The size of the fixed header (RFC 4271 §4.1).
pub const HEADER_LEN: usize = 19;

/// What a session negotiated that changes how bytes are read and written.
///
/// The default is what modern peers negotiate: 4-octet AS numbers, no ADD-PATH, 4096-byte
/// messages. Use [`Context::legacy`] for a session without the 4-octet AS capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Context {
    /// Both sides sent the 4-octet AS capability (RFC 6793): AS_PATH carries 4-octet ASNs.
    pub four_octet_as: bool,
    /// Families whose NLRI we receive with ADD-PATH path identifiers (RFC 7911).
    pub add_path_receive: AfiSafiSet,
    /// Families whose NLRI we send with ADD-PATH path identifiers (RFC 7911).
    pub add_path_send: AfiSafiSet,
    /// The largest message either side may send: 4096, or 65535 with RFC 8654.
    pub max_message_len: usize,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            four_octet_as: true,
            add_path_receive: AfiSafiSet::EMPTY,
            add_path_send: AfiSafiSet::EMPTY,
            max_message_len: MAX_MESSAGE_LEN,
        }
    }
}

impl Context {
    /// A session with a peer that lacks the 4-octet AS capability (2-octet AS_PATH).
    pub fn legacy() -> Self {
        Context {
            four_octet_as: false,
            ..Context::default()
        }
    }

    /// Whether received NLRI of this family carry path identifiers.
    #[inline]
    pub fn receive_path_ids(&self, family: AfiSafi) -> bool {
        self.add_path_receive.contains(family)
    }

    /// Whether sent NLRI of this family carry path identifiers.
    #[inline]
    pub fn send_path_ids(&self, family: AfiSafi) -> bool {
        self.add_path_send.contains(family)
    }

    /// The same context seen from the other end of the session (send and receive swapped),
    /// handy for tests that encode as one side and decode as the other.
    pub fn peer_view(&self) -> Self {
        Context {
            add_path_receive: self.add_path_send,
            add_path_send: self.add_path_receive,
            ..*self
        }
    }
}
