//! HTTP delivery of built requests: outcome classification, retries, rate limits and timeouts.
