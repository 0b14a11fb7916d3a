//! Userpilot's endpoints as the mock knows them: routing, required body fields, and answer bodies.
//!
//! Everything here is pure: it maps a method, path and parsed body to an [`Answer`].

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::config::EndpointGroup;
use crate::rate::LimitGroup;
use crate::world::MAX_BULK_RECORDS;

/// The endpoints the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST /v1/identify`.
    Identify,
    /// `POST /v1/companies/identify`.
    CompaniesIdentify,
    /// `POST /v1/track`.
    Track,
    /// `DELETE /v1/users`.
    DeleteUsers,
    /// `DELETE /v1/companies`.
    DeleteCompanies,
    /// `GET /v1/validate`.
    Validate,
    /// `POST /v1/users/bulk_identify`.
    UsersBulkIdentify,
    /// `POST /v1/companies/bulk_identify`.
    CompaniesBulkIdentify,
    /// `GET /v1/background_jobs`.
    BackgroundJobs,
    /// `GET /v1/background_jobs/{job_id}`.
    BackgroundJob,
    /// `GET /_mock/state`: the mock's own, not Userpilot's.
    MockState,
}

impl Endpoint {
    /// Finds the endpoint of an exact path (no trailing slash, no doubled slashes).
    pub(crate) fn from_path(path: &str) -> Option<Self> {
        Some(match path {
            "/v1/identify" => Self::Identify,
            "/v1/companies/identify" => Self::CompaniesIdentify,
            "/v1/track" => Self::Track,
            "/v1/users" => Self::DeleteUsers,
            "/v1/companies" => Self::DeleteCompanies,
            "/v1/validate" => Self::Validate,
            "/v1/users/bulk_identify" => Self::UsersBulkIdentify,
            "/v1/companies/bulk_identify" => Self::CompaniesBulkIdentify,
            "/v1/background_jobs" => Self::BackgroundJobs,
            "/_mock/state" => Self::MockState,
            _ => match path.strip_prefix("/v1/background_jobs/") {
                Some(id) if !id.is_empty() && !id.contains('/') => Self::BackgroundJob,
                _ => return None,
            },
        })
    }

    /// Whether the endpoint is one of the two bulk identifies, whose bodies may be larger.
    pub(crate) fn is_bulk(self) -> bool {
        matches!(self, Self::UsersBulkIdentify | Self::CompaniesBulkIdentify)
    }

    /// Whether the endpoint is the mock's own, answered without Userpilot's header checks.
    pub(crate) fn is_mock_own(self) -> bool {
        self == Self::MockState
    }

    /// The one method the endpoint accepts.
    pub(crate) fn method(self) -> Method {
        match self {
            Self::Identify
            | Self::CompaniesIdentify
            | Self::Track
            | Self::UsersBulkIdentify
            | Self::CompaniesBulkIdentify => Method::POST,
            Self::DeleteUsers | Self::DeleteCompanies => Method::DELETE,
            Self::Validate | Self::BackgroundJobs | Self::BackgroundJob | Self::MockState => {
                Method::GET
            }
        }
    }

    /// The rate-limit group, if the endpoint is limited.
    pub(crate) fn limit_group(self) -> Option<LimitGroup> {
        match self {
            Self::Identify => Some(LimitGroup::Identify),
            Self::CompaniesIdentify => Some(LimitGroup::CompaniesIdentify),
            Self::Track => Some(LimitGroup::Track),
            Self::DeleteUsers | Self::DeleteCompanies => Some(LimitGroup::Delete),
            // Bulk identifies are limited by the one-job-at-a-time rule instead.
            Self::Validate
            | Self::UsersBulkIdentify
            | Self::CompaniesBulkIdentify
            | Self::BackgroundJobs
            | Self::BackgroundJob
            | Self::MockState => None,
        }
    }

    /// The group fault injection can be restricted to, if the endpoint belongs to one.
    pub(crate) fn fault_group(self) -> Option<EndpointGroup> {
        match self {
            Self::Identify => Some(EndpointGroup::Identify),
            Self::CompaniesIdentify => Some(EndpointGroup::Companies),
            Self::Track => Some(EndpointGroup::Track),
            Self::DeleteUsers | Self::DeleteCompanies => Some(EndpointGroup::Delete),
            Self::UsersBulkIdentify | Self::CompaniesBulkIdentify => Some(EndpointGroup::Bulk),
            Self::Validate => Some(EndpointGroup::Validate),
            Self::BackgroundJobs | Self::BackgroundJob => Some(EndpointGroup::Jobs),
            Self::MockState => None,
        }
    }

    /// Whether the endpoint takes a JSON body (and so checks `Content-Type`).
    pub(crate) fn has_body(self) -> bool {
        self.method() != Method::GET
    }

