//! The filters of liquidjs's standard set that Segment leaves enabled, with liquidjs's argument
//! conversions; unknown filters pass their input through, disabled ones fail when they run.

use std::rc::Rc;
use std::sync::OnceLock;

use regex::Regex;

use super::DISABLED_FILTERS;
use super::ast::FilterCall;
use super::date;
use super::render::{Ctx, RResult, equals, lookup_in_item, read_property, read_size};
use super::value::{ArrView, LVal, is_js_space, js_compare, num_to_string, u16_len};

/// An evaluated filter argument.
pub(super) enum Arg<'k, 'a> {
    Pos(LVal<'a>),
    /// `name: value`, which reaches the filter as the pair `[name, value]`.
    Kw(&'k str, LVal<'a>),
}

impl<'a> Arg<'_, 'a> {
    fn into_value(self) -> LVal<'a> {
        match self {
            Arg::Pos(v) => v,
            Arg::Kw(k, v) => LVal::array(vec![LVal::string(k), v]),
        }
    }
}

macro_rules! filter_ids {
    ($($variant:ident = $name:literal,)*) => {
        /// A filter resolved by name when the template is parsed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum FilterId {
            $($variant,)*
            /// One Segment disables.
            Disabled,
            /// Not a liquidjs filter: the value passes through.
            Unknown,
        }

        impl FilterId {
            pub(super) fn lookup(name: &str) -> FilterId {
                if DISABLED_FILTERS.contains(&name) {
                    return FilterId::Disabled;
                }
                match name {
                    $($name => FilterId::$variant,)*
                    _ => FilterId::Unknown,
                }
            }
        }
    };
}

filter_ids! {
    Escape = "escape",
    XmlEscape = "xml_escape",
    EscapeOnce = "escape_once",
    StripHtml = "strip_html",
    Abs = "abs",
    AtLeast = "at_least",
    AtMost = "at_most",
    Ceil = "ceil",
    DividedBy = "divided_by",
    Floor = "floor",
    Minus = "minus",
    Plus = "plus",
    Modulo = "modulo",
    Times = "times",
    Round = "round",
    UrlDecode = "url_decode",
    UrlEncode = "url_encode",
    CgiEscape = "cgi_escape",
    UriEscape = "uri_escape",
    Slugify = "slugify",
    Join = "join",
    Last = "last",
    First = "first",
    Size = "size",
    Sum = "sum",
    Compact = "compact",
    Push = "push",
    Unshift = "unshift",
    Pop = "pop",
    Shift = "shift",
    Slice = "slice",
    Where = "where",
    Sample = "sample",
    Date = "date",
    DateToXmlschema = "date_to_xmlschema",
    DateToRfc822 = "date_to_rfc822",
    DateToString = "date_to_string",
    DateToLongString = "date_to_long_string",
    Append = "append",
    Prepend = "prepend",
    Lstrip = "lstrip",
    Downcase = "downcase",
    Upcase = "upcase",
    Remove = "remove",
    RemoveFirst = "remove_first",
    RemoveLast = "remove_last",
    Rstrip = "rstrip",
    Split = "split",
    Strip = "strip",
    StripNewlines = "strip_newlines",
    Squish = "squish",
    Capitalize = "capitalize",
    Replace = "replace",
    ReplaceFirst = "replace_first",
    ReplaceLast = "replace_last",
    Truncate = "truncate",
    Truncatewords = "truncatewords",
    NormalizeWhitespace = "normalize_whitespace",
    NumberOfWords = "number_of_words",
    Base64Encode = "base64_encode",
    Base64Decode = "base64_decode",
    Sha256 = "sha256",
    HmacSha256 = "hmac_sha256",
    Default = "default",
    Raw = "raw",
    Jsonify = "jsonify",
    ToInteger = "to_integer",
    Json = "json",
    Inspect = "inspect",
}

/// Argument `i`, `undefined` when missing.
fn arg<'a>(args: &[LVal<'a>], i: usize) -> LVal<'a> {
    args.get(i).cloned().unwrap_or(LVal::Undef)
}

/// A numeric argument as the math filters see it: `toNumber` of a given argument, `NaN` (from
/// `undefined`) for a missing one.
fn num_arg(args: &[LVal<'_>], i: usize) -> f64 {
    args.get(i).map_or(f64::NAN, LVal::liquid_number)
}

/// liquidjs's `toArray`: nil is `[]`, an array itself, anything else a one-item array.
fn to_array<'a>(v: &LVal<'a>) -> Vec<LVal<'a>> {
    let v = v.to_value();
    if v.is_nil() {
        return Vec::new();
    }
    match v.as_array() {
        Some(a) => a.to_vec(),
        None => vec![v],
    }
}

fn num(n: f64) -> LVal<'static> {
    LVal::Num(n)
}

fn s<'a>(text: String) -> LVal<'a> {
    LVal::string(text)
}

