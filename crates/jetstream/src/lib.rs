//! The event queue of `actionkit serve` on NATS JetStream, so that several `serve` nodes share
//! their work through an existing distributed log instead of each keeping its own SQLite file
//! (`server.queue.backend: jetstream`).
//!
//! It keeps the promises of the SQLite queue (`actionkit-queue`, whose value types it uses for
//! the DLQ, stats and fingerprints, so that callers treat both alike). Each part is tested
//! against a real `nats-server`, the Debian package (2.9), whose consumers take one filter
//! subject only; the design below works with that.
//!
//! # Streams
//!
//! - **Events** (`ACTIONKIT_EVENTS`, subject `<prefix>.events`), *interest* retention: a message
//!   stays until every destination instance's consumer has acknowledged it, bounded by
//!   `max_events` and `max_bytes` (a publish beyond them is refused: [`JetStreamError::Full`])
//!   and by `max_age`.
//! - **Dead letters** (`ACTIONKIT_DLQ`, subjects `<prefix>.dlq.<instance>`), limits retention:
//!   the event as stored, with headers for its reason, attempts, last error and times.
//! - **Replays** (`ACTIONKIT_REPLAY`, subjects `<prefix>.replay.<instance>`), work-queue
//!   retention: an event taken from the DLQ, or split from its request to be retried, to be
//!   delivered to its instance only. It cannot go back to the events subject, where every
//!   instance's consumer would see it again.
//!
//! # Consumers
//!
//! Each destination instance has two durable pull consumers ([`JetStreamQueue::add_destination`]),
//! one on the events stream and one on its replay subject; every node's workers pull from them,
//! so JetStream hands each event to one node at a time. A worker reports progress on the events
//! it holds ([`JetStreamQueue::keep_alive`]) for up to the lease duration; an event without
//! news for the ack wait (at most ten seconds, [`Config::ack_wait`]) is handed out again, so a
//! node that dies gives its events back within seconds.
//! [`JetStreamQueue::lease`] takes replays first, then events, and waits for an event only
//! when there is none.
//!
//! # Key-value buckets
//!
//! Created by hand with the key-value conventions (the client's own bucket creation sends
//! settings that nats-server 2.9 does not parse), named after the subject prefix:
//!
//! - `<prefix>_attempts`: the failed attempts and last error of each event that failed at least
//!   once, keyed `<instance>.<e|r><sequence>`. JetStream counts deliveries, but a busy
//!   postponement and a crashed node's expired lease are not failed attempts; this record is
//!   what [`Leased::attempts`] reports. Removed when the event is acknowledged or dead-lettered.
//! - `<prefix>_counters`: delivered, dead-lettered and purged totals per instance, added with
//!   compare-and-set, since several nodes add to them.
//! - `<prefix>_fingerprints`: what was delivered to each record (see the `fingerprints` module).
//! - `<prefix>_rate_limits`: the cluster-wide rate limits (see [`rate_limit`]).
//!
//! # Acknowledgement and durability
//!
//! [`JetStreamQueue::enqueue_batch`] stores the events of one intake request as one message,
//! so that they are stored all or none (NATS 2.9 has no atomic batch of messages), and returns
//! only once JetStream acknowledged it, which with `replicas: 3` means a majority of the
//! servers stored it. A lone event's `messageId` is the JetStream message id, a batch's id is
//! derived from all its `messageId`s, so a client's retry within the duplicate window is
//! stored once. Only a request larger than the servers' `max_payload` is split into several
//! messages.
//!
//! Each event of a leased message has its own outcome; the message is acknowledged when the
//! last of them has one. A lone event is retried with a negative acknowledgement; an event of
//! a larger request is split from it into its instance's replay subject, with its attempts and
//! the time it is due (handed out earlier, it is sent back until then without counting).
//! Outcomes are written in an order that can only cause a duplicate, never a loss: a dead
//! letter or a split event is stored before its message is acknowledged, a replay before its
//! dead letter is deleted, an attempts record before the negative acknowledgement.
//!
//! # When NATS cannot be reached
//!
//! Every call fails with [`JetStreamError::Unavailable`] (after the request timeout), and
//! [`JetStreamQueue::is_connected`] turns false while the client reconnects on its own.
//! `serve` answers intake with `503` and `Retry-After`, and its workers pause and try again.
//!
//! # Names
//!
//! An instance name made only of ASCII letters, digits, `-` and `_` is used as it is in
//! consumer names, subjects and keys; any other name is written as `x` and its bytes in hex
//! ([`token`]), so that every name is a valid NATS token and two names never collide.

mod dlq;
mod fingerprints;
mod kv;
pub mod rate_limit;
mod stats;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actionkit_queue::{EventId, RetryOutcome};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::join_all;