    /// Checks the body and returns the success answer.
    pub(crate) fn accept(self, body: &Value) -> Answer {
        match self.check_body(body) {
            Ok(answer) => answer,
            Err(err) => Answer::error(
                if err.code == "too_many_records" {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                },
                err.code,
                &err.message,
                json!({ "field": err.field }),
            ),
        }
    }

    fn check_body(self, body: &Value) -> Result<Answer, FieldError> {
        if !self.has_body() {
            return Ok(Answer::json(StatusCode::OK, json!({})));
        }
        let Value::Object(obj) = body else {
            return Err(FieldError {
                field: String::new(),
                code: "invalid_body",
                message: format!("the request body must be a JSON object, got {}", kind(body)),
            });
        };
        match self {
            Self::Identify => {
                required_string(obj, "user_id", false)?;
                optional_object(obj, "metadata")?;
                optional_object(obj, "company")?;
            }
            Self::CompaniesIdentify => {
                required_string(obj, "company_id", false)?;
                optional_object(obj, "metadata")?;
            }
            Self::Track => {
                required_string(obj, "user_id", false)?;
                required_string(obj, "event_name", false)?;
                optional_object(obj, "metadata")?;
            }
            Self::DeleteUsers => return id_list(obj, "users", "user"),
            Self::DeleteCompanies => return id_list(obj, "companies", "company"),
            Self::UsersBulkIdentify => bulk_rows(obj, "users", "user_id")?,
            Self::CompaniesBulkIdentify => bulk_rows(obj, "companies", "company_id")?,
            Self::Validate | Self::BackgroundJobs | Self::BackgroundJob | Self::MockState => {}
        }
        Ok(Answer::json(StatusCode::ACCEPTED, json!({})))
    }
}

/// A body field that is missing or malformed.
#[derive(Debug)]
struct FieldError {
    field: String,
    code: &'static str,
    message: String,
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

fn missing(field: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        code: "missing_field",
        message: format!("{field} is required"),
    }
}

fn invalid(field: &str, message: String) -> FieldError {
    FieldError {
        field: field.to_owned(),
        code: "invalid_field",
        message,
    }
}

/// Requires `field` to be a string; an empty string is refused unless `allow_empty`.
fn required_string(
    obj: &Map<String, Value>,
    field: &str,
    allow_empty: bool,
) -> Result<(), FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(missing(field)),
        Some(Value::String(text)) if text.is_empty() && !allow_empty => {
            Err(invalid(field, format!("{field} must not be empty")))
        }
        Some(Value::String(_)) => Ok(()),
        Some(other) => Err(invalid(
            field,
            format!("{field} must be a string, got {}", kind(other)),
        )),
    }
}

/// Allows `field` to be absent or null; otherwise it must be an object.
fn optional_object(obj: &Map<String, Value>, field: &str) -> Result<(), FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
        Some(other) => Err(invalid(
            field,
            format!("{field} must be an object, got {}", kind(other)),
        )),
    }
}

/// Requires `field` to be a non-empty array of strings and answers 202 with how many were
/// scheduled. Empty strings are accepted because Segment's delete sends `[""]` for a missing
/// user id.
fn id_list(obj: &Map<String, Value>, field: &str, noun: &str) -> Result<Answer, FieldError> {
    let ids = match obj.get(field) {
        None | Some(Value::Null) => return Err(missing(field)),
        Some(Value::Array(ids)) => ids,
        Some(other) => {
            return Err(invalid(
                field,
                format!("{field} must be an array of ids, got {}", kind(other)),
            ));
        }
    };
    if ids.is_empty() {
        return Err(invalid(
            field,
            format!("{field} must contain at least one id"),
        ));
    }
    if let Some((idx, other)) = ids.iter().enumerate().find(|(_, id)| !id.is_string()) {
        let at = format!("{field}[{idx}]");
        let message = format!("{at} must be a string, got {}", kind(other));
        return Err(invalid(&at, message));
    }
    let n_ids = ids.len();
    let plural = if n_ids == 1 { "" } else { "s" };
    let verb = if n_ids == 1 { "was" } else { "were" };
    let noun = if n_ids == 1 {
        noun.to_owned()
    } else if let Some(stem) = noun.strip_suffix('y') {
        format!("{stem}ie")
    } else {
        noun.to_owned()
    };
    Ok(Answer::json(
        StatusCode::ACCEPTED,
        json!({
            "message": format!("{n_ids} {noun}{plural} {verb} scheduled for deletion"),
            "scheduled": n_ids,
        }),
    ))
}

