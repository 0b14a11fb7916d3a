//! The static field model that generated destination code embeds.
//!
//! Code generation turns every action field of the YAML into a [`FieldDef`] and every destination
//! setting into a [`SettingDef`], emitted as `static` items made only of `&'static` data, so nothing
//! is allocated at start-up:
//!
//! ```
//! use actionkit_runtime::fields::{FieldDef, FieldType, Required};
//!
//! static USER_ID: FieldDef = FieldDef {
//!     key: "userId",
//!     label: "User ID",
//!     description: "The ID of the logged-in user.",
//!     field_type: FieldType::String,
//!     required: Required::Always,
//!     default: Some(r#"{"@path":"$.userId"}"#),
//!     ..FieldDef::BASE
//! };
//! assert_eq!(USER_ID.key, "userId");
//! ```
//!
//! Only the properties with a runtime effect (validation, coercion, defaults) live here; properties
//! that only drive a user interface (placeholder, depends_on, category, display mode, …) stay in the
//! YAML model of the `spec` crate. The validator compiles these definitions once into a
//! [`crate::validate::PayloadSchema`].

use serde_json::Value;

/// The type of an action field (Segment's `FieldTypeName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// A string.
    String,
    /// A long string; validated like a string with the always-valid `text` format.
    Text,
    /// Any finite number.
    Number,
    /// A number without a fractional part.
    Integer,
    /// A date: a string in a date-like format, or a number (unix time).
    Datetime,
    /// A boolean.
    Boolean,
    /// A string holding a secret; validated like a string with the always-valid `password` format.
    Password,
    /// A JSON object, optionally with declared [`FieldDef::properties`].
    Object,
}

impl FieldType {
    /// Segment's name of the type (`string`, `datetime`, …), as the YAML spells it.
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

/// A JSON-Schema string format a field may declare (Segment fields' `format`).
///
/// `datetime`, `password` and `text` fields ignore the declared format and use `date-like`,
/// `password` and `text` instead, as Segment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `date`: a full date such as `2021-02-01`.
    Date,
    /// `time`: a time such as `10:00:00` with an optional zone.
    Time,
    /// `date-time`: an RFC 3339 timestamp such as `2021-02-01T10:00:00Z`.
    DateTime,
    /// `uri`: an absolute URI.
    Uri,
    /// `uri-reference`: an absolute or relative URI reference.
    UriReference,
    /// `uri-template`: an RFC 6570 URI template.
    UriTemplate,
    /// `email`: an email address.
    Email,
    /// `hostname`: a DNS host name.
    Hostname,
    /// `ipv4`: a dotted-quad IPv4 address.
    Ipv4,
    /// `ipv6`: an IPv6 address.
    Ipv6,
    /// `regex`: a regular expression.
    Regex,
    /// `uuid`: a UUID, optionally prefixed by `urn:uuid:`.
    Uuid,
    /// `password`: any string.
    Password,
    /// `text`: any string.
    Text,
    /// `date-like`: Segment's format for `datetime` fields (see [`crate::validate`]).
    DateLike,
}

impl Format {
    /// The format's JSON-Schema name, for example `date-time`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Date => "date",
            Format::Time => "time",
            Format::DateTime => "date-time",
            Format::Uri => "uri",
            Format::UriReference => "uri-reference",
            Format::UriTemplate => "uri-template",
            Format::Email => "email",
            Format::Hostname => "hostname",
            Format::Ipv4 => "ipv4",
            Format::Ipv6 => "ipv6",
            Format::Regex => "regex",
            Format::Uuid => "uuid",
            Format::Password => "password",
            Format::Text => "text",
            Format::DateLike => "date-like",
        }
    }

    /// Looks a format up by its JSON-Schema name.
    pub fn from_name(name: &str) -> Option<Format> {
        const ALL: [Format; 15] = [
            Format::Date,
            Format::Time,
            Format::DateTime,
            Format::Uri,
            Format::UriReference,
            Format::UriTemplate,
            Format::Email,
            Format::Hostname,
            Format::Ipv4,
            Format::Ipv6,
            Format::Regex,
            Format::Uuid,
            Format::Password,
            Format::Text,
            Format::DateLike,
        ];
        ALL.into_iter().find(|format| format.name() == name)
    }
}

/// A constant JSON scalar: a choice value or the value a condition compares against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Literal {
    /// JSON `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    String(&'static str),
}

impl Literal {
    /// The literal as a JSON value; a non-finite number becomes `null`.
    pub fn to_value(self) -> Value {
        match self {
            Literal::Null => Value::Null,
            Literal::Bool(b) => Value::Bool(b),
            Literal::Number(n) => crate::validate::number_value(n).unwrap_or(Value::Null),
            Literal::String(s) => Value::String(s.to_owned()),
        }
    }
}

