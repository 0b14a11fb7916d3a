//! Building HTTP requests from validated payloads.
//!
//! Headers and the base URL depend only on settings, so [`RequestDefaults::resolve`] computes them
//! once per destination instance. Per event, [`action_request`] runs the action's hook (its output
//! lands at `$.computed`), evaluates the body mapping over
//! `{"payload": …, "settings": …, "computed": …}` and joins the base URL and the path.
//!
//! Most body mappings only copy values (`{"user_id": {"@path": "$.payload.userId"}, …}`). For
//! those, a [`CopyPlan`] computed once moves the values out of the payload and the hook's output
//! instead of building the context object and cloning out of it; the result is the same JSON,
//! member for member and in the same order.
//!
//! Every built [`Request`] carries its [`Redactions`]: which parts derive from secret settings.
//! They are found by evaluating each mapping that can read settings a second time over the
//! instance's [`Probe`] settings (every secret replaced by a sentinel) and comparing; see
//! [`crate::redact`] for the rule. Headers and the base URL are probed once per instance, bodies
//! only when their mapping may read settings. Hooks see the settings with every secret blanked.
//!
//! An `authorization` header (or any header) whose mapping resolves to an object with a string
//! `username` and an optional string `password` is sent as HTTP Basic authentication,
//! `Basic base64(username:password)`, the shape Segment's `extendRequest` returns for it.
//!
//! Deliberate deviations from Segment:
//! - The base URL and the path are joined with exactly one slash (`https://eu.example.io` +
//!   `v1/identify` gives `https://eu.example.io/v1/identify`), where Segment concatenates strings.
//! - The base URL must resolve to an absolute http(s) URL, otherwise creating the instance fails;
//!   Segment silently falls back to a default host.
//! - No `user-agent` header is added here; the delivery engine owns transport headers.

use std::ops::Range;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use actionkit_mapping::Mapping;

use crate::destination::{
    CompiledAction, CompiledDestination, CompiledRequest, CompiledValue, HookInput,
};
use crate::redact::{self, JsonMark, Probe, Redactions};
use crate::request::{Method, Request};
use crate::sign::{SignDef, Signer};

