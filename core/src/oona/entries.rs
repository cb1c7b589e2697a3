//! Reading stream entries out of `redis::Value` replies (RESP2 shapes).
//!
//! Parsed by hand rather than with the crate's `streams` types because those
//! hold fields in a `HashMap` of text, and Oona's frames are binary.

use redis::Value;

/// One stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its stream id (`<ms>-<seq>`).
    pub id: String,
    /// Field/value pairs in stream order; empty for an entry deleted while pending.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// The first value of field `name`.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find(|(field, _)| field == name.as_bytes()).map(|(_, value)| value.as_slice())
    }
}

/// `[id, [field, value, …]]` items.
pub fn entries(value: &Value) -> Result<Vec<Entry>, String> {
    let Value::Array(items) = value else { return Err(format!("expected an array of entries, got {value:?}")) };
    items.iter().map(entry).collect()
}

fn entry(value: &Value) -> Result<Entry, String> {
    let Value::Array(parts) = value else { return Err(format!("expected an entry, got {value:?}")) };
    let [id, body] = parts.as_slice() else { return Err(format!("an entry has 2 parts, got {}", parts.len())) };
    let id = text(id)?;
    let fields = match body {
        Value::Nil => Vec::new(),
        Value::Array(flat) => flat.chunks(2).map(pair).collect::<Result<_, _>>()?,
        other => return Err(format!("entry {id} has fields {other:?}")),
    };
    Ok(Entry { id, fields })
}

fn pair(chunk: &[Value]) -> Result<(Vec<u8>, Vec<u8>), String> {
    match chunk {
        [Value::BulkString(field), Value::BulkString(value)] => Ok((field.clone(), value.clone())),
        other => Err(format!("expected a field and a value, got {other:?}")),
    }
}

/// A bulk or simple string as text.
pub fn text(value: &Value) -> Result<String, String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).map_err(|_| "an id is not UTF-8".to_owned()),
        Value::SimpleString(text) => Ok(text.clone()),
        other => Err(format!("expected a string, got {other:?}")),
    }
}

/// The entries of the one stream an `XREADGROUP … STREAMS key >` names; nil
/// (the block timed out) is no entries.
pub fn read_reply(value: &Value) -> Result<Vec<Entry>, String> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => match streams.as_slice() {
            [] => Ok(Vec::new()),
            [Value::Array(stream)] => match stream.as_slice() {
                [_key, list] => entries(list),
                _ => Err("a stream in a read reply has 2 parts".to_owned()),
            },
            _ => Err(format!("expected one stream in the read reply, got {}", streams.len())),
        },
        other => Err(format!("unexpected read reply {other:?}")),
    }
}

/// XAUTOCLAIM's `[cursor, entries, deleted ids]`: the claimed entries and the
/// ids Redis dropped from the pending list because their entries are gone.
pub fn autoclaim_reply(value: &Value) -> Result<(Vec<Entry>, Vec<String>), String> {
    let Value::Array(parts) = value else { return Err(format!("unexpected XAUTOCLAIM reply {value:?}")) };
    let [_cursor, claimed, rest @ ..] = parts.as_slice() else { return Err("XAUTOCLAIM reply too short".to_owned()) };
    let deleted = match rest.first() {
        Some(Value::Array(ids)) => ids.iter().map(text).collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    Ok((entries(claimed)?.into_iter().filter(|entry| !entry.fields.is_empty()).collect(), deleted))
}

/// Extended XPENDING rows as `(id, deliveries)`.
pub fn pending_deliveries(value: &Value) -> Result<Vec<(String, u64)>, String> {
    let Value::Array(rows) = value else { return Err(format!("unexpected XPENDING reply {value:?}")) };
    rows.iter()
        .map(|row| match row {
            Value::Array(cells) => match cells.as_slice() {
                [id, _consumer, _idle, Value::Int(deliveries)] => {
                    Ok((text(id)?, u64::try_from(*deliveries).unwrap_or(0)))
                }
                _ => Err(format!("unexpected XPENDING row {row:?}")),
            },
            other => Err(format!("unexpected XPENDING row {other:?}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn reads_read_autoclaim_and_pending_shapes() {
        let item = Value::Array(vec![bulk("1-0"), Value::Array(vec![bulk("frame"), bulk("x")])]);
        let read = Value::Array(vec![Value::Array(vec![bulk("s"), Value::Array(vec![item.clone()])])]);
        let parsed = read_reply(&read).expect("read reply");
        assert_eq!(parsed[0].field("frame"), Some(&b"x"[..]));
        assert_eq!(read_reply(&Value::Nil), Ok(Vec::new()));
        let gone = Value::Array(vec![bulk("2-0"), Value::Nil]);
        let claim = Value::Array(vec![bulk("0-0"), Value::Array(vec![item, gone]), Value::Array(vec![bulk("3-0")])]);
        let (claimed, deleted) = autoclaim_reply(&claim).expect("autoclaim reply");
        assert_eq!((claimed.len(), deleted), (1, vec!["3-0".to_owned()]));
        let row = Value::Array(vec![bulk("1-0"), bulk("c"), Value::Int(5), Value::Int(3)]);
        assert_eq!(pending_deliveries(&Value::Array(vec![row])), Ok(vec![("1-0".to_owned(), 3)]));
        assert!(entries(&bulk("nope")).is_err());
    }
}
