//! The content digest of a parsed resource: SHA-256 over an unambiguous binary encoding of
//! kiban's typed resource, fed to the hasher as serde walks the value.
//!
//! Two copies with the same content have the same digest however their JSON keys were ordered
//! or spaced: the typed resource has its elements in a fixed order and free-form JSON (objects
//! kept as `serde_json::Value`) has sorted keys. Writing JSON text only to hash it cost about a
//! tenth of intake's CPU (string escaping, number formatting, many small writes); this encoding
//! writes each value once with a type tag and a length, so no two different values encode
//! alike (every struct field is named, every string is length-prefixed and every sequence, map and struct closed by an end marker).

use serde::Serialize;
use serde::ser;
use sha2::{Digest, Sha256};
use std::fmt;

/// SHA-256 of the canonical encoding of `value`.
pub(crate) fn content_digest<T: Serialize + ?Sized>(value: &T) -> [u8; 32] {
    let mut encoder = Encoder {
        hasher: Sha256::new(),
        buffer: [0; BUFFER],
        filled: 0,
    };
    // The encoder never fails; a type whose Serialize impl fails on its own would still be
    // digested up to that point, deterministically.
    let _ = value.serialize(&mut encoder);
    encoder.flush();
    encoder.hasher.finalize().into()
}

/// Bytes gathered before they are hashed (whole blocks are cheaper to hash than fragments).
const BUFFER: usize = 2048;

/// The encoder: a buffer in front of the hasher (a fixed array: no allocation per resource,
/// no capacity checks per byte written).
struct Encoder {
    hasher: Sha256,
    buffer: [u8; BUFFER],
    /// Bytes of `buffer` in use.
    filled: usize,
}

/// Never produced: the encoder cannot fail.
#[derive(Debug)]
pub(crate) struct Never;

impl fmt::Display for Never {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("content digest")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Never
    }
}

// Type tags: one byte before every value.
const TAG_BOOL: u8 = 1;
const TAG_I64: u8 = 2;
const TAG_U64: u8 = 3;
const TAG_F64: u8 = 4;
const TAG_STR: u8 = 5;
const TAG_BYTES: u8 = 6;
const TAG_NONE: u8 = 7;
const TAG_SOME: u8 = 8;
const TAG_UNIT: u8 = 9;
const TAG_SEQ: u8 = 10;
const TAG_MAP: u8 = 11;
const TAG_STRUCT: u8 = 12;
const TAG_VARIANT: u8 = 13;
const TAG_END: u8 = 14;
const TAG_I128: u8 = 15;
const TAG_U128: u8 = 16;

impl Encoder {
    /// Hashes the buffered bytes. The digest depends only on the byte sequence, not on how
    /// it is cut into updates.
    #[inline]
    fn flush(&mut self) {
        self.hasher.update(&self.buffer[..self.filled]);
        self.filled = 0;
    }

    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.filled + bytes.len();
        if end <= BUFFER {
            self.buffer[self.filled..end].copy_from_slice(bytes);
            self.filled = end;
            return;
        }
        self.flush();
        if bytes.len() >= BUFFER / 2 {
            // A long value goes to the hasher straight from its place, not through the buffer.
            self.hasher.update(bytes);
        } else {
            self.buffer[..bytes.len()].copy_from_slice(bytes);
            self.filled = bytes.len();
        }
    }

    #[inline]
    fn tag(&mut self, tag: u8) {
        if self.filled == BUFFER {
            self.flush();
        }
        self.buffer[self.filled] = tag;
        self.filled += 1;
    }

    /// A length as LEB128: one byte for nearly every string of a resource.
    #[inline]
    fn len(&mut self, len: usize) {
        if len < 0x80 {
            // One byte, the same as the loop below writes for it.
            self.tag(len as u8);
            return;
        }
        let mut rest = len as u64;
        let mut bytes = [0u8; 10];
        let mut n = 0;
        loop {
            let low = (rest & 0x7f) as u8;
            rest >>= 7;
            if rest == 0 {
                bytes[n] = low;
                n += 1;
                break;
            }
            bytes[n] = low | 0x80;
            n += 1;
        }
        self.put(&bytes[..n]);
    }

    #[inline]
    fn text(&mut self, tag: u8, bytes: &[u8]) {
        self.tag(tag);
        self.len(bytes.len());
        self.put(bytes);
    }
}

