//! Small-value-optimised wire bytes: values of up to [`INLINE`] octets are copied inline
//! (no allocation, no reference count, and no pinning of the receive buffer), larger ones
//! are zero-copy `Bytes` slices.
//!
//! Most NLRI blocks, AS paths and community lists of a real table are small, so decoding an
//! UPDATE usually touches no atomic reference count at all, and an interned attribute set
//! does not keep a whole received message alive.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, Range};

use bytes::{Bytes, BytesMut};

/// The largest value held inline.
pub(crate) const INLINE: usize = 37;

/// Immutable wire bytes: inline when small, a shared `Bytes` slice otherwise.
#[derive(Clone)]
pub(crate) enum Buf {
    /// Up to [`INLINE`] octets: `data[start..start + len]`.
    Inline {
        start: u8,
        len: u8,
        data: [u8; INLINE],
    },
    /// A zero-copy slice.
    Shared(Bytes),
}

impl Buf {
    /// No bytes.
    pub(crate) const fn new() -> Self {
        Buf::Inline {
            start: 0,
            len: 0,
            data: [0; INLINE],
        }
    }

    /// Empties the value in place (for an inline value, by its length alone).
    #[inline]
    pub(crate) fn clear(&mut self) {
        match self {
            Buf::Inline { len, .. } => *len = 0,
            Buf::Shared(_) => *self = Buf::new(),
        }
    }

    /// Copies a small slice inline; `None` if it is too large.
    #[inline]
    fn inline(s: &[u8]) -> Option<Self> {
        if s.len() > INLINE {
            return None;
        }
        let mut data = [0u8; INLINE];
        data.get_mut(..s.len())?.copy_from_slice(s);
        Some(Buf::Inline {
            start: 0,
            len: s.len() as u8,
            data,
        })
    }

    /// `body[range]`: copied inline when small, a zero-copy slice otherwise. An out-of-range
    /// request yields no bytes (callers check ranges first).
    #[inline]
    pub(crate) fn slice_of(body: &Bytes, range: Range<usize>) -> Self {
        let len = range.end.wrapping_sub(range.start);
        if len <= INLINE {
            // A fixed-size copy of a window around the value when the buffer allows it: a
            // few vector moves instead of a variable-length memcpy.
            if let Some(window) = body.get(range.start..).and_then(|t| t.first_chunk()) {
                return Buf::Inline {
                    start: 0,
                    len: len as u8,
                    data: *window,
                };
            }
            let before = range
                .end
                .checked_sub(INLINE)
                .and_then(|f| body.get(f..range.end));
            if let Some(window) = before.and_then(|t| t.first_chunk()) {
                return Buf::Inline {
                    start: (INLINE - len) as u8,
                    len: len as u8,
                    data: *window,
                };
            }
            return body.get(range).and_then(Self::inline).unwrap_or_default();
        }
        if body.get(range.clone()).is_none() {
            return Buf::new();
        }
        Buf::Shared(body.slice(range))
    }

    /// `*self = Buf::slice_of(body, range)`, written in place: each case stores straight into
    /// `self` rather than through a temporary (whose copy would stall store forwarding).
    #[inline(always)]
    pub(crate) fn set_slice_of(&mut self, body: &Bytes, range: Range<usize>) {
        let len = range.end.wrapping_sub(range.start);
        if len <= INLINE {
            if let Some(window) = body.get(range.start..).and_then(|t| t.first_chunk()) {
                *self = Buf::Inline {
                    start: 0,
                    len: len as u8,
                    data: *window,
                };
                return;
            }
            // A value at the end of the body (the NLRI field): the window that ends with it.
            let before = range
                .end
                .checked_sub(INLINE)
                .and_then(|f| body.get(f..range.end));
            if let Some(window) = before.and_then(|t| t.first_chunk()) {
                *self = Buf::Inline {
                    start: (INLINE - len) as u8,
                    len: len as u8,
                    data: *window,
                };
                return;
            }
        }
        *self = Self::slice_of_cold(body, range);
    }

    #[inline(never)]
    fn slice_of_cold(body: &Bytes, range: Range<usize>) -> Self {
        Self::slice_of(body, range)
    }

    /// An owned copy of a slice (inline, or one allocation).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn copy_from_slice(s: &[u8]) -> Self {
        Self::inline(s).unwrap_or_else(|| Buf::Shared(Bytes::copy_from_slice(s)))
    }

    /// Takes freshly encoded bytes.
    pub(crate) fn from_bytes_mut(b: BytesMut) -> Self {
        Self::inline(&b).unwrap_or_else(|| Buf::Shared(b.freeze()))
    }

    /// A copy that shares nothing with a received buffer (so it does not keep that buffer
    /// alive).
    pub(crate) fn detached(&self) -> Self {
        match self {
            Buf::Inline { .. } => self.clone(),
            Buf::Shared(b) => Buf::Shared(Bytes::copy_from_slice(b)),
        }
    }

    /// The bytes.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Buf::Inline { start, len, data } => {
                let start = usize::from(*start);
                data.get(start..start + usize::from(*len)).unwrap_or(&[])
            }
            Buf::Shared(b) => b,
        }
    }
}

impl Default for Buf {
    fn default() -> Self {
        Buf::new()
    }
}

impl Deref for Buf {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for Buf {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Buf {}

impl Hash for Buf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl fmt::Debug for Buf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Bytes::copy_from_slice(self.as_slice()), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_or_shared() {
        let body = Bytes::from((0u8..100).collect::<Vec<_>>());
        let small = Buf::slice_of(&body, 2..10);
        assert!(matches!(small, Buf::Inline { len: 8, .. }));
        let tail = Buf::slice_of(&body, 95..100);
        assert!(matches!(
            tail,
            Buf::Inline {
                start: 32,
                len: 5,
                ..
            }
        ));
        assert_eq!(&tail[..], &body[95..]);
        assert_eq!(&small[..], &body[2..10]);
        let big = Buf::slice_of(&body, 0..60);
        assert!(matches!(big, Buf::Shared(_)));
        assert_eq!(big, Buf::copy_from_slice(&body[..60]));
        assert_eq!(Buf::slice_of(&body, 90..200), Buf::new());
        assert_eq!(std::mem::size_of::<Buf>(), 40);
    }
}
