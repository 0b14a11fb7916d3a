//! The event queue of `actionkit serve` on NATS JetStream, so that several `serve` nodes share
//! their work through an existing distributed log instead of each keeping its own SQLite file.
//!
//! This crate is the JetStream side of the queue; `serve` does not use it yet (issue "Scale out
//! on NATS JetStream"). What it does, each part tested against a real `nats-server`:
//!
//! - **Streams.** Events go to one stream (`ACTIONKIT_EVENTS` by default) on one subject, with
//!   *interest* retention: a message stays until every destination instance's consumer has
//!   acknowledged it. Dead letters go to a second stream (`ACTIONKIT_DLQ`) with ordinary limits,
//!   one subject per instance.
//! - **Enqueue.** [`JetStreamQueue::enqueue`] returns only once JetStream has stored the event
//!   (the publish acknowledgement). The event's `messageId` is the JetStream message id, so a
//!   client retry within the stream's duplicate window is stored once.
//! - **Delivery.** Each destination instance has one durable pull consumer
//!   ([`JetStreamQueue::add_destination`]); every node's workers pull from it, so JetStream
//!   hands each event to one node at a time. A leased event not acknowledged within the lease
//!   duration (the consumer's ack wait) is handed out again, as a crashed node's rows are.
//!   [`JetStreamQueue::ack`] ends it, [`JetStreamQueue::retry`] sends it back after a delay (a
//!   negative acknowledgement with that delay), [`JetStreamQueue::dead_letter`] copies it to the
//!   dead-letter stream with its reason and then ends it.
//! - **One rate limit for the cluster** ([`rate_limit::ClusterRateLimit`]): slots reserved with
//!   compare-and-set in a key-value bucket, so the destination's limit holds for all nodes
//!   together.
//!
//! Names: an instance name made only of ASCII letters, digits, `-` and `_` is used as it is in
//! consumer names and subjects; any other name is written as `x` and its bytes in hex, so that
//! every name is a valid NATS token and two names never collide.

pub mod rate_limit;

use std::time::{Duration, SystemTime};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;

/// The header holding a dead letter's reason.
pub const REASON_HEADER: &str = "Actionkit-Reason";
/// The header holding the destination instance of a dead letter.
pub const DESTINATION_HEADER: &str = "Actionkit-Destination";
/// The header holding how many times a dead-lettered event was delivered.
pub const ATTEMPTS_HEADER: &str = "Actionkit-Attempts";
/// The header holding the `messageId` of a dead-lettered event.
pub const MESSAGE_ID_HEADER: &str = "Actionkit-Message-Id";

/// Where and how the queue lives in JetStream.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// The NATS servers to connect to (`nats://host:port`); any one is enough.
    pub urls: Vec<String>,
    /// User and password, when the servers ask for them (from the environment, never logged).
    pub credentials: Option<(String, String)>,
    /// The events stream.
    pub stream: String,
    /// The dead-letter stream.
    pub dead_letter_stream: String,
    /// The subject prefix: events go to `<prefix>.events`, dead letters to `<prefix>.dlq.<instance>`.
    pub subject_prefix: String,
    /// Copies of each stream in the cluster (1, 3 or 5).
    pub replicas: usize,
    /// How long JetStream keeps an event at most.
    pub max_age: Duration,
    /// The most bytes the events stream holds; then publishing is refused.
    pub max_bytes: i64,
    /// How long a `messageId` is remembered to store a retried event once.
    pub duplicate_window: Duration,
    /// How long a leased event is a worker's before JetStream hands it out again.
    pub lease_duration: Duration,
    /// How long connecting and each request may take.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for Config {
    /// The credentials are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("urls", &self.urls)
            .field("credentials", &self.credentials.as_ref().map(|_| "***"))
            .field("stream", &self.stream)
            .field("dead_letter_stream", &self.dead_letter_stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("replicas", &self.replicas)
            .field("max_age", &self.max_age)
            .field("max_bytes", &self.max_bytes)
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
            stream: "ACTIONKIT_EVENTS".to_owned(),
            dead_letter_stream: "ACTIONKIT_DLQ".to_owned(),
            subject_prefix: "actionkit".to_owned(),
            replicas: 1,
            max_age: Duration::from_secs(7 * 24 * 60 * 60),
            max_bytes: 1024 * 1024 * 1024,
            duplicate_window: Duration::from_secs(2 * 60),
            lease_duration: Duration::from_secs(60),
            request_timeout: Duration::from_secs(5),
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
    /// A stream or consumer could not be created or found.
    #[error("cannot set up JetStream {what}: {reason}")]
    Setup {
        /// Which stream or consumer.
        what: String,
        /// Why.
        reason: String,
    },
    /// JetStream did not store or hand out an event (unreachable, full, or timed out).
    #[error("JetStream {action} failed: {reason}")]
    Unavailable {
        /// What was being done.
        action: &'static str,
        /// Why.
        reason: String,
    },
}

