//! Sending only what changed, for actions whose API merges by id (`merges_by_id` in the YAML).
//!
//! Such an API applies a request to the record its id names: the objects under the merged keys
//! (Userpilot's `metadata`) are merged key by key, every other key replaces what the record held,
//! and keys not sent are kept. Two things follow, and this module provides both without IO:
//!
//! - **Skip unchanged.** A request's [`Fingerprint`] holds one hash per *part*: `metadata.plan`
//!   for each key of a merged object, `company` for any other key. When every part equals what
//!   was last delivered for that record (its [`Known`] parts), sending it would change nothing.
//!   A record never delivered is never unchanged, so the first request always creates it.
//! - **Coalesce.** Requests for one record that wait at the same time can be [`merge`]d into one,
//!   in event order, the later value of a key winning: the API would end in the same state.
//!
//! Hashes are FNV-1a over the compact JSON text of a value, so they are the same in every
//! process and across restarts (they are stored in the queue's database).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use crate::destination::MergesDef;

/// The part that says "the record exists"; every fingerprint has it.
const EXISTS: &str = "";

/// What a request would write to its record: the record kind and id, and one hash per part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The kind of record (`user`).
    pub record: &'static str,
    /// The record's id.
    pub id: String,
    /// `(part, hash)` for every part the request writes, the existence marker first.
    pub parts: Vec<(String, u64)>,
}

/// The parts last delivered to one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    parts: HashMap<String, u64>,
}

impl Known {
    /// The known parts from stored `(part, hash)` pairs.
    pub fn from_parts(parts: impl IntoIterator<Item = (String, u64)>) -> Known {
        Known {
            parts: parts.into_iter().collect(),
        }
    }

    /// Adds what `fingerprint` delivered.
    pub fn absorb(&mut self, fingerprint: &Fingerprint) {
        for (part, hash) in &fingerprint.parts {
            self.parts.insert(part.clone(), *hash);
        }
    }

    /// Whether delivering `fingerprint` would change nothing: the record exists and every part
    /// it writes holds the same value already.
    pub fn covers(&self, fingerprint: &Fingerprint) -> bool {
        self.parts.contains_key(EXISTS)
            && fingerprint
                .parts
                .iter()
                .all(|(part, hash)| self.parts.get(part) == Some(hash))
    }
}

/// The fingerprint of `body` (a request body or a batch entry), or `None` when the body has no
/// string or number id under `def.id` (then it is always sent).
pub fn fingerprint(def: &MergesDef, body: &Value) -> Option<Fingerprint> {
    let id = record_id(def, body)?;
    let Value::Object(body) = body else {
        return None;
    };
    let mut parts = vec![(EXISTS.to_owned(), 0)];
    for (key, value) in body {
        if key == def.id {
            continue;
        }
        match value {
            Value::Object(inner) if def.merged.contains(&key.as_str()) => {
                for (sub, value) in inner {
                    parts.push((format!("{key}.{sub}"), hash(value)));
                }
            }
            other => parts.push((key.clone(), hash(other))),
        }
    }
    Some(Fingerprint {
        record: def.record,
        id,
        parts,
    })
}

/// Merges `later` into `earlier` as the API would apply them one after the other: merged
/// objects key by key (a key's later value wins, new keys are appended), other keys replaced.
pub fn merge(def: &MergesDef, earlier: &mut Value, later: Value) {
    let (Value::Object(target), Value::Object(later)) = (earlier, later) else {
        return;
    };
    for (key, value) in later {
        match (target.get_mut(&key), value) {
            (Some(Value::Object(into)), Value::Object(from))
                if def.merged.contains(&key.as_str()) =>
            {
                for (sub, value) in from {
                    into.insert(sub, value);
                }
            }
            (_, value) => {
                target.insert(key, value);
            }
        }
    }
}