/// Applies one filter.
pub(super) fn apply<'a>(
    ctx: &mut Ctx<'a>,
    call: &'a FilterCall,
    v: LVal<'a>,
    raw_args: Vec<Arg<'a, 'a>>,
) -> RResult<LVal<'a>> {
    use FilterId as F;
    let n_args = raw_args.len();
    if call.id == F::Default {
        return default_filter(v, raw_args);
    }
    let args: Vec<LVal<'a>> = raw_args.into_iter().map(Arg::into_value).collect();
    let a0 = || arg(&args, 0);
    let text = |x: &LVal<'a>| x.liquid_string();
    Ok(match call.id {
        F::Disabled => return Err(format!("filter \"{}\" is disabled", call.name)),
        F::Unknown | F::Raw => v,
        F::Default => v,
        F::Escape | F::XmlEscape => {
            let t = text(&v);
            ctx.use_memory(u16_len(&t) as f64)?;
            s(escape(&t, false))
        }
        F::EscapeOnce => {
            let t = text(&v);
            ctx.use_memory(u16_len(&t) as f64)?;
            s(escape(&t, true))
        }
        F::StripHtml => {
            let t = text(&v);
            ctx.use_memory(u16_len(&t) as f64)?;
            s(strip_html(&t))
        }
        F::Abs => num(v.liquid_number().abs()),
        F::AtLeast | F::AtMost => {
            let mut acc = v.liquid_number();
            for a in &args {
                let x = a.liquid_number();
                acc = if call.id == F::AtLeast {
                    js_max(acc, x)
                } else {
                    js_min(acc, x)
                };
            }
            num(acc)
        }
        F::Ceil => num(v.liquid_number().ceil()),
        F::Floor => num(v.liquid_number().floor()),
        F::DividedBy => {
            let q = v.liquid_number() / num_arg(&args, 0);
            let int = arg(&args, 1).liquid_number() != 0.0;
            num(if int { q.floor() } else { q })
        }
        F::Minus => num(v.liquid_number() - num_arg(&args, 0)),
        F::Plus => num(v.liquid_number() + num_arg(&args, 0)),
        F::Times => num(v.liquid_number() * num_arg(&args, 0)),
        F::Modulo => {
            let (x, m) = (v.liquid_number(), num_arg(&args, 0));
            num(((x % m) + m) % m)
        }
        F::Round => num(round(v.liquid_number(), a0().liquid_number())),
        F::UrlDecode => s(url_decode(&text(&v))?),
        F::UrlEncode => s(encode_uri(&text(&v), COMPONENT_SAFE).replace("%20", "+")),
        F::CgiEscape => {
            let enc = encode_uri(&text(&v), COMPONENT_SAFE).replace("%20", "+");
            let mut out = String::with_capacity(enc.len());
            for c in enc.chars() {
                match c {
                    '!' | '\'' | '(' | ')' | '*' => out.push_str(&format!("%{:X}", c as u32)),
                    c => out.push(c),
                }
            }
            s(out)
        }
        F::UriEscape => s(encode_uri(&text(&v), URI_SAFE)
            .replace("%5B", "[")
            .replace("%5D", "]")),
        F::Slugify => s(slugify(&text(&v), &a0(), &arg(&args, 1))),
        F::Join => {
            let items = to_array(&v);
            let sep_arg = a0().to_value();
            let sep: Rc<str> = if sep_arg.is_nil() {
                Rc::from(" ")
            } else {
                sep_arg.liquid_string()
            };
            let mut out = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&sep);
                }
                if !item.is_nil() {
                    item.write_js(&mut out);
                }
            }
            let cost = u16_len(&sep) * items.len().saturating_sub(1)
                + items.iter().map(|i| u16_len(&i.js_string())).sum::<usize>();
            ctx.use_memory(cost as f64)?;
            s(out)
        }
        F::First => array_like_at(&v.to_value(), false),
        F::Last => array_like_at(&v.to_value(), true),
        F::Size => {
            if v.is_nil() {
                num(0.0)
            } else {
                match read_size(&v) {
                    LVal::Num(n) => num(n),
                    _ => num(0.0),
                }
            }
        }
        F::Sum => {
            let prop = a0();
            let path: Option<Vec<Rc<str>>> = prop
                .js_truthy()
                .then(|| prop.liquid_string().split('.').map(Rc::from).collect());
            let mut total = 0.0;
            for item in to_array(&v) {
                let data = match &path {
                    Some(keys) => keys
                        .iter()
                        .fold(item, |cur, k| read_property(&cur, &LVal::Str(k.clone()))),
                    None => item,
                };
                let n = data.js_number();
                total += if n.is_nan() { 0.0 } else { n };
            }
            num(total)
        }
        F::Compact => {
            let items = to_array(&v);
            ctx.use_memory(items.len() as f64)?;
            LVal::array(
                items
                    .into_iter()
                    .filter(|x| !x.to_value().is_nil())
                    .collect(),
            )
        }
        F::Push => {
            let mut items = to_array(&v);
            ctx.use_memory((items.len() + 1) as f64)?;
            items.push(a0());
            LVal::array(items)
        }
        F::Unshift => {
            let mut items = to_array(&v);
            ctx.use_memory(items.len() as f64)?;
            items.insert(0, a0());
            LVal::array(items)
        }
        F::Pop => {
            let mut items = to_array(&v);
            ctx.use_memory(items.len() as f64)?;
            items.pop();
            LVal::array(items)
        }
        F::Shift => {
            let mut items = to_array(&v);
            ctx.use_memory(items.len() as f64)?;
            if !items.is_empty() {
                items.remove(0);
            }
            LVal::array(items)
        }
        F::Slice => slice(ctx, &v, &a0(), &arg(&args, 1))?,
        F::Where => where_filter(ctx, &v, &a0(), &arg(&args, 1), n_args >= 2)?,
        F::Sample => sample(ctx, &v, &a0())?,
        F::Date => date::date_filter(ctx, &v, &a0(), &arg(&args, 1))?,
        F::DateToXmlschema => {
            date::date_filter(ctx, &v, &LVal::string("%Y-%m-%dT%H:%M:%S%:z"), &LVal::Undef)?
        }
        F::DateToRfc822 => date::date_to_rfc822(ctx, &v)?,
        F::DateToString => date::date_to_string(ctx, &v, "%b", &a0(), &arg(&args, 1))?,
        F::DateToLongString => date::date_to_string(ctx, &v, "%B", &a0(), &arg(&args, 1))?,
        F::Append | F::Prepend => {
            if n_args != 1 {
                let name = if call.id == F::Append {
                    "append"
                } else {
                    "prepend"
                };
                return Err(format!("{name} expect 2 arguments"));
            }
            let (l, r) = (text(&v), text(&a0()));
            ctx.use_memory((u16_len(&l) + u16_len(&r)) as f64)?;
            if call.id == F::Append {
                s(format!("{l}{r}"))
            } else {
                s(format!("{r}{l}"))
            }
        }
        F::Lstrip | F::Rstrip | F::Strip => {
            let t = text(&v);
            ctx.use_memory(u16_len(&t) as f64)?;
            let chars = a0();
            if chars.js_truthy() {
                let set: Vec<char> = chars.liquid_string().chars().collect();
                let mut dedup = set.clone();
                dedup.sort_unstable();
                dedup.dedup();
                let cost = if call.id == F::Strip {
                    dedup.len()
                } else {
                    u16_len(&chars.liquid_string())
                };
                ctx.use_memory(cost as f64)?;
                let pat = |c: char| set.contains(&c);
                s(match call.id {
                    F::Lstrip => t.trim_start_matches(pat).to_owned(),
                    F::Rstrip => t.trim_end_matches(pat).to_owned(),
                    _ => t.trim_matches(pat).to_owned(),
                })
            } else {
                s(match call.id {
                    F::Lstrip => t.trim_start_matches(is_js_space).to_owned(),
                    F::Rstrip => t.trim_end_matches(is_js_space).to_owned(),
                    _ => t.trim_matches(is_js_space).to_owned(),
                })
            }
        }
        F::Downcase | F::Upcase => {
            let t = text(&v);
            ctx.use_memory(u16_len(&t) as f64)?;
            s(if call.id == F::Upcase {
                t.to_uppercase()
            } else {
                t.to_lowercase()
            })
        }
        F::Remove => {
            let (t, p) = (text(&v), text(&a0()));
            ctx.use_memory((u16_len(&t) + u16_len(&p)) as f64)?;
            s(if p.is_empty() {
                t.to_string()
            } else {
                t.replace(&*p, "")
            })
        }
        F::RemoveFirst | F::ReplaceFirst => {
            let (t, p) = (text(&v), text(&a0()));
            let r = if call.id == F::ReplaceFirst {
                text(&arg(&args, 1))
            } else {
                Rc::from("")
            };
            ctx.use_memory((u16_len(&t) + u16_len(&p) + u16_len(&r)) as f64)?;
            s(t.replacen(&*p, &r, 1))
        }
        F::RemoveLast | F::ReplaceLast => {
            let (t, p) = (text(&v), text(&a0()));
            let r = if call.id == F::ReplaceLast {
                text(&arg(&args, 1))
            } else {
                Rc::from("")
            };
            ctx.use_memory((u16_len(&t) + u16_len(&p) + u16_len(&r)) as f64)?;
            match t.rfind(&*p) {
                Some(i) => s(format!("{}{}{}", &t[..i], r, &t[i + p.len()..])),
                None => LVal::Str(t),
            }
        }
        F::Replace => {
            let (t, p, r) = (text(&v), text(&a0()), text(&arg(&args, 1)));
            let parts = if p.is_empty() {
                t.chars().count()
            } else {
                t.matches(&*p).count() + 1
            };
            let cost = u16_len(&t) as f64
                + (parts.saturating_sub(1) as f64) * (u16_len(&r) as f64 - u16_len(&p) as f64);
            ctx.use_memory(cost)?;
            if p.is_empty() {
                let mut out = String::new();
                for (i, c) in t.chars().enumerate() {
                    if i > 0 {
                        out.push_str(&r);
                    }
                    out.push(c);
                }
                s(out)
            } else {
                s(t.replace(&*p, &r))
            }
        }
        F::Split => {
            let t = text(&v);
            ctx.use_memory(u16_len(&t) as f64)?;
            LVal::array(split(&t, &text(&a0())))
        }
        F::StripNewlines => {
            let t = text(&v);
            ctx.use_memory(u16_len(&t) as f64)?;
            s(t.replace("\r\n", "").replace('\n', ""))
        }
        F::Squish | F::NormalizeWhitespace => {
            let t = text(&v);
            ctx.use_memory(u16_len(&t) as f64)?;
            let collapsed = collapse_spaces(&t);
            s(if call.id == F::Squish {
                collapsed.trim_matches(is_js_space).to_owned()
            } else {
                collapsed
            })
        }
        F::Capitalize => {
            let t = text(&v);
            ctx.use_memory(u16_len(&t) as f64)?;
            let mut chars = t.chars();
            let mut out = String::with_capacity(t.len());
            if let Some(c) = chars.next() {
                if (c as u32) < 0x10000 {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
            }
            out.push_str(&chars.as_str().to_lowercase());
            s(out)
        }
        F::Truncate => truncate(ctx, v, &a0(), &arg(&args, 1))?,
        F::Truncatewords => truncatewords(ctx, &v, &a0(), &arg(&args, 1))?,
        F::NumberOfWords => {
            let t = text(&v);
            ctx.use_memory(u16_len(&t) as f64)?;
            num(number_of_words(&t, &a0()) as f64)
        }
        F::Base64Encode => {
            let t = text(&v);
            ctx.use_memory(u16_len(&t) as f64)?;
            s(base64_encode(t.as_bytes()))
        }
        F::Base64Decode => {
            let t = text(&v);
            ctx.use_memory(u16_len(&t) as f64)?;
            match base64_decode(&t) {
                Some(bytes) => s(String::from_utf8_lossy(&bytes).into_owned()),
                None => return Err("invalid base64 provided to base64_decode".to_owned()),
            }
        }
        F::Sha256 => {
            let t = text(&v);
            ctx.use_memory(u16_len(&t) as f64)?;
            s(hex(&sha256(t.as_bytes())))
        }
        F::HmacSha256 => {
            let (t, k) = (text(&v), text(&a0()));
            ctx.use_memory((u16_len(&t) + u16_len(&k)) as f64)?;
            s(hex(&hmac_sha256(k.as_bytes(), t.as_bytes())))
        }
        F::Json | F::Jsonify | F::Inspect => {
            let indent = json_indent(&a0());
            let mut out = String::new();
            let mut cost = 0.0;
            if write_json(&v, &indent, 0, &mut out, &mut cost) {
                ctx.use_memory(cost)?;
                s(out)
            } else {
                LVal::Undef
            }
        }
        F::ToInteger => num(v.js_number()),
    })
}

