//! The Rust model of `actions/<dest>/destination.yaml` and of one action YAML file.
//!
//! Every type here derives `Deserialize`, `Serialize` and `JsonSchema`; unknown keys are rejected.
//! YAML keys are snake_case; field keys, setting keys and action keys keep Segment's camelCase as
//! data. The `///` docs on types and fields become the descriptions of the generated JSON Schema,
//! which editors show while a destination is being written.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A destination: the content of `destination.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct DestinationSpec {
    /// The destination's stable catalog id, for example `647f30a35eedd03afde0a1c3`.
    pub id: String,
    /// The destination's name as Segment's definition spells it, for example `Userpilot Cloud (Actions)`.
    pub name: String,
    /// The name shown in the catalog.
    pub display_name: String,
    /// The catalog slug, for example `actions-userpilot-cloud`.
    pub slug: String,
    /// Where the destination runs; only `cloud` is supported.
    pub mode: Mode,
    /// A one-paragraph summary of what the destination does.
    pub description: String,
    /// Catalog metadata, exported verbatim into the catalog entry (`catalog/<slug>.yml`). Only
    /// needed to publish the destination in Segment's catalog: without it no catalog entry is
    /// generated, and the destination builds, runs and has its docs page all the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogMeta>,
    /// The destination settings (Segment's authentication fields), in display order, keyed by setting key.
    #[serde(default)]
    pub settings: IndexMap<String, SettingSpec>,
    /// Defaults applied to every request the destination sends (Segment's `extendRequest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_defaults: Option<RequestDefaults>,
    /// Default rate limits; requests name one with `rate_limit`, and instances may override them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimitSpec>,
    /// The order of the actions (by action key) in the catalog export and the docs; when given it
    /// must name every action file exactly once. Without it actions are ordered by file name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// Presets: subscriptions created when the destination is connected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presets: Vec<PresetSpec>,
    /// The request that checks the settings (Segment's `testAuthentication`); its mappings see `{"settings"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_authentication: Option<RequestSpec>,
    /// The request that deletes a user (Segment's `onDelete`); its mappings see
    /// `{"payload": {"userId", "anonymousId"}, "settings"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<RequestSpec>,
    /// Beyond Segment: requests that delete many users or companies at once, for
    /// `actionkit delete-user` and `actionkit delete-company`; their mappings see
    /// `{"payload": {"ids": [...]}, "settings"}`.
    #[serde(default, skip_serializing_if = "DeletionsSpec::is_empty")]
    pub deletions: DeletionsSpec,
}

/// Requests that delete records in bulk, by kind of record.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct DeletionsSpec {
    /// Deletes users (`actionkit delete-user ID…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<DeletionSpec>,
    /// Deletes companies or accounts (`actionkit delete-company ID…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub companies: Option<DeletionSpec>,
}

impl DeletionsSpec {
    /// Whether no deletion is declared.
    pub fn is_empty(&self) -> bool {
        self.users.is_none() && self.companies.is_none()
    }
}

/// One bulk deletion: how many ids a request may carry, and the request.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct DeletionSpec {
    /// The most ids one request carries; more are sent in several requests, in order.
    #[schemars(range(min = 1))]
    pub max_ids: u32,
    /// The request; its mappings see `{"payload": {"ids": [...]}, "settings"}`.
    pub request: RequestSpec,
}

/// Where a destination runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Events are sent server-side from the dispatcher (Segment's cloud mode).
    Cloud,
}