/// An event handed to a worker, until it is acknowledged, retried or dead-lettered.
pub struct Leased {
    message: jetstream::Message,
    /// The destination instance it was leased for.
    pub destination: String,
    /// The event's `messageId` (its JetStream message id).
    pub message_id: String,
    /// The stored event.
    pub payload: Bytes,
    /// How many times it was handed out before this time.
    pub attempts: u32,
    /// When JetStream stored it.
    pub stored_at: SystemTime,
    /// Its sequence in the events stream.
    pub sequence: u64,
}

impl std::fmt::Debug for Leased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leased")
            .field("destination", &self.destination)
            .field("message_id", &self.message_id)
            .field("attempts", &self.attempts)
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

/// The queue on JetStream: streams, one consumer per destination instance.
#[derive(Clone)]
pub struct JetStreamQueue {
    js: jetstream::Context,
    config: Config,
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

impl JetStreamQueue {
    /// Connects and creates the two streams if they do not exist yet.
    pub async fn connect(config: Config) -> Result<JetStreamQueue, JetStreamError> {
        let urls = config.urls.join(", ");
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(config.request_timeout)
            .request_timeout(Some(config.request_timeout));
        if let Some((user, password)) = &config.credentials {
            options = options.user_and_password(user.clone(), password.clone());
        }
        let client = options
            .connect(config.urls.as_slice())
            .await
            .map_err(|err| JetStreamError::Connect {
                urls: urls.clone(),
                reason: err.to_string(),
            })?;
        let js = jetstream::new(client);
        let events = stream::Config {
            name: config.stream.clone(),
            subjects: vec![format!("{}.events", config.subject_prefix)],
            retention: stream::RetentionPolicy::Interest,
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            max_age: config.max_age,
            max_bytes: config.max_bytes,
            duplicate_window: config.duplicate_window,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        };
        let dead = stream::Config {
            name: config.dead_letter_stream.clone(),
            subjects: vec![format!("{}.dlq.>", config.subject_prefix)],
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            ..Default::default()
        };
        for stream in [events, dead] {
            let what = format!("stream {}", stream.name);
            js.get_or_create_stream(stream)
                .await
                .map_err(|err| JetStreamError::Setup {
                    what,
                    reason: err.to_string(),
                })?;
        }
        Ok(JetStreamQueue { js, config })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn consumer_name(destination: &str) -> String {
        format!("deliver-{}", token(destination))
    }

    /// Creates the durable consumer of `destination` if it does not exist yet; events stored
    /// from then on are delivered to it.
    pub async fn add_destination(&self, destination: &str) -> Result<(), JetStreamError> {
        let name = Self::consumer_name(destination);
        let setup = |err: String| JetStreamError::Setup {
            what: format!("consumer {name}"),
            reason: err,
        };
        let stream = self
            .js
            .get_stream(&self.config.stream)
            .await
            .map_err(|err| setup(err.to_string()))?;
        stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.config.lease_duration,
                    max_ack_pending: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|err| setup(err.to_string()))?;
        Ok(())
    }

    /// Stores one event and returns its sequence once JetStream acknowledged it; the same
    /// `message_id` within the duplicate window is stored once (the first sequence is returned).
    pub async fn enqueue(&self, message_id: &str, payload: Bytes) -> Result<u64, JetStreamError> {
        let unavailable = |reason: String| JetStreamError::Unavailable {
            action: "publish",
            reason,
        };
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload)
            .message_id(message_id);
        let ack = self
            .js
            .send_publish(format!("{}.events", self.config.subject_prefix), publish)
            .await
            .map_err(|err| unavailable(err.to_string()))?
            .await
            .map_err(|err| unavailable(err.to_string()))?;
        Ok(ack.sequence)
    }

