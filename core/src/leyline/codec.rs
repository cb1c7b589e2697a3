//! Decoding Leyline messages from untrusted bytes.
//!
//! `prost` already refuses malformed wire data without panicking; what it does not do
//! is refuse enum values this build does not know (protobuf enums are open). Leyline's
//! contracts are closed, so every decode goes through [`Contract::decode_closed`], which
//! checks each enum field and names the first unknown one.

use super::BusMessageType;

/// Largest encoded message Leyline accepts from a peer. Generous for every message
/// type (telemetry is held to 280 B separately); it exists so that a corrupted length
/// can never make a decoder allocate without bound.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Why bytes did not decode into a Leyline message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{message}: {size} bytes exceeds the {limit}-byte message limit")]
    Oversized { message: &'static str, size: usize, limit: usize },
    #[error("{message}: malformed protobuf: {source}")]
    Wire {
        message: &'static str,
        #[source]
        source: prost::DecodeError,
    },
    #[error("{message}: field `{field}` holds {value}, which is not a known {enum_name} value")]
    UnknownEnum { message: &'static str, field: &'static str, enum_name: &'static str, value: i32 },
    #[error("envelope carries {found} where {expected} was expected")]
    WrongMessageType { expected: BusMessageType, found: BusMessageType },
}

/// An enum field holding a value outside the closed set; [`Contract::decode_closed`]
/// turns it into [`DecodeError::UnknownEnum`] with the message name attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownEnum {
    pub field: &'static str,
    pub enum_name: &'static str,
    pub value: i32,
}

/// Checks that `value` is one of `E`'s wire numbers.
pub fn closed<E: TryFrom<i32>>(field: &'static str, value: i32) -> Result<(), UnknownEnum> {
    match E::try_from(value) {
        Ok(_) => Ok(()),
        Err(_) => Err(UnknownEnum { field, enum_name: short_type_name::<E>(), value }),
    }
}

fn short_type_name<E>() -> &'static str {
    let full = std::any::type_name::<E>();
    full.rsplit("::").next().unwrap_or(full)
}

/// A Leyline message: protobuf on the wire, closed enums, a bus message type.
pub trait Contract: prost::Message + Default + Sized {
    /// The protobuf message name, for errors and logs.
    const NAME: &'static str;
    /// The type tag a [`super::BusEnvelope`] carrying this message has.
    const MESSAGE_TYPE: BusMessageType;

    /// Checks every enum field (recursively) against its closed set.
    fn check_enums(&self) -> Result<(), UnknownEnum>;

    /// Decodes `bytes`, refusing oversized input, malformed wire data and unknown enum
    /// values. Never panics, whatever the bytes.
    fn decode_closed(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::Oversized { message: Self::NAME, size: bytes.len(), limit: MAX_MESSAGE_BYTES });
        }
        let message = Self::decode(bytes).map_err(|source| DecodeError::Wire { message: Self::NAME, source })?;
        message.check_enums().map_err(|unknown| DecodeError::UnknownEnum {
            message: Self::NAME,
            field: unknown.field,
            enum_name: unknown.enum_name,
            value: unknown.value,
        })?;
        Ok(message)
    }
}
