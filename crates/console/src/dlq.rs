//! The dead-letter queue in the console: `POST /console/api/dlq/{list,show,replay,purge}`.
//!
//! Each route is one call of [`Deliveries`], which `serve` answers with the store operations
//! of `actionkit dlq`; entries are shown exactly as that command prints them (its reasons are
//! redacted where they are made, and intake stores events without their `writeKey`). The
//! console adds only checks of what it is asked: an instance must be a configured one, a
//! selection must name something, and a replay or purge applies to chosen deliveries or to
//! one instance's, never to every instance's at once.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::ApiError;
use crate::{Console, Deliveries};

/// The most entries one list call returns.
pub const MAX_LIST: u32 = 500;

/// The entries a list call returns when it does not say.
const DEFAULT_LIST: u32 = 100;

/// Which dead letters a replay or purge applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DlqSelection {
    /// These delivery ids (ids not in the dead-letter queue are skipped).
    Ids(Vec<i64>),
    /// Every dead letter of this instance.
    Instance(String),
}

/// The body of `POST /console/api/dlq/list`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    /// Only this instance's dead letters.
    #[serde(default)]
    instance: Option<String>,
    /// Only the dead letters of the event with this `messageId`.
    #[serde(default)]
    message_id: Option<String>,
    /// At most this many (default 100, at most [`MAX_LIST`]).
    #[serde(default)]
    limit: Option<u32>,
    /// Skip this many first.
    #[serde(default)]
    offset: Option<u64>,
}

/// The body of `POST /console/api/dlq/show`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowInput {
    /// The delivery id, as the list gives it.
    id: i64,
}

/// The body of `POST /console/api/dlq/replay` and `…/purge`: exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectInput {
    /// These delivery ids.
    #[serde(default)]
    ids: Option<Vec<i64>>,
    /// Every dead letter of this instance.
    #[serde(default)]
    instance: Option<String>,
}

/// The queue of a console mounted by `serve`, or a `404` saying there is none here.
pub fn deliveries(console: &Console) -> Result<&dyn Deliveries, ApiError> {
    console.deliveries.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no queue here: `actionkit console` runs without the queue; open the console of `actionkit serve`",
        )
    })
}

/// The `503` for a queue that cannot be read or changed now (the reason is in the log).
pub fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the queue cannot be read now; the server's log says why",
    )
}

/// Fails with a `404` naming the configured instances when `name` is not one of them.
fn known_instance(console: &Console, name: &str) -> Result<(), ApiError> {
    if console.instance(name).is_some() {
        return Ok(());
    }
    let names: Vec<&str> = console.instances.iter().map(|i| i.name.as_str()).collect();
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "unknown instance '{name}'; expected one of: {}",
            names.join(", ")
        ),
    ))
}

/// The dead letters asked for, oldest first.
pub async fn list(console: &Console, input: ListInput) -> Result<Value, ApiError> {
    let queue = deliveries(console)?;
    if let Some(name) = &input.instance {
        known_instance(console, name)?;
    }
    let limit = input.limit.unwrap_or(DEFAULT_LIST);
    if limit == 0 || limit > MAX_LIST {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("`limit` must be between 1 and {MAX_LIST}, found {limit}"),
        ));
    }
    let offset = input.offset.unwrap_or(0);
    let message_id = input.message_id.filter(|id| !id.is_empty());
    let entries = queue
        .dlq_list(input.instance, message_id, limit, offset)
        .await
        .map_err(|_| unavailable())?;
    Ok(json!({"entries": entries, "limit": limit, "offset": offset}))
}

/// One dead letter with its event.
pub async fn show(console: &Console, input: ShowInput) -> Result<Value, ApiError> {
    let queue = deliveries(console)?;
    match queue.dlq_show(input.id).await.map_err(|_| unavailable())? {
        Some(entry) => Ok(entry),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("delivery {} is not in the dead-letter queue", input.id),
        )),
    }
}

/// The selection a replay or purge call names, checked.
fn selection(console: &Console, input: SelectInput) -> Result<DlqSelection, ApiError> {
    match (input.ids, input.instance) {
        (Some(ids), None) if !ids.is_empty() => Ok(DlqSelection::Ids(ids)),
        (Some(_), None) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "`ids` is empty; name at least one delivery id",
        )),
        (None, Some(name)) => {
            known_instance(console, &name)?;
            Ok(DlqSelection::Instance(name))
        }
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "choose the dead letters with exactly one of `ids` (delivery ids) and `instance` (every one of an instance)",
        )),
    }
}

/// Returns the selected dead letters to delivery.
pub async fn replay(console: &Console, input: SelectInput) -> Result<Value, ApiError> {
    let queue = deliveries(console)?;
    let chosen = selection(console, input)?;
    let n = queue.dlq_replay(chosen).await.map_err(|_| unavailable())?;
    Ok(json!({ "replayed": n }))
}

/// Deletes the selected dead letters for good.
pub async fn purge(console: &Console, input: SelectInput) -> Result<Value, ApiError> {
    let queue = deliveries(console)?;
    let chosen = selection(console, input)?;
    let n = queue.dlq_purge(chosen).await.map_err(|_| unavailable())?;
    Ok(json!({ "purged": n }))
}
