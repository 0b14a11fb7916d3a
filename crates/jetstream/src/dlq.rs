//! The dead-letter stream: listing, inspecting, replaying and purging dead letters, with the
//! same meaning as the SQLite queue's DLQ functions.
//!
//! A dead letter's id ([`DeliveryId`]) is its sequence in the dead-letter stream. A replay
//! publishes the event to the replay subject of its instance, with the attempts reset and the
//! age clock restarted, and only then deletes the dead letter: a failure in between leaves a
//! duplicate, never a loss.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use actionkit_queue::{DeliveryId, DlqEntry, DlqFilter, DlqItem, DlqSelection, EventId};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::kv::Counter;
use crate::{
    AGE_FROM_HEADER, ATTEMPTS_HEADER, DEAD_AT_HEADER, DESTINATION_HEADER, ENQUEUED_AT_HEADER,
    EVENT_HEADER, JetStreamError, JetStreamQueue, LAST_ERROR_HEADER, MESSAGE_ID_HEADER,
    REASON_HEADER, from_ms, header, to_ms, untoken,
};

/// One dead letter as read from the stream.
struct DeadLetter {
    sequence: u64,
    headers: Option<HeaderMap>,
    payload: Bytes,
}

impl DeadLetter {
    fn header(&self, name: &str) -> Option<String> {
        header(self.headers.as_ref(), name)
    }