fn js_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn js_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// The `default` filter; its extra arguments are `[key, value]` entries (`allow_false: true`).
fn default_filter<'a>(v: LVal<'a>, args: Vec<Arg<'_, 'a>>) -> RResult<LVal<'a>> {
    let mut iter = args.into_iter();
    let default = iter.next().map_or(LVal::Undef, Arg::into_value);
    let value = v.to_value();
    if let Some(n) = value.length() {
        return Ok(if n > 0 { value } else { default });
    }
    if matches!(value, LVal::Bool(false)) {
        let mut allow = LVal::Undef;
        for entry in iter {
            let entry = entry.into_value();
            if !entry.is_object() {
                return Err(format!(
                    "Iterator value {} is not an entry object",
                    entry.js_string()
                ));
            }
            if let Some(a) = entry.as_array() {
                let key = a.get(0).unwrap_or(LVal::Undef);
                if strict_key_eq(&key, "allow_false") {
                    allow = a.get(1).unwrap_or(LVal::Undef);
                }
            }
        }
        if allow.js_truthy() {
            return Ok(LVal::Bool(false));
        }
    }
    Ok(if value.truthy() { value } else { default })
}

fn strict_key_eq(key: &LVal<'_>, name: &str) -> bool {
    key.as_str() == Some(name)
}