/// Why a request could not be built. Messages never contain secret setting values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The base-URL mapping failed or did not produce a string.
    #[error("request_defaults.base_url {0}")]
    BaseUrl(String),
    /// The base URL is not an absolute http(s) URL.
    #[error(
        "request_defaults.base_url resolved to {value:?}, which is not an absolute http(s) url: {reason}"
    )]
    InvalidBaseUrl {
        /// The resolved value, with secrets redacted.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A header mapping failed or produced something that cannot be a header value.
    #[error("request_defaults header '{name}' {message}")]
    Header {
        /// The header name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// The body mapping failed at runtime.
    #[error("{what} json mapping failed: {message}")]
    Json {
        /// Which request (`action 'identifyUser' request`).
        what: String,
        /// The mapping-kit error.
        message: String,
    },
    /// The action has no single-payload request (it only batches).
    #[error("action '{action}' has no single request; its payloads are sent in batches")]
    NoSingleForm {
        /// The action key.
        action: String,
    },
    /// The action has no batch form.
    #[error("action '{action}' has no batch form")]
    NoBatchForm {
        /// The action key.
        action: String,
    },
    /// A request's URL could not be built or is not an absolute http(s) URL.
    #[error("{what} url {message}")]
    Url {
        /// Which request (`action 'send' request`).
        what: String,
        /// What went wrong, naming the fields or settings the URL reads.
        message: String,
    },
    /// A request's method mapping failed or did not name a supported method.
    #[error("{what} method {message}")]
    Method {
        /// Which request.
        what: String,
        /// What went wrong, naming the fields the method reads.
        message: String,
    },
    /// A header of a request (not of the request defaults) could not be built.
    #[error("{what} header '{name}' {message}")]
    RequestHeader {
        /// Which request.
        what: String,
        /// The header name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// The headers a request takes from data (`headers_from`) could not be built.
    #[error("{what} headers_from {message}")]
    RequestHeaders {
        /// Which request.
        what: String,
        /// What went wrong, naming the header.
        message: String,
    },
    /// A signature's secret mapping failed or did not resolve to a string.
    #[error("{what} sign.secret {message}")]
    Sign {
        /// Which request, or `request_defaults`.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// The action's hook failed.
    #[error("hook of action '{action}' failed: {message}")]
    Hook {
        /// The action key.
        action: String,
        /// The hook's message.
        message: String,
    },
}

/// The base URL, headers and signature of one destination instance, resolved from its settings,
/// with what its requests resolve once (URLs that read only settings, their own signatures).
#[derive(Clone, PartialEq)]
pub struct RequestDefaults {
    base_url: Option<String>,
    headers: Vec<(String, String)>,
    /// The default signer; `None` when nothing is signed by default.
    signer: Option<Signer>,
    /// Per request slot (see [`CompiledRequest`]), what was resolved for it once.
    per_request: Vec<Resolved>,
    /// The settings with secrets replaced by sentinels; `None` when no secret has a value.
    probe: Option<Arc<Probe>>,
    /// The marks of the base URL (in `url`) and of the headers, shared by every request.
    redactions: Redactions,
    /// The settings hooks see: every secret blanked; `None` when that is the settings themselves.
    hook_settings: Option<Value>,
}

/// What an instance resolves once for one request.
#[derive(Clone, Default, PartialEq)]
struct Resolved {
    /// The URL with its marks, when the request's `url` reads only settings.
    url: Option<(String, Vec<Range<usize>>)>,
    /// The request's own signer (`Some(None)`: it declares a signature whose secret is empty).
    signer: Option<Option<Signer>>,
}

/// The method, URL, headers and signer of one built request, with the marks of the URL and
/// of the headers.
struct Parts {
    method: Method,
    url: String,
    url_marks: Vec<Range<usize>>,
    headers: Vec<(String, String)>,
    header_marks: Arc<[(String, Vec<Range<usize>>)]>,
    signer: Option<Signer>,
}

impl std::fmt::Debug for RequestDefaults {
    /// Header values are left out because they may carry secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("RequestDefaults")
            .field("base_url", &self.base_url)
            .field("header_names", &names)
            .finish()
    }
}

impl RequestDefaults {
    /// Evaluates the destination's base-URL and header mappings over `{"settings": settings}`,
    /// and marks what in them derives from secret settings.
    pub fn resolve(
        dest: &CompiledDestination,
        settings: &Value,
    ) -> Result<RequestDefaults, BuildError> {
        let secret_keys = dest
            .def
            .settings
            .iter()
            .filter(|s| s.is_secret())
            .map(|s| s.key);
        let probe = Probe::new(settings, secret_keys.clone());
        let secrets: Arc<[String]> = probe
            .as_ref()
            .map(|p| Arc::clone(p.secrets()))
            .unwrap_or_default();
        let scrub = |message: String| redact::scrub(&message, &secrets);
        let context = settings_context(settings);
        let probe_context = probe.as_ref().map(|p| settings_context(p.settings()));

        let (base_url, base_spans) = match &dest.base_url {
            Some(mapping) => {
                let base_url = match mapping.evaluate(&context) {
                    Ok(Some(Value::String(s))) => s,
                    Ok(Some(other)) => {
                        return Err(BuildError::BaseUrl(format!(
                            "must resolve to a string but it resolved to {}",
                            kind(&other)
                        )));
                    }
                    Ok(None) => {
                        return Err(BuildError::BaseUrl("resolved to nothing".to_owned()));
                    }
                    Err(err) => {
                        return Err(BuildError::BaseUrl(format!(
                            "failed: {}",
                            scrub(err.message)
                        )));
                    }
                };
                let base_spans = match (&probe, &probe_context) {
                    (Some(probe), Some(probe_context)) => {
                        let probed = mapping.evaluate(probe_context);
                        let probed = match &probed {
                            Ok(Some(Value::String(s))) => Some(s.as_str()),
                            _ => None,
                        };
                        probe.mark_str(&base_url, probed)
                    }
                    _ => Vec::new(),
                };
                check_base_url(&base_url).map_err(|reason| BuildError::InvalidBaseUrl {
                    // What derives from a secret is hidden by its marks; a secret typed into
                    // another setting (the endpoint) is scrubbed as a last line of defence, as
                    // a whole token.
                    value: scrub(redact::cover(&base_url, &base_spans)),
                    reason: scrub(reason),
                })?;
                (Some(base_url), base_spans)
            }
            None => (None, Vec::new()),
        };

        let mut headers = Vec::with_capacity(dest.headers.len());
        let mut header_marks = Vec::new();
        for (name, mapping) in &dest.headers {
            let header_error = |message: String| BuildError::Header {
                name: name.clone(),
                message: scrub(message),
            };
            let value = match mapping.evaluate(&context) {
                Ok(None) => continue,
                Ok(Some(value)) => header_text(value).map_err(header_error)?,
                Err(err) => return Err(header_error(format!("failed: {}", err.message))),
            };
            if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
                return Err(header_error(
                    "contains a line break or NUL character".to_owned(),
                ));
            }
            if let (Some(probe), Some(probe_context)) = (&probe, &probe_context) {
                let probed = match mapping.evaluate(probe_context) {
                    Ok(Some(value)) => header_text(value).ok(),
                    _ => None,
                };
                let spans = probe.mark_str(&value, probed.as_deref());
                if !spans.is_empty() {
                    header_marks.push((name.clone(), spans));
                }
            }
            headers.push((name.clone(), value));
        }
        let signer = match &dest.sign {
            Some((def, mapping)) => {
                resolve_signer(*def, mapping, &context, "request_defaults", &scrub)?
            }
            None => None,
        };
        let mut per_request = Vec::with_capacity(dest.n_requests);
        for request in dest.requests() {
            let mut resolved = Resolved::default();
            if let Some(url) = request.url.as_ref().filter(|url| url.settings_only) {
                let (value, spans) = url_value(
                    url,
                    &context,
                    probe.as_ref().zip(probe_context.as_ref()),
                    &request.what,
                    &scrub,
                )?;
                resolved.url = Some((value, spans));
            }
            if let Some((def, mapping)) = &request.sign {
                resolved.signer = Some(resolve_signer(
                    *def,
                    mapping,
                    &context,
                    &request.what,
                    &scrub,
                )?);
            }
            per_request.resize(request.slot + 1, Resolved::default());
            per_request[request.slot] = resolved;
        }
        let hook_settings = probe.as_ref().map(|_| blank_secrets(settings, secret_keys));
        Ok(RequestDefaults {
            base_url,
            headers,
            signer,
            per_request,
            redactions: Redactions {
                url: base_spans,
                headers: header_marks.into(),
                json: Vec::new(),
                secrets,
            },
            probe: probe.map(Arc::new),
            hook_settings,
        })
    }

    /// The marks of the URL of a request to `path` joined onto the base URL.
    fn path_marks(&self, path: &str) -> Vec<Range<usize>> {
        let Some(base_url) = &self.base_url else {
            return Vec::new();
        };
        if self.redactions.url.is_empty() {
            return Vec::new();
        }
        // `join_url` keeps the base URL up to its trailing slashes (all of it without a path).
        let kept = if path.is_empty() {
            base_url.len()
        } else {
            base_url.trim_end_matches('/').len()
        };
        self.redactions
            .url
            .iter()
            .filter(|r| r.start < kept)
            .map(|r| r.start..r.end.min(kept))
            .collect()
    }

    /// The settings hooks see (secrets blanked).
    fn hook_settings<'a>(&'a self, settings: &'a Value) -> &'a Value {
        self.hook_settings.as_ref().unwrap_or(settings)
    }

    /// `message` with the exact secrets scrubbed (see [`redact::scrub`]).
    fn scrub(&self, message: String) -> String {
        if self.redactions.secrets.is_empty() {
            return message;
        }
        redact::scrub(&message, &self.redactions.secrets)
    }

    /// The marks of a body built as `real` whose probe run (the same mapping over `context`
    /// with the probe's settings in place of `settings`) is computed by `probe_run`, when the
    /// mapping may read settings and there are secrets.
    fn body_marks(
        &self,
        reads_settings: bool,
        real: Option<&Value>,
        probe_run: impl FnOnce(&Value) -> Option<Value>,
    ) -> Vec<JsonMark> {
        match (&self.probe, real) {
            (Some(probe), Some(real)) if reads_settings => {
                let probed = probe_run(probe.settings());
                probe.mark_value(real, probed.as_ref())
            }
            _ => Vec::new(),
        }
    }

    /// The resolved base URL, if the destination has one.
    pub fn base_url(&self) -> Option<&str> {
        self.base_url.as_deref()
    }

    /// The resolved headers (lower-case names), in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The absolute URL of `path`, if the destination has a base URL.
    pub fn url(&self, path: &str) -> Option<String> {
        self.base_url.as_deref().map(|base| join_url(base, path))
    }
}

/// Resolves a signature's secret over `{"settings"}`: a string is the key (`""` signs nothing),
/// nothing or `null` signs nothing.
fn resolve_signer(
    def: SignDef,
    mapping: &Mapping,
    context: &Value,
    what: &str,
    scrub: &dyn Fn(String) -> String,
) -> Result<Option<Signer>, BuildError> {
    let sign_error = |message: String| BuildError::Sign {
        what: what.to_owned(),
        message: scrub(message),
    };
    match mapping.evaluate(context) {
        Ok(Some(Value::String(key))) => Ok(Signer::new(def, &key)),
        Ok(None | Some(Value::Null)) => Ok(None),
        Ok(Some(other)) => Err(sign_error(format!(
            "must resolve to a string but it resolved to {}",
            kind(&other)
        ))),
        Err(err) => Err(sign_error(format!("failed: {}", err.message))),
    }
}

/// Evaluates a URL mapping over `context`, checks that it is an absolute http(s) URL and marks
/// what in it derives from secrets (`probe` is the probe with its context, when there are
/// secrets).
fn url_value(
    url: &CompiledValue,
    context: &Value,
    probe: Option<(&Probe, &Value)>,
    what: &str,
    scrub: &dyn Fn(String) -> String,
) -> Result<(String, Vec<Range<usize>>), BuildError> {
    let url_error = |message: String| BuildError::Url {
        what: what.to_owned(),
        message: scrub(format!("{message}{}", url.reads())),
    };
    let value = match url.mapping.evaluate(context) {
        Ok(Some(Value::String(s))) => s,
        Ok(Some(other)) => {
            return Err(url_error(format!(
                "must resolve to a string but it resolved to {}",
                kind(&other)
            )));
        }
        Ok(None) => return Err(url_error("resolved to nothing".to_owned())),
        Err(err) => return Err(url_error(format!("failed: {}", err.message))),
    };
    let spans = match probe {
        Some((probe, probe_context)) if url.reads_settings => {
            let probed = match url.mapping.evaluate(probe_context) {
                Ok(Some(Value::String(s))) => Some(s),
                _ => None,
            };
            probe.mark_str(&value, probed.as_deref())
        }
        _ => Vec::new(),
    };
    if let Err(reason) = check_base_url(&value) {
        return Err(url_error(format!(
            "resolved to {:?}, which is not an absolute http(s) url: {reason}",
            redact::cover(&value, &spans)
        )));
    }
    Ok((value, spans))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_base_url(value: &str) -> Result<(), String> {
    let url = url::Url::parse(value).map_err(|err| err.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the scheme is '{}'", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("there is no host".to_owned());
    }
    Ok(())
}

/// Joins a base URL and a path with exactly one slash between them (an empty path leaves the base
/// URL unchanged).
pub fn join_url(base: &str, path: &str) -> String {
    if path.is_empty() {
        return base.to_owned();
    }
    let base = base.trim_end_matches('/');
    let path = path.trim_start_matches('/');
    let mut url = String::with_capacity(base.len() + path.len() + 1);
    url.push_str(base);
    url.push('/');
    url.push_str(path);
    url
}

/// `{"settings": settings}`.
fn settings_context(settings: &Value) -> Value {
    let mut context = Map::with_capacity(1);
    context.insert("settings".to_owned(), settings.clone());
    Value::Object(context)
}

/// `settings` with the string value of every key in `secret_keys` replaced by `""` and any other
/// value of them by `null`: what hooks see, so nothing a hook computes can carry a secret.
fn blank_secrets<'a>(settings: &Value, secret_keys: impl IntoIterator<Item = &'a str>) -> Value {
    let mut out = settings.clone();
    if let Value::Object(map) = &mut out {
        for key in secret_keys {
            if let Some(value) = map.get_mut(key) {
                *value = match value {
                    Value::String(_) => Value::String(String::new()),
                    _ => Value::Null,
                };
            }
        }
    }
    out
}

/// The text of a header whose mapping resolved to `value`: strings as they are, numbers and
/// booleans as JSON, `{"username", "password"}` as Basic authentication.
fn header_text(value: Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Object(map) if is_basic_auth(&map) => {
            let username = map.get("username").and_then(Value::as_str).unwrap_or("");
            let password = map.get("password").and_then(Value::as_str).unwrap_or("");
            Ok(format!(
                "Basic {}",
                base64(format!("{username}:{password}").as_bytes())
            ))
        }
        other => Err(format!(
            "must resolve to a string or {{\"username\", \"password\"}} but it resolved to {}",
            kind(&other)
        )),
    }
}