/// Catalog metadata of a destination, as published in Segment's catalog.
///
/// Keys are snake_case here; the catalog export prints Segment's spelling (for example
/// `partner_owned` becomes `partnerOwned`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct CatalogMeta {
    /// The vendor's website.
    pub website: String,
    /// Publication status in the catalog, for example `PUBLIC` or `PUBLIC_BETA`.
    pub status: String,
    /// Catalog categories, for example `Analytics`.
    #[serde(default)]
    pub categories: Vec<String>,
    /// The logo image.
    pub logo: CatalogImage,
    /// The square mark image.
    pub mark: CatalogImage,
    /// Which Segment event methods the destination accepts.
    pub methods: CatalogMethods,
    /// Which source platforms the destination accepts.
    pub platforms: CatalogPlatforms,
    /// Segment endpoints the destination is available on, for example `US`.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Regions the destination is available in, for example `us-west-2`.
    #[serde(default)]
    pub regions: Vec<String>,
    /// The catalog page path, for example `connections/destinations/catalog/actions-userpilot-cloud`.
    pub url: String,
    /// Names the destination had before.
    #[serde(default)]
    pub previous_names: Vec<String>,
    /// Whether the destination is hidden from the catalog.
    #[serde(default)]
    pub hidden: bool,
    /// Whether the destination is owned and maintained by the partner.
    #[serde(default)]
    pub partner_owned: bool,
    /// Which connection modes the destination supports.
    pub connection_modes: CatalogConnectionModes,
    /// Catalog components (kept as opaque JSON values).
    #[serde(default)]
    pub components: Vec<Value>,
    /// Whether browser unbundling is supported.
    #[serde(default)]
    pub browser_unbundling_supported: bool,
    /// Whether browser unbundling is public.
    #[serde(default)]
    pub browser_unbundling_public: bool,
    /// Whether replay is supported.
    #[serde(default)]
    pub replay: bool,
}

/// An image in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct CatalogImage {
    /// Where the image is hosted.
    pub url: String,
}

/// Which Segment event methods a destination accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct CatalogMethods {
    /// Accepts `track` events.
    pub track: bool,
    /// Accepts `identify` events.
    pub identify: bool,
    /// Accepts `group` events.
    pub group: bool,
    /// Accepts `alias` events.
    pub alias: bool,
    /// Accepts `screen` events.
    pub screen: bool,
    /// Accepts `page` events.
    pub page: bool,
}

/// Which source platforms a destination accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct CatalogPlatforms {
    /// Browser sources.
    pub browser: bool,
    /// Mobile sources.
    pub mobile: bool,
    /// Server sources.
    pub server: bool,
    /// Warehouse sources.
    pub warehouse: bool,
    /// Cloud app object sources (catalog key `cloudAppObject`).
    pub cloud_app_object: bool,
    /// Linked audiences (catalog key `linkedAudiences`).
    pub linked_audiences: bool,
}

/// Connection modes a destination supports, per mode and platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct CatalogConnectionModes {
    /// Device mode support.
    pub device: CatalogModePlatforms,
    /// Cloud mode support.
    pub cloud: CatalogModePlatforms,
}

/// Platforms supported in one connection mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct CatalogModePlatforms {
    /// Web sources.
    pub web: bool,
    /// Mobile sources.
    pub mobile: bool,
    /// Server sources.
    pub server: bool,
}

/// One destination setting (Segment's `GlobalSetting`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SettingSpec {
    /// The label shown in the UI and used as the subject of validation messages.
    pub label: String,
    /// What the setting is for (Markdown); required.
    pub description: String,
    /// The value type.
    #[serde(rename = "type")]
    pub r#type: SettingType,
    /// Whether the setting must be present.
    #[serde(default)]
    pub required: bool,
    /// Whether the value is secret and must be redacted everywhere; `password` settings are always secret.
    #[serde(default)]
    pub secret: bool,
    /// The default value, which must match `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// A JSON Schema string format the value must satisfy (only for `string` settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<StringFormat>,
    /// The type the catalog export prints when it differs from `type` (Segment's catalog prints
    /// `string` for some `password` settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_type: Option<SettingType>,
}

impl SettingSpec {
    /// Whether the value must be redacted: `secret: true` or `type: password`.
    pub fn is_secret(&self) -> bool {
        self.secret || self.r#type == SettingType::Password
    }

