//! What generated destination handlers and the dispatcher share.
//!
//! `request` is the built HTTP request; `delivery` sends built requests over HTTP with retries,
//! backoff, rate limits and timeouts. The payload-validation and action-contract modules sit beside
//! them.

pub mod delivery;
pub mod request;