    fn millis(&self, name: &str) -> SystemTime {
        from_ms(self.header(name).and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    fn destination(&self) -> String {
        self.header(DESTINATION_HEADER).unwrap_or_default()
    }

    fn entry(&self) -> DlqEntry {
        DlqEntry {
            delivery_id: DeliveryId(i64::try_from(self.sequence).unwrap_or(i64::MAX)),
            event_id: EventId(
                self.header(EVENT_HEADER)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            ),
            message_id: self.header(MESSAGE_ID_HEADER).unwrap_or_default(),
            destination: self.destination(),
            attempts: self
                .header(ATTEMPTS_HEADER)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            reason: self.header(REASON_HEADER).unwrap_or_default(),
            last_error: self.header(LAST_ERROR_HEADER),
            enqueued_at: self.millis(ENQUEUED_AT_HEADER),
            dead_at: self.millis(DEAD_AT_HEADER),
            payload_bytes: self.payload.len() as u64,
        }
    }

    fn matches(&self, filter: &DlqFilter) -> bool {
        filter
            .message_id
            .as_ref()
            .is_none_or(|id| self.header(MESSAGE_ID_HEADER).as_deref() == Some(id.as_str()))
            && filter
                .destination
                .as_ref()
                .is_none_or(|name| &self.destination() == name)
    }
}

fn fail(action: &'static str) -> impl Fn(String) -> JetStreamError {
    move |reason| JetStreamError::Unavailable { action, reason }
}

impl JetStreamQueue {
    async fn dlq_stream(&self) -> Result<stream::Stream, JetStreamError> {
        self.context()
            .get_stream(&self.config().dead_letter_stream)
            .await
            .map_err(|err| fail("dead-letter read")(err.to_string()))
    }

    /// Calls `visit` with every dead letter of `destination` (all when `None`), oldest first,
    /// until it returns `false`.
    async fn each_dead_letter(
        &self,
        destination: Option<&str>,
        mut visit: impl FnMut(DeadLetter) -> bool,
    ) -> Result<(), JetStreamError> {
        let read = fail("dead-letter read");
        let stream = self.dlq_stream().await?;
        let filter_subject = destination.map_or_else(String::new, |d| self.dlq_subject(d));
        let reader = stream
            .create_consumer(consumer::pull::Config {
                filter_subject,
                ack_policy: consumer::AckPolicy::None,
                deliver_policy: consumer::DeliverPolicy::All,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(|err| read(err.to_string()))?;
        loop {
            let mut batch = reader
                .fetch()
                .max_messages(512)
                .messages()
                .await
                .map_err(|err| read(err.to_string()))?;
            let mut any = false;
            while let Some(message) = batch.next().await {
                let message: jetstream::Message = message.map_err(|err| read(err.to_string()))?;
                any = true;
                let sequence = message
                    .info()
                    .map_err(|err| read(err.to_string()))?
                    .stream_sequence;
                let letter = DeadLetter {
                    sequence,
                    headers: message.headers.clone(),
                    payload: message.payload.clone(),
                };
                if !visit(letter) {
                    return Ok(());
                }
            }
            if !any {
                return Ok(());
            }
        }
    }

    /// One dead letter by its sequence, `None` when there is no such dead letter.
    async fn dead_letter_at(&self, id: DeliveryId) -> Result<Option<DeadLetter>, JetStreamError> {
        let Ok(sequence) = u64::try_from(id.0) else {
            return Ok(None);
        };
        if sequence == 0 {
            return Ok(None);
        }
        let stream = self.dlq_stream().await?;
        match stream.get_raw_message(sequence).await {
            Ok(message) => Ok(Some(DeadLetter {
                sequence,
                headers: Some(message.headers),
                payload: message.payload,
            })),
            Err(err) if err.kind() == stream::RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(err) => Err(fail("dead-letter read")(err.to_string())),
        }
    }

    /// Lists dead letters matching `filter`, oldest first, skipping `offset` and returning at
    /// most `limit`.
    pub async fn dlq_list(
        &self,
        filter: &DlqFilter,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<DlqEntry>, JetStreamError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut skipped = 0u64;
        self.each_dead_letter(filter.destination.as_deref(), |letter| {
            if letter.matches(filter) {
                if skipped < offset {
                    skipped += 1;
                } else {
                    out.push(letter.entry());
                }
            }
            out.len() < limit as usize
        })
        .await?;
        Ok(out)
    }

    /// Counts dead letters matching `filter`.
    pub async fn dlq_count(&self, filter: &DlqFilter) -> Result<u64, JetStreamError> {
        let mut n = 0;
        self.each_dead_letter(filter.destination.as_deref(), |letter| {
            n += u64::from(letter.matches(filter));
            true
        })
        .await?;
        Ok(n)
    }

    /// One dead letter with its event, or `None` if `id` is not in the DLQ.
    pub async fn dlq_get(&self, id: DeliveryId) -> Result<Option<DlqItem>, JetStreamError> {
        Ok(self.dead_letter_at(id).await?.map(|letter| DlqItem {
            entry: letter.entry(),
            payload: letter.payload.to_vec(),
        }))
    }

    /// The dead letters a selection names.
    async fn selected(&self, selection: &DlqSelection) -> Result<Vec<DeadLetter>, JetStreamError> {
        let mut letters = Vec::new();
        match selection {
            DlqSelection::Ids(ids) => {
                for id in ids {
                    if let Some(letter) = self.dead_letter_at(*id).await? {
                        letters.push(letter);
                    }
                }
            }
            DlqSelection::Destination(name) => {
                self.each_dead_letter(Some(name), |letter| {
                    letters.push(letter);
                    true
                })
                .await?;
            }
            DlqSelection::All => {
                self.each_dead_letter(None, |letter| {
                    letters.push(letter);
                    true
                })
                .await?;
            }
        }
        Ok(letters)
    }

    /// Sends the selected dead letters back to their instances, attempts reset and the age
    /// clock restarted at `now`; returns how many.
    pub async fn dlq_replay(
        &self,
        selection: &DlqSelection,
        now: SystemTime,
    ) -> Result<u64, JetStreamError> {
        let write = fail("dlq replay");
        let stream = self.dlq_stream().await?;
        let mut n = 0;
        for letter in self.selected(selection).await? {
            let destination = letter.destination();
            let mut headers = HeaderMap::new();
            for name in [MESSAGE_ID_HEADER, ENQUEUED_AT_HEADER, EVENT_HEADER] {
                if let Some(value) = letter.header(name) {
                    headers.insert(name, value.as_str());
                }
            }
            headers.insert(DESTINATION_HEADER, destination.as_str());
            headers.insert(AGE_FROM_HEADER, to_ms(now).to_string().as_str());
            let publish = jetstream::message::PublishMessage::build()
                .payload(letter.payload.clone())
                .headers(headers)
                .message_id(format!("replay:{}", letter.sequence));
            self.context()
                .send_publish(self.replay_subject(&destination), publish)
                .await
                .map_err(|err| write(err.to_string()))?
                .await
                .map_err(|err| write(err.to_string()))?;
            if stream
                .delete_message(letter.sequence)
                .await
                .map_err(|err| write(err.to_string()))?
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Deletes the selected dead letters for good, counting them as purged; returns how many.
    pub async fn dlq_purge(&self, selection: &DlqSelection) -> Result<u64, JetStreamError> {
        let write = fail("dlq purge");
        let stream = self.dlq_stream().await?;
        let mut per_destination: BTreeMap<String, u64> = BTreeMap::new();
        match selection {
            DlqSelection::Ids(ids) => {
                for id in ids {
                    if let Some(letter) = self.dead_letter_at(*id).await?
                        && stream
                            .delete_message(letter.sequence)
                            .await
                            .map_err(|err| write(err.to_string()))?
                    {
                        *per_destination.entry(letter.destination()).or_default() += 1;
                    }
                }
            }
            DlqSelection::Destination(name) => {
                let purged = stream
                    .purge()
                    .filter(self.dlq_subject(name))
                    .await
                    .map_err(|err| write(err.to_string()))?;
                per_destination.insert(name.clone(), purged.purged);
            }
            DlqSelection::All => {
                // Counted per instance first, from the subjects, so each total stays right.
                let prefix = format!("{}.dlq.", self.config().subject_prefix);
                let counts = subject_counts(&stream, &format!("{prefix}>")).await?;
                for (subject, count) in counts {
                    if let Some(name) = subject.strip_prefix(&prefix).and_then(untoken) {
                        *per_destination.entry(name).or_default() += count;
                    }
                }
                stream.purge().await.map_err(|err| write(err.to_string()))?;
            }
        }
        let mut n = 0;
        for (destination, purged) in per_destination {
            n += purged;
            self.buckets
                .count(&destination, Counter::Purged, purged)
                .await;
        }
        Ok(n)
    }

    /// How many dead letters `destination` has.
    pub(crate) async fn dead_lettered(&self, destination: &str) -> Result<u64, JetStreamError> {
        let stream = self.dlq_stream().await?;
        let counts = subject_counts(&stream, &self.dlq_subject(destination)).await?;
        Ok(counts.values().sum())
    }
}

/// Messages per subject of `stream` matching `filter`.
pub(crate) async fn subject_counts(
    stream: &stream::Stream,
    filter: &str,
) -> Result<BTreeMap<String, u64>, JetStreamError> {
    use futures_util::TryStreamExt;
    let read = fail("stats");
    let mut subjects = stream
        .info_with_subjects(filter)
        .await
        .map_err(|err| read(err.to_string()))?;
    let mut out = BTreeMap::new();
    while let Some((subject, count)) = subjects
        .try_next()
        .await
        .map_err(|err| read(err.to_string()))?
    {
        out.insert(subject, u64::try_from(count).unwrap_or(0));
    }
    Ok(out)
}