    /// Leases up to `max` events of `destination`, waiting at most `wait` for the first.
    pub async fn lease(
        &self,
        destination: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Leased>, JetStreamError> {
        let unavailable = |reason: String| JetStreamError::Unavailable {
            action: "lease",
            reason,
        };
        let consumer: consumer::PullConsumer = self
            .js
            .get_consumer_from_stream(Self::consumer_name(destination), &self.config.stream)
            .await
            .map_err(|err| unavailable(err.to_string()))?;
        let mut batch = consumer
            .fetch()
            .max_messages(max)
            .expires(wait)
            .messages()
            .await
            .map_err(|err| unavailable(err.to_string()))?;
        let mut leased = Vec::new();
        while let Some(message) = batch.next().await {
            let message = message.map_err(|err| unavailable(err.to_string()))?;
            let info = message.info().map_err(|err| unavailable(err.to_string()))?;
            let attempts = u32::try_from(info.delivered.saturating_sub(1)).unwrap_or(u32::MAX);
            let sequence = info.stream_sequence;
            let stored_at = SystemTime::UNIX_EPOCH
                + Duration::from_nanos(
                    u64::try_from(info.published.unix_timestamp_nanos()).unwrap_or(0),
                );
            let message_id = message
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            let payload = message.payload.clone();
            leased.push(Leased {
                message,
                destination: destination.to_owned(),
                message_id,
                payload,
                attempts,
                stored_at,
                sequence,
            });
        }
        Ok(leased)
    }

    /// Ends a delivered (or skipped, or filtered) event for its destination; JetStream confirms.
    pub async fn ack(&self, leased: &Leased) -> Result<(), JetStreamError> {
        leased
            .message
            .double_ack()
            .await
            .map_err(|err| JetStreamError::Unavailable {
                action: "ack",
                reason: err.to_string(),
            })
    }

    /// Hands the event out again after `delay`.
    pub async fn retry(&self, leased: &Leased, delay: Duration) -> Result<(), JetStreamError> {
        leased
            .message
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(|err| JetStreamError::Unavailable {
                action: "retry",
                reason: err.to_string(),
            })
    }

    /// Copies the event to the dead-letter stream with `reason`, then ends it.
    pub async fn dead_letter(&self, leased: &Leased, reason: &str) -> Result<(), JetStreamError> {
        let unavailable = |reason: String| JetStreamError::Unavailable {
            action: "dead-letter",
            reason,
        };
        let mut headers = HeaderMap::new();
        // Header values are one line; a reason with line breaks keeps them as spaces.
        headers.insert(REASON_HEADER, reason.replace(['\r', '\n'], " ").as_str());
        headers.insert(DESTINATION_HEADER, leased.destination.as_str());
        headers.insert(ATTEMPTS_HEADER, (leased.attempts + 1).to_string().as_str());
        headers.insert(MESSAGE_ID_HEADER, leased.message_id.as_str());
        // Dead-lettering the same delivery twice (a retry after a lost ack) stores it once.
        let id = format!("{}:{}", token(&leased.destination), leased.sequence);
        let publish = jetstream::message::PublishMessage::build()
            .payload(leased.payload.clone())
            .headers(headers)
            .message_id(id);
        self.js
            .send_publish(
                format!(
                    "{}.dlq.{}",
                    self.config.subject_prefix,
                    token(&leased.destination)
                ),
                publish,
            )
            .await
            .map_err(|err| unavailable(err.to_string()))?
            .await
            .map_err(|err| unavailable(err.to_string()))?;
        leased
            .message
            .ack_with(AckKind::Term)
            .await
            .map_err(|err| unavailable(err.to_string()))
    }

    /// How many messages a stream holds (`events` or the dead-letter stream).
    pub async fn stored(&self, dead_letters: bool) -> Result<u64, JetStreamError> {
        let name = if dead_letters {
            &self.config.dead_letter_stream
        } else {
            &self.config.stream
        };
        let mut stream =
            self.js
                .get_stream(name)
                .await
                .map_err(|err| JetStreamError::Unavailable {
                    action: "stream info",
                    reason: err.to_string(),
                })?;
        let info = stream
            .info()
            .await
            .map_err(|err| JetStreamError::Unavailable {
                action: "stream info",
                reason: err.to_string(),
            })?;
        Ok(info.state.messages)
    }

    /// The dead letters of `destination`, oldest first: (reason, messageId, attempts, payload).
    pub async fn dead_letters(
        &self,
        destination: &str,
    ) -> Result<Vec<(String, String, u32, Bytes)>, JetStreamError> {
        let unavailable = |reason: String| JetStreamError::Unavailable {
            action: "dead-letter read",
            reason,
        };
        let stream = self
            .js
            .get_stream(&self.config.dead_letter_stream)
            .await
            .map_err(|err| unavailable(err.to_string()))?;
        let subject = format!("{}.dlq.{}", self.config.subject_prefix, token(destination));
        let consumer = stream
            .create_consumer(consumer::pull::Config {
                filter_subject: subject,
                ack_policy: consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(|err| unavailable(err.to_string()))?;
        let mut out = Vec::new();
        loop {
            let mut batch = consumer
                .fetch()
                .max_messages(256)
                .expires(Duration::from_millis(200))
                .messages()
                .await
                .map_err(|err| unavailable(err.to_string()))?;
            let before = out.len();
            while let Some(message) = batch.next().await {
                let message = message.map_err(|err| unavailable(err.to_string()))?;
                let header = |name: &str| {
                    message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(name))
                        .map(|v| v.as_str().to_owned())
                        .unwrap_or_default()
                };
                let attempts = header(ATTEMPTS_HEADER).parse().unwrap_or(0);
                out.push((
                    header(REASON_HEADER),
                    header(MESSAGE_ID_HEADER),
                    attempts,
                    message.payload.clone(),
                ));
            }
            if out.len() == before {
                return Ok(out);
            }
        }
    }
}
