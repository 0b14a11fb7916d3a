//! The key-value buckets of the queue: attempts records, per-instance totals and (through the
//! `fingerprints` module) what was delivered to each record.
//!
//! Buckets are streams created by hand with the key-value conventions (`KV_<bucket>`, subjects
//! `$KV.<bucket>.>`, one message per subject), because the client's own bucket creation sends
//! settings that nats-server 2.9, Debian's, does not parse.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;

use crate::{Config, JetStreamError, token};

/// Creates bucket `name` if it does not exist and opens it; `deletable` lets messages be
/// removed by sequence (the attempts bucket, whose records are removed without leaving a
/// deletion marker behind).
pub(crate) async fn bucket(
    js: &jetstream::Context,
    name: &str,
    replicas: usize,
    max_age: Duration,
    deletable: bool,
) -> Result<kv::Store, JetStreamError> {
    let setup = |reason: String| JetStreamError::Setup {
        what: format!("key-value bucket {name}"),
        reason,
    };
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: !deletable,
        allow_direct: true,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(|err| setup(err.to_string()))?;
    js.get_key_value(name)
        .await
        .map_err(|err| setup(err.to_string()))
}

/// The name of bucket `name` of a queue with `config`.
pub(crate) fn bucket_name(config: &Config, name: &str) -> String {
    format!("{}_{name}", config.subject_prefix)
}

/// Which total of an instance.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Delivered,
    DeadLettered,
    Purged,
}

impl Counter {
    fn key(self) -> &'static str {
        match self {
            Counter::Delivered => "delivered",
            Counter::DeadLettered => "dead_lettered",
            Counter::Purged => "purged",
        }
    }
}

/// The failed attempts of one event for one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempts {
    pub attempts: u32,
    pub last_error: Option<String>,
}

impl Attempts {
    /// `attempts`, a line break, then the last error.
    fn encode(&self) -> Bytes {
        let error = self.last_error.as_deref().unwrap_or_default();
        Bytes::from(format!("{}\n{error}", self.attempts))
    }

    fn decode(value: &[u8]) -> Option<Attempts> {
        let text = std::str::from_utf8(value).ok()?;
        let (attempts, error) = text.split_once('\n').unwrap_or((text, ""));
        Some(Attempts {
            attempts: attempts.parse().ok()?,
            last_error: (!error.is_empty()).then(|| error.to_owned()),
        })
    }
}

/// The queue's buckets.
#[derive(Clone)]
pub(crate) struct Buckets {
    pub attempts: kv::Store,
    /// The attempts bucket's stream, to remove records by sequence.
    pub attempts_stream: stream::Stream,
    pub attempts_name: String,
    pub counters: kv::Store,
    pub fingerprints: kv::Store,
    pub fingerprints_name: String,
}

impl Buckets {
    /// Creates (if needed) and opens every bucket of a queue with `config`.
    pub async fn open(js: &jetstream::Context, config: &Config) -> Result<Buckets, JetStreamError> {
        let attempts_name = bucket_name(config, "attempts");
        let attempts = bucket(js, &attempts_name, config.replicas, config.max_age, true).await?;
        let attempts_stream =
            js.get_stream(format!("KV_{attempts_name}"))
                .await
                .map_err(|err| JetStreamError::Setup {
                    what: format!("key-value bucket {attempts_name}"),
                    reason: err.to_string(),
                })?;
        let counters = bucket(
            js,
            &bucket_name(config, "counters"),
            config.replicas,
            Duration::ZERO,
            false,
        )
        .await?;
        let fingerprints_name = bucket_name(config, "fingerprints");
        let fingerprints = bucket(
            js,
            &fingerprints_name,
            config.replicas,
            config.fingerprint_max_age,
            false,
        )
        .await?;
        Ok(Buckets {
            attempts,
            attempts_stream,
            attempts_name,
            counters,
            fingerprints,
            fingerprints_name,
        })
    }

    /// The attempts record under `key` with its revision, if there is one.
    pub async fn attempts(&self, key: &str) -> Result<Option<(u64, Attempts)>, JetStreamError> {
        let entry = self
            .attempts
            .entry(key)
            .await
            .map_err(|err| JetStreamError::Unavailable {
                action: "lease",
                reason: format!("reading attempts: {err}"),
            })?;
        Ok(entry.and_then(|entry| {
            (entry.operation == kv::Operation::Put)
                .then(|| Attempts::decode(&entry.value).map(|a| (entry.revision, a)))
                .flatten()
        }))
    }

