//! The HTTP request a handler builds and the delivery engine sends.

use std::ops::Range;

use serde_json::Value;

/// HTTP methods a destination request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// `HEAD`.
    Head,
}

impl Method {
    /// The method's name in upper case, as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
        }
    }

    /// The method named by `text` in any case (`post`, `POST`), if it is one of these.
    pub fn parse(text: &str) -> Option<Method> {
        [
            Method::Get,
            Method::Post,
            Method::Put,
            Method::Patch,
            Method::Delete,
            Method::Head,
        ]
        .into_iter()
        .find(|method| method.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// Whether a request with this method carries no body (`GET`, `HEAD`).
    pub fn has_no_body(self) -> bool {
        matches!(self, Method::Get | Method::Head)
    }
}

/// A fully built request: everything the delivery engine needs to send it.
///
/// Equality compares what is sent, not the [`crate::redact::Redactions`] (which only say how to
/// show it).
#[derive(Clone)]
pub struct Request {
    /// The HTTP method.
    pub method: Method,
    /// The absolute URL.
    pub url: String,
    /// Header names in lower case with their values, in the order they are sent.
    pub headers: Vec<(String, String)>,
    /// The JSON body, if any; sent with `content-type: application/json`.
    pub json: Option<Value>,
    /// The rate-limit bucket this request counts against (for example `identify`), if the destination declares one.
    pub rate_limit_key: Option<String>,
    /// Statuses that mean "busy, try again later": the request is sent again after a pause
    /// without spending its retry budget (Userpilot's 409 while a bulk job runs).
    pub busy_statuses: &'static [u16],
    /// The key of the answer's JSON object that names what the destination made of the request
    /// (Userpilot's bulk `job_id`).
    pub response_id: Option<&'static str>,
    /// Which parts of the request derive from secret settings, so that [`crate::redact::redact`]
    /// hides exactly those (empty for a request built by hand).
    pub redactions: crate::redact::Redactions,
    /// The signature to add over the exact body bytes when the request is sent (see
    /// [`crate::sign`]); `None` sends no signature.
    pub signer: Option<crate::sign::Signer>,
}

impl Request {
    /// This request with its signature header computed over the body bytes that are sent
    /// and added to the headers (marked as secret-derived, after the signature's prefix); the
    /// request itself when it is not signed. Dry runs show requests through this, the delivery
    /// engine computes the same header from the bytes it sends.
    pub fn signed(&self) -> Request {
        let mut out = self.clone();
        let Some(signer) = out.signer.take() else {
            return out;
        };
        let body = match &self.json {
            Some(json) => crate::sign::body_bytes(json).unwrap_or_default(),
            None => Vec::new(),
        };
        let (name, value) = signer.header(&body);
        let prefix = signer.def.prefix.len().min(value.len());
        out.headers.retain(|(n, _)| *n != name);
        let mut marks: Vec<(String, Vec<Range<usize>>)> = out
            .redactions
            .headers
            .iter()
            .filter(|(n, _)| *n != name)
            .cloned()
            .collect();
        let signature: Range<usize> = prefix..value.len();
        marks.push((name.clone(), Vec::from([signature])));
        out.redactions.headers = marks.into();
        out.headers.push((name, value));
        out
    }
}

impl PartialEq for Request {
    fn eq(&self, other: &Request) -> bool {
        self.method == other.method
            && self.url == other.url
            && self.headers == other.headers
            && self.json == other.json
            && self.rate_limit_key == other.rate_limit_key
            && self.busy_statuses == other.busy_statuses
            && self.response_id == other.response_id
            && self.signer == other.signer
    }
}

impl std::fmt::Debug for Request {
    /// Header values are left out because they may carry secrets such as API keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("header_names", &header_names)
            .field("has_json", &self.json.is_some())
            .field("rate_limit_key", &self.rate_limit_key)
            .field("busy_statuses", &self.busy_statuses)
            .field("signer", &self.signer)
            .finish()
    }
}