/// `first`/`last` on an array-like value (a non-empty string or an array; else `""`).
fn array_like_at<'a>(v: &LVal<'a>, last: bool) -> LVal<'a> {
    if let Some(a) = v.as_array() {
        let n = a.len();
        if n == 0 {
            return LVal::Undef;
        }
        return a.get(if last { n - 1 } else { 0 }).unwrap_or(LVal::Undef);
    }
    if let Some(t) = v.as_str() {
        if t.is_empty() {
            return LVal::string("");
        }
        let n = u16_len(t);
        let i = if last { n - 1 } else { 0 };
        return super::render::string_unit(t, i).map_or(LVal::Undef, LVal::string);
    }
    if let LVal::Obj(o) = v {
        if let Some(serde_json::Value::Number(len)) = o.get("length") {
            let len = len.as_f64().unwrap_or(0.0);
            if len != 0.0 && !len.is_nan() {
                let idx = if last { len - 1.0 } else { 0.0 };
                return super::render::own_property(v, &LVal::Num(idx));
            }
        }
    }
    LVal::string("")
}

const COMPONENT_SAFE: &str = "-_.!~*'()";
const URI_SAFE: &str = "-_.!~*'();/?:@&=+$,#";

/// JavaScript's `encodeURIComponent`/`encodeURI`: UTF-8 bytes as `%XX` except the safe set.
fn encode_uri(text: &str, safe: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || safe.contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `url_decode`: `+` is a space; each run of `%XX` escapes is decoded as UTF-8.
fn url_decode(text: &str) -> RResult<String> {
    let text = text.replace('+', " ");
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut plain_start = 0;
    while i < b.len() {
        let escape_at = |j: usize| -> Option<u8> {
            if b.get(j) == Some(&b'%') {
                Some(hex_digit(*b.get(j + 1)?)? * 16 + hex_digit(*b.get(j + 2)?)?)
            } else {
                None
            }
        };
        if escape_at(i).is_none() {
            i += 1;
            continue;
        }
        out.push_str(&text[plain_start..i]);
        let mut bytes = Vec::new();
        while let Some(byte) = escape_at(i) {
            bytes.push(byte);
            i += 3;
        }
        match String::from_utf8(bytes) {
            Ok(decoded) => out.push_str(&decoded),
            Err(_) => return Err("URI malformed".to_owned()),
        }
        plain_start = i;
    }
    out.push_str(&text[plain_start..]);
    Ok(out)
}

fn slugify(text: &str, mode: &LVal<'_>, cased: &LVal<'_>) -> String {
    static DEFAULT: OnceLock<Option<Regex>> = OnceLock::new();
    static PRETTY: OnceLock<Option<Regex>> = OnceLock::new();
    static ASCII: OnceLock<Option<Regex>> = OnceLock::new();
    static RAW: OnceLock<Option<Regex>> = OnceLock::new();
    let mode_name = match mode {
        LVal::Undef => Rc::from("default"),
        other => other.js_string(),
    };
    let re = match &*mode_name {
        "default" | "latin" => {
            DEFAULT.get_or_init(|| Regex::new(r"[^\p{M}\p{L}\p{Nd}]+").ok())
        }
        "pretty" => PRETTY.get_or_init(|| Regex::new(r"[^\p{M}\p{L}\p{Nd}._~!$&'()+,;=@]+").ok()),
        "ascii" => ASCII.get_or_init(|| Regex::new(r"[^A-Za-z0-9]+").ok()),
        "raw" => RAW.get_or_init(|| {
            Regex::new(r"[\t\n\x0B\x0C\r \u{a0}\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}\u{feff}]+").ok()
        }),
        _ => &None,
    };
    let mut out = text.to_owned();
    if let Some(re) = re {
        if &*mode_name == "latin" {
            out = remove_accents(&out);
        }
        out = re.replace_all(&out, "-").into_owned();
        if out.starts_with('-') {
            out.remove(0);
        }
        if out.ends_with('-') {
            out.pop();
        }
    }
    if cased.js_truthy() {
        out
    } else {
        out.to_lowercase()
    }
}

fn remove_accents(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            'à'..='å' => out.push('a'),
            'æ' => out.push_str("ae"),
            'ç' => out.push('c'),
            'è'..='ë' => out.push('e'),
            'ì'..='ï' => out.push('i'),
            'ð' => out.push('d'),
            'ñ' => out.push('n'),
            'ò'..='ö' | 'ø' => out.push('o'),
            'ù'..='ü' => out.push('u'),
            'ý' | 'ÿ' => out.push('y'),
            'ß' => out.push_str("ss"),
            'œ' => out.push_str("oe"),
            'þ' => out.push_str("th"),
            'ẞ' => out.push_str("SS"),
            'Œ' => out.push_str("OE"),
            'Þ' => out.push_str("TH"),
            c => out.push(c),
        }
    }
    out
}