/// The message of a bulk request whose metadata holds an object or an array. Userpilot documents
/// that bulk metadata holds primitives only but not how it words the refusal; this is the mock's.
pub(crate) const BULK_METADATA_MESSAGE: &str =
    "bulk metadata values must be strings, numbers, booleans or null";

/// Checks a bulk body: `field` a non-empty array of at most [`MAX_BULK_RECORDS`] objects, each
/// with a non-empty string `id_field`, a `metadata` object if present and (for users) a string
/// `company_id` if present. Too many records is 413, as Userpilot answers.
///
/// Once every record passes those checks, the metadata values must be primitives (string,
/// number, boolean or null), as Userpilot documents for bulk identify. One object or array value
/// anywhere refuses the whole request with `invalid_metadata`, and the error names no record (no
/// index, no id), so that a client must find the bad record itself, for example by splitting the
/// request.
fn bulk_rows(obj: &Map<String, Value>, field: &str, id_field: &str) -> Result<(), FieldError> {
    let rows = match obj.get(field) {
        None | Some(Value::Null) => return Err(missing(field)),
        Some(Value::Array(rows)) => rows,
        Some(other) => {
            return Err(invalid(
                field,
                format!("{field} must be an array of records, got {}", kind(other)),
            ));
        }
    };
    if rows.is_empty() {
        return Err(invalid(
            field,
            format!("{field} must contain at least one record"),
        ));
    }
    if rows.len() > MAX_BULK_RECORDS {
        return Err(FieldError {
            field: field.to_owned(),
            code: "too_many_records",
            message: format!(
                "{field} holds {} records; a bulk request takes at most {MAX_BULK_RECORDS}",
                rows.len()
            ),
        });
    }
    for (idx, row) in rows.iter().enumerate() {
        let at = |name: &str| format!("{field}[{idx}].{name}");
        let Value::Object(row) = row else {
            let at = format!("{field}[{idx}]");
            let message = format!("{at} must be an object, got {}", kind(row));
            return Err(invalid(&at, message));
        };
        match row.get(id_field) {
            Some(Value::String(id)) if !id.is_empty() => {}
            None | Some(Value::Null) => return Err(missing(&at(id_field))),
            Some(other) => {
                let message = format!(
                    "{} must be a non-empty string, got {}",
                    at(id_field),
                    kind(other)
                );
                return Err(invalid(&at(id_field), message));
            }
        }
        if let Some(value) = row
            .get("metadata")
            .filter(|v| !v.is_null() && !v.is_object())
        {
            let message = format!("{} must be an object, got {}", at("metadata"), kind(value));
            return Err(invalid(&at("metadata"), message));
        }
        if let Some(value) = row
            .get("company_id")
            .filter(|v| !v.is_null() && !v.is_string())
        {
            let message = format!("{} must be a string, got {}", at("company_id"), kind(value));
            return Err(invalid(&at("company_id"), message));
        }
    }
    let nested = rows
        .iter()
        .filter_map(|row| row.get("metadata").and_then(Value::as_object))
        .flat_map(Map::values)
        .any(|value| value.is_object() || value.is_array());
    if nested {
        return Err(FieldError {
            field: field.to_owned(),
            code: "invalid_metadata",
            message: BULK_METADATA_MESSAGE.to_owned(),
        });
    }
    Ok(())
}