/// The headers of a `headers_from` object, in its order: names in lower case, `null` entries
/// left out. A name must be an HTTP token and a value a string, number or boolean of printable
/// ASCII (tabs allowed); the error names the first header that is not.
fn data_headers(value: Value) -> Result<Vec<(String, String)>, String> {
    let Value::Object(map) = value else {
        return Err(format!(
            "must resolve to an object of header name to value but it resolved to {}",
            kind(&value)
        ));
    };
    let mut out: Vec<(String, String)> = Vec::with_capacity(map.len());
    for (name, value) in map {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(format!(
                "header name {name:?} is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
            ));
        }
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(format!(
                    "header '{name}' must be a string, number or boolean but it is {}",
                    kind(&other)
                ));
            }
        };
        if !text.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
            return Err(format!(
                "header '{name}' has a value with a character that is not printable ASCII"
            ));
        }
        let name = name.to_ascii_lowercase();
        out.retain(|(n, _)| *n != name);
        out.push((name, text));
    }
    Ok(out)
}

/// Whether `byte` may appear in an HTTP header name (RFC 9110 `tchar`).
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Whether `map` is `{"username": <string>}` with an optional string `password` and nothing else.
fn is_basic_auth(map: &Map<String, Value>) -> bool {
    map.get("username").is_some_and(Value::is_string)
        && map.get("password").is_none_or(Value::is_string)
        && map.keys().all(|key| key == "username" || key == "password")
}