/// The header holding a dead letter's reason.
pub const REASON_HEADER: &str = "Actionkit-Reason";
/// The header holding the destination instance of a dead letter or replay.
pub const DESTINATION_HEADER: &str = "Actionkit-Destination";
/// The header holding how many failed attempts a dead-lettered event had, the last included.
pub const ATTEMPTS_HEADER: &str = "Actionkit-Attempts";
/// The header holding the `messageId` of a dead-lettered or replayed event.
pub const MESSAGE_ID_HEADER: &str = "Actionkit-Message-Id";
/// The header holding when the event was first stored, in milliseconds since the epoch.
pub const ENQUEUED_AT_HEADER: &str = "Actionkit-Enqueued-At";
/// The header holding where the maximum-age clock starts, in milliseconds since the epoch.
pub const AGE_FROM_HEADER: &str = "Actionkit-Age-From";
/// The header holding when the event was dead-lettered, in milliseconds since the epoch.
pub const DEAD_AT_HEADER: &str = "Actionkit-Dead-At";
/// The header holding the error of the last retried attempt of a dead letter.
pub const LAST_ERROR_HEADER: &str = "Actionkit-Last-Error";
/// The header holding the event's sequence in the events stream.
pub const EVENT_HEADER: &str = "Actionkit-Event";
/// The header marking a message that holds several events, with their number: its payload is
/// a JSON array of their `messageId`s on the first line, then one event per line (headers are
/// limited to 64 KiB, too little for a large batch's ids).
pub const EVENTS_HEADER: &str = "Actionkit-Events";
/// The header holding an event's failed attempts when it was split from its request's message
/// to be retried alone.
pub const FAILED_ATTEMPTS_HEADER: &str = "Actionkit-Failed-Attempts";
/// The header holding when a split event is due again, in milliseconds since the epoch.
pub const DUE_AT_HEADER: &str = "Actionkit-Due-At";

/// Where and how the queue lives in JetStream.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// The NATS servers to connect to (`nats://host:port`); any one is enough.
    pub urls: Vec<String>,
    /// User and password, when the servers ask for them (from the environment, never logged).
    pub credentials: Option<(String, String)>,
    /// A token, when the servers ask for one instead (never logged).
    pub token: Option<String>,
    /// The events stream.
    pub stream: String,
    /// The dead-letter stream.
    pub dead_letter_stream: String,
    /// The stream replayed dead letters wait in.
    pub replay_stream: String,
    /// The subject prefix: events go to `<prefix>.events`, dead letters to
    /// `<prefix>.dlq.<instance>`, replays to `<prefix>.replay.<instance>`; buckets are named
    /// `<prefix>_<name>`.
    pub subject_prefix: String,
    /// Copies of each stream and bucket in the cluster (1, 3 or 5).
    pub replicas: usize,
    /// How long JetStream keeps an event at most, delivered or not.
    pub max_age: Duration,
    /// The most bytes the events stream holds; then publishing is refused.
    pub max_bytes: i64,
    /// The most events the events stream holds (-1 for no bound); then publishing is refused.
    pub max_events: i64,
    /// How long a `messageId` is remembered to store a retried event once.
    pub duplicate_window: Duration,
    /// How long a leased event is a worker's before JetStream hands it out again.
    pub lease_duration: Duration,
    /// How long connecting and each request may take.
    pub request_timeout: Duration,
    /// How long what was delivered to a record is remembered.
    pub fingerprint_max_age: Duration,
    /// The `Retry-After` hint of [`JetStreamError::Full`].
    pub full_retry_after: Duration,
}

/// The longest ack wait of the consumers, however long the lease (see [`Config::ack_wait`]).
pub const MAX_ACK_WAIT: Duration = Duration::from_secs(10);

impl Config {
    /// How long JetStream waits for news of a leased event before handing it out again: the
    /// lease duration, at most [`MAX_ACK_WAIT`]. A worker holding events reports progress
    /// every third of it ([`JetStreamQueue::keep_alive`]) for up to the whole lease, so a node
    /// that dies gives its events back within ten seconds, not a whole lease.
    pub fn ack_wait(&self) -> Duration {
        self.lease_duration.min(MAX_ACK_WAIT)
    }
}

impl std::fmt::Debug for Config {
    /// The credentials are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("urls", &self.urls)
            .field("credentials", &self.credentials.as_ref().map(|_| "***"))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("stream", &self.stream)
            .field("dead_letter_stream", &self.dead_letter_stream)
            .field("replay_stream", &self.replay_stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("replicas", &self.replicas)
            .field("max_age", &self.max_age)
            .field("max_bytes", &self.max_bytes)
            .field("max_events", &self.max_events)
            .field("duplicate_window", &self.duplicate_window)
            .field("lease_duration", &self.lease_duration)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            urls: vec!["nats://127.0.0.1:4222".to_owned()],
            credentials: None,
            token: None,
            stream: "ACTIONKIT_EVENTS".to_owned(),
            dead_letter_stream: "ACTIONKIT_DLQ".to_owned(),
            replay_stream: "ACTIONKIT_REPLAY".to_owned(),
            subject_prefix: "actionkit".to_owned(),
            replicas: 1,
            max_age: Duration::from_secs(7 * 24 * 60 * 60),
            max_bytes: 1024 * 1024 * 1024,
            max_events: 1_000_000,
            duplicate_window: Duration::from_secs(2 * 60),
            lease_duration: Duration::from_secs(60),
            request_timeout: Duration::from_secs(5),
            fingerprint_max_age: Duration::from_secs(7 * 24 * 60 * 60),
            full_retry_after: Duration::from_secs(10),
        }
    }
}

/// What went wrong talking to JetStream. Messages never hold credentials.
#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    /// No server could be reached.
    #[error("cannot connect to NATS at {urls}: {reason}")]
    Connect {
        /// The servers tried.
        urls: String,
        /// Why.
        reason: String,
    },
    /// A stream, consumer or bucket could not be created or found.
    #[error("cannot set up JetStream {what}: {reason}")]
    Setup {
        /// Which stream, consumer or bucket.
        what: String,
        /// Why.
        reason: String,
    },
    /// The events stream is at its bound (`max_events` or `max_bytes`); nothing more is stored
    /// until deliveries free room.
    #[error("the JetStream queue is full; retry after {retry_after_secs} s")]
    Full {
        /// When to try again, in seconds.
        retry_after_secs: u64,
    },
    /// JetStream did not do what was asked (unreachable, or timed out).
    #[error("JetStream {action} failed: {reason}")]
    Unavailable {
        /// What was being done.
        action: &'static str,
        /// Why.
        reason: String,
    },
}