    /// Writes the attempts record under `key`.
    pub async fn remember_attempts(
        &self,
        key: &str,
        record: &Attempts,
    ) -> Result<(), JetStreamError> {
        self.attempts
            .put(key, record.encode())
            .await
            .map(|_| ())
            .map_err(|err| JetStreamError::Unavailable {
                action: "retry",
                reason: format!("writing attempts: {err}"),
            })
    }

    /// Removes the attempts record of `revision` (the message holding it). A failure is only
    /// logged: a record left behind is removed by the bucket's age limit, and until then it
    /// only makes the stats count one retry too many.
    pub async fn forget_attempts(&self, revision: u64) {
        if let Err(err) = self.attempts_stream.delete_message(revision).await {
            warn(&format!("removing an attempts record failed: {err}"));
        }
    }

    /// How many attempts records `destination` has: its events waiting for a retry.
    pub async fn count_attempts(&self, destination: &str) -> Result<u64, JetStreamError> {
        let filter = format!("$KV.{}.{}.>", self.attempts_name, token(destination));
        let counts = crate::dlq::subject_counts(&self.attempts_stream, &filter).await?;
        Ok(counts.values().filter(|n| **n > 0).count() as u64)
    }

    /// Adds `n` to a total of `destination`, with compare-and-set since other nodes add too. A
    /// failure is only logged: the totals are statistics, not state.
    pub async fn count(&self, destination: &str, counter: Counter, n: u64) {
        if n == 0 {
            return;
        }
        let key = format!("{}.{}", token(destination), counter.key());
        for _ in 0..20 {
            match self.try_count(&key, n).await {
                Ok(true) => return,
                Ok(false) => continue,
                Err(reason) => {
                    warn(&format!("adding to the total {key} failed: {reason}"));
                    return;
                }
            }
        }
        warn(&format!("adding to the total {key} kept conflicting"));
    }

    /// One compare-and-set of a total; `Ok(false)` when another node wrote first.
    async fn try_count(&self, key: &str, n: u64) -> Result<bool, String> {
        let (now, revision) = read_number(&self.counters, key).await?;
        write_number(&self.counters, key, now + n, revision).await
    }

    /// A total of `destination` (0 when nothing was counted yet).
    pub async fn total(&self, destination: &str, counter: Counter) -> Result<u64, JetStreamError> {
        let key = format!("{}.{}", token(destination), counter.key());
        let entry = self
            .counters
            .entry(key)
            .await
            .map_err(|err| JetStreamError::Unavailable {
                action: "stats",
                reason: err.to_string(),
            })?;
        Ok(entry
            .filter(|entry| entry.operation == kv::Operation::Put)
            .and_then(|entry| std::str::from_utf8(&entry.value).ok()?.parse().ok())
            .unwrap_or(0))
    }
}

/// The number kept under `key` and the revision it was read at (0 and `None` when it was never
/// written; 0 when it was deleted or is not a number).
pub(crate) async fn read_number(
    store: &kv::Store,
    key: &str,
) -> Result<(u64, Option<u64>), String> {
    let entry = store.entry(key).await.map_err(|err| err.to_string())?;
    Ok(match entry {
        Some(entry) if entry.operation == kv::Operation::Put => (
            std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .unwrap_or(0),
            Some(entry.revision),
        ),
        Some(entry) => (0, Some(entry.revision)),
        None => (0, None),
    })
}

/// Writes `value` under `key` if the key is still at `revision` (still absent for `None`);
/// `Ok(false)` when another writer came first.
pub(crate) async fn write_number(
    store: &kv::Store,
    key: &str,
    value: u64,
    revision: Option<u64>,
) -> Result<bool, String> {
    let value = Bytes::from(value.to_string());
    match revision {
        Some(revision) => match store.update(key, value, revision).await {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(err) => Err(err.to_string()),
        },
        None => match store.create(key, value).await {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(err) => Err(err.to_string()),
        },
    }
}

/// Logs a failure that costs a stale statistic or a leftover record at most.
pub(crate) fn warn(message: &str) {
    tracing::warn!(message, "JetStream bookkeeping failed.");
}
