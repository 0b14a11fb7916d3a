//! The generators' view of one destination: everything they emit, already validated and ordered.
//!
//! It is built from the spec crate's loaded YAML (see `from_spec`) so that the generators do not
//! depend on how the YAML is parsed, and so that tests can build destinations directly.

use serde_json::{Map, Value};

/// One destination with its actions, as the generators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// The directory name under `actions/`, e.g. `userpilot`; it names the generated module.
    pub dir_name: String,
    /// The catalog id.
    pub id: String,
    /// The destination's name, e.g. `Userpilot Cloud (Actions)`.
    pub name: String,
    /// The display name shown in the catalog and the docs.
    pub display_name: String,
    /// The catalog slug, e.g. `actions-userpilot-cloud`.
    pub slug: String,
    /// `cloud` or `device`.
    pub mode: String,
    /// A one-paragraph summary.
    pub description: String,
    /// Catalog metadata exported verbatim, keyed as in the catalog (camelCase or snake_case as
    /// Segment's catalog spells them).
    pub catalog: Option<Map<String, Value>>,
    /// The settings in declaration order.
    pub settings: Vec<Setting>,
    /// Mapping-kit values applied to every request: the base URL and headers.
    pub request_defaults: RequestDefaults,
    /// Default rate limits.
    pub rate_limits: Vec<RateLimit>,
    /// Presets in declaration order.
    pub presets: Vec<Preset>,
    /// The request that checks credentials, if any.
    pub test_authentication: Option<Request>,
    /// The request that deletes a user, if any.
    pub on_delete: Option<Request>,
    /// Beyond Segment: the bulk deletion of users, if any.
    pub delete_users: Option<Deletion>,
    /// Beyond Segment: the bulk deletion of companies, if any.
    pub delete_companies: Option<Deletion>,
    /// The actions in file-name order.
    pub actions: Vec<Action>,
    /// The hand-written prose of the docs page (`docs.md`), empty when absent.
    pub docs_prose: String,
}

/// A bulk deletion: the most ids per request and the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Deletion {
    /// The most ids one request carries.
    pub max_ids: u32,
    /// The request, over `{"payload": {"ids"}, "settings"}`.
    pub request: Request,
}

/// The type of a destination setting (Segment's `GlobalSetting` types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingType {
    /// A string.
    String,
    /// A secret string.
    Password,
    /// A number.
    Number,
    /// A boolean.
    Boolean,
}

/// One destination setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// The settings key, e.g. `apiKey`.
    pub key: String,
    /// The label.
    pub label: String,
    /// The type.
    pub kind: SettingType,
    /// The type the catalog lists (Segment's catalog lists some `password` settings as `string`).
    pub catalog_kind: SettingType,
    /// Whether the setting must be given.
    pub required: bool,
    /// Whether the value is redacted everywhere.
    pub secret: bool,
    /// The description.
    pub description: String,
    /// The default value, if any.
    pub default: Option<Value>,
    /// A JSON-Schema string format, if any.
    pub format: Option<String>,
}

/// The base URL and headers applied to every request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestDefaults {
    /// Mapping-kit value over `{"settings": …}` giving the base URL.
    pub base_url: Option<Value>,
    /// Header name (lower case) → mapping-kit value over `{"settings": …}`.
    pub headers: Vec<(String, Value)>,
    /// The signature of every request's body, if any.
    pub sign: Option<Sign>,
}

/// A signature of a request's body (the YAML's `sign`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sign {
    /// The runtime's `SignAlgorithm` variant name, such as `HmacSha256`.
    pub algorithm: String,
    /// The YAML spelling of the algorithm, such as `hmac-sha256`.
    pub algorithm_name: String,
    /// Mapping-kit value over `{"settings": …}` giving the key.
    pub secret: Value,
    /// The lower-case header name.
    pub header: String,
    /// `hex` or `base64`.
    pub encoding: String,
    /// Text before the encoded MAC.
    pub prefix: String,
}

/// A default rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// The key requests refer to.
    pub key: String,
    /// At most this many requests …
    pub max_requests: u64,
    /// … per this many seconds.
    pub per_seconds: u64,
}

/// A preset: a trigger and a mapping for one action, enabled when the destination is added.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    /// The preset's name.
    pub name: String,
    /// The key of the action it runs.
    pub action_key: String,
    /// The FQL trigger.
    pub trigger: String,
    /// The mapping, already resolved: field key → mapping-kit value.
    pub mapping: Map<String, Value>,
    /// Whether the YAML said `mapping: defaults` (the runtime then uses the action's defaults).
    pub uses_defaults: bool,
    /// Whether an instance built from the presets runs it.
    pub enabled: bool,
}

/// One action.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// The catalog id.
    pub id: String,
    /// The key (Segment's camelCase slug), e.g. `identifyUser`.
    pub key: String,
    /// The name, e.g. `Identify User`.
    pub name: String,
    /// The description.
    pub description: String,
    /// `cloud` or `web`.
    pub platform: String,
    /// Whether the action is hidden in the catalog.
    pub hidden: bool,
    /// The default FQL trigger, if any.
    pub default_trigger: Option<String>,
    /// Beyond Segment: left out of Segment's catalog entry and marked in the docs.
    pub beyond_segment: bool,
    /// The fields in order (the order is the catalog's `sortOrder`).
    pub fields: Vec<Field>,
    /// The request the action sends for one payload, if it has a single form.
    pub request: Option<Request>,
    /// The batch form, if any.
    pub batch: Option<Batch>,
    /// How the API merges the action's request into the record it names, if declared.
    pub merges_by_id: Option<MergesById>,
}