/// Standard base64 with padding (RFC 4648), as HTTP Basic authentication uses.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn finish(
    request: &CompiledRequest,
    defaults: &RequestDefaults,
    context: &Value,
    what: impl FnOnce() -> String,
) -> Result<Request, BuildError> {
    let parts = request.parts(defaults, Some(context))?;
    if parts.method.has_no_body() {
        return Ok(request.assemble(defaults, parts, None, Vec::new()));
    }
    let json = match &request.json {
        Some(mapping) => mapping.evaluate(context).map_err(|err| BuildError::Json {
            what: what(),
            message: defaults.scrub(err.message),
        })?,
        None => None,
    };
    let marks = match &request.json {
        Some(mapping) => defaults.body_marks(request.reads_settings, json.as_ref(), |probe| {
            let mut context = context.clone();
            if let Value::Object(map) = &mut context {
                map.insert("settings".to_owned(), probe.clone());
            }
            mapping.evaluate(&context).ok().flatten()
        }),
        None => Vec::new(),
    };
    Ok(request.assemble(defaults, parts, json, marks))
}

impl CompiledRequest {
    /// Whether building the request needs its context beyond the body (a URL that reads more
    /// than settings, a method mapping, its own headers).
    fn needs_context(&self) -> bool {
        self.method.is_some()
            || !self.headers.is_empty()
            || self.headers_from.is_some()
            || self.url.as_ref().is_some_and(|url| !url.settings_only)
    }