    /// The type the catalog export prints: `catalog_type` if given, else `type`.
    pub fn effective_catalog_type(&self) -> SettingType {
        self.catalog_type.unwrap_or(self.r#type)
    }
}

/// The value type of a destination setting (Segment's `GlobalSetting` types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettingType {
    /// A string.
    String,
    /// A secret string, redacted everywhere.
    Password,
    /// A number.
    Number,
    /// A boolean.
    Boolean,
}

impl SettingType {
    /// The YAML spelling of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingType::String => "string",
            SettingType::Password => "password",
            SettingType::Number => "number",
            SettingType::Boolean => "boolean",
        }
    }
}

/// Defaults applied to every request of a destination (Segment's `extendRequest`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RequestDefaults {
    /// The base URL request paths are joined onto: a mapping-kit value over `{"settings": …}`.
    /// Required when any request has a `path`; a destination whose requests all have `url`
    /// needs none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<Value>,
    /// Headers sent with every request, keyed by lower-case header name; each value is a
    /// mapping-kit value over `{"settings": …}`. A value that resolves to
    /// `{"username": "…", "password": "…"}` (password optional) is sent as HTTP Basic
    /// authentication, `Basic ` and the base64 of `username:password`, as Segment's
    /// `extendRequest` does with its `username` and `password` options.
    #[serde(default)]
    pub headers: IndexMap<String, Value>,
    /// Signs the body of every request (see `sign` on a request, which overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<SignSpec>,
}

/// A named default rate limit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RateLimitSpec {
    /// The name requests use in `rate_limit`.
    pub key: String,
    /// How many requests are allowed per window.
    pub max_requests: u32,
    /// The window length in seconds.
    pub per_seconds: u32,
}

/// A preset: a subscription created automatically when the destination is connected.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct PresetSpec {
    /// The preset's display name.
    pub name: String,
    /// The key of the action the preset runs, for example `identifyUser`.
    pub action: String,
    /// The trigger (FQL) selecting the events the preset handles.
    pub trigger: String,
    /// The mapping: `defaults` for the action's field defaults, or an explicit field key → mapping object.
    pub mapping: PresetMapping,
    /// The preset kind (Segment's preset `type`); absent means `automatic`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<PresetType>,
    /// The event slug of a `specific_event` preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_slug: Option<String>,
    /// Whether an instance built from the presets runs this one; beyond-Segment presets are
    /// declared with `enabled: false` so that Segment's behaviour stays the default.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub enabled: bool,
}

fn default_true() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// The kind of a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresetType {
    /// Created automatically for every new instance.
    Automatic,
    /// Created for one specific event (Segment's `specificEvent`).
    SpecificEvent,
}

/// The mapping of a preset.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PresetMapping {
    /// The word `defaults`: use every field's default mapping.
    Defaults(DefaultsKeyword),
    /// An explicit mapping: field key → mapping-kit value.
    Fields(IndexMap<String, Value>),
}

/// The keyword `defaults`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DefaultsKeyword {
    /// Use the action's field defaults.
    Defaults,
}