impl<'a> ser::Serializer for &'a mut Encoder {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Never> {
        self.tag(TAG_BOOL);
        self.tag(u8::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Never> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Never> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Never> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Never> {
        self.tag(TAG_I64);
        self.put(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Never> {
        self.tag(TAG_I128);
        self.put(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Never> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Never> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Never> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Never> {
        self.tag(TAG_U64);
        self.put(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Never> {
        self.tag(TAG_U128);
        self.put(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Never> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Never> {
        self.tag(TAG_F64);
        self.put(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Never> {
        let mut utf8 = [0u8; 4];
        self.serialize_str(v.encode_utf8(&mut utf8))
    }
    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.text(TAG_STR, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Never> {
        self.text(TAG_BYTES, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Never> {
        self.tag(TAG_NONE);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Never> {
        self.tag(TAG_SOME);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Never> {
        self.tag(TAG_UNIT);
        Ok(())
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<(), Never> {
        self.text(TAG_UNIT, name.as_bytes());
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Never> {
        self.text(TAG_VARIANT, variant.as_bytes());
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.text(TAG_VARIANT, variant.as_bytes());
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'a>, Never> {
        self.tag(TAG_SEQ);
        // The length is not always known up front; the end marker closes the sequence.
        let _ = len;
        Ok(Compound { encoder: self })
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Never> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Never> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Never> {
        self.text(TAG_VARIANT, variant.as_bytes());
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, Never> {
        self.tag(TAG_MAP);
        Ok(Compound { encoder: self })
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'a>, Never> {
        self.tag(TAG_STRUCT);
        Ok(Compound { encoder: self })
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Never> {
        self.text(TAG_VARIANT, variant.as_bytes());
        self.tag(TAG_STRUCT);
        Ok(Compound { encoder: self })
    }
}

/// A sequence, map or struct being encoded; closed by an end marker.
pub(crate) struct Compound<'a> {
    encoder: &'a mut Encoder,
}

impl Compound<'_> {
    fn end(self) -> Result<(), Never> {
        self.encoder.tag(TAG_END);
        Ok(())
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut *self.encoder)
    }
    fn end(self) -> Result<(), Never> {
        Compound::end(self)
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut *self.encoder)
    }
    fn end(self) -> Result<(), Never> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut *self.encoder)
    }
    fn end(self) -> Result<(), Never> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut *self.encoder)
    }
    fn end(self) -> Result<(), Never> {
        Compound::end(self)
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Never> {
        key.serialize(&mut *self.encoder)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut *self.encoder)
    }
    fn end(self) -> Result<(), Never> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.encoder.text(TAG_STR, key.as_bytes());
        value.serialize(&mut *self.encoder)
    }
    fn skip_field(&mut self, _key: &'static str) -> Result<(), Never> {
        Ok(())
    }
    fn end(self) -> Result<(), Never> {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.encoder.text(TAG_STR, key.as_bytes());
        value.serialize(&mut *self.encoder)
    }
    fn end(self) -> Result<(), Never> {
        Compound::end(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiban_fhir::Resource;
    use std::collections::BTreeMap;

    #[test]
    fn key_order_and_spacing_do_not_matter() {
        let a = Resource::from_json_str(
            r#"{"resourceType":"Condition","id":"c1","code":{"text":"x","coding":[{"system":"s","code":"1"}]},"_recordedDate":{"b":1,"a":2}}"#,
        )
        .unwrap();
        let b = Resource::from_json_str(
            r#"{ "_recordedDate": {"a": 2, "b": 1}, "code": {"coding": [{"code": "1", "system": "s"}], "text": "x"}, "id": "c1", "resourceType": "Condition" }"#,
        )
        .unwrap();
        assert_eq!(content_digest(&a), content_digest(&b));
        let c = Resource::from_json_str(r#"{"resourceType":"Condition","id":"c1"}"#).unwrap();
        assert_ne!(content_digest(&a), content_digest(&c));
    }

    #[test]
    fn a_value_moved_to_another_field_changes_the_digest() {
        // Without field names, {a: None, b: "x"} and {a: "x", b: None} would encode alike.
        #[derive(Serialize)]
        struct Pair {
            #[serde(skip_serializing_if = "Option::is_none")]
            a: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            b: Option<String>,
        }
        let first = Pair {
            a: None,
            b: Some("x".into()),
        };
        let second = Pair {
            a: Some("x".into()),
            b: None,
        };
        assert_ne!(content_digest(&first), content_digest(&second));
        // Nor may a string's bytes run into the next one.
        assert_ne!(
            content_digest(&vec!["ab", "c"]),
            content_digest(&vec!["a", "bc"])
        );
        assert_ne!(
            content_digest(&vec![vec![1], vec![]]),
            content_digest(&vec![vec![], vec![1]])
        );
        let map = BTreeMap::from([("k", "v")]);
        assert_ne!(content_digest(&map), content_digest(&vec!["k", "v"]));
    }

    #[test]
    fn long_values_cross_the_buffer() {
        let long = "あ".repeat(BUFFER);
        let a = vec![long.clone(), "x".into()];
        let b = vec![long, "y".into()];
        assert_ne!(content_digest(&a), content_digest(&b));
        assert_eq!(content_digest(&a), content_digest(&a.clone()));
    }
}