    /// The method, URL, headers and signer of this request; `context` is the request's context
    /// (what its body mapping reads), needed when [`Self::needs_context`] says so.
    fn parts(
        &self,
        defaults: &RequestDefaults,
        context: Option<&Value>,
    ) -> Result<Parts, BuildError> {
        let resolved = defaults.per_request.get(self.slot);
        let probe_context = || -> Option<(&Probe, Value)> {
            let probe = defaults.probe.as_deref()?;
            let mut context = context?.clone();
            if let Value::Object(map) = &mut context {
                map.insert("settings".to_owned(), probe.settings().clone());
            }
            Some((probe, context))
        };
        let scrub = |message: String| defaults.scrub(message);
        let empty = Value::Object(Map::new());
        let context_or_empty = context.unwrap_or(&empty);

        let method = match &self.method {
            None => self.def.method,
            Some(mapping) => {
                let method_error = |message: String| BuildError::Method {
                    what: self.what.clone(),
                    message: scrub(format!("{message}{}", mapping.reads())),
                };
                match mapping.mapping.evaluate(context_or_empty) {
                    Ok(Some(Value::String(text))) => Method::parse(&text).ok_or_else(|| {
                        method_error(format!(
                            "resolved to {text:?}, which is not one of GET, POST, PUT, PATCH, DELETE, HEAD"
                        ))
                    })?,
                    Ok(Some(other)) => {
                        return Err(method_error(format!(
                            "must resolve to a string but it resolved to {}",
                            kind(&other)
                        )));
                    }
                    Ok(None) => return Err(method_error("resolved to nothing".to_owned())),
                    Err(err) => return Err(method_error(format!("failed: {}", err.message))),
                }
            }
        };

        let (url, url_marks) = match (&self.url, resolved.and_then(|r| r.url.as_ref())) {
            (Some(_), Some((url, marks))) => (url.clone(), marks.clone()),
            (Some(url), None) => {
                let probe = if url.reads_settings {
                    probe_context()
                } else {
                    None
                };
                url_value(
                    url,
                    context_or_empty,
                    probe.as_ref().map(|(p, c)| (*p, c)),
                    &self.what,
                    &scrub,
                )?
            }
            (None, _) => match defaults.url(self.def.path) {
                Some(url) => (url, defaults.path_marks(self.def.path)),
                None => {
                    return Err(BuildError::Url {
                        what: self.what.clone(),
                        message: "has a path but request_defaults has no base_url".to_owned(),
                    });
                }
            },
        };

        let mut headers = defaults.headers.clone();
        let mut header_marks: Option<Vec<(String, Vec<Range<usize>>)>> = None;
        if let Some(value) = &self.headers_from {
            let headers_error = |message: String| BuildError::RequestHeaders {
                what: self.what.clone(),
                message: scrub(format!("{message}{}", value.reads())),
            };
            let entries = match value.mapping.evaluate(context_or_empty) {
                Ok(None) => Vec::new(),
                Ok(Some(v)) => data_headers(v).map_err(headers_error)?,
                Err(err) => return Err(headers_error(format!("failed: {}", err.message))),
            };
            let probed = match (value.reads_settings, entries.is_empty()) {
                (true, false) => probe_context().map(|(probe, probe_context)| {
                    let probed = match value.mapping.evaluate(&probe_context) {
                        Ok(Some(v)) => data_headers(v).unwrap_or_default(),
                        _ => Vec::new(),
                    };
                    (probe, probed)
                }),
                _ => None,
            };
            for (name, text) in entries {
                let marks = header_marks
                    .get_or_insert_with(|| defaults.redactions.headers.iter().cloned().collect());
                marks.retain(|(n, _)| *n != name);
                if let Some((probe, probed)) = &probed {
                    let probed_text = probed
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, t)| t.as_str());
                    let spans = probe.mark_str(&text, probed_text);
                    if !spans.is_empty() {
                        marks.push((name.clone(), spans));
                    }
                }
                headers.retain(|(n, _)| *n != name);
                headers.push((name, text));
            }
        }
        for (name, value) in &self.headers {
            let header_error = |message: String| BuildError::RequestHeader {
                what: self.what.clone(),
                name: name.clone(),
                message: scrub(format!("{message}{}", value.reads())),
            };
            let text = match value.mapping.evaluate(context_or_empty) {
                Ok(None) => continue,
                Ok(Some(v)) => header_text(v).map_err(header_error)?,
                Err(err) => return Err(header_error(format!("failed: {}", err.message))),
            };
            if text.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
                return Err(header_error(
                    "contains a line break or NUL character".to_owned(),
                ));
            }
            let marks = header_marks
                .get_or_insert_with(|| defaults.redactions.headers.iter().cloned().collect());
            marks.retain(|(n, _)| n != name);
            if value.reads_settings
                && let Some((probe, probe_context)) = probe_context()
            {
                let probed = match value.mapping.evaluate(&probe_context) {
                    Ok(Some(v)) => header_text(v).ok(),
                    _ => None,
                };
                let spans = probe.mark_str(&text, probed.as_deref());
                if !spans.is_empty() {
                    marks.push((name.clone(), spans));
                }
            }
            headers.retain(|(n, _)| n != name);
            headers.push((name.clone(), text));
        }
        let header_marks = match header_marks {
            Some(marks) => marks.into(),
            None => Arc::clone(&defaults.redactions.headers),
        };
        let signer = match resolved.and_then(|r| r.signer.as_ref()) {
            Some(own) => own.clone(),
            None => defaults.signer.clone(),
        };
        Ok(Parts {
            method,
            url,
            url_marks,
            headers,
            header_marks,
            signer,
        })
    }

    /// The request of this template with `parts`, `json` as its body and `marks` as the
    /// body's marks.
    fn assemble(
        &self,
        defaults: &RequestDefaults,
        parts: Parts,
        json: Option<Value>,
        marks: Vec<JsonMark>,
    ) -> Request {
        Request {
            method: parts.method,
            url: parts.url,
            headers: parts.headers,
            json,
            rate_limit_key: self.def.rate_limit.map(str::to_owned),
            busy_statuses: self.def.busy_statuses,
            response_id: self.def.response_id,
            redactions: Redactions {
                url: parts.url_marks,
                headers: parts.header_marks,
                json: marks,
                secrets: Arc::clone(&defaults.redactions.secrets),
            },
            signer: parts.signer,
        }
    }
}