/// The id `body` names under `def.id`, as text, if it has one.
pub fn record_id(def: &MergesDef, body: &Value) -> Option<String> {
    match body.get(def.id)? {
        Value::String(id) => Some(id.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// FNV-1a over the compact JSON text of `value`.
pub fn hash(value: &Value) -> u64 {
    struct Fnv(u64);
    impl std::io::Write for Fnv {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            for byte in buf {
                self.0 ^= u64::from(*byte);
                self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut fnv = Fnv(0xcbf2_9ce4_8422_2325);
    // Writing a `Value` into a hasher cannot fail.
    let _ = serde_json::to_writer(&mut fnv, value);
    fnv.0
}

/// What was delivered to which record, in memory (for `actionkit send`, which runs once).
///
/// Holds at most `max_records` records; when full, it forgets everything and starts again,
/// which only costs resending (never a wrong skip).
#[derive(Debug)]
pub struct MemoryStore {
    records: Mutex<HashMap<(&'static str, String), Known>>,
    max_records: usize,
}

impl MemoryStore {
    /// A store of at most `max_records` records.
    pub fn new(max_records: usize) -> MemoryStore {
        MemoryStore {
            records: Mutex::new(HashMap::new()),
            max_records: max_records.max(1),
        }
    }

    /// Whether delivering `fingerprint` would change nothing.
    pub fn covers(&self, fingerprint: &Fingerprint) -> bool {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records
            .get(&(fingerprint.record, fingerprint.id.clone()))
            .is_some_and(|known| known.covers(fingerprint))
    }

    /// Records that `fingerprint` was delivered.
    pub fn remember(&self, fingerprint: &Fingerprint) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let key = (fingerprint.record, fingerprint.id.clone());
        if !records.contains_key(&key) && records.len() >= self.max_records {
            records.clear();
        }
        records.entry(key).or_default().absorb(fingerprint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const USER: MergesDef = MergesDef {
        record: "user",
        id: "user_id",
        merged: &["metadata"],
    };

    fn fp(body: Value) -> Fingerprint {
        fingerprint(&USER, &body).expect("a fingerprint")
    }

    #[test]
    fn a_record_never_delivered_is_never_unchanged() {
        let known = Known::default();
        assert!(!known.covers(&fp(json!({"user_id": "u1", "metadata": {}}))));
    }

    #[test]
    fn unchanged_means_every_sent_part_is_known_with_the_same_value() {
        let mut known = Known::default();
        known.absorb(&fp(
            json!({"user_id": "u1", "metadata": {"plan": "pro", "seats": 3}}),
        ));
        known.absorb(&fp(json!({"user_id": "u1", "company": {"id": "acme"}})));
        // A subset of what was delivered, in another order.
        assert!(known.covers(&fp(json!({"user_id": "u1", "metadata": {"seats": 3}}))));
        assert!(known.covers(&fp(
            json!({"user_id": "u1", "metadata": {}, "company": {"id": "acme"}})
        )));
        // A changed value, a new key, a new company.
        assert!(!known.covers(&fp(json!({"user_id": "u1", "metadata": {"seats": 4}}))));
        assert!(!known.covers(&fp(json!({"user_id": "u1", "metadata": {"new": true}}))));
        assert!(!known.covers(&fp(json!({"user_id": "u1", "company": {"id": "globex"}}))));
        // 3 and 3.0 are different JSON texts: sent again rather than guessed equal.
        assert!(!known.covers(&fp(json!({"user_id": "u1", "metadata": {"seats": 3.0}}))));
    }

    #[test]
    fn bodies_without_an_id_have_no_fingerprint() {
        assert_eq!(fingerprint(&USER, &json!({"metadata": {}})), None);
        assert_eq!(fingerprint(&USER, &json!({"user_id": null})), None);
        assert_eq!(fingerprint(&USER, &json!([1])), None);
        assert_eq!(fp(json!({"user_id": 7})).id, "7");
    }

    #[test]
    fn merging_applies_later_keys_over_earlier_ones() {
        let mut body =
            json!({"user_id": "u1", "metadata": {"a": 1, "b": 2}, "company": {"id": "x"}});
        merge(
            &USER,
            &mut body,
            json!({"user_id": "u1", "metadata": {"b": 3, "c": 4}}),
        );
        merge(
            &USER,
            &mut body,
            json!({"user_id": "u1", "company": {"id": "y"}}),
        );
        assert_eq!(
            body,
            json!({"user_id": "u1", "metadata": {"a": 1, "b": 3, "c": 4}, "company": {"id": "y"}})
        );
    }

    #[test]
    fn hashes_are_stable_across_processes() {
        // FNV-1a of `"pro"`, fixed so that stored fingerprints stay valid after an upgrade.
        assert_eq!(hash(&json!("pro")), 0xf9a5_9044_67da_26ae);
        assert_ne!(hash(&json!("pro")), hash(&json!("Pro")));
        assert_eq!(hash(&json!({"a": [1, 2]})), hash(&json!({"a": [1, 2]})));
    }

    #[test]
    fn the_memory_store_forgets_everything_when_full() {
        let store = MemoryStore::new(2);
        let a = fp(json!({"user_id": "a", "metadata": {"x": 1}}));
        let b = fp(json!({"user_id": "b", "metadata": {"x": 1}}));
        let c = fp(json!({"user_id": "c", "metadata": {"x": 1}}));
        store.remember(&a);
        store.remember(&b);
        assert!(store.covers(&a) && store.covers(&b));
        store.remember(&c);
        assert!(!store.covers(&a) && store.covers(&c));
    }
}
