//! A message after commit: a one-way call (`ctx.send`) or a timer (`ctx.send_after`,
//! `ctx.send_at`) that a request made. It is part of the sending epoch's commit record, and
//! pending in the state store until the request that delivers it commits.
//!
//! A delivery is a request of its own whose idempotency key names the message
//! ([`MessageId::idempotency_key`]): a delivery that runs again after a crash finds the first
//! one's answer instead of running twice, and the store drops the message when the delivery's
//! completion is applied.

use serde::{Deserialize, Serialize};

use super::Record;

/// The idempotency-key prefix of deliveries; clients may not use it.
pub const DELIVERY_PREFIX: &str = "stateful.message:";

/// Which message: the epoch that committed it and its place in that epoch's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId {
    /// The sending epoch.
    pub epoch: u64,
    /// Its index among the epoch's messages.
    pub index: u32,
}

impl MessageId {
    /// The idempotency key of the message's delivery.
    pub fn idempotency_key(&self) -> String {
        format!("{DELIVERY_PREFIX}{}.{}", self.epoch, self.index)
    }

    /// The message whose delivery carries idempotency key `key` (`None`: a client's key).
    pub fn from_idempotency_key(key: &str) -> Option<MessageId> {
        let (epoch, index) = key.strip_prefix(DELIVERY_PREFIX)?.split_once('.')?;
        Some(MessageId {
            epoch: epoch.parse().ok()?,
            index: index.parse().ok()?,
        })
    }
}

/// One message, as committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Its identity.
    pub id: MessageId,
    /// The sending request (root id).
    pub sender: u64,
    /// The sending lambda.
    pub from_lambda: u16,
    /// The sending instance's encoded key.
    pub from_key: Vec<u8>,
    /// The receiving lambda.
    pub lambda: u16,
    /// The receiving instance's encoded key.
    pub key: Vec<u8>,
    /// The receiving handler.
    pub handler: u16,
    /// Encoded arguments (the postcard tuple of the handler's parameters).
    pub args: Vec<u8>,
    /// When to deliver it (unix µs); 0: as soon as its epoch is durable.
    pub due_us: u64,
}

impl Record for MessageRecord {
    const KIND: &'static str = "message record";
    const VERSION: u8 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idempotency_key_names_the_message() {
        let id = MessageId {
            epoch: 1_700_000_000_000_000,
            index: 7,
        };
        let key = id.idempotency_key();
        assert_eq!(MessageId::from_idempotency_key(&key), Some(id));
        assert_eq!(MessageId::from_idempotency_key("order-7"), None);
        assert_eq!(
            MessageId::from_idempotency_key("stateful.message:x.1"),
            None
        );
    }
}