impl JetStreamError {
    /// Whether trying again may succeed: NATS unreachable or busy (a cluster electing its
    /// leaders answers with timeouts), as opposed to a setting it refuses.
    pub fn is_transient(&self) -> bool {
        match self {
            JetStreamError::Connect { .. } | JetStreamError::Unavailable { .. } => true,
            JetStreamError::Full { .. } => false,
            JetStreamError::Setup { reason, .. } => {
                let reason = reason.to_ascii_lowercase();
                [
                    "timed out",
                    "no responders",
                    "unavailable",
                    "not available",
                    "leader",
                ]
                .iter()
                .any(|sign| reason.contains(sign))
            }
        }
    }
}

/// An [`JetStreamError::Unavailable`] for `action`.
fn unavailable(action: &'static str) -> impl Fn(String) -> JetStreamError {
    move |reason| JetStreamError::Unavailable { action, reason }
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The inverse of [`to_ms`].
pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Which stream a leased event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Events,
    Replay,
}

/// An event handed to a worker, until it is acknowledged, retried or dead-lettered.
pub struct Leased {
    /// The message it came in, shared with the other events of the same intake request.
    group: Arc<Group>,
    /// Its place in that message.
    index: usize,
    source: Source,
    /// The revision of its attempts record, if it has one.
    record: Option<u64>,
    /// The destination instance it was leased for.
    pub destination: String,
    /// The event's `messageId` (its JetStream message id).
    pub message_id: String,
    /// The stored event.
    pub payload: Bytes,
    /// Failed attempts before this one (not JetStream's delivery count: a busy postponement
    /// and an expired lease are not failed attempts).
    pub attempts: u32,
    /// The error of the previous failed attempt, if any.
    pub last_error: Option<String>,
    /// When the event was first stored.
    pub enqueued_at: SystemTime,
    /// Where the maximum-age clock starts: the enqueue time, or the last DLQ replay.
    pub age_from: SystemTime,
    /// When the lease runs out and JetStream hands the event out again.
    pub lease_until: SystemTime,
    /// The event's sequence in the events stream.
    pub event_id: EventId,
    /// Its sequence in the stream it was leased from.
    pub sequence: u64,
    /// Whether it was leased from the replay stream.
    pub replayed: bool,
}

impl std::fmt::Debug for Leased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leased")
            .field("destination", &self.destination)
            .field("message_id", &self.message_id)
            .field("attempts", &self.attempts)
            .field("sequence", &self.sequence)
            .field("replayed", &self.replayed)
            .finish_non_exhaustive()
    }
}

/// One message as leased: the events of one intake request, whose outcomes are written one by
/// one; the message is acknowledged once the last of them has its outcome.
struct Group {
    message: jetstream::Message,
    size: usize,
    /// Events whose outcome is not written yet.
    open: Mutex<usize>,
}

impl Group {
    /// Marks one event's outcome written; `true` for the last one, after which the message is
    /// acknowledged.
    fn close_one(&self) -> bool {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        *open = open.saturating_sub(1);
        *open == 0
    }
}

impl Leased {
    /// The key of its attempts record.
    fn record_key(&self) -> String {
        record_key(&self.destination, self.source, self.sequence)
    }
}

/// The key of the attempts record of message `sequence` of `source` for `destination`.
fn record_key(destination: &str, source: Source, sequence: u64) -> String {
    let kind = match source {
        Source::Events => 'e',
        Source::Replay => 'r',
    };
    format!("{}.{kind}{sequence}", token(destination))
}

/// The queue on JetStream: streams, one pair of consumers per destination instance, buckets.
#[derive(Clone)]
pub struct JetStreamQueue {
    js: jetstream::Context,
    /// A connection of its own for intake's publishes: under a flood of them, the workers'
    /// pulls and acknowledgements on `js` do not wait behind megabytes of events on one socket.
    publisher: jetstream::Context,
    publisher_client: async_nats::Client,
    config: Config,
    buckets: kv::Buckets,
    /// Consumers already looked up, by name.
    consumers: Arc<Mutex<HashMap<String, consumer::PullConsumer>>>,
}