/// Where a copied body member comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Payload,
    Computed,
    Settings,
}

/// A body mapping that is an object of plain copies, `{"key": {"@path": "$.<root>.<field>"}}`
/// with root `payload`, `computed` or `settings`, each payload and computed field used once.
///
/// Over the context `{"payload": {…}, "settings": {…}, "computed": {…}}` (all objects, `computed`
/// only when the action has a hook) such a mapping yields, for each member in order, the field's
/// value when the field exists (`null` included) and nothing when it does not. Evaluating the
/// plan gives exactly that, moving payload and computed values instead of cloning them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyPlan {
    members: Vec<(String, Source, String)>,
}

impl CopyPlan {
    /// The plan of a raw body mapping, or `None` when the mapping is anything but plain copies.
    pub fn new(raw: &Value) -> Option<CopyPlan> {
        let Value::Object(map) = raw else { return None };
        if map.is_empty() {
            return None;
        }
        let mut members: Vec<(String, Source, String)> = Vec::with_capacity(map.len());
        for (key, value) in map {
            if key.starts_with('@') || key.starts_with("__") {
                return None;
            }
            let Value::Object(directive) = value else {
                return None;
            };
            let (Some(Value::String(path)), 1) = (directive.get("@path"), directive.len()) else {
                return None;
            };
            let rest = path.strip_prefix("$.")?;
            let (root, field) = rest.split_once('.')?;
            let source = match root {
                "payload" => Source::Payload,
                "computed" => Source::Computed,
                "settings" => Source::Settings,
                _ => return None,
            };
            let plain = field
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !plain {
                return None;
            }
            let moved_twice = source != Source::Settings
                && members.iter().any(|(_, s, f)| *s == source && f == field);
            if moved_twice {
                return None;
            }
            members.push((key.clone(), source, field.to_owned()));
        }
        Some(CopyPlan { members })
    }

    /// Builds the body, moving values out of `payload` and `computed`.
    fn apply(
        &self,
        payload: &mut Map<String, Value>,
        computed: Option<&mut Map<String, Value>>,
        settings: &Map<String, Value>,
    ) -> Value {
        let mut computed = computed;
        let mut body = Map::with_capacity(self.members.len());
        for (key, source, field) in &self.members {
            let value = match source {
                Source::Payload => payload.get_mut(field).map(Value::take),
                Source::Computed => computed
                    .as_deref_mut()
                    .and_then(|map| map.get_mut(field))
                    .map(Value::take),
                Source::Settings => settings.get(field).cloned(),
            };
            if let Some(value) = value {
                body.insert(key.clone(), value);
            }
        }
        Value::Object(body)
    }
}

/// Runs the action's hook on a validated payload, if it has one; its object result is what
/// mappings read at `$.computed`.
fn run_hook(
    settings: &Value,
    action: &CompiledAction,
    payload: &Value,
) -> Result<Option<Value>, BuildError> {
    let Some(hook) = action.def.hook else {
        return Ok(None);
    };
    let input = HookInput {
        action_key: action.def.key,
        payload,
        settings,
    };
    let hook_error = |message: String| BuildError::Hook {
        action: action.def.key.to_owned(),
        message,
    };
    match hook(&input) {
        Ok(Value::Object(map)) => Ok(Some(Value::Object(map))),
        Ok(other) => Err(hook_error(format!(
            "it must return an object but it returned {}",
            kind(&other)
        ))),
        Err(err) => Err(hook_error(err.message)),
    }
}

/// Evaluates a per-payload mapping (a request body or a batch item) over
/// `{"payload", "settings", "computed"}`, through its copy plan when it has one; with the marks
/// of what in the result derives from secrets when the mapping may read settings.
fn per_payload(
    defaults: &RequestDefaults,
    (mapping, plan, reads_settings): (&Mapping, Option<&CopyPlan>, bool),
    settings: &Value,
    payload: Value,
    computed: Option<Value>,
    what: impl FnOnce() -> String,
) -> Result<(Option<Value>, Vec<JsonMark>), BuildError> {
    // The probe run needs the payload and the hook's output, which the real run consumes; they
    // are only copied when the mapping may read settings.
    let probe_inputs =
        (reads_settings && defaults.probe.is_some()).then(|| (payload.clone(), computed.clone()));
    let mut payload = payload;
    let mut computed = computed;
    let real = if let (Some(plan), Value::Object(settings_map), Value::Object(payload_map)) =
        (plan, settings, &mut payload)
    {
        let computed_map = match &mut computed {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        };
        Some(plan.apply(payload_map, computed_map, settings_map))
    } else {
        mapping
            .evaluate(&payload_context(payload, settings.clone(), computed))
            .map_err(|err| BuildError::Json {
                what: what(),
                message: defaults.scrub(err.message),
            })?
    };
    let marks = match probe_inputs {
        Some((payload, computed)) => defaults.body_marks(true, real.as_ref(), |probe| {
            let context = payload_context(payload, probe.clone(), computed);
            mapping.evaluate(&context).ok().flatten()
        }),
        None => Vec::new(),
    };
    Ok((real, marks))
}

/// `{"payload", "settings", "computed"}` (`computed` only when there is one).
fn payload_context(payload: Value, settings: Value, computed: Option<Value>) -> Value {
    let mut context = Map::with_capacity(3);
    context.insert("payload".to_owned(), payload);
    context.insert("settings".to_owned(), settings);
    if let Some(computed) = computed {
        context.insert("computed".to_owned(), computed);
    }
    Value::Object(context)
}