fn escape(text: &str, once: bool) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let b = text.as_bytes();
    for (i, c) in text.char_indices() {
        match c {
            '&' => {
                if once && is_entity(&b[i + 1..]) {
                    out.push('&');
                } else {
                    out.push_str("&amp;");
                }
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether `rest` (after `&`) is `name;` or `#digits;`.
fn is_entity(rest: &[u8]) -> bool {
    let (body, digits) = match rest.first() {
        Some(b'#') => (&rest[1..], true),
        _ => (rest, false),
    };
    let n = body
        .iter()
        .take_while(|c| {
            if digits {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        })
        .count();
    n > 0 && body.get(n) == Some(&b';')
}

fn strip_html(text: &str) -> String {
    let mut blocks: Vec<(&str, &str, bool)> = vec![
        ("<script", "</script>", true),
        ("<style", "</style>", true),
        ("<!--", "-->", true),
        ("<", ">", true),
    ];
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let Some(rel) = text[i..].find('<') else {
            out.push_str(&text[i..]);
            return out;
        };
        let lt = i + rel;
        out.push_str(&text[i..lt]);
        for block in blocks.iter_mut() {
            let (opener, closer, alive) = block;
            if !*alive || !text[lt..].starts_with(*opener) {
                continue;
            }
            match text[lt + opener.len()..].find(*closer) {
                Some(e) => {
                    i = lt + opener.len() + e + closer.len();
                    break;
                }
                None => *alive = false,
            }
        }
        if i <= lt {
            out.push_str(&text[lt..]);
            return out;
        }
    }
    out
}

/// liquidjs's `round`: shift the decimal point in the string form, round half up, shift back.
fn round(v: f64, places: f64) -> f64 {
    let shift = |n: f64, exp: f64| -> f64 {
        let text = num_to_string(n);
        let (mantissa, power) = match text.split_once('e') {
            Some((m, p)) => (m.to_owned(), super::value::str_to_number(p)),
            None => (text, 0.0),
        };
        super::value::str_to_number(&format!("{mantissa}e{}", num_to_string(power + exp)))
    };
    let scaled = shift(v.abs(), places);
    // `NaN` fails the comparison too.
    if scaled.is_nan() || scaled > 9_007_199_254_740_991.0 {
        return v;
    }
    let floor = scaled.floor();
    let rounded = if scaled - floor >= 0.5 {
        floor + 1.0
    } else {
        floor
    };
    let back = shift(rounded, -places);
    if v < 0.0 { -back } else { back }
}

/// `split`, Ruby style: a single space splits on runs of ASCII white space; trailing empty
/// strings are dropped.
fn split<'a>(text: &str, sep: &str) -> Vec<LVal<'a>> {
    let ascii_ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r');
    if sep == " " {
        return text
            .split(ascii_ws)
            .filter(|p| !p.is_empty())
            .map(LVal::string)
            .collect();
    }
    let mut parts: Vec<LVal<'a>> = if sep.is_empty() {
        text.chars().map(|c| LVal::string(c.to_string())).collect()
    } else {
        text.split(sep).map(LVal::string).collect()
    };
    while parts.last().and_then(|p| p.as_str()) == Some("") {
        parts.pop();
    }
    parts
}

/// Replaces each run of JavaScript white space with one space.
fn collapse_spaces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if is_js_space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

/// Advances `count` code points from unit offset `from` (JavaScript's loop `i < count`).
fn advance_code_points(units: &[u16], from: usize, count: f64) -> usize {
    let mut index = from;
    let mut i = 0.0;
    while i < count && index < units.len() {
        let high = (0xd800..0xdc00).contains(&units[index]);
        let pair = high
            && units
                .get(index + 1)
                .is_some_and(|u| (0xdc00..0xe000).contains(u));
        index += if pair { 2 } else { 1 };
        i += 1.0;
    }
    index
}

fn truncate<'a>(
    ctx: &mut Ctx<'a>,
    v: LVal<'a>,
    len: &LVal<'a>,
    tail: &LVal<'a>,
) -> RResult<LVal<'a>> {
    let text = v.liquid_string();
    let tail = match tail {
        LVal::Undef => Rc::from("..."),
        other => other.liquid_string(),
    };
    ctx.use_memory((u16_len(&text) + u16_len(&tail)) as f64)?;
    let l = match len {
        LVal::Undef => 50.0,
        other => other.js_number(),
    };
    let units: Vec<u16> = text.encode_utf16().collect();
    if units.len() as f64 <= l || advance_code_points(&units, 0, l) >= units.len() {
        return Ok(v);
    }
    let keep = js_max(l - tail.chars().count() as f64, 0.0);
    let end = advance_code_points(&units, 0, keep);
    let mut out = String::from_utf16_lossy(&units[..end]);
    out.push_str(&tail);
    Ok(LVal::string(out))
}

