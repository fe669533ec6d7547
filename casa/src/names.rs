//! The name of a unit enum variant, taken from its `Serialize` derive.
//!
//! Enums that appear in casa's logs (`Action`, `SessionKind`, `CloseReason`) name their
//! variants once, in their `#[serde(rename_all = …)]` derive. Code that needs the same name
//! as a `&'static str` (console lines, span attributes, the records' string fields) asks
//! [`variant_name`] for it instead of keeping a second `match`.

use serde::{
    Serialize,
    ser::{Error as _, Impossible, Serializer},
};

/// The serialised name of the unit variant `value` (e.g. `"ALERT"` for `Action::Alert`).
///
/// # Panics
/// When `T` does not serialise as a unit variant: a programming error that every caller's
/// tests catch (the helper is only implemented for field-less enums).
pub fn variant_name<T: Serialize>(value: &T) -> &'static str {
    match value.serialize(VariantName) {
        Ok(name) => name,
        Err(e) => panic!("variant_name: {e}"),
    }
}

/// A serializer that accepts only unit variants and returns their name.
struct VariantName;

#[derive(Debug)]
struct NotAUnitVariant(String);

impl std::fmt::Display for NotAUnitVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a unit enum variant: {}", self.0)
    }
}

impl std::error::Error for NotAUnitVariant {}

impl serde::ser::Error for NotAUnitVariant {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        Self(msg.to_string())
    }
}

macro_rules! refuse {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<Self::Ok, Self::Error> {
            Err(NotAUnitVariant::custom(stringify!($method)))
        })*
    };
}

impl Serializer for VariantName {
    type Ok = &'static str;
    type Error = NotAUnitVariant;
    type SerializeSeq = Impossible<&'static str, NotAUnitVariant>;
    type SerializeTuple = Impossible<&'static str, NotAUnitVariant>;
    type SerializeTupleStruct = Impossible<&'static str, NotAUnitVariant>;
    type SerializeTupleVariant = Impossible<&'static str, NotAUnitVariant>;
    type SerializeMap = Impossible<&'static str, NotAUnitVariant>;
    type SerializeStruct = Impossible<&'static str, NotAUnitVariant>;
    type SerializeStructVariant = Impossible<&'static str, NotAUnitVariant>;

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<&'static str, NotAUnitVariant> {
        Ok(variant)
    }

    refuse! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(&'static str);
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<&'static str, Self::Error> {
        Err(NotAUnitVariant::custom("option"))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, Self::Error> {
        Err(NotAUnitVariant::custom("newtype struct"))
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, Self::Error> {
        Err(NotAUnitVariant::custom("newtype variant"))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        Err(NotAUnitVariant::custom("sequence"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Self::Error> {
        Err(NotAUnitVariant::custom("tuple"))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        Err(NotAUnitVariant::custom("tuple struct"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        Err(NotAUnitVariant::custom("tuple variant"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        Err(NotAUnitVariant::custom("map"))
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Self::Error> {
        Err(NotAUnitVariant::custom("struct"))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        Err(NotAUnitVariant::custom("struct variant"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Sample {
        LeaderExit,
        #[serde(rename = "LOUD")]
        Quiet,
    }

    #[test]
    fn names_come_from_the_serde_attributes() {
        assert_eq!(variant_name(&Sample::LeaderExit), "leader_exit");
        assert_eq!(variant_name(&Sample::Quiet), "LOUD");
        // The same text serde_json writes, without the quotes.
        assert_eq!(
            serde_json::to_string(&Sample::LeaderExit).unwrap(),
            format!("\"{}\"", variant_name(&Sample::LeaderExit))
        );
    }

    #[test]
    #[should_panic(expected = "not a unit enum variant")]
    fn a_non_enum_is_a_programming_error() {
        variant_name(&3u8);
    }
}