/// One allowed value of a field with choices (Segment's `choices`, which become the schema's `enum`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// The value sent in the payload.
    pub value: Literal,
    /// The label shown to people.
    pub label: &'static str,
}

/// How a condition compares the other field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionOperator {
    /// The field equals the value (`is`).
    Is,
    /// The field does not equal the value (`is_not`).
    IsNot,
}

/// One condition of a conditional requirement: `<field_key> is|is_not <value>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    /// The key of the field the condition looks at; `parent.child` addresses an object's sub-field.
    pub field_key: &'static str,
    /// The comparison.
    pub operator: ConditionOperator,
    /// The value compared against; `None` is JavaScript's `undefined` (the field is absent or null).
    pub value: Option<Literal>,
}

/// Whether all or any of the conditions must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionMatch {
    /// Every condition must hold (Segment's default, `match: all`).
    All,
    /// At least one condition must hold (`match: any`).
    Any,
}

/// The conditions under which a field becomes required.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conditions {
    /// How the conditions combine.
    pub mode: ConditionMatch,
    /// The conditions, in declaration order.
    pub conditions: &'static [Condition],
}

/// Whether a field must be present.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Required {
    /// The field is optional.
    No,
    /// The field must always be present.
    Always,
    /// The field must be present when the conditions hold (Segment's conditional `required`).
    When(&'static Conditions),
}

/// One field of an action (Segment's `InputField`), as generated code embeds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldDef {
    /// The field key, kept in Segment's camelCase (`userId`).
    pub key: &'static str,
    /// The label; it is the subject of validation messages (`User ID must be a string …`).
    pub label: &'static str,
    /// What the field means, for people.
    pub description: &'static str,
    /// The field type.
    pub field_type: FieldType,
    /// Whether the field is required.
    pub required: Required,
    /// The value is an array of `field_type` values.
    pub multiple: bool,
    /// `null` is an accepted value.
    pub allow_null: bool,
    /// The allowed values, if the field is restricted to a list.
    pub choices: Option<&'static [Choice]>,
    /// The sub-fields of an `object` field; `None` means any keys are allowed and kept untouched.
    pub properties: Option<&'static [FieldDef]>,
    /// For an object with `properties`: keep keys that are not declared (otherwise they are removed).
    pub additional_properties: bool,
    /// The string format, for `string` fields.
    pub format: Option<Format>,
    /// For `number`: the smallest allowed value; for `string`: the minimum length. Zero means none.
    pub minimum: Option<f64>,
    /// For `number`: the largest allowed value; for `string`: the maximum length. Zero means none.
    pub maximum: Option<f64>,
    /// The default mapping (mapping-kit JSON text), used for presets and new mappings; it is never
    /// applied during validation.
    pub default: Option<&'static str>,
}

impl FieldDef {
    /// An optional string field with empty key and label, to complete with struct-update syntax.
    pub const BASE: FieldDef = FieldDef {
        key: "",
        label: "",
        description: "",
        field_type: FieldType::String,
        required: Required::No,
        multiple: false,
        allow_null: false,
        choices: None,
        properties: None,
        additional_properties: false,
        format: None,
        minimum: None,
        maximum: None,
        default: None,
    };
}

/// The type of a destination setting (Segment's `GlobalSetting` types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

impl SettingType {
    /// Segment's name of the type, as the YAML spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingType::String => "string",
            SettingType::Password => "password",
            SettingType::Number => "number",
            SettingType::Boolean => "boolean",
        }
    }
}

/// One destination setting (Segment's authentication field), as generated code embeds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SettingDef {
    /// The setting key (`apiKey`).
    pub key: &'static str,
    /// The label; it is the subject of validation messages.
    pub label: &'static str,
    /// What the setting means, for people.
    pub description: &'static str,
    /// The setting type.
    pub setting_type: SettingType,
    /// Whether the setting must be present.
    pub required: bool,
    /// The string format of a `string` setting (for example `uri`).
    pub format: Option<Format>,
    /// The default value as JSON text (for example `"\"https://analytex.userpilot.io/\""`); shown
    /// to people and applied only by [`crate::validate::fill_setting_defaults`].
    pub default: Option<&'static str>,
    /// The value is a secret: it is redacted from dry-run output and never logged. `password`
    /// settings are always secret.
    pub secret: bool,
}

impl SettingDef {
    /// An optional string setting with empty key and label, to complete with struct-update syntax.
    pub const BASE: SettingDef = SettingDef {
        key: "",
        label: "",
        description: "",
        setting_type: SettingType::String,
        required: false,
        format: None,
        default: None,
        secret: false,
    };

    /// Whether the setting's value must be treated as a secret.
    pub fn is_secret(&self) -> bool {
        self.secret || self.setting_type == SettingType::Password
    }
}