/// An HTTP request a destination sends: per action, for test authentication, or on delete.
///
/// Its URL is either `path`, joined onto `request_defaults.base_url`, or `url`, an absolute URL
/// (exactly one of them). Its mappings (`url`, a mapped `method`, `headers`, `headers_from`, `json`) read the
/// request's context: `{"payload", "settings", "computed"}` for an action's request,
/// `{"items", "settings"}` for a batch request, `{"settings"}` for `test_authentication`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RequestSpec {
    /// The HTTP method: `GET`, `POST`, `PUT`, `PATCH`, `DELETE` or `HEAD`, or a mapping-kit
    /// object over the request's context that resolves to one of them per request (in any
    /// case), for example `{"@path": "$.payload.method"}`. A `GET` or `HEAD` request sends no
    /// body.
    pub method: MethodSpec,
    /// The path joined onto `request_defaults.base_url` with exactly one slash, for example
    /// `v1/identify`. It must not be an absolute URL; use `url` for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The absolute http(s) URL, instead of `path`: a string such as
    /// `https://api.example.com/v1/track`, or a mapping-kit value over the request's context, such
    /// as `{"@template": "https://{{settings.subdomain}}.example.com/v1/track"}` or
    /// `{"@path": "$.payload.url"}`. A URL that reads only `$.settings` is built and checked
    /// once, when the destination instance is created; any other per request, and a request
    /// whose URL is not an absolute http(s) URL fails with an error naming what it reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Value>,
    /// Headers of this request, keyed by lower-case header name; each value is a mapping-kit
    /// value over the request's context. They are added to `request_defaults.headers` and
    /// replace a default header of the same name; a header whose value resolves to nothing is
    /// not sent (the default of that name, if any, is).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, Value>,
    /// Headers whose names are data, not YAML: a mapping-kit value over the request's context
    /// that resolves to an object of header name → value (a string, number or boolean), such as
    /// `{"@path": "$.payload.headers"}` for a key-value field. Names are sent in lower case and
    /// must be HTTP tokens; values must be printable ASCII (tabs allowed). A request whose object
    /// breaks these rules fails with an error naming the header and what the mapping reads; an
    /// entry whose value is `null` is left out, and a mapping that resolves to nothing adds no
    /// header. The entries replace same-named `request_defaults.headers` and are replaced by
    /// this request's `headers`; the signature header, if any, is always the computed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_from: Option<Value>,
    /// Signs the exact body bytes sent with an HMAC in a header; overrides
    /// `request_defaults.sign` for this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<SignSpec>,
    /// The key of a rate limit declared in the destination's `rate_limits`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
    /// Statuses that mean "busy, try again later" for this request (Userpilot answers 409 while
    /// a bulk job runs): the request is sent again after a pause, and such answers do not count
    /// against the retry budget.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub busy_statuses: Vec<u16>,
    /// The key of the answer's JSON object that names what the destination made of the request
    /// (Userpilot's bulk `job_id`); its value is logged with the delivery and shown by `send`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// The name of a Rust hook (a snake_case identifier) whose JSON object result is placed at `$.computed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// The JSON body: a mapping-kit value over `{"payload", "settings", "computed"}`; absent means no body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
}

/// The method of a request: fixed, or a mapping resolved per request.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum MethodSpec {
    /// A fixed method.
    Fixed(HttpMethod),
    /// A mapping-kit object (a directive such as `{"@path": "$.payload.method"}`) that resolves
    /// to a method name per request.
    Mapped(serde_json::Map<String, Value>),
}

impl MethodSpec {
    /// The fixed method, if it is one.
    pub fn fixed(&self) -> Option<HttpMethod> {
        match self {
            MethodSpec::Fixed(method) => Some(*method),
            MethodSpec::Mapped(_) => None,
        }
    }
}

impl From<HttpMethod> for MethodSpec {
    fn from(method: HttpMethod) -> MethodSpec {
        MethodSpec::Fixed(method)
    }
}

/// A signature of the body: an HMAC of the exact bytes sent, written into a header, so that
/// the receiver can check who sent the request.
///
/// ```yaml
/// sign:
///   algorithm: hmac-sha256
///   secret: {"@path": "$.settings.sharedSecret"}
///   header: x-signature
///   encoding: hex
///   prefix: "sha256="
/// ```
///
/// A request without a body is signed over zero bytes. When `secret` resolves to nothing or to
/// `""` nothing is signed and no header is sent. The header derives from a secret and is shown
/// redacted by dry runs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SignSpec {
    /// The MAC algorithm.
    pub algorithm: SignAlgorithm,
    /// The key: a mapping-kit value over `{"settings": …}` only (it is resolved once per
    /// destination instance), normally `{"@path": "$.settings.<a secret setting>"}`.
    pub secret: Value,
    /// The lower-case name of the header that carries the signature, such as `x-signature`.
    pub header: String,
    /// How the MAC's bytes are written: `hex` (lower case, the default) or `base64`.
    #[serde(default)]
    pub encoding: SignEncoding,
    /// Text written before the encoded MAC, such as `sha256=`; empty by default.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// A MAC algorithm for [`SignSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SignAlgorithm {
    /// HMAC with SHA-1, as Segment's Webhook destination signs (keep it for receivers that
    /// expect it; prefer `hmac-sha256` otherwise).
    HmacSha1,
    /// HMAC with SHA-256.
    HmacSha256,
    /// HMAC with SHA-512.
    HmacSha512,
}