/// A complete answer: status, JSON body and extra headers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl Answer {
    /// An answer with a JSON body and no extra headers.
    pub(crate) fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// An answer in Userpilot's error shape:
    /// `{"errors":[{"error","error_code","message","details"}]}`.
    pub(crate) fn error(status: StatusCode, code: &str, message: &str, details: Value) -> Self {
        let reason = status.canonical_reason().unwrap_or("Error");
        Self::json(
            status,
            json!({
                "errors": [{
                    "error": reason,
                    "error_code": code,
                    "message": message,
                    "details": details,
                }]
            }),
        )
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_error(answer: &Answer) -> &Value {
        &answer.body["errors"][0]
    }

    #[test]
    fn identify_requires_a_user_id_string() {
        let ok = Endpoint::Identify.accept(&json!({"user_id": "u1", "metadata": {"a": 1}}));
        assert_eq!(ok, Answer::json(StatusCode::ACCEPTED, json!({})));

        let answer = Endpoint::Identify.accept(&json!({"metadata": {}}));
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(first_error(&answer)["message"], "user_id is required");
        assert_eq!(first_error(&answer)["error_code"], "missing_field");
        assert_eq!(first_error(&answer)["details"]["field"], "user_id");

        let answer = Endpoint::Identify.accept(&json!({"user_id": 5}));
        assert_eq!(
            first_error(&answer)["message"],
            "user_id must be a string, got a number"
        );
        let answer = Endpoint::Identify.accept(&json!({"user_id": "u", "metadata": [1]}));
        assert_eq!(
            first_error(&answer)["message"],
            "metadata must be an object, got an array"
        );
    }

    #[test]
    fn track_requires_user_id_and_event_name() {
        let answer = Endpoint::Track.accept(&json!({"event_name": "e"}));
        assert_eq!(first_error(&answer)["details"]["field"], "user_id");
        let answer = Endpoint::Track.accept(&json!({"user_id": "u", "event_name": ""}));
        assert_eq!(
            first_error(&answer)["message"],
            "event_name must not be empty"
        );
        let answer = Endpoint::Track.accept(&json!({"user_id": "u", "event_name": "e"}));
        assert_eq!(answer.status, StatusCode::ACCEPTED);
    }

    #[test]
    fn delete_counts_what_it_scheduled() {
        let answer = Endpoint::DeleteUsers.accept(&json!({"users": ["a", "b"]}));
        assert_eq!(answer.status, StatusCode::ACCEPTED);
        assert_eq!(
            answer.body,
            json!({"message": "2 users were scheduled for deletion", "scheduled": 2})
        );
        let answer = Endpoint::DeleteCompanies.accept(&json!({"companies": ["c"]}));
        assert_eq!(
            answer.body["message"],
            "1 company was scheduled for deletion"
        );
        let answer = Endpoint::DeleteCompanies.accept(&json!({"companies": ["c", "d"]}));
        assert_eq!(
            answer.body["message"],
            "2 companies were scheduled for deletion"
        );
        let answer = Endpoint::DeleteUsers.accept(&json!({"users": [""]}));
        assert_eq!(answer.status, StatusCode::ACCEPTED);
        let answer = Endpoint::DeleteUsers.accept(&json!({"users": ["a", 3]}));
        assert_eq!(
            first_error(&answer)["message"],
            "users[1] must be a string, got a number"
        );
        let answer = Endpoint::DeleteUsers.accept(&json!({"users": []}));
        assert_eq!(
            first_error(&answer)["message"],
            "users must contain at least one id"
        );
    }

    #[test]
    fn bulk_metadata_with_nested_values_is_refused_naming_no_record() {
        for (endpoint, field, id_field) in [
            (Endpoint::UsersBulkIdentify, "users", "user_id"),
            (Endpoint::CompaniesBulkIdentify, "companies", "company_id"),
        ] {
            let ok = endpoint.accept(&json!({ field: [
                {id_field: "a", "metadata": {"s": "x", "n": 1.5, "b": true, "z": null}},
                {id_field: "b", "metadata": null},
                {id_field: "c"},
            ]}));
            assert_eq!(ok.status, StatusCode::ACCEPTED, "{field}: {:?}", ok.body);
            for nested in [json!({"k": 1}), json!([1, 2]), json!([])] {
                let answer = endpoint.accept(&json!({ field: [
                    {id_field: "a", "metadata": {"plan": "pro"}},
                    {id_field: "secret-id-7", "metadata": {"plan": "pro", "bad": nested}},
                ]}));
                assert_eq!(answer.status, StatusCode::BAD_REQUEST);
                let error = first_error(&answer);
                assert_eq!(error["error_code"], "invalid_metadata");
                assert_eq!(error["message"], BULK_METADATA_MESSAGE);
                assert_eq!(error["details"], json!({ "field": field }));
                let text = answer.body.to_string();
                assert!(
                    !text.contains("secret-id-7") && !text.contains("[1]"),
                    "{text}"
                );
            }
            // The structural checks come first and still name their record.
            let answer = endpoint.accept(&json!({ field: [
                {id_field: "a", "metadata": {"bad": {"k": 1}}},
                {"metadata": {}},
            ]}));
            assert_eq!(
                first_error(&answer)["message"],
                format!("{field}[1].{id_field} is required")
            );
        }
        // The real-time endpoints still pass nested metadata through.
        let answer =
            Endpoint::Identify.accept(&json!({"user_id": "u", "metadata": {"a": {"b": 1}}}));
        assert_eq!(answer.status, StatusCode::ACCEPTED);
    }

    #[test]
    fn non_object_bodies_are_refused() {
        let answer = Endpoint::CompaniesIdentify.accept(&json!(["x"]));
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(first_error(&answer)["error_code"], "invalid_body");
    }

    #[test]
    fn routes_only_exact_paths() {
        assert_eq!(Endpoint::from_path("/v1/track"), Some(Endpoint::Track));
        assert_eq!(Endpoint::from_path("/v1/track/"), None);
        assert_eq!(Endpoint::from_path("//v1/track"), None);
        assert_eq!(
            Endpoint::from_path("/v1/users"),
            Some(Endpoint::DeleteUsers)
        );
    }
}
