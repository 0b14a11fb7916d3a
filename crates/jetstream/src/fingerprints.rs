//! What was delivered to each record (`send_only_changes`), in the bucket
//! `<prefix>_fingerprints`: one key per (instance, record kind, record id) holding each part's
//! 64-bit hash as a JSON object, so that every node skips what any node delivered.
//!
//! Keys are `<instance>.<kind>.<id>` with each part as a [`token`]. An id whose token would be
//! longer than [`MAX_ID_TOKEN`] is replaced by `h` and a 128-bit hash of it (two FNV-1a
//! hashes), since subjects are bounded; two such ids meeting is vanishingly unlikely, and would
//! only make one of them skip a request that changes nothing for the other. The bucket's
//! maximum age forgets a record after `fingerprint_max_age` without a write. Two nodes writing
//! one record at once keep the later write: a part lost that way is only sent again.

use std::collections::HashMap;
use std::time::SystemTime;

use actionkit_queue::FingerprintPart;
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::future::join_all;
use serde_json::{Map, Value};

use crate::{JetStreamError, JetStreamQueue, token};

/// The longest id token kept as it is.
pub const MAX_ID_TOKEN: usize = 128;

/// FNV-1a over `bytes` from `basis`.
fn fnv1a(basis: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(basis, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A 128-bit digest of `text` in hex (two FNV-1a hashes from different bases): short names
/// for long ids and for batches of `messageId`s.
pub(crate) fn digest(text: &str) -> String {
    let a = fnv1a(0xcbf2_9ce4_8422_2325, text.as_bytes());
    let b = fnv1a(0x8422_2325_cbf2_9ce4, text.as_bytes());
    format!("{a:016x}{b:016x}")
}

/// The key of record `id` of kind `record` of `destination`.
fn key(destination: &str, record: &str, id: &str) -> String {
    let mut id_token = token(id);
    if id_token.len() > MAX_ID_TOKEN {
        id_token = format!("h{}", digest(id));
    }
    format!("{}.{}.{id_token}", token(destination), token(record))
}

fn decode(value: &[u8]) -> Vec<FingerprintPart> {
    match serde_json::from_slice::<Map<String, Value>>(value) {
        Ok(map) => map
            .into_iter()
            .filter_map(|(part, hash)| {
                Some(FingerprintPart {
                    part,
                    hash: hash.as_u64()?,
                })
            })
            .collect(),
        // Unreadable means nothing remembered: the record is sent again.
        Err(_) => Vec::new(),
    }
}

fn encode(parts: &[FingerprintPart]) -> Bytes {
    let map: Map<String, Value> = parts
        .iter()
        .map(|p| (p.part.clone(), Value::from(p.hash)))
        .collect();
    Bytes::from(Value::Object(map).to_string())
}

fn fail(action: &'static str) -> impl Fn(String) -> JetStreamError {
    move |reason| JetStreamError::Unavailable { action, reason }
}

impl JetStreamQueue {
    async fn read_parts(&self, key: &str) -> Result<Vec<FingerprintPart>, JetStreamError> {
        let entry = self
            .buckets
            .fingerprints
            .entry(key)
            .await
            .map_err(|err| fail("fingerprint read")(err.to_string()))?;
        Ok(entry
            .filter(|entry| entry.operation == kv::Operation::Put)
            .map(|entry| decode(&entry.value))
            .unwrap_or_default())
    }

    /// The remembered parts of each of `ids` (records of kind `record`) of `destination`; ids
    /// with none are left out. Read concurrently.
    pub async fn fingerprints(
        &self,
        destination: &str,
        record: &str,
        ids: &[&str],
    ) -> Result<HashMap<String, Vec<FingerprintPart>>, JetStreamError> {
        let reads =
            join_all(ids.iter().map(|id| async move {
                (*id, self.read_parts(&key(destination, record, id)).await)
            }))
            .await;
        let mut out = HashMap::new();
        for (id, parts) in reads {
            let parts = parts?;
            if !parts.is_empty() {
                out.insert(id.to_owned(), parts);
            }
        }
        Ok(out)
    }

    /// Remembers the parts delivered to records of kind `record` of `destination`: each part
    /// written replaces that part, the others stay.
    pub async fn remember_fingerprints(
        &self,
        destination: &str,
        record: &str,
        entries: &[(String, Vec<FingerprintPart>)],
        _now: SystemTime,
    ) -> Result<(), JetStreamError> {
        let writes = join_all(entries.iter().filter(|(_, parts)| !parts.is_empty()).map(
            |(id, parts)| async move {
                let key = key(destination, record, id);
                let mut merged = self.read_parts(&key).await?;
                for part in parts {
                    match merged.iter_mut().find(|p| p.part == part.part) {
                        Some(known) => known.hash = part.hash,
                        None => merged.push(part.clone()),
                    }
                }
                self.buckets
                    .fingerprints
                    .put(key, encode(&merged))
                    .await
                    .map(|_| ())
                    .map_err(|err| fail("fingerprint write")(err.to_string()))
            },
        ))
        .await;
        writes.into_iter().collect()
    }

    /// Forgets every part of `ids` (records of kind `record`) of `destination`; returns how
    /// many parts were forgotten.
    pub async fn forget_fingerprints(
        &self,
        destination: &str,
        record: &str,
        ids: &[&str],
    ) -> Result<u64, JetStreamError> {
        let mut n = 0u64;
        for id in ids {
            let key = key(destination, record, id);
            let parts = self.read_parts(&key).await?;
            if parts.is_empty() {
                continue;
            }
            self.buckets
                .fingerprints
                .purge(&key)
                .await
                .map_err(|err| fail("fingerprint delete")(err.to_string()))?;
            n += parts.len() as u64;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ids_are_hashed_into_bounded_keys() {
        assert_eq!(key("userpilot", "user", "u-1"), "userpilot.user.u-1");
        let long = "a".repeat(500);
        let hashed = key("userpilot", "user", &long);
        assert!(hashed.len() < 80, "{hashed}");
        assert_ne!(hashed, key("userpilot", "user", &"a".repeat(501)));
        assert_eq!(key("userpilot", "user", "a.b"), "userpilot.user.x612e62");
    }

    #[test]
    fn parts_round_trip_with_full_64_bit_hashes() {
        let parts = vec![
            FingerprintPart {
                part: "traits".to_owned(),
                hash: u64::MAX,
            },
            FingerprintPart {
                part: "company".to_owned(),
                hash: 7,
            },
        ];
        assert_eq!(decode(&encode(&parts)), parts);
        assert!(decode(b"not json").is_empty());
    }
}
