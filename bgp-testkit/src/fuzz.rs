//! The bodies of the fuzz targets, shared with plain `cargo test` so that the committed corpora
//! run on stable-only machines too. Each function must never panic on any input, except on a
//! real bug (an assertion about the codec's own invariants).

use bgp_wire::{AfiSafi, AfiSafiSet, Context, Message, context, split_message};
use bytes::BytesMut;

pub mod core;
pub mod hand_over;
pub mod rib;

pub use core::core_bytes;
pub use hand_over::hand_over_images;
pub use rib::rib_updates;

/// A context chosen by one input byte: 4-octet AS or not, extended messages or not, and
/// ADD-PATH receive for each of the four known families.
pub fn context_from(byte: u8) -> Context {
    let mut add_path = AfiSafiSet::EMPTY;
    for (i, f) in AfiSafi::KNOWN.into_iter().enumerate() {
        if byte & (1 << (2 + i)) != 0 {
            add_path.insert(f);
        }
    }
    Context {
        four_octet_as: byte & 1 == 0,
        max_message_len: if byte & 2 != 0 {
            context::MAX_EXTENDED_MESSAGE_LEN
        } else {
            context::MAX_MESSAGE_LEN
        },
        add_path_receive: add_path,
        add_path_send: add_path,
    }
}

/// Frames and decodes a byte stream (first byte: the context) until it ends or an error that
/// resets the session. Returns the messages decoded.
pub fn decode_stream(data: &[u8]) -> Vec<Message> {
    let Some((&first, rest)) = data.split_first() else {
        return Vec::new();
    };
    let ctx = context_from(first);
    let mut buf = BytesMut::from(rest);
    let mut out = Vec::new();
    // Every message consumes at least 19 bytes, so this loop is bounded by the input length.
    while let Ok(Some((header, msg))) = split_message(&mut buf, ctx.max_message_len) {
        match Message::decode_body(header, msg.slice(context::HEADER_LEN..), &ctx) {
            Ok(m) => out.push(m),
            Err(_) => break,
        }
    }
    out
}

/// Decodes a stream, re-encodes every message that decoded cleanly, decodes that again and
/// checks that the two decodes agree.
pub fn round_trip(data: &[u8]) {
    let Some(&first) = data.first() else {
        return;
    };
    let ctx = context_from(first);
    for m in decode_stream(data) {
        if !is_clean(&m) {
            continue;
        }
        let Ok(bytes) = m.to_bytes(&ctx) else {
            // A message can grow when re-encoded (e.g. AS_TRANS plus AS4_PATH on a 2-octet
            // session); failing to fit is an allowed, typed outcome.
            continue;
        };
        match Message::decode(bytes, &ctx) {
            Ok(again) => assert_eq!(again, m, "decode(encode(m)) != m"),
            Err(e) => panic!("re-encoded message does not decode: {e}"),
        }
    }
}

fn is_clean(m: &Message) -> bool {
    match m {
        Message::Update(u) => u.errors.is_empty(),
        _ => true,
    }
}

/// Reads a fuzz input a byte at a time; past the end every byte is zero.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Up to `n` bytes (fewer at the end).
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }
}
