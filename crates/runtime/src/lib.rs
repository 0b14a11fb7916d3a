//! What generated destination handlers and the dispatcher share.
//!
//! - [`fields`] and [`destination`]: the static model generated code embeds (fields, settings,
//!   actions, presets, requests, hooks) and its one-time compilation ([`destination::CompiledDestination`]).
//! - [`validate`]: Segment's payload pipeline after mapping (empty-value removal, validation with
//!   coercion, Segment's error wording).
//! - [`build`]: turning a validated payload into a [`request::Request`].
//! - [`dispatch`]: a configured destination instance matching events to mappings, without IO.
//! - [`redact`]: hiding what derives from secret settings, found by provenance when requests are
//!   built (dry-run output, reasons).
//! - [`sign`]: HMAC signatures of the exact body bytes sent, in a header.
//! - [`request`]: the built HTTP request; [`delivery`]: sending built requests over HTTP with
//!   retries, backoff, rate limits and timeouts.
//! - [`changes`]: fingerprints and merging for actions whose API merges by id, so that requests
//!   that would change nothing are skipped and requests for one record are sent as one.
//! - [`units`]: the requests of many events as the units actually sent (coalesced, and marked
//!   when they change nothing).
//! - [`batch`]: gathering the entries of batch actions into requests, and settling each entry
//!   (halving a batch refused as a whole).

pub mod batch;
pub mod build;
pub mod changes;
pub mod delivery;
pub mod destination;
pub mod dispatch;
pub mod fields;
pub mod redact;
pub mod request;
pub mod sign;
pub mod units;
pub mod validate;
