//! Field writers that follow Go's rules: proto3 scalars are left out when
//! zero, repeated elements and map entries are always written whole, and
//! map entries are sorted by key.

use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;

use super::GoEncode;

/// A length-delimited field whose body `body` writes straight into `buf`;
/// its length is put in front once the body is written (one move of the
/// body, no temporary buffer).
pub(super) fn nested(tag: u32, buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    encode_key(tag, WireType::LengthDelimited, buf);
    let start = buf.len();
    body(buf);
    let len = (buf.len() - start) as u64;
    let mut prefix = [0u8; 10];
    let mut free: &mut [u8] = &mut prefix;
    encode_varint(len, &mut free);
    let used = 10 - free.len();
    buf.splice(start..start, prefix[..used].iter().copied());
}

/// A message field with a hand-written encoder. Written even when the
/// message is empty, as Go writes a non-nil message.
pub(super) fn message<M: GoEncode + ?Sized>(tag: u32, m: &M, buf: &mut Vec<u8>) {
    nested(tag, buf, |b| m.encode_go(b));
}

/// A message field without maps or misplaced oneofs: prost's bytes are Go's.
pub(super) fn leaf<M: Message>(tag: u32, m: &M, buf: &mut Vec<u8>) {
    prost::encoding::message::encode(tag, m, buf);
}

/// A length-delimited field written unconditionally (a repeated element, a
/// map key or value, a oneof member).
pub(super) fn len_delimited(tag: u32, data: &[u8], buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(data.len() as u64, buf);
    buf.extend_from_slice(data);
}

/// A proto3 `string` field: left out when empty.
pub(super) fn string(tag: u32, v: &str, buf: &mut Vec<u8>) {
    if !v.is_empty() {
        len_delimited(tag, v.as_bytes(), buf);
    }
}

/// A proto3 `bytes` field: left out when empty.
pub(super) fn bytes(tag: u32, v: &[u8], buf: &mut Vec<u8>) {
    if !v.is_empty() {
        len_delimited(tag, v, buf);
    }
}

/// A `repeated string` (or `repeated bytes`) field: every element, empty
/// ones included.
pub(super) fn repeated<T: AsRef<[u8]>>(tag: u32, items: &[T], buf: &mut Vec<u8>) {
    for item in items {
        len_delimited(tag, item.as_ref(), buf);
    }
}

/// A proto3 `bool` field: left out when false.
pub(super) fn bool(tag: u32, v: bool, buf: &mut Vec<u8>) {
    if v {
        encode_key(tag, WireType::Varint, buf);
        buf.push(1);
    }
}

/// A proto3 `int64` field: left out when zero.
pub(super) fn int64(tag: u32, v: i64, buf: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(v as u64, buf);
    }
}

/// A proto3 `int32` or enum field: left out when zero; negative values are
/// sign-extended to ten bytes, as in Go.
pub(super) fn int32(tag: u32, v: i32, buf: &mut Vec<u8>) {
    int64(tag, i64::from(v), buf);
}

/// A `map<string, V>` field: one entry per key in key order (Go's
/// deterministic marshaling), each with its key (1) and its value (2) even
/// when either is empty. `value` writes the value as field 2.
pub(super) fn map<'a, V: 'a>(
    tag: u32,
    entries: impl IntoIterator<Item = (&'a String, &'a V)>,
    buf: &mut Vec<u8>,
    value: impl Fn(&V, &mut Vec<u8>),
) {
    let mut sorted: Vec<(&String, &V)> = entries.into_iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (k, v) in sorted {
        nested(tag, buf, |b| {
            len_delimited(1, k.as_bytes(), b);
            value(v, b);
        });
    }
}

/// A map value that is a string or bytes: written even when empty (`12 00`).
pub(super) fn value_bytes<T: AsRef<[u8]> + ?Sized>(v: &T, buf: &mut Vec<u8>) {
    len_delimited(2, v.as_ref(), buf);
}

/// A map value that is a bool: written even when false (`10 00`).
pub(super) fn value_bool(v: &bool, buf: &mut Vec<u8>) {
    encode_key(2, WireType::Varint, buf);
    buf.push(u8::from(*v));
}

/// A map value that is a message with a hand-written encoder.
pub(super) fn value_message<M: GoEncode>(v: &M, buf: &mut Vec<u8>) {
    message(2, v, buf);
}

/// A map value that is a leaf message.
pub(super) fn value_leaf<M: Message>(v: &M, buf: &mut Vec<u8>) {
    leaf(2, v, buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_lengths_of_every_size() {
        for len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let mut buf = vec![0xaa];
            nested(2, &mut buf, |b| b.extend(std::iter::repeat_n(7u8, len)));
            let mut want = vec![0xaa, 0x12];
            encode_varint(len as u64, &mut want);
            want.extend(std::iter::repeat_n(7u8, len));
            assert_eq!(buf, want, "body of {len} bytes");
        }
    }

    #[test]
    fn proto3_defaults_are_left_out_and_negatives_take_ten_bytes() {
        let mut buf = Vec::new();
        string(1, "", &mut buf);
        bytes(2, &[], &mut buf);
        bool(3, false, &mut buf);
        int64(4, 0, &mut buf);
        int32(5, 0, &mut buf);
        assert!(buf.is_empty());
        int32(5, -1, &mut buf);
        assert_eq!(
            buf,
            [0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }
}