/// How an API merges a request into the record it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergesById {
    /// The kind of record (`user`).
    pub record: String,
    /// The body key holding the record's id (`user_id`).
    pub id: String,
    /// Body keys whose objects are merged key by key (`metadata`).
    pub merged: Vec<String>,
}

impl Action {
    /// The hook the action's payloads go through, from either form (validation makes them agree).
    pub fn hook(&self) -> Option<&str> {
        self.request
            .as_ref()
            .and_then(|r| r.hook.as_deref())
            .or_else(|| self.batch.as_ref().and_then(|b| b.hook.as_deref()))
    }
}

/// The batch form of an action.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The most payloads per request.
    pub max_items: u32,
    /// The most body bytes per request, if limited.
    pub max_bytes: Option<u64>,
    /// How long a batch waits to fill, in milliseconds.
    pub wait_ms: u32,
    /// Payload field keys that split batches.
    pub keys: Vec<String>,
    /// The per-payload hook, if any.
    pub hook: Option<String>,
    /// One payload's entry, a mapping-kit value; `None` is the payload itself.
    pub item: Option<Value>,
    /// The request, over `{"items", "settings"}`.
    pub request: Request,
    /// Where a successful answer lists refused entries: list key, index key, message key.
    pub item_errors: Option<(String, String, Option<String>)>,
}

/// The type of an action field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A string.
    String,
    /// Long text.
    Text,
    /// A number.
    Number,
    /// An integer.
    Integer,
    /// A date as a string or a number.
    Datetime,
    /// A boolean.
    Boolean,
    /// A secret string.
    Password,
    /// An object.
    Object,
}

impl FieldType {
    /// The catalog spelling, e.g. `STRING`.
    pub fn catalog_name(self) -> &'static str {
        match self {
            Self::String => "STRING",
            Self::Text => "TEXT",
            Self::Number => "NUMBER",
            Self::Integer => "INTEGER",
            Self::Datetime => "DATETIME",
            Self::Boolean => "BOOLEAN",
            Self::Password => "PASSWORD",
            Self::Object => "OBJECT",
        }
    }
}

/// Whether a field is required.
#[derive(Debug, Clone, PartialEq)]
pub enum Required {
    /// Never required.
    No,
    /// Always required.
    Yes,
    /// Required when the conditions hold.
    When(Conditions),
}

/// A set of conditions on other fields (conditional `required` and `depends_on`).
#[derive(Debug, Clone, PartialEq)]
pub struct Conditions {
    /// `true` when any condition suffices; `false` when all must hold.
    pub match_any: bool,
    /// The conditions.
    pub conditions: Vec<Condition>,
}

/// One condition on another field.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The field key (dotted for a sub-field).
    pub field_key: String,
    /// `true` for `is`, `false` for `is_not`.
    pub is: bool,
    /// The value compared against; `None` stands for "undefined".
    pub value: Option<Value>,
}

/// One choice of a field with choices.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The label shown.
    pub label: String,
    /// The value.
    pub value: Value,
}

/// One action field (or sub-field of an object field).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The field key, e.g. `userId`.
    pub key: String,
    /// The catalog id, if any (sub-fields have none).
    pub id: Option<String>,
    /// The label.
    pub label: String,
    /// The type.
    pub kind: FieldType,
    /// Whether it is required.
    pub required: Required,
    /// The description (may be empty for sub-fields).
    pub description: String,
    /// The placeholder.
    pub placeholder: Option<String>,
    /// The default mapping.
    pub default: Option<Value>,
    /// Whether the value is an array of the type.
    pub multiple: bool,
    /// Whether `null` is accepted.
    pub allow_null: bool,
    /// The allowed values, if restricted.
    pub choices: Option<Vec<Choice>>,
    /// Sub-fields of an object field.
    pub properties: Vec<Field>,
    /// Whether an object with sub-fields keeps other keys.
    pub additional_properties: bool,
    /// A JSON-Schema string format.
    pub format: Option<String>,
    /// Minimum (number) or minimum length (string).
    pub minimum: Option<f64>,
    /// Maximum (number) or maximum length (string).
    pub maximum: Option<f64>,
    /// Whether the field is hidden in the UI.
    pub hidden: bool,
    /// Whether the choices are fetched dynamically.
    pub dynamic: bool,
    /// UI visibility conditions.
    pub depends_on: Option<Conditions>,
}

/// A request an action (or the destination) sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The HTTP method, upper case (`POST` when `method_mapping` chooses it per request).
    pub method: String,
    /// A mapping-kit value choosing the method per request, if the method is not fixed.
    pub method_mapping: Option<Value>,
    /// The path joined onto the base URL (empty with `url`).
    pub path: String,
    /// The absolute URL as a mapping-kit value (a string is a constant URL), if any.
    pub url: Option<Value>,
    /// Header name (lower case) → mapping-kit value over the request's context.
    pub headers: Vec<(String, Value)>,
    /// A mapping-kit value resolving to an object of header name → value, if any.
    pub headers_from: Option<Value>,
    /// The request's own signature, if any.
    pub sign: Option<Sign>,
    /// The rate-limit key, if any.
    pub rate_limit: Option<String>,
    /// The named Rust hook whose result is placed at `$.computed`, if any.
    pub hook: Option<String>,
    /// The JSON body as a mapping-kit value, if any.
    pub json: Option<Value>,
    /// Statuses that mean "busy, try later" without spending the retry budget.
    pub busy_statuses: Vec<u16>,
    /// The answer's key naming what the destination made of the request, if any.
    pub response_id: Option<String>,
}
