//! The `{code,msg,message,ttl,data}` envelope around every JSON answer.

use serde::{Deserialize, Serialize};

use crate::code::ApiCode;

/// The response envelope. `msg` and `ttl` are optional on input because some upstream answers
/// omit them; sixin always emits both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    #[serde(default = "none", skip_serializing_if = "Data::is_absent")]
    pub data: Data<T>,
}

fn none<T>() -> Data<T> {
    Data::Absent
}

/// `data` can be absent, `null`, or a value, and upstream uses all three; keeping them apart
/// makes a round trip exact.
#[derive(Debug, Clone, PartialEq)]
pub enum Data<T> {
    Absent,
    Null,
    Value(T),
}

impl<T> Data<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Data::Absent)
    }
    pub fn into_option(self) -> Option<T> {
        match self {
            Data::Value(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_ref(&self) -> Option<&T> {
        match self {
            Data::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl<T: Serialize> Serialize for Data<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Data::Value(v) => v.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Data<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            Some(v) => Data::Value(v),
            None => Data::Null,
        })
    }
}

impl<T> Envelope<T> {
    /// A successful answer carrying `data`.
    pub fn ok(data: T) -> Self {
        Envelope {
            code: 0,
            msg: Some("0".into()),
            message: "0".into(),
            ttl: Some(1),
            data: Data::Value(data),
        }
    }

    /// An error answer without `data`.
    pub fn error(code: ApiCode) -> Self {
        Envelope {
            code: code.code(),
            msg: Some(code.message().into()),
            message: code.message().into(),
            ttl: Some(1),
            data: Data::Absent,
        }
    }

    /// An error answer whose `data` is present (a value or an explicit `null`).
    pub fn error_with(code: ApiCode, data: Data<T>) -> Self {
        Envelope {
            data,
            ..Envelope::error(code)
        }
    }

    pub fn is_ok(&self) -> bool {
        self.code == 0
    }
}
