//! The Event Tester's real send (`POST /console/api/send`): what the tester shows for one
//! instance, sent to the destination for real, with each answer.
//!
//! The event goes through the instance's mappings as in the tester ([`Instance::dispatch`],
//! the dry run of `send --dry-run`); every request a matching mapping builds is sent once with
//! the instance's delivery client ([`DeliveryClient::send_attempt`]: behind its rate limit and
//! concurrency bound, without retries, so that the answer shown is the destination's own), and
//! a batch action's entry is sent as a batch of one. Nothing goes through the queue: the
//! event is not stored, not retried, and not remembered for skipping unchanged requests.
//! Requests are shown redacted by provenance and answers with the request's secrets scrubbed.

use actionkit_runtime::delivery::Outcome as Answer;
use actionkit_runtime::dispatch::Outcome;
use actionkit_runtime::request::Request;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Console;
use crate::api::ApiError;
use crate::tester::{find_instance, read_event, request_json};

/// The body of `POST /console/api/send`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendInput {
    /// The instance whose matching mappings send.
    instance: String,
    /// The event as JSON.
    #[serde(default)]
    event: Option<Value>,
    /// The event as typed.
    #[serde(default)]
    event_text: Option<String>,
}

/// The answer to one request, as shown.
fn answer_json(answer: &Answer) -> Value {
    match answer {
        Answer::Delivered { status, body } => json!({
            "outcome": "delivered",
            "status": status,
            "body": body,
        }),
        Answer::Retry {
            status,
            reason,
            after,
        } => json!({
            "outcome": "retryable",
            "status": status,
            "reason": reason,
            "retry_after_secs": after.map(|d| d.as_secs()),
        }),
        Answer::Busy {
            status,
            reason,
            after,
        } => json!({
            "outcome": "busy",
            "status": status,
            "reason": reason,
            "retry_after_secs": after.map(|d| d.as_secs()),
        }),
        Answer::Failed { status, reason } => json!({
            "outcome": "failed",
            "status": status,
            "reason": reason,
        }),
    }
}

/// Sends what `instance`'s matching mappings make of the event, and shows each answer.
pub async fn send(console: &Console, input: SendInput) -> Result<Value, ApiError> {
    let entry = find_instance(console, &input.instance)?;
    let event = match read_event(input.event, input.event_text)? {
        Ok(event) => event,
        Err(problem) => return Ok(json!({"errors": [problem.to_json()], "sends": []})),
    };
    let instance = &entry.instance;
    // Everything is built before anything is sent, so that a request that cannot be built
    // stops nothing else and the order of the answers is the mappings' order.
    let mut planned: Vec<(Value, Option<Request>)> = Vec::new();
    for outcome in instance.dispatch(&event) {
        let head = json!({"name": outcome.mapping, "action": outcome.action_key});
        let (shown, request) = match outcome.outcome {
            Outcome::Request(request) => (
                json!({"kind": "request", "request": request_json(instance, &request)}),
                Some(request),
            ),
            Outcome::Batch(item) => {
                match instance.batch_request(item.action_index, vec![item.entry.clone()]) {
                    Ok(request) => (
                        json!({"kind": "batch", "request": request_json(instance, &request)}),
                        Some(request),
                    ),
                    Err(err) => (
                        json!({"kind": "invalid", "error": {"name": "RequestBuildError", "message": err.to_string()}}),
                        None,
                    ),
                }
            }
            Outcome::Invalid { name, message, .. } => (
                json!({"kind": "invalid", "error": {"name": name, "message": message}}),
                None,
            ),
            Outcome::Skipped { .. } => continue,
        };
        let mut row = head;
        if let (Value::Object(row), Value::Object(shown)) = (&mut row, shown) {
            row.extend(shown);
        }
        planned.push((row, request));
    }
    let mut sends = Vec::with_capacity(planned.len());
    let mut statuses: Vec<String> = Vec::new();
    for (mut row, request) in planned {
        if let Some(request) = request {
            let answer = entry.client.send_attempt(&request).await;
            statuses.push(
                answer
                    .status()
                    .map_or_else(|| "no answer".to_owned(), |s| s.to_string()),
            );
            if let Value::Object(map) = &mut row {
                map.insert("answer".to_owned(), answer_json(&answer));
            }
        }
        sends.push(row);
    }
    tracing::info!(
        instance = %entry.name,
        requests = statuses.len(),
        statuses = %statuses.join(", "),
        "A real send from the console's Event Tester."
    );
    Ok(json!({"errors": [], "instance": entry.name, "sends": sends}))
}