fn truncatewords<'a>(
    ctx: &mut Ctx<'a>,
    v: &LVal<'a>,
    words: &LVal<'a>,
    tail: &LVal<'a>,
) -> RResult<LVal<'a>> {
    let text = v.liquid_string();
    let tail = match tail {
        LVal::Undef => Rc::from("..."),
        other => other.liquid_string(),
    };
    ctx.use_memory((u16_len(&text) + u16_len(&tail)) as f64)?;
    let mut n = match words {
        LVal::Undef => 15.0,
        other => other.js_number(),
    };
    if n <= 0.0 {
        n = 1.0;
    }
    let limit = n.floor();
    let mut kept: Vec<&str> = Vec::new();
    let mut last_index = 0;
    let mut exhausted = false;
    let mut rest = text.char_indices().peekable();
    while (kept.len() as f64) < limit {
        // Find the next run of non-space characters.
        while rest.peek().is_some_and(|(_, c)| is_js_space(*c)) {
            rest.next();
        }
        let Some(&(start, _)) = rest.peek() else {
            exhausted = true;
            break;
        };
        let mut end = text.len();
        while let Some(&(i, c)) = rest.peek() {
            if is_js_space(c) {
                end = i;
                break;
            }
            rest.next();
        }
        kept.push(&text[start..end]);
        last_index = end;
    }
    if exhausted {
        last_index = 0;
    }
    if (kept.len() as f64) < limit || last_index >= text.len() {
        return Ok(LVal::Str(text.clone()));
    }
    Ok(LVal::string(format!("{}{}", kept.join(" "), tail)))
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x3400..=0x4DBF | 0x3040..=0x309F | 0x30A0..=0x30FF | 0xAC00..=0xD7AF)
}

