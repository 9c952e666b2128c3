//! Payload encodings: JSON by default, MessagePack (named fields) when the request says
//! `Content-Type: application/msgpack`.

use serde::{de::DeserializeOwned, Serialize};

pub const CONTENT_TYPE_HEADER: &str = "Content-Type";
pub const MSGPACK: &str = "application/msgpack";
pub const JSON: &str = "application/json";

/// Largest request body accepted; anything bigger is `bad_request` without decoding.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Json,
    Msgpack,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl Encoding {
    /// Chooses the encoding from a `Content-Type` header value; anything but msgpack is JSON.
    pub fn from_content_type(value: Option<&str>) -> Encoding {
        match value {
            Some(v) if v.trim().eq_ignore_ascii_case(MSGPACK) => Encoding::Msgpack,
            _ => Encoding::Json,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => JSON,
            Encoding::Msgpack => MSGPACK,
        }
    }

    pub fn encode<T: Serialize>(self, value: &T) -> Vec<u8> {
        // Serializing our own types into memory cannot fail: every map key is a string and
        // no type has a fallible Serialize impl.
        match self {
            Encoding::Json => serde_json::to_vec(value).unwrap_or_default(),
            Encoding::Msgpack => rmp_serde::to_vec_named(value).unwrap_or_default(),
        }
    }

    /// A candles reply: JSON written directly ([`crate::candles_json`]), MessagePack through
    /// serde like every other payload.
    pub fn encode_candles(self, reply: &crate::request::CandlesReplyRef) -> Vec<u8> {
        match self {
            Encoding::Json => crate::candles_json::encode(reply),
            Encoding::Msgpack => self.encode(reply),
        }
    }

    /// Decodes a request from a producer: too large or undecodable is `bad_request`.
    pub fn decode_request<T: DeserializeOwned>(
        self,
        payload: &[u8],
    ) -> Result<T, crate::WireError> {
        use crate::{ErrorCode, WireError};
        if payload.len() > MAX_REQUEST_BYTES {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                format!(
                    "request is {} bytes; the limit is {MAX_REQUEST_BYTES}",
                    payload.len()
                ),
            ));
        }
        self.decode(payload)
            .map_err(|e| WireError::new(ErrorCode::BadRequest, format!("undecodable request: {e}")))
    }

    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, DecodeError> {
        match self {
            Encoding::Json => serde_json::from_slice(bytes).map_err(|e| DecodeError(e.to_string())),
            Encoding::Msgpack => {
                rmp_serde::from_slice(bytes).map_err(|e| DecodeError(e.to_string()))
            }
        }
    }
}