/// Builds the request of `action` for a validated `payload`.
pub fn action_request(
    defaults: &RequestDefaults,
    settings: &Value,
    action: &CompiledAction,
    payload: Value,
) -> Result<Request, BuildError> {
    let Some(request) = &action.request else {
        return Err(BuildError::NoSingleForm {
            action: action.def.key.to_owned(),
        });
    };
    let computed = run_hook(defaults.hook_settings(settings), action, &payload)?;
    let parts = if request.needs_context() {
        let context = payload_context(payload.clone(), settings.clone(), computed.clone());
        request.parts(defaults, Some(&context))?
    } else {
        request.parts(defaults, None)?
    };
    if parts.method.has_no_body() {
        return Ok(request.assemble(defaults, parts, None, Vec::new()));
    }
    let (json, marks) = match &request.json {
        Some(mapping) => per_payload(
            defaults,
            (mapping, request.copy_plan.as_ref(), request.reads_settings),
            settings,
            payload,
            computed,
            || format!("action '{}' request", action.def.key),
        )?,
        None => (None, Vec::new()),
    };
    Ok(request.assemble(defaults, parts, json, marks))
}

/// One payload's entry in a batch of `action`: the hook, then the batch's `item` mapping (the
/// payload itself without one), with the marks of what in it derives from secrets.
pub fn batch_entry(
    defaults: &RequestDefaults,
    settings: &Value,
    action: &CompiledAction,
    payload: Value,
) -> Result<(Value, Vec<JsonMark>), BuildError> {
    let Some(batch) = &action.batch else {
        return Err(BuildError::NoBatchForm {
            action: action.def.key.to_owned(),
        });
    };
    let Some(item) = &batch.item else {
        return Ok((payload, Vec::new()));
    };
    let computed = run_hook(defaults.hook_settings(settings), action, &payload)?;
    let (entry, marks) = per_payload(
        defaults,
        (item, batch.item_plan.as_ref(), batch.item_reads_settings),
        settings,
        payload,
        computed,
        || format!("action '{}' batch item", action.def.key),
    )?;
    Ok((entry.unwrap_or(Value::Null), marks))
}

/// The request that sends `entries` (built by [`batch_entry`], in event order) as one batch of
/// `action`; its body mapping reads `{"items": entries, "settings"}`.
///
/// When the action's item mapping may read settings, the entries' own marks are not known here
/// and the whole body is marked, so that a dry run shows it as `[redacted]` rather than risk a
/// secret.
pub fn batch_request(
    defaults: &RequestDefaults,
    settings: &Value,
    action: &CompiledAction,
    entries: Vec<Value>,
) -> Result<Request, BuildError> {
    let Some(batch) = &action.batch else {
        return Err(BuildError::NoBatchForm {
            action: action.def.key.to_owned(),
        });
    };
    let mut context = Map::with_capacity(2);
    context.insert("items".to_owned(), Value::Array(entries));
    context.insert("settings".to_owned(), settings.clone());
    let mut request = finish(&batch.request, defaults, &Value::Object(context), || {
        format!("action '{}' batch request", action.def.key)
    })?;
    if batch.item_reads_settings && defaults.probe.is_some() && request.json.is_some() {
        request.redactions.json = vec![JsonMark {
            path: Vec::new(),
            spans: None,
        }];
    }
    Ok(request)
}

/// Builds the credentials check, if the destination has one (context `{"settings"}`).
pub fn test_authentication_request(
    dest: &CompiledDestination,
    defaults: &RequestDefaults,
    settings: &Value,
) -> Result<Option<Request>, BuildError> {
    let Some(request) = &dest.test_authentication else {
        return Ok(None);
    };
    let mut context = Map::with_capacity(1);
    context.insert("settings".to_owned(), settings.clone());
    finish(request, defaults, &Value::Object(context), || {
        "test_authentication".to_owned()
    })
    .map(Some)
}

/// Builds the user deletion for `event`, if the destination has one (context
/// `{"payload": {"userId", "anonymousId"}, "settings"}`; absent ids stay absent).
pub fn on_delete_request(
    dest: &CompiledDestination,
    defaults: &RequestDefaults,
    settings: &Value,
    event: &Value,
) -> Result<Option<Request>, BuildError> {
    let Some(request) = &dest.on_delete else {
        return Ok(None);
    };
    let mut payload = Map::with_capacity(2);
    for key in ["userId", "anonymousId"] {
        if let Some(value) = event.get(key) {
            payload.insert(key.to_owned(), value.clone());
        }
    }
    let mut context = Map::with_capacity(2);
    context.insert("payload".to_owned(), Value::Object(payload));
    context.insert("settings".to_owned(), settings.clone());
    finish(request, defaults, &Value::Object(context), || {
        "on_delete".to_owned()
    })
    .map(Some)
}

/// The requests of a bulk deletion, each with the range of the ids it carries.
pub type DeletionRequests = Vec<(std::ops::Range<usize>, Request)>;