fn number_of_words(text: &str, mode: &LVal<'_>) -> usize {
    let t = text.trim_matches(is_js_space);
    if t.is_empty() {
        return 0;
    }
    let words = || t.split(is_js_space).filter(|w| !w.is_empty()).count();
    let cjk_count = || {
        let cjk = t.chars().filter(|c| is_cjk(*c)).count();
        let runs = t
            .split(|c: char| is_cjk(c) || is_js_space(c))
            .filter(|w| !w.is_empty())
            .count();
        cjk + runs
    };
    match mode.as_str() {
        Some("cjk") => cjk_count(),
        Some("auto") if t.chars().any(is_cjk) => cjk_count(),
        _ => words(),
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes base64 after liquidjs's validity check (`atob`'s): ASCII whitespace is ignored, one or
/// two `=` may end a text whose length is a multiple of four, and bits past the last byte are
/// dropped. `None` when the check fails.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const ATOB: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let mut clean: String = text
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' '))
        .collect();
    if clean.len() % 4 == 0 {
        if clean.ends_with("==") {
            clean.truncate(clean.len() - 2);
        } else if clean.ends_with('=') {
            clean.truncate(clean.len() - 1);
        }
    }
    if clean.len() % 4 == 1
        || !clean
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        return None;
    }
    ATOB.decode(clean).ok()
}

/// The SHA-256 digest of `data`.
fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).to_vec()
}

/// HMAC-SHA-256 of `data` under `key` (any key length is valid for HMAC).
fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::Mac as _;
    match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn slice<'a>(
    ctx: &mut Ctx<'a>,
    v: &LVal<'a>,
    begin: &LVal<'a>,
    length: &LVal<'a>,
) -> RResult<LVal<'a>> {
    let v = v.to_value();
    if v.is_nil() {
        return Ok(LVal::array(Vec::new()));
    }
    let length = match length {
        LVal::Undef => LVal::Num(1.0),
        other => other.clone(),
    };
    let zero = LVal::Num(0.0);
    let is_neg = |x: &LVal<'a>| js_compare(x, &zero) == Some(std::cmp::Ordering::Less);
    if let Some(arr) = v.as_array() {
        let n = arr.len() as f64;
        let begin = if is_neg(begin) {
            LVal::Num(n + begin.js_number())
        } else {
            begin.clone()
        };
        if is_neg(&begin) || is_neg(&length) {
            return Ok(LVal::array(Vec::new()));
        }
        ctx.use_memory(length.js_number())?;
        let end = js_add(&begin, &length);
        let clamp = |x: f64| -> usize {
            let x = if x.is_nan() { 0.0 } else { x.trunc() };
            let x = if x < 0.0 { (n + x).max(0.0) } else { x.min(n) };
            x as usize
        };
        let (a, b) = (clamp(begin.js_number()), clamp(end.js_number()));
        let items: Vec<LVal<'a>> = if a < b {
            (a..b).filter_map(|i| arr.get(i)).collect()
        } else {
            Vec::new()
        };
        return Ok(LVal::array(items));
    }
    let text = v.liquid_string();
    let units: Vec<u16> = text.encode_utf16().collect();
    let begin = if is_neg(begin) {
        let cps = text.chars().count() as f64;
        cps + begin.js_number()
    } else {
        begin.js_number()
    };
    if begin < 0.0 || is_neg(&length) {
        return Ok(LVal::string(""));
    }
    ctx.use_memory(length.js_number())?;
    let start = advance_code_points(&units, 0, begin);
    let end = advance_code_points(&units, start, length.js_number());
    Ok(LVal::string(String::from_utf16_lossy(&units[start..end])))
}

/// JavaScript's `a + b`.
fn js_add<'a>(a: &LVal<'a>, b: &LVal<'a>) -> LVal<'a> {
    let (pa, pb) = (a.to_primitive(), b.to_primitive());
    if pa.as_str().is_some() || pb.as_str().is_some() {
        return LVal::string(format!("{}{}", pa.js_string(), pb.js_string()));
    }
    LVal::Num(pa.js_number() + pb.js_number())
}

