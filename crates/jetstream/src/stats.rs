//! Queue statistics from JetStream, in the shape of the SQLite queue's, for `actionkit queue
//! stats` and the metrics.
//!
//! Per instance: `pending` is what its consumers have not handed out yet (events and replays),
//! `retry_scheduled` the events with an attempts record (failed at least once, waiting or being
//! retried), `in_flight` the rest of what was handed out and not acknowledged, `dead_lettered`
//! its messages in the dead-letter stream, and the totals come from the counters bucket. The
//! oldest pending age is that of the first event after the consumer's acknowledgement floor.

use std::time::SystemTime;

use actionkit_queue::{DestinationStats, QueueStats};
use async_nats::jetstream::consumer;

use crate::kv::Counter;
use crate::{JetStreamError, JetStreamQueue, Source};

impl JetStreamQueue {
    /// A snapshot of the queue for the instances `destinations` (sorted by name).
    pub async fn stats(
        &self,
        destinations: &[String],
        now: SystemTime,
    ) -> Result<QueueStats, JetStreamError> {
        let read = |err: String| JetStreamError::Unavailable {
            action: "stats",
            reason: err,
        };
        let mut stats = QueueStats {
            max_events: u64::try_from(self.config().max_events).unwrap_or(u64::MAX),
            max_bytes: u64::try_from(self.config().max_bytes).unwrap_or(u64::MAX),
            ..QueueStats::default()
        };
        // What is stored, live and dead-lettered, as the SQLite queue counts it; only the
        // events stream is bounded by `max_events` and `max_bytes`.
        for name in [
            &self.config().stream,
            &self.config().replay_stream,
            &self.config().dead_letter_stream,
        ] {
            let mut stream = self
                .context()
                .get_stream(name)
                .await
                .map_err(|err| read(err.to_string()))?;
            let info = stream.info().await.map_err(|err| read(err.to_string()))?;
            stats.events_stored += info.state.messages;
            stats.bytes_stored += info.state.bytes;
        }
        let mut fingerprints = self
            .context()
            .get_stream(format!("KV_{}", self.buckets.fingerprints_name))
            .await
            .map_err(|err| read(err.to_string()))?;
        stats.fingerprints_stored = fingerprints
            .info()
            .await
            .map_err(|err| read(err.to_string()))?
            .state
            .messages;
        let mut names: Vec<&String> = destinations.iter().collect();
        names.sort();
        names.dedup();
        for name in names {
            stats
                .destinations
                .push(self.destination_stats(name, now).await?);
        }
        Ok(stats)
    }

    async fn destination_stats(
        &self,
        destination: &str,
        now: SystemTime,
    ) -> Result<DestinationStats, JetStreamError> {
        let read = |err: String| JetStreamError::Unavailable {
            action: "stats",
            reason: err,
        };
        let mut events: consumer::PullConsumer = self.consumer(Source::Events, destination).await?;
        let mut replay: consumer::PullConsumer = self.consumer(Source::Replay, destination).await?;
        let events = events
            .info()
            .await
            .map_err(|err| read(err.to_string()))?
            .clone();
        let replay = replay
            .info()
            .await
            .map_err(|err| read(err.to_string()))?
            .clone();
        let retry_scheduled = self.buckets.count_attempts(destination).await?;
        let handed_out = (events.num_ack_pending + replay.num_ack_pending) as u64;
        let pending = events.num_pending + replay.num_pending;
        let oldest_pending_age_ms = if pending + handed_out == 0 {
            None
        } else {
            self.oldest_after(events.ack_floor.stream_sequence, now)
                .await?
        };
        Ok(DestinationStats {
            destination: destination.to_owned(),
            pending,
            retry_scheduled,
            in_flight: handed_out.saturating_sub(retry_scheduled),
            dead_lettered: self.dead_lettered(destination).await?,
            delivered_total: self.buckets.total(destination, Counter::Delivered).await?,
            dead_lettered_total: self
                .buckets
                .total(destination, Counter::DeadLettered)
                .await?,
            purged_total: self.buckets.total(destination, Counter::Purged).await?,
            oldest_pending_age_ms,
        })
    }

    /// The age in milliseconds of the first event stored after sequence `floor`.
    async fn oldest_after(
        &self,
        floor: u64,
        now: SystemTime,
    ) -> Result<Option<u64>, JetStreamError> {
        let stream = self
            .context()
            .get_stream(&self.config().stream)
            .await
            .map_err(|err| JetStreamError::Unavailable {
                action: "stats",
                reason: err.to_string(),
            })?;
        let subject = format!("{}.events", self.config().subject_prefix);
        match stream
            .direct_get_next_for_subject(subject, Some(floor + 1))
            .await
        {
            Ok(message) => {
                let at = SystemTime::UNIX_EPOCH
                    + std::time::Duration::from_nanos(
                        u64::try_from(message.time.unix_timestamp_nanos()).unwrap_or(0),
                    );
                Ok(Some(
                    u64::try_from(now.duration_since(at).unwrap_or_default().as_millis())
                        .unwrap_or(u64::MAX),
                ))
            }
            // Nothing stored after the floor: only replays wait.
            Err(_) => Ok(None),
        }
    }
}