/// Builds the bulk deletion of `ids`, if the destination declares one for `kind`: one request per
/// `max_ids` ids, in order, each with the range of `ids` it carries (context `{"payload":
/// {"ids": [...]}, "settings"}`). No ids, no request.
pub fn deletion_requests(
    dest: &CompiledDestination,
    defaults: &RequestDefaults,
    settings: &Value,
    kind: crate::destination::DeletionKind,
    ids: &[String],
) -> Result<Option<DeletionRequests>, BuildError> {
    let Some((max_ids, request)) = dest.deletion(kind) else {
        return Ok(None);
    };
    let per_request = (*max_ids).max(1);
    let mut out = Vec::with_capacity(ids.len().div_ceil(per_request));
    for (chunk_idx, chunk) in ids.chunks(per_request).enumerate() {
        let mut context = Map::with_capacity(2);
        context.insert("payload".to_owned(), json!({ "ids": chunk }));
        context.insert("settings".to_owned(), settings.clone());
        let built = finish(request, defaults, &Value::Object(context), || {
            format!("deletions.{}", kind.as_str())
        })?;
        let start = chunk_idx * per_request;
        out.push((start..start + chunk.len(), built));
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_url_uses_exactly_one_slash() {
        assert_eq!(
            join_url("https://eu.example.io", "v1/identify"),
            "https://eu.example.io/v1/identify"
        );
        assert_eq!(
            join_url("https://eu.example.io/", "v1/identify"),
            "https://eu.example.io/v1/identify"
        );
        assert_eq!(
            join_url("https://eu.example.io//", "/v1/identify"),
            "https://eu.example.io/v1/identify"
        );
        assert_eq!(
            join_url("https://x.io/api/", "v1/track"),
            "https://x.io/api/v1/track"
        );
        assert_eq!(join_url("https://x.io/", ""), "https://x.io/");
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn copy_plans_are_only_made_for_plain_copies() {
        let plain = serde_json::json!({
            "user_id": {"@path": "$.payload.userId"},
            "metadata": {"@path": "$.computed.metadata"},
            "key": {"@path": "$.settings.apiKey"},
            "again": {"@path": "$.settings.apiKey"}
        });
        assert!(CopyPlan::new(&plain).is_some());
        for raw in [
            serde_json::json!({}),
            serde_json::json!({"a": {"@path": "$.payload.a.b"}}),
            serde_json::json!({"a": {"@path": "$.event"}}),
            serde_json::json!({"a": {"@path": "$.payload.x-y"}}),
            serde_json::json!({"a": {"@path": "$.payload.0"}}),
            serde_json::json!({"a": {"@template": "{{payload.a}}"}}),
            serde_json::json!({"a": {"@path": "$.payload.a", "@template": "x"}}),
            serde_json::json!({"a": "constant"}),
            serde_json::json!({"@path": "$.payload.a"}),
            serde_json::json!({"a": {"@path": "$.payload.a"}, "b": {"@path": "$.payload.a"}}),
            serde_json::json!({"a": {"b": {"@path": "$.payload.a"}}}),
        ] {
            assert_eq!(CopyPlan::new(&raw), None, "{raw}");
        }
    }

    #[test]
    fn copy_plans_give_what_the_mapping_gives() {
        let raw = serde_json::json!({
            "user_id": {"@path": "$.payload.userId"},
            "event_name": {"@path": "$.payload.name"},
            "metadata": {"@path": "$.computed.metadata"},
            "props": {"@path": "$.payload.properties"},
            "endpoint": {"@path": "$.settings.endpoint"},
            "missing_setting": {"@path": "$.settings.nothing"}
        });
        let plan = CopyPlan::new(&raw).expect("a plan");
        let mapping = actionkit_mapping::Mapping::compile(&raw).expect("a valid mapping");
        let settings = serde_json::json!({"apiKey": "k", "endpoint": "https://x.io/"});
        let payloads = [
            serde_json::json!({"userId": "u", "name": "E", "properties": {"a": [1, {"b": null}]}}),
            serde_json::json!({"userId": null, "properties": {}}),
            serde_json::json!({"name": "", "properties": false}),
            serde_json::json!({}),
        ];
        let computeds = [
            None,
            Some(serde_json::json!({})),
            Some(serde_json::json!({"metadata": {"x": 1, "created_at": "2021"}})),
            Some(serde_json::json!({"metadata": null})),
        ];
        for payload in &payloads {
            for computed in &computeds {
                let mut context = Map::new();
                context.insert("payload".to_owned(), payload.clone());
                context.insert("settings".to_owned(), settings.clone());
                if let Some(computed) = computed {
                    context.insert("computed".to_owned(), computed.clone());
                }
                let expected = mapping
                    .evaluate(&Value::Object(context))
                    .expect("evaluates");
                let mut payload_map = object(payload.clone());
                let mut computed_map = computed.clone().map(object);
                let got = plan.apply(
                    &mut payload_map,
                    computed_map.as_mut(),
                    &object(settings.clone()),
                );
                assert_eq!(Some(&got), expected.as_ref(), "{payload} {computed:?}");
                assert_eq!(
                    serde_json::to_string(&got).ok(),
                    expected.map(|v| v.to_string()),
                    "member order"
                );
            }
        }
    }

    #[test]
    fn base_url_must_be_absolute_http() {
        assert!(check_base_url("https://analytex.userpilot.io/").is_ok());
        assert!(check_base_url("http://127.0.0.1:8080").is_ok());
        assert!(check_base_url("89X4YJ9nBQcMn%#").is_err());
        assert!(check_base_url("ftp://example.com/").is_err());
        assert!(check_base_url("analytex.userpilot.io").is_err());
        assert!(check_base_url("mailto:a@example.com").is_err());
    }
}
