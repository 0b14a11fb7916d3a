//! What generated destination handlers and the dispatcher share.
//!
//! Modules: `delivery` sends built requests over HTTP with retries, backoff, rate limits and
//! timeouts. The payload-validation, request and action-contract modules are added beside it.

pub mod delivery;
