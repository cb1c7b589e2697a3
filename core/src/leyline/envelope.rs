//! `BusEnvelope`: the unit Oona moves — a typed, prioritised wrapper around one message.
//!
//! prost generates `message_type()` and `priority()` getters that read an unknown
//! value as the default; after [`Contract::decode_closed`] no value is unknown.

use std::collections::BTreeMap;

use super::codec::{Contract, DecodeError, UnknownEnum, closed};
use super::{BusMessageType, MessagePriority};

/// One message on the bus. `priority` (tag 4) is Esper's addition: the original kept
/// priority beside the envelope, which left it unsigned.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct BusEnvelope {
    #[prost(enumeration = "BusMessageType", tag = "1")]
    pub message_type: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
    #[prost(btree_map = "string, string", tag = "3")]
    pub attributes: BTreeMap<String, String>,
    #[prost(enumeration = "MessagePriority", tag = "4")]
    pub priority: i32,
}

impl BusEnvelope {
    /// Wraps `message` with its bus type and the given priority.
    pub fn wrap<M: Contract>(message: &M, priority: MessagePriority) -> Self {
        Self {
            message_type: M::MESSAGE_TYPE.into(),
            payload: message.encode_to_vec(),
            attributes: BTreeMap::new(),
            priority: priority.into(),
        }
    }

    /// Unwraps the payload as `M`, refusing an envelope of another type.
    pub fn open<M: Contract>(&self) -> Result<M, DecodeError> {
        let found = self.message_type();
        if found != M::MESSAGE_TYPE {
            return Err(DecodeError::WrongMessageType { expected: M::MESSAGE_TYPE, found });
        }
        M::decode_closed(&self.payload)
    }
}

impl Contract for BusEnvelope {
    const NAME: &'static str = "BusEnvelope";
    const MESSAGE_TYPE: BusMessageType = BusMessageType::Unspecified;

    fn check_enums(&self) -> Result<(), UnknownEnum> {
        closed::<BusMessageType>("message_type", self.message_type)?;
        closed::<MessagePriority>("priority", self.priority)
    }
}
