//! A bounds-checked reader over a message body: nom's complete parsers underneath, our own
//! error type on top (STYLE 9). Every read names its field; a short read becomes
//! [`ErrorKind::Truncated`] at the exact byte offset.
#![allow(dead_code)] // some readers are only used by parts still being written

use bytes::Bytes;
use nom::number::complete::{be_u8, be_u16, be_u32};

use crate::error::{DecodeError, ErrorKind};

type NomResult<'a, T> = nom::IResult<&'a [u8], T, ()>;

/// A cursor over a `Bytes` buffer that hands out zero-copy slices and tracks the absolute
/// offset of what it reads (relative to the start of the message).
#[derive(Clone, Debug)]
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
    base: usize,
}

impl Reader {
    /// A reader over `buf`, whose first byte sits at `base` in the message.
    pub(crate) fn new(buf: Bytes, base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    /// The absolute offset of the next byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether everything has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn rest(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn truncated(&self, field: &'static str) -> DecodeError {
        DecodeError::new(ErrorKind::Truncated, field, self.offset())
    }

    fn step<T>(
        &mut self,
        field: &'static str,
        f: impl for<'a> FnOnce(&'a [u8]) -> NomResult<'a, T>,
    ) -> Result<T, DecodeError> {
        let rest = self.rest();
        let before = rest.len();
        match f(rest) {
            Ok((left, v)) => {
                self.pos += before - left.len();
                Ok(v)
            }
            Err(_) => Err(self.truncated(field)),
        }
    }

    /// Reads one octet.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.step(field, |i| be_u8(i))
    }

    /// Reads a big-endian u16.
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.step(field, |i| be_u16(i))
    }

    /// Reads a big-endian u32.
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.step(field, |i| be_u32(i))
    }

    /// Reads `n` octets as a zero-copy slice of the buffer.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        if n > self.remaining() {
            return Err(self.truncated(field));
        }
        let b = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    /// Reads `n` octets and returns a reader over them (offsets stay absolute).
    pub(crate) fn sub(&mut self, n: usize, field: &'static str) -> Result<Reader, DecodeError> {
        let base = self.offset();
        Ok(Reader::new(self.take(n, field)?, base))
    }

    /// Reads a fixed-size array.
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let s = self.rest().get(..N).ok_or_else(|| self.truncated(field))?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        self.pos += N;
        Ok(a)
    }

    /// Everything left, as a zero-copy slice.
    pub(crate) fn take_rest(&mut self) -> Bytes {
        let b = self.buf.slice(self.pos..);
        self.pos = self.buf.len();
        b
    }

    /// The bytes not read yet, without consuming them.
    pub(crate) fn peek_rest(&self) -> &[u8] {
        self.rest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reports_offsets() {
        let mut r = Reader::new(Bytes::from_static(&[1, 0, 2, 0, 0, 0, 3, 9]), 19);
        assert_eq!(r.u8("a").ok(), Some(1));
        assert_eq!(r.u16("b").ok(), Some(2));
        assert_eq!(r.u32("c").ok(), Some(3));
        assert_eq!(r.offset(), 26);
        let e = r.u16("d").unwrap_err();
        assert_eq!((e.kind, e.field, e.offset), (ErrorKind::Truncated, "d", 26));
        assert_eq!(r.take_rest().as_ref(), &[9]);
        assert!(r.is_empty());
    }
}