/// How a signature's bytes are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignEncoding {
    /// Lower-case hexadecimal.
    #[default]
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
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

impl HttpMethod {
    /// The method as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Head => "HEAD",
        }
    }
}

/// An action: the content of one action YAML file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ActionSpec {
    /// The action's stable catalog id.
    pub id: String,
    /// The action key (Segment's action slug), a camelCase identifier such as `identifyUser`.
    pub key: String,
    /// The action's display name (Segment's `title`).
    pub name: String,
    /// What the action does (Markdown); required.
    pub description: String,
    /// Where the action runs; only `cloud` is supported.
    pub platform: Platform,
    /// Whether the action is hidden from the UI.
    #[serde(default)]
    pub hidden: bool,
    /// The trigger (FQL) offered by default when a mapping is created (Segment's `defaultSubscription`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_trigger: Option<String>,
    /// Beyond Segment: the action is not part of Segment's definition of the destination. It is
    /// left out of the catalog entry (listed apart), marked in the docs page, and its presets are
    /// off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub beyond_segment: bool,
    /// The payload fields in display order (the order is the catalog's `sortOrder`), keyed by field key.
    #[serde(default)]
    pub fields: IndexMap<String, FieldSpec>,
    /// The request the action sends for one validated payload. An action needs `request`,
    /// `batch` or both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSpec>,
    /// The batch form (Segment's `performBatch`): payloads are gathered and sent together, many
    /// to a request. With both `request` and `batch`, a boolean field `enable_batching` (Segment's
    /// name) chooses per event; with `batch` alone every payload is batched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchSpec>,
    /// How the API applies this action's request: to one record found by id, merging what it is
    /// sent into what the record holds. Declaring it lets actionkit skip a request that would
    /// change nothing and merge requests for one record that wait together (an instance can
    /// switch both off with `send_only_changes: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merges_by_id: Option<MergesByIdSpec>,
}

/// How an API merges a request into the record it names.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct MergesByIdSpec {
    /// The kind of record, such as `user`; actions writing the same kind of record share what
    /// was last delivered to it.
    pub record: String,
    /// The key of the request body (or of the batch entry) that holds the record's id, such as
    /// `user_id`.
    pub id: String,
    /// Keys of the body whose objects the API merges key by key (Userpilot's `metadata`); every
    /// other key replaces what the record held under it, and keys not sent are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<String>,
}

/// The boolean field that chooses between an action's single and batch forms per event
/// (Segment's name); the runtime's `dispatch::BATCH_SWITCH_FIELD` reads the same field.
pub const BATCH_SWITCH_FIELD: &str = "enable_batching";