impl std::fmt::Debug for JetStreamQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamQueue")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `name` as a NATS token (see the crate docs).
pub fn token(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain && !name.starts_with('x') {
        return name.to_owned();
    }
    let mut out = String::with_capacity(1 + name.len() * 2);
    out.push('x');
    for byte in name.bytes() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The name a [`token`] stands for, or `None` for text no token looks like.
pub fn untoken(token: &str) -> Option<String> {
    let Some(hex) = token.strip_prefix('x') else {
        return Some(token.to_owned());
    };
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A header's value as text.
pub(crate) fn header(headers: Option<&HeaderMap>, name: &str) -> Option<String> {
    headers
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

/// The most messages one lease pulls. A message holds a whole request (up to Segment's 500 KB
/// batch), so pulling as many messages as a worker wants events could move hundreds of
/// megabytes at once, more than the server buffers for a client that is slow to read (it then
/// cuts the connection as a slow consumer). 64 requests are up to 32 MB, and as many events as
/// the batches hold.
pub const LEASE_MESSAGES: usize = 64;

/// Room left in a message for its headers (the `messageId` list of a request).
const MESSAGE_HEADROOM: usize = 64 * 1024;

/// The message holding the events of (part of) one request: a lone event as it is, under its
/// `messageId`; several, one per line, with their `messageId`s in a header.
fn request_message(mut events: Vec<(String, Bytes)>) -> jetstream::message::PublishMessage {
    if events.len() == 1 {
        let (message_id, payload) = events.remove(0);
        return jetstream::message::PublishMessage::build()
            .payload(payload)
            .message_id(message_id);
    }
    let ids: Vec<&str> = events.iter().map(|(id, _)| id.as_str()).collect();
    let id = format!("batch:{}", fingerprints::digest(&ids.join("\n")));
    let mut headers = HeaderMap::new();
    headers.insert(EVENTS_HEADER, events.len().to_string().as_str());
    let ids = serde_json::Value::from(ids).to_string();
    let size: usize = ids.len() + events.iter().map(|(_, p)| p.len() + 1).sum::<usize>();
    let mut payload = Vec::with_capacity(size);
    payload.extend_from_slice(ids.as_bytes());
    for (_, event) in &events {
        payload.push(b'\n');
        payload.extend_from_slice(event);
    }
    jetstream::message::PublishMessage::build()
        .payload(Bytes::from(payload))
        .headers(headers)
        .message_id(id)
}

/// The events of a request's message with several (`several`): (`messageId`, event) pairs;
/// `None` when the message is not one (a lone event) or cannot be read as one.
fn split_request(payload: &Bytes, several: bool) -> Option<Vec<(String, Bytes)>> {
    if !several {
        return None;
    }
    let mut rest = payload.clone();
    let end = rest.iter().position(|b| *b == b'\n')?;
    let ids: Vec<String> = serde_json::from_slice(&rest.split_to(end)).ok()?;
    let mut parts = Vec::with_capacity(ids.len());
    for id in ids {
        // The line break before each event.
        if rest.is_empty() {
            return None;
        }
        let _ = rest.split_to(1);
        let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        parts.push((id, rest.split_to(end)));
    }
    rest.is_empty().then_some(parts)
}

/// `text` on one line, as header values must be: line breaks become spaces.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// Whether a publish error says the stream's limits refused the message.
fn is_limit_refusal(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.contains("maximum messages")
        || text.contains("maximum bytes")
        || text.contains("resource limits exceeded")
        || text.contains("insufficient resources")
}

impl JetStreamQueue {
    /// Connects and creates the streams and buckets if they do not exist yet.
    pub async fn connect(config: Config) -> Result<JetStreamQueue, JetStreamError> {
        let client = Self::client(&config, "actionkit").await?;
        let publisher_client = Self::client(&config, "actionkit-intake").await?;
        let mut js = jetstream::new(client);
        js.set_timeout(config.request_timeout);
        let mut publisher = jetstream::new(publisher_client.clone());
        publisher.set_timeout(config.request_timeout);
        let prefix = &config.subject_prefix;
        let events = stream::Config {
            name: config.stream.clone(),
            subjects: vec![format!("{prefix}.events")],
            retention: stream::RetentionPolicy::Interest,
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            max_age: config.max_age,
            max_bytes: config.max_bytes,
            max_messages: config.max_events,
            duplicate_window: config.duplicate_window,
            discard: stream::DiscardPolicy::New,
            allow_direct: true,
            ..Default::default()
        };
        let dead = stream::Config {
            name: config.dead_letter_stream.clone(),
            subjects: vec![format!("{prefix}.dlq.>")],
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            duplicate_window: config.duplicate_window,
            allow_direct: true,
            ..Default::default()
        };
        let replay = stream::Config {
            name: config.replay_stream.clone(),
            subjects: vec![format!("{prefix}.replay.>")],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            max_age: config.max_age,
            duplicate_window: config.duplicate_window,
            ..Default::default()
        };
        for stream in [events, dead, replay] {
            let what = format!("stream {}", stream.name);
            js.get_or_create_stream(stream).await.map_err(|err| {
                let mut reason = err.to_string();
                if reason.contains("insufficient storage") {
                    reason.push_str(
                        "; the NATS server cannot reserve the stream's max_bytes \
                             (server.queue.max_bytes): lower it or give JetStream more storage",
                    );
                }
                JetStreamError::Setup { what, reason }
            })?;
        }
        let buckets = kv::Buckets::open(&js, &config).await?;
        Ok(JetStreamQueue {
            js,
            publisher,
            publisher_client,
            config,
            buckets,
            consumers: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// One connection to the servers of `config`, named `name` (as NATS monitoring shows it).
    async fn client(config: &Config, name: &str) -> Result<async_nats::Client, JetStreamError> {
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(config.request_timeout)
            .request_timeout(Some(config.request_timeout));
        if let Some((user, password)) = &config.credentials {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &config.token {
            options = options.token(token.clone());
        }
        options
            .connect(config.urls.as_slice())
            .await
            .map_err(|err| JetStreamError::Connect {
                urls: config.urls.join(", "),
                reason: err.to_string(),
            })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether the connection that stores intake's events is up right now.
    pub fn is_connected(&self) -> bool {
        self.publisher_client.connection_state() == async_nats::connection::State::Connected
    }

    pub(crate) fn context(&self) -> &jetstream::Context {
        &self.js
    }

    fn consumer_name(source: Source, destination: &str) -> String {
        match source {
            Source::Events => format!("deliver-{}", token(destination)),
            Source::Replay => format!("replay-{}", token(destination)),
        }
    }

    pub(crate) fn replay_subject(&self, destination: &str) -> String {
        format!(
            "{}.replay.{}",
            self.config.subject_prefix,
            token(destination)
        )
    }

    pub(crate) fn dlq_subject(&self, destination: &str) -> String {
        format!("{}.dlq.{}", self.config.subject_prefix, token(destination))
    }

    /// Creates the durable consumers of `destination` if they do not exist yet; events stored
    /// from then on are delivered to it.
    pub async fn add_destination(&self, destination: &str) -> Result<(), JetStreamError> {
        for source in [Source::Events, Source::Replay] {
            let name = Self::consumer_name(source, destination);
            let setup = |err: String| JetStreamError::Setup {
                what: format!("consumer {name}"),
                reason: err,
            };
            let (stream_name, filter) = match source {
                Source::Events => (&self.config.stream, String::new()),
                Source::Replay => (&self.config.replay_stream, self.replay_subject(destination)),
            };
            let stream = self
                .js
                .get_stream(stream_name)
                .await
                .map_err(|err| setup(err.to_string()))?;
            let consumer = stream
                .get_or_create_consumer(
                    &name,
                    consumer::pull::Config {
                        durable_name: Some(name.clone()),
                        ack_policy: consumer::AckPolicy::Explicit,
                        ack_wait: self.config.ack_wait(),
                        max_ack_pending: -1,
                        filter_subject: filter,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|err| setup(err.to_string()))?;
            self.consumers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name, consumer);
        }
        Ok(())
    }

    /// The consumer of `destination` on `source`, looked up once.
    async fn consumer(
        &self,
        source: Source,
        destination: &str,
    ) -> Result<consumer::PullConsumer, JetStreamError> {
        let name = Self::consumer_name(source, destination);
        if let Some(found) = self
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&name)
        {
            return Ok(found.clone());
        }
        let stream = match source {
            Source::Events => &self.config.stream,
            Source::Replay => &self.config.replay_stream,
        };
        let consumer: consumer::PullConsumer = self
            .js
            .get_consumer_from_stream(&name, stream)
            .await
            .map_err(|err| JetStreamError::Unavailable {
                action: "lease",
                reason: format!("consumer {name}: {err}"),
            })?;
        self.consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, consumer.clone());
        Ok(consumer)
    }

    /// Stores one event and returns its sequence once JetStream acknowledged it; the same
    /// `message_id` within the duplicate window is stored once (the first sequence is returned).
    pub async fn enqueue(&self, message_id: &str, payload: Bytes) -> Result<u64, JetStreamError> {
        self.enqueue_batch(vec![(message_id.to_owned(), payload)])
            .await
    }

    /// Stores the events of one intake request (`messageId`, payload) as one message, so that
    /// they are stored all or none, and returns its sequence once JetStream acknowledged it.
    /// A lone event's message id is its `messageId`; several events' is derived from all their
    /// `messageId`s, so that a client's retry of the same batch within the duplicate window is
    /// stored once either way. Payloads must not hold a line break (compact JSON does not).
    ///
    /// A request larger than the servers' largest message (`max_payload`, 1 MiB by default) is
    /// stored in several messages, each whole; a failure between them can then store part of
    /// the request (the client's retry stores the rest, and the part once). The sequence of the
    /// first message is returned.
    pub async fn enqueue_batch(&self, events: Vec<(String, Bytes)>) -> Result<u64, JetStreamError> {
        if events.is_empty() {
            return Err(JetStreamError::Unavailable {
                action: "publish",
                reason: "no events to store".to_owned(),
            });
        }
        let limit = self
            .publisher_client
            .server_info()
            .max_payload
            .saturating_sub(MESSAGE_HEADROOM)
            .max(MESSAGE_HEADROOM);
        let mut chunks: Vec<Vec<(String, Bytes)>> = Vec::new();
        let mut size = 0;
        for event in events {
            let grows = event.1.len() + event.0.len() + 4;
            match chunks.last_mut() {
                Some(chunk) if size + grows <= limit => {
                    size += grows;
                    chunk.push(event);
                }
                _ => {
                    size = grows;
                    chunks.push(vec![event]);
                }
            }
        }
        let subject = format!("{}.events", self.config.subject_prefix);
        let mut acks = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let publish = request_message(chunk);
            let ack = self
                .publisher
                .send_publish(subject.clone(), publish)
                .await
                .map_err(|err| self.publish_error(err.to_string()))?;
            acks.push(ack);
        }
        let mut first = None;
        for ack in acks {
            let ack = ack
                .await
                .map_err(|err| self.publish_error(err.to_string()))?;
            first.get_or_insert(ack.sequence);
        }
        first.ok_or_else(|| JetStreamError::Unavailable {
            action: "publish",
            reason: "no acknowledgement".to_owned(),
        })
    }

    fn publish_error(&self, text: String) -> JetStreamError {
        if is_limit_refusal(&text) {
            JetStreamError::Full {
                retry_after_secs: self.config.full_retry_after.as_secs().max(1),
            }
        } else {
            JetStreamError::Unavailable {
                action: "publish",
                reason: text,
            }
        }
    }

    /// Leases the events of up to `max` messages of `destination` (at most
    /// [`LEASE_MESSAGES`]; a message holds one request's events): replays first, then events;
    /// when there is none, waits at most `wait` for one.
    pub async fn lease(
        &self,
        destination: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Leased>, JetStreamError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let max = max.min(LEASE_MESSAGES);
        let answer = self.config.request_timeout;
        let mut messages = Vec::new();
        let replay = self.consumer(Source::Replay, destination).await?;
        take(&replay, Source::Replay, max, None, answer, &mut messages).await?;
        let events = self.consumer(Source::Events, destination).await?;
        if messages.len() < max {
            take(
                &events,
                Source::Events,
                max - messages.len(),
                None,
                answer,
                &mut messages,
            )
            .await?;
        }
        if messages.is_empty() && !wait.is_zero() {
            // Wait for one event only, so that the pull request ends with it; then take what
            // else is there without waiting.
            take(
                &events,
                Source::Events,
                1,
                Some(wait),
                answer,
                &mut messages,
            )
            .await?;
            if !messages.is_empty() && max > 1 {
                take(
                    &events,
                    Source::Events,
                    max - 1,
                    None,
                    answer,
                    &mut messages,
                )
                .await?;
            }
        }
        let now = SystemTime::now();
        let lease_until = now + self.config.lease_duration;
        let leased =
            join_all(messages.into_iter().map(|(source, message)| {
                self.leased(destination, source, message, now, lease_until)
            }))
            .await;
        let mut out = Vec::new();
        for group in leased {
            out.extend(group?);
        }
        Ok(out)
    }

    /// The events a pulled message carries, with their attempts record when it was handed out
    /// before; none for a split event not due yet, which is sent back to wait.
    async fn leased(
        &self,
        destination: &str,
        source: Source,
        message: jetstream::Message,
        now: SystemTime,
        lease_until: SystemTime,
    ) -> Result<Vec<Leased>, JetStreamError> {
        let info = message
            .info()
            .map_err(|err| unavailable("lease")(err.to_string()))?;
        let delivered = info.delivered;
        let sequence = info.stream_sequence;
        let published = SystemTime::UNIX_EPOCH
            + Duration::from_nanos(
                u64::try_from(info.published.unix_timestamp_nanos()).unwrap_or(0),
            );
        let headers = message.headers.clone();
        let headers = headers.as_ref();
        let millis = |name: &str| {
            header(headers, name)
                .and_then(|v| v.parse::<u64>().ok())
                .map(from_ms)
        };
        if let Some(due) = millis(DUE_AT_HEADER)
            && let Ok(wait) = due.duration_since(now)
            && !wait.is_zero()
        {
            // A split event waiting for its retry: back until then, nothing counted.
            message
                .ack_with(AckKind::Nak(Some(wait)))
                .await
                .map_err(|err| unavailable("lease")(err.to_string()))?;
            return Ok(Vec::new());
        }
        let (enqueued_at, age_from, event_id) = match source {
            Source::Events => (published, published, sequence),
            Source::Replay => (
                millis(ENQUEUED_AT_HEADER).unwrap_or(published),
                millis(AGE_FROM_HEADER).unwrap_or(published),
                header(headers, EVENT_HEADER)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            ),
        };
        // The events and their ids: several for a request's message, else one.
        let parts = split_request(&message.payload, header(headers, EVENTS_HEADER).is_some())
            .unwrap_or_else(|| {
                // A lone event, or a message that cannot be read as a request's events:
                // handed out as one event (the worker dead-letters what it cannot read)
                // rather than failing every lease of the instance on it.
                let id = match source {
                    Source::Events => header(headers, async_nats::header::NATS_MESSAGE_ID.as_ref()),
                    Source::Replay => header(headers, MESSAGE_ID_HEADER),
                };
                vec![(id.unwrap_or_default(), message.payload.clone())]
            });
        let (mut attempts, mut last_error) = (
            header(headers, FAILED_ATTEMPTS_HEADER)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            header(headers, LAST_ERROR_HEADER),
        );
        let group = Arc::new(Group {
            message,
            size: parts.len(),
            open: Mutex::new(parts.len()),
        });
        let mut record = None;
        if delivered > 1 && group.size == 1 {
            let key = record_key(destination, source, sequence);
            if let Some((revision, found)) = self.buckets.attempts(&key).await? {
                record = Some(revision);
                attempts = found.attempts;
                last_error = found.last_error;
            }
        }
        Ok(parts
            .into_iter()
            .enumerate()
            .map(|(index, (message_id, payload))| Leased {
                group: Arc::clone(&group),
                index,
                source,
                record,
                destination: destination.to_owned(),
                message_id,
                payload,
                attempts,
                last_error: last_error.clone(),
                enqueued_at,
                age_from,
                lease_until,
                event_id: EventId(i64::try_from(event_id).unwrap_or(i64::MAX)),
                sequence,
                replayed: source == Source::Replay,
            })
            .collect())
    }

    /// Ends a delivered (or skipped, or filtered) event for its destination; JetStream confirms.
    pub async fn ack(&self, leased: &Leased) -> Result<(), JetStreamError> {
        self.ack_many(&[leased]).await.map(|_| ())
    }

    /// Ends every event of `leased` (all confirmed by JetStream, concurrently), removes their
    /// attempts records and counts them as delivered; returns how many were acknowledged.
    /// The first failure is returned after every acknowledgement was tried.
    pub async fn ack_many(&self, leased: &[&Leased]) -> Result<u64, JetStreamError> {
        let results = join_all(leased.iter().map(|one| async move {
            self.close(one, "ack").await?;
            Ok::<&str, JetStreamError>(one.destination.as_str())
        }))
        .await;
        let mut per_destination: HashMap<&str, u64> = HashMap::new();
        let mut first_error = None;
        for result in results {
            match result {
                Ok(destination) => *per_destination.entry(destination).or_default() += 1,
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        let mut acked = 0;
        for (destination, n) in per_destination {
            acked += n;
            self.buckets
                .count(destination, kv::Counter::Delivered, n)
                .await;
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(acked),
        }
    }

    /// Writes that `leased` has its outcome: the last event of a message acknowledges it (and
    /// removes its attempts record), the others only count down.
    async fn close(&self, leased: &Leased, action: &'static str) -> Result<(), JetStreamError> {
        if !leased.group.close_one() {
            return Ok(());
        }
        leased
            .group
            .message
            .double_ack()
            .await
            .map_err(|err| unavailable(action)(err.to_string()))?;
        if let Some(revision) = leased.record {
            self.buckets.forget_attempts(revision).await;
        }
        Ok(())
    }

    /// Hands the event out again after `delay`, keeping `last_error` and counting a failed
    /// attempt unless `count_attempt` is false (the destination was busy).
    ///
    /// A lone event is sent back with a negative acknowledgement, its attempts kept in the
    /// attempts bucket. An event that came with others in one request's message is split
    /// from it: stored alone in its instance's replay subject with its attempts and due time
    /// (handed out before that time, it is sent back without counting), and the message is
    /// acknowledged once all its events have their outcome.
    pub async fn retry(
        &self,
        leased: &Leased,
        delay: Duration,
        last_error: &str,
        count_attempt: bool,
    ) -> Result<(), JetStreamError> {
        let attempts = leased.attempts + u32::from(count_attempt);
        if leased.group.size > 1 {
            let due = SystemTime::now() + delay;
            let mut headers = self.event_headers(leased);
            headers.insert(FAILED_ATTEMPTS_HEADER, attempts.to_string().as_str());
            headers.insert(LAST_ERROR_HEADER, one_line(last_error).as_str());
            headers.insert(DUE_AT_HEADER, to_ms(due).to_string().as_str());
            let id = format!(
                "split:{}:{}:{}:{attempts}",
                token(&leased.destination),
                leased.sequence,
                leased.index
            );
            self.publish(
                self.replay_subject(&leased.destination),
                leased.payload.clone(),
                headers,
                id,
                "retry",
            )
            .await?;
            return self.close(leased, "retry").await;
        }
        let record = kv::Attempts {
            attempts,
            last_error: Some(last_error.to_owned()),
        };
        self.buckets
            .remember_attempts(&leased.record_key(), &record)
            .await?;
        leased
            .group
            .message
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(|err| unavailable("retry")(err.to_string()))
    }

    /// The headers that carry an event's identity and clocks into the replay or dead-letter
    /// stream.
    fn event_headers(&self, leased: &Leased) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(DESTINATION_HEADER, leased.destination.as_str());
        headers.insert(MESSAGE_ID_HEADER, leased.message_id.as_str());
        headers.insert(
            ENQUEUED_AT_HEADER,
            to_ms(leased.enqueued_at).to_string().as_str(),
        );
        headers.insert(AGE_FROM_HEADER, to_ms(leased.age_from).to_string().as_str());
        headers.insert(EVENT_HEADER, leased.event_id.0.to_string().as_str());
        headers
    }

    /// Publishes one message and waits for JetStream's acknowledgement.
    async fn publish(
        &self,
        subject: String,
        payload: Bytes,
        headers: HeaderMap,
        id: String,
        action: &'static str,
    ) -> Result<(), JetStreamError> {
        let fail = unavailable(action);
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload)
            .headers(headers)
            .message_id(id);
        self.js
            .send_publish(subject, publish)
            .await
            .map_err(|err| fail(err.to_string()))?
            .await
            .map_err(|err| fail(err.to_string()))?;
        Ok(())
    }

    /// Records a failed attempt under the maximum-age policy, as the SQLite queue's
    /// `schedule_retry` (`count_attempt`) and `schedule_postpone` do: if `when` is no later than
    /// `age_from + max_age` the event is retried then; otherwise it is dead-lettered with the
    /// reason `max age exceeded: <last_error>`.
    pub async fn schedule(
        &self,
        leased: &Leased,
        when: SystemTime,
        last_error: &str,
        now: SystemTime,
        count_attempt: bool,
        max_age: Duration,
    ) -> Result<RetryOutcome, JetStreamError> {
        let deadline = leased
            .age_from
            .checked_add(max_age)
            .unwrap_or(leased.age_from);
        if when <= deadline {
            let delay = when.duration_since(now).unwrap_or_default();
            self.retry(leased, delay, last_error, count_attempt).await?;
            Ok(RetryOutcome::RetryScheduled)
        } else {
            let reason = format!("max age exceeded: {last_error}");
            let counted = Leased::attempts_after(leased, count_attempt);
            self.dead_letter_counted(leased, &reason, counted, now)
                .await?;
            Ok(RetryOutcome::DeadLettered)
        }
    }

    /// Copies the event to the dead-letter stream with `reason`, then ends it.
    pub async fn dead_letter(&self, leased: &Leased, reason: &str) -> Result<(), JetStreamError> {
        self.dead_letter_counted(leased, reason, leased.attempts + 1, SystemTime::now())
            .await
    }

    async fn dead_letter_counted(
        &self,
        leased: &Leased,
        reason: &str,
        attempts: u32,
        now: SystemTime,
    ) -> Result<(), JetStreamError> {
        let mut headers = self.event_headers(leased);
        headers.insert(REASON_HEADER, one_line(reason).as_str());
        headers.insert(ATTEMPTS_HEADER, attempts.to_string().as_str());
        headers.insert(DEAD_AT_HEADER, to_ms(now).to_string().as_str());
        if let Some(error) = &leased.last_error {
            headers.insert(LAST_ERROR_HEADER, one_line(error).as_str());
        }
        // Dead-lettering the same delivery twice (a retry after a lost ack) stores it once.
        let kind = match leased.source {
            Source::Events => "e",
            Source::Replay => "r",
        };
        let id = format!(
            "{}:{kind}{}:{}",
            token(&leased.destination),
            leased.sequence,
            leased.index
        );
        self.publish(
            self.dlq_subject(&leased.destination),
            leased.payload.clone(),
            headers,
            id,
            "dead-letter",
        )
        .await?;
        self.close(leased, "dead-letter").await?;
        self.buckets
            .count(&leased.destination, kv::Counter::DeadLettered, 1)
            .await;
        Ok(())
    }

    /// Reports progress on `leased` every third of the ack wait until the returned guard is
    /// dropped, so that JetStream does not hand them out again while they are being delivered
    /// (the worker cuts a delivery off before its lease runs out; see [`Config::ack_wait`]).
    pub fn keep_alive(&self, leased: &[&Leased]) -> KeepAlive {
        // One report per message, however many of its events are leased.
        let mut groups: Vec<Arc<Group>> = Vec::new();
        for one in leased {
            if !groups.iter().any(|group| Arc::ptr_eq(group, &one.group)) {
                groups.push(Arc::clone(&one.group));
            }
        }
        let messages: Vec<jetstream::Message> =
            groups.iter().map(|group| group.message.clone()).collect();
        let every = (self.config.ack_wait() / 3).max(Duration::from_millis(100));
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                // A lost progress report costs at most a duplicate delivery.
                let _ = join_all(
                    messages
                        .iter()
                        .map(|message| message.ack_with(AckKind::Progress)),
                )
                .await;
            }
        });
        KeepAlive { task }
    }

    /// How many messages a stream holds (`events` or the dead-letter stream).
    pub async fn stored(&self, dead_letters: bool) -> Result<u64, JetStreamError> {
        let name = if dead_letters {
            &self.config.dead_letter_stream
        } else {
            &self.config.stream
        };
        let fail = unavailable("stream info");
        let mut stream = self
            .js
            .get_stream(name)
            .await
            .map_err(|err| fail(err.to_string()))?;
        let info = stream.info().await.map_err(|err| fail(err.to_string()))?;
        Ok(info.state.messages)
    }
}

/// Reports progress on leased events until dropped (see [`JetStreamQueue::keep_alive`]).
#[derive(Debug)]
pub struct KeepAlive {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Leased {
    /// The failed attempts to record when this lease ends in the DLQ.
    fn attempts_after(leased: &Leased, count_attempt: bool) -> u32 {
        leased.attempts + u32::from(count_attempt)
    }
}

/// Pulls up to `max` messages from `consumer` into `out`: without waiting when `wait` is
/// `None`, else waiting at most `wait` for them.
///
/// The pull has its own deadline, `wait` plus `answer_within`: a pull request is a message
/// whose answers come later on an inbox, and one lost with the node that took it (killed
/// between the request and its answers) is never answered. The client's own timer only
/// covers pulls with an expiry, and a pull without waiting has none, so without this
/// deadline such a lease would wait forever. Messages that came before the deadline are
/// kept; a pull that got nothing by then is an error, so that the caller backs off and
/// leases again (the lost pull's messages, if any were handed out, come back after the
/// consumer's acknowledgement wait).
async fn take(
    consumer: &consumer::PullConsumer,
    source: Source,
    max: usize,
    wait: Option<Duration>,
    answer_within: Duration,
    out: &mut Vec<(Source, jetstream::Message)>,
) -> Result<(), JetStreamError> {
    let fail = unavailable("lease");
    let deadline = wait.unwrap_or_default() + answer_within;
    let before = out.len();
    let pull = async {
        let mut batch = match wait {
            None => consumer
                .fetch()
                .max_messages(max)
                .messages()
                .await
                .map_err(|err| fail(err.to_string()))?,
            Some(wait) => consumer
                .batch()
                .max_messages(max)
                .expires(wait)
                .messages()
                .await
                .map_err(|err| fail(err.to_string()))?,
        };
        while let Some(message) = batch.next().await {
            let message = message.map_err(|err| fail(err.to_string()))?;
            out.push((source, message));
        }
        Ok(())
    };
    match tokio::time::timeout(deadline, pull).await {
        Ok(result) => result,
        Err(_) if out.len() > before => Ok(()),
        Err(_) => Err(fail(format!(
            "a pull from the {} stream got no answer within {deadline:?}",
            match source {
                Source::Events => "events",
                Source::Replay => "replay",
            }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_message_splits_into_its_events_or_not_at_all() {
        let payload = Bytes::from_static(b"[\"m-1\",\"m-2\"]\n{\"a\":1}\n{\"b\":2}");
        let parts = split_request(&payload, true).expect("two events");
        assert_eq!(
            parts,
            vec![
                ("m-1".to_owned(), Bytes::from_static(b"{\"a\":1}")),
                ("m-2".to_owned(), Bytes::from_static(b"{\"b\":2}")),
            ]
        );
        assert_eq!(split_request(&payload, false), None, "a lone event");
        for bad in [
            &b"not json\n{}"[..],
            b"[\"m-1\",\"m-2\"]\n{}",
            b"[\"m-1\"]\n{}\n{}",
            b"[\"m-1\"]",
        ] {
            assert_eq!(
                split_request(&Bytes::copy_from_slice(bad), true),
                None,
                "{bad:?}"
            );
        }
    }
}
