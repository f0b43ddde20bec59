//! Typed access to collection values: a command asks for the list, hash, set or
//! sorted set at a key and gets it, nothing, or WRONGTYPE.

use super::CommandError;
use crate::clock::Millis;
use crate::keyspace::types::{Hash, List, Set, Stream, ZSet};
use crate::keyspace::{SlotTable, Value};

/// A collection type stored in a [`Value`] variant.
pub trait Collection: Sized {
    /// The collection inside `value`, if it is of this type.
    fn from_value(value: &Value) -> Option<&Self>;
    /// The same, mutable.
    fn from_value_mut(value: &mut Value) -> Option<&mut Self>;
    /// Wraps a collection as a value.
    fn into_value(self) -> Value;
}

macro_rules! collection {
    ($type:ty, $variant:ident) => {
        impl Collection for $type {
            fn from_value(value: &Value) -> Option<&Self> {
                match value {
                    Value::$variant(c) => Some(c),
                    _ => None,
                }
            }

            fn from_value_mut(value: &mut Value) -> Option<&mut Self> {
                match value {
                    Value::$variant(c) => Some(c),
                    _ => None,
                }
            }

            fn into_value(self) -> Value {
                Value::$variant(Box::new(self))
            }
        }
    };
}

collection!(List, List);
collection!(Hash, Hash);
collection!(Set, Set);
collection!(ZSet, ZSet);
collection!(Stream, Stream);

/// The collection at `key`: `None` if the key does not exist, WRONGTYPE if it
/// holds another type.
pub fn read<'t, C: Collection>(
    table: &'t mut SlotTable,
    key: &[u8],
    now: Millis,
) -> Result<Option<&'t C>, CommandError> {
    match table.get(key, now) {
        None => Ok(None),
        Some(entry) => C::from_value(entry.value)
            .map(Some)
            .ok_or(CommandError::WrongType),
    }
}

/// The collection at `key` for changing it in place.
pub fn modify<'t, C: Collection>(
    table: &'t mut SlotTable,
    key: &[u8],
    now: Millis,
) -> Result<Option<&'t mut C>, CommandError> {
    match table.get(key, now) {
        None => Ok(None),
        Some(entry) => C::from_value_mut(entry.value)
            .map(Some)
            .ok_or(CommandError::WrongType),
    }
}

/// The collection at `key`, created by `make` if the key does not exist.
/// Callers that may leave it empty follow up with `SlotTable::remove_if_empty`.
pub fn create<'t, C: Collection>(
    table: &'t mut SlotTable,
    key: &[u8],
    now: Millis,
    make: impl FnOnce() -> C,
) -> Result<&'t mut C, CommandError> {
    // Check the type before creating anything.
    if let Some(entry) = table.peek(key, now) {
        C::from_value(entry.value).ok_or(CommandError::WrongType)?;
    }
    let entry = table.get_or_insert_with(key, now, || make().into_value());
    C::from_value_mut(entry.value).ok_or(CommandError::WrongType)
}
