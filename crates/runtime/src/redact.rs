//! Hiding secret setting values in built requests, for dry-run output.
//!
//! Every occurrence of a secret (and of its URL-encoded form) in the URL, in header values and in
//! JSON strings (values and keys) is replaced by [`REDACTED`]. Empty secrets are ignored; longer
//! secrets are replaced first, so a secret containing another is hidden whole.

use serde_json::{Map, Value};

use crate::request::Request;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// The non-empty secrets and their URL-encoded forms, longest first.
fn needles(secrets: &[&str]) -> Vec<String> {
    let mut needles: Vec<String> = Vec::with_capacity(secrets.len() * 2);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        needles.push((*secret).to_owned());
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        if encoded != *secret {
            needles.push(encoded);
        }
    }
    needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    needles.dedup();
    needles
}

fn replace_all(text: &str, needles: &[String]) -> String {
    let mut out = text.to_owned();
    for needle in needles {
        if out.contains(needle.as_str()) {
            out = out.replace(needle.as_str(), REDACTED);
        }
    }
    out
}

/// `text` with every secret replaced by [`REDACTED`].
pub fn redact_str(text: &str, secrets: &[&str]) -> String {
    replace_all(text, &needles(secrets))
}

fn redact_value(value: &Value, needles: &[String]) -> Value {
    match value {
        Value::String(s) => Value::String(replace_all(s, needles)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| redact_value(v, needles)).collect())
        }
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, v) in map {
                out.insert(replace_all(key, needles), redact_value(v, needles));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// A copy of `request` with every secret value replaced by [`REDACTED`].
pub fn redact(request: &Request, secrets: &[&str]) -> Request {
    let needles = needles(secrets);
    Request {
        method: request.method,
        url: replace_all(&request.url, &needles),
        headers: request
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), replace_all(value, &needles)))
            .collect(),
        json: request
            .json
            .as_ref()
            .map(|json| redact_value(json, &needles)),
        rate_limit_key: request.rate_limit_key.clone(),
        busy_statuses: request.busy_statuses,
        response_id: request.response_id,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::request::Method;

    fn request() -> Request {
        Request {
            method: Method::Post,
            url: "https://x.io/v1/track?key=s3cr%2Ft+1&k2=s3cr/t 1".to_owned(),
            headers: vec![
                ("authorization".to_owned(), "Token s3cr/t 1".to_owned()),
                ("x-other".to_owned(), "plain".to_owned()),
            ],
            json: Some(
                json!({"a": "s3cr/t 1", "nested": [{"b": "pre-s3cr/t 1-post"}], "s3cr/t 1": 1, "n": 5}),
            ),
            rate_limit_key: Some("track".to_owned()),
            busy_statuses: &[],
            response_id: None,
        }
    }

    #[test]
    fn replaces_every_occurrence() {
        let out = redact(&request(), &["s3cr/t 1", ""]);
        assert_eq!(
            out.url,
            "https://x.io/v1/track?key=[redacted]&k2=[redacted]"
        );
        assert_eq!(out.headers[0].1, "Token [redacted]");
        assert_eq!(out.headers[1].1, "plain");
        assert_eq!(
            out.json,
            Some(
                json!({"a": "[redacted]", "nested": [{"b": "pre-[redacted]-post"}], "[redacted]": 1, "n": 5})
            )
        );
        assert_eq!(out.rate_limit_key.as_deref(), Some("track"));
    }

    #[test]
    fn no_secrets_means_no_change() {
        assert_eq!(redact(&request(), &[]), request());
        assert_eq!(redact(&request(), &[""]), request());
    }

    #[test]
    fn longer_secret_wins() {
        assert_eq!(redact_str("abcdef", &["abc", "abcdef"]), "[redacted]");
    }
}