/// How an action sends payloads in batches.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct BatchSpec {
    /// The most payloads one request carries (Segment's `batch_size`).
    #[schemars(range(min = 1))]
    pub max_items: u32,
    /// The most bytes one request body may have (Segment's `batch_bytes`); a batch that would
    /// grow beyond it is sent as it is and the payload starts the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_bytes: Option<u64>,
    /// How long, in milliseconds, a batch waits to fill after its first payload before it is
    /// sent anyway.
    #[serde(default = "default_batch_wait_ms")]
    pub wait_ms: u32,
    /// Payload field keys whose values split batches (Segment's `batch_keys`): payloads are only
    /// sent together when they agree on every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// The name of a Rust hook run on each payload; its JSON object result is placed at
    /// `$.computed` for `item`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// One payload's entry in the batch: a mapping-kit value over `{"payload", "settings",
    /// "computed"}`; absent means the payload itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Value>,
    /// The request; its `json` is a mapping-kit value over `{"items": [...], "settings"}`, where
    /// `items` holds every payload's entry in event order.
    pub request: RequestSpec,
    /// Where a successful answer lists the entries the destination refused, for APIs that
    /// accept a batch in part; the others are delivered. Without it a 2xx delivers every entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_errors: Option<ItemErrorsSpec>,
}

/// Where a batch answer names the entries it refused.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ItemErrorsSpec {
    /// The key of the answer's JSON object holding the list of refused entries, such as `errors`.
    pub list: String,
    /// The key of each listed entry holding its 0-based position in the batch, such as `index`.
    pub index: String,
    /// The key of each listed entry holding why it was refused, such as `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn default_batch_wait_ms() -> u32 {
    1000
}

/// Where an action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Server-side, from the dispatcher.
    Cloud,
}

/// One payload field of an action, or one nested property of an `object` field.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FieldSpec {
    /// The field's stable catalog id (top-level fields only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The display name; it is also the subject of validation messages.
    pub label: String,
    /// What the field holds (Markdown); required on top-level fields, optional on nested properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The value type.
    #[serde(rename = "type")]
    pub r#type: FieldType,
    /// `true`, `false`, or a condition under which the field is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<Required>,
    /// Whether the value is an array of `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple: Option<bool>,
    /// Whether `null` is accepted as a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_null: Option<bool>,
    /// The allowed values, as plain values or `{label, value}` pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<Choice>>,
    /// The default mapping (mapping-kit) used by presets and new mappings; never applied during validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Placeholder text shown in an empty input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// Nested fields of an `object` field, keyed by property key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<IndexMap<String, FieldSpec>>,
    /// Whether an `object` field with `properties` keeps keys beyond them (otherwise they are stripped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_properties: Option<bool>,
    /// A JSON Schema string format the value must satisfy (only for `string` fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<StringFormat>,
    /// For `number` the smallest value, for `string` the shortest length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<serde_json::Number>,
    /// For `number` the largest value, for `string` the longest length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<serde_json::Number>,
    /// A condition under which the field is shown in the UI (no effect on validation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<ConditionSet>,
    /// Whether the field is hidden in the UI (Segment's `unsafe_hidden`): left out of the docs and
    /// of the catalog entry, where it keeps its place in the fields' `sortOrder`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    /// The UI category of the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<FieldCategory>,
    /// Whether the field's choices are loaded dynamically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<bool>,
    /// How the field is displayed in the UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_mode: Option<DisplayMode>,
    /// The default editor of an `object` field (Segment's `defaultObjectUI`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_object_ui: Option<DefaultObjectUi>,
    /// Whether the field is read-only in the UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Input methods the UI must not offer for this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_input_methods: Option<Vec<InputMethod>>,
}

impl FieldSpec {
    /// Whether the field is unconditionally required.
    pub fn is_required(&self) -> bool {
        matches!(self.required, Some(Required::Always(true)))
    }

    /// The condition under which the field is required, if it is conditionally required.
    pub fn required_condition(&self) -> Option<&ConditionSet> {
        match &self.required {
            Some(Required::When(conditions)) => Some(conditions),
            _ => None,
        }
    }
}

/// The value type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// A string.
    String,
    /// A long string (multi-line input).
    Text,
    /// A number.
    Number,
    /// An integer.
    Integer,
    /// A date: a string that parses as a date, or a number of seconds.
    Datetime,
    /// A boolean.
    Boolean,
    /// A secret string.
    Password,
    /// An object.
    Object,
}