fn where_filter<'a>(
    ctx: &mut Ctx<'a>,
    v: &LVal<'a>,
    property: &LVal<'a>,
    expected: &LVal<'a>,
    has_expected: bool,
) -> RResult<LVal<'a>> {
    let items = to_array(v);
    ctx.use_memory(items.len() as f64)?;
    let path = super::property_path(&property.liquid_string())?;
    let mut out = Vec::new();
    for item in items {
        let value = match path.split_first() {
            None => LVal::Undef,
            Some((first, rest)) => {
                let mut cur = lookup_in_item(&item, first);
                for k in rest {
                    cur = read_property(&cur, k);
                }
                cur
            }
        };
        let keep = if !has_expected || matches!(expected, LVal::Undef) {
            value.to_value().truthy()
        } else {
            equals(&value, expected)
        };
        if keep {
            out.push(item);
        }
    }
    Ok(LVal::array(out))
}

/// `sample` without randomness: the first item (or the first `count` items).
fn sample<'a>(ctx: &mut Ctx<'a>, v: &LVal<'a>, count: &LVal<'a>) -> RResult<LVal<'a>> {
    let v = v.to_value();
    if v.is_nil() {
        return Ok(LVal::array(Vec::new()));
    }
    let items: Vec<LVal<'a>> = match v.as_array() {
        Some(a) => a.to_vec(),
        None => v
            .liquid_string()
            .chars()
            .map(|c| LVal::string(c.to_string()))
            .collect(),
    };
    ctx.use_memory(v.length().unwrap_or(items.len()) as f64)?;
    let n = match count {
        LVal::Undef => 1.0,
        other => other.js_number(),
    };
    if n == 1.0 {
        return Ok(items.into_iter().next().unwrap_or(LVal::Undef));
    }
    let take = if n.is_nan() || n <= 0.0 {
        0
    } else {
        n as usize
    };
    Ok(LVal::array(items.into_iter().take(take).collect()))
}

/// `JSON.stringify`'s indentation argument: a number of spaces (at most 10) or a string prefix.
fn json_indent(space: &LVal<'_>) -> String {
    match space {
        LVal::Num(n) => {
            let k = n.clamp(0.0, 10.0) as usize;
            " ".repeat(k)
        }
        other => match other.as_str() {
            Some(t) => t.chars().take(10).collect(),
            None => String::new(),
        },
    }
}

/// `JSON.stringify` with liquidjs's memory charge per visited value; `false` when the value has
/// no JSON form (`undefined`).
fn write_json(v: &LVal<'_>, indent: &str, depth: usize, out: &mut String, cost: &mut f64) -> bool {
    let newline = |out: &mut String, depth: usize| {
        if !indent.is_empty() {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(indent);
            }
        }
    };
    match v {
        LVal::Undef => return false,
        LVal::Null => {
            *cost += 4.0;
            out.push_str("null");
        }
        LVal::Bool(b) => {
            let t = if *b { "true" } else { "false" };
            *cost += t.len() as f64;
            out.push_str(t);
        }
        LVal::Num(n) => {
            let t = if n.is_finite() {
                num_to_string(*n)
            } else {
                "null".to_owned()
            };
            *cost += t.len() as f64;
            out.push_str(&t);
        }
        LVal::Str(_) | LVal::JStr(_) => {
            let t = v.as_str().unwrap_or_default();
            *cost += u16_len(t) as f64;
            out.push('"');
            for c in t.chars() {
                super::lexer::push_json_char(c, out);
            }
            out.push('"');
        }
        LVal::Arr(_) | LVal::JArr(_) => {
            let arr = v.as_array();
            let n = arr.map_or(0, ArrView::len);
            *cost += (n + 1) as f64;
            out.push('[');
            if let Some(arr) = arr {
                for (i, item) in arr.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    if !write_json(&item, indent, depth + 1, out, cost) {
                        out.push_str("null");
                    }
                }
            }
            if n > 0 {
                newline(out, depth);
            }
            out.push(']');
        }
        LVal::Obj(o) => {
            *cost += 2.0;
            out.push('{');
            let mut first = true;
            for (k, item) in o.iter() {
                if !first {
                    out.push(',');
                }
                first = false;
                newline(out, depth + 1);
                out.push('"');
                for c in k.chars() {
                    super::lexer::push_json_char(c, out);
                }
                out.push_str(if indent.is_empty() { "\":" } else { "\": " });
                write_json(&LVal::from_json(item), indent, depth + 1, out, cost);
            }
            if !first {
                newline(out, depth);
            }
            out.push('}');
        }
        LVal::NilDrop | LVal::EmptyDrop | LVal::BlankDrop | LVal::BlockDrop => {
            *cost += 2.0;
            out.push_str("{}");
        }
    }
    if out.len() > super::render::MAX_STRING_BYTES {
        *cost = f64::INFINITY;
    }
    true
}