impl FieldType {
    /// The YAML spelling of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Integer => "integer",
            FieldType::Datetime => "datetime",
            FieldType::Boolean => "boolean",
            FieldType::Password => "password",
            FieldType::Object => "object",
        }
    }
}

/// Whether a field is required: always, never, or under a condition.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Required {
    /// `true` (always required) or `false`.
    Always(bool),
    /// Required when the conditions hold.
    When(ConditionSet),
}

/// A set of conditions on sibling fields (conditional `required`, `depends_on`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ConditionSet {
    /// Whether all conditions (`all`, the default) or any one of them (`any`) must hold.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub r#match: Option<MatchMode>,
    /// The conditions.
    pub conditions: Vec<Condition>,
}

/// How conditions combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// Every condition must hold.
    All,
    /// At least one condition must hold.
    Any,
}

/// One condition on another field's value.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Condition {
    /// The key of the field the condition looks at; `parent.child` names a nested property.
    pub field_key: String,
    /// The comparison.
    pub operator: ConditionOperator,
    /// The value compared with; leaving it out compares with "absent" (Segment's `undefined`).
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Value")]
    pub value: Option<Value>,
}

/// Deserializes a present value, keeping `null` as `Some(Value::Null)`.
fn present_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// A condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConditionOperator {
    /// The field equals the value.
    Is,
    /// The field does not equal the value.
    IsNot,
}

/// One allowed value of a field.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Choice {
    /// A value with its own display label.
    Labeled(LabeledChoice),
    /// A plain value, displayed as itself.
    Plain(ChoiceValue),
}

impl Choice {
    /// The value of the choice.
    pub fn value(&self) -> &ChoiceValue {
        match self {
            Choice::Labeled(labeled) => &labeled.value,
            Choice::Plain(value) => value,
        }
    }
}

/// A choice with a display label.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct LabeledChoice {
    /// The label shown in the UI.
    pub label: String,
    /// The value stored in the payload.
    pub value: ChoiceValue,
}

/// A scalar choice value.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ChoiceValue {
    /// A string value.
    String(String),
    /// A number value.
    Number(serde_json::Number),
    /// A boolean value.
    Boolean(bool),
}

/// A JSON Schema string format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StringFormat {
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `date-time`.
    DateTime,
    /// `uri`.
    Uri,
    /// `uri-reference`.
    UriReference,
    /// `uri-template`.
    UriTemplate,
    /// `email`.
    Email,
    /// `hostname`.
    Hostname,
    /// `ipv4`.
    Ipv4,
    /// `ipv6`.
    Ipv6,
    /// `regex`.
    Regex,
    /// `uuid`.
    Uuid,
    /// `password`.
    Password,
    /// `text`.
    Text,
}

/// The UI category of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldCategory {
    /// Identifies the user or object.
    Identifier,
    /// Ordinary data.
    Data,
    /// Internal to the integration.
    Internal,
    /// Configuration.
    Config,
    /// Sync behaviour.
    Sync,
    /// Hashed personal data (Segment's `hashedPII`).
    HashedPii,
}

/// How a field is displayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisplayMode {
    /// Shown expanded.
    Expanded,
    /// Shown normally.
    Normal,
    /// Shown collapsed.
    Collapsed,
}

/// The default editor of an object field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DefaultObjectUi {
    /// Key-value editor (Segment's `keyvalue`).
    Keyvalue,
    /// Object editor.
    Object,
    /// Key-value editor only (Segment's `keyvalue:only`).
    #[serde(rename = "keyvalue:only")]
    KeyvalueOnly,
    /// Object editor only (Segment's `object:only`).
    #[serde(rename = "object:only")]
    ObjectOnly,
    /// Array editor.
    Arrayeditor,
}

/// A UI input method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputMethod {
    /// A literal value.
    Literal,
    /// A variable (event path).
    Variable,
    /// A function.
    Function,
    /// An enrichment.
    Enrichment,
    /// Free-form input.
    Freeform,
}
