//! String formats as Segment's validator checks them (ajv-formats in full mode, plus Segment's
//! `text` and `date-like`).
//!
//! `date`, `time`, `date-time`, `email`, `hostname`, `ipv4` and `uuid` follow ajv-formats' rules.
//! `ipv6` uses the standard library's parser, `regex` the `regex` crate's syntax, and the URI
//! formats check RFC 3986 characters and structure without resolving anything; these are close
//! approximations of ajv-formats' regular expressions.
//!
//! `date-like` (the format of `datetime` fields) accepts what Segment accepts with
//! `dayjs(value).isValid()` after its numeric shortcut:
//! - a number in JavaScript's own spelling of it (`String(Number(s)) === s`: `1612137600`, `-5`,
//!   `12.5`, `0`) is unix seconds, valid when finite and within JavaScript's date range; other
//!   numeric spellings (`1e10`, `0x10`, `+5`) are not numbers to dayjs and go on to the rules
//!   below, where `1e10` and `0x10` are not dates;
//! - anything matching dayjs' own pattern `YYYY[-/]M[-/]D[T ]h:m:s.SSS` where every part after
//!   the year is optional (`2021`, `20210201`, `2021-02-01 10:00`);
//! - what JavaScript's `Date` parses and this module supports: ISO 8601 with `Z` or an offset
//!   (`2021-02-01T10:00:00.000+02:00`), and the legacy forms built from month names, weekday names,
//!   day, year, `h:m[:s[.ms]]` times, `AM`/`PM`, `GMT`/`UTC`/`Z`/US zone names and `+hhmm` offsets
//!   (`Feb 1 2021`, `1 February 2021`, `Mon, 01 Feb 2021 10:00:00 GMT`, `Feb 1, 2021 10:00 PM`),
//!   and numeric `M/D/Y` dates (`2/1/2021`).
//!
//! Other exotic forms V8's date parser accepts are rejected; that is the documented difference.

use std::sync::LazyLock;

use regex::Regex;

use crate::fields::Format;

/// Whether `s` satisfies `format`.
pub(crate) fn check(format: Format, s: &str) -> bool {
    match format {
        Format::Date => is_date(s),
        Format::Time => is_time(s, false),
        Format::DateTime => is_date_time(s),
        Format::Uri => is_uri(s),
        Format::UriReference => is_uri_reference(s),
        Format::UriTemplate => is_uri_template(s),
        Format::Email => EMAIL.is_match(s),
        Format::Hostname => s.len() <= 253 && HOSTNAME.is_match(s),
        Format::Ipv4 => IPV4.is_match(s),
        Format::Ipv6 => s.parse::<std::net::Ipv6Addr>().is_ok(),
        Format::Regex => Regex::new(s).is_ok(),
        Format::Uuid => UUID.is_match(s),
        Format::Password | Format::Text => true,
        Format::DateLike => is_date_like(s),
    }
}

/// The words ajv-human-errors uses for a format in `must be a valid <label> string`.
pub(crate) fn label(format: Format) -> &'static str {
    match format {
        Format::DateTime => "date and time",
        Format::Time => "time",
        Format::Date => "date",
        Format::Email => "email address",
        Format::Hostname => "hostname",
        Format::Ipv4 => "IPv4 address",
        Format::Ipv6 => "IPv6 address",
        Format::Uri => "URI",
        Format::UriReference => "URI Reference",
        Format::UriTemplate => "URI-template",
        Format::Regex => "regular expression",
        other => other.name(),
    }
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this module, covered by its tests.
    Regex::new(pattern).unwrap_or_else(|err| panic!("invalid built-in pattern {pattern}: {err}"))
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
    )
});
static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[-0-9a-z]{0,61}[0-9a-z])?)*\.?$")
});
static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$")
});
static UUID: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^(?:urn:uuid:)?[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$"));
static DATE: LazyLock<Regex> = LazyLock::new(|| re(r"^(\d\d\d\d)-(\d\d)-(\d\d)$"));
static TIME: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^(\d\d):(\d\d):(\d\d(?:\.\d+)?)(z|[+-]\d\d(?::?\d\d)?)?$"));
static URI_SCHEME: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z][A-Za-z0-9+.\-]*:"));
static DAYJS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(\d{4})[-/]?(\d{1,2})?[-/]?(\d{0,2})[Tt\s]*(\d{1,2})?:?(\d{1,2})?:?(\d{1,2})?[.:]?(\d+)?$",
    )
});
static ISO: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^([+-]\d{6}|\d{4})(?:-(\d\d)(?:-(\d\d))?)?(?:T(\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?(Z|[+-]\d\d:\d\d)?)?$",
    )
});

fn is_leap_year(year: u32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn is_date(s: &str) -> bool {
    let Some(caps) = DATE.captures(s) else {
        return false;
    };
    let num = |i: usize| {
        caps.get(i)
            .and_then(|m| m.as_str().parse::<u32>().ok())
            .unwrap_or(0)
    };
    let (year, month, day) = (num(1), num(2), num(3));
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

fn is_time(s: &str, require_zone: bool) -> bool {
    let Some(caps) = TIME.captures(s) else {
        return false;
    };
    let hour: u32 = caps[1].parse().unwrap_or(99);
    let minute: u32 = caps[2].parse().unwrap_or(99);
    let second: f64 = caps[3].parse().unwrap_or(99.0);
    let has_zone = caps.get(4).is_some();
    let in_range = (hour <= 23 && minute <= 59 && second < 60.0)
        || (hour == 23 && minute == 59 && second < 61.0);
    in_range && (!require_zone || has_zone)
}

fn is_date_time(s: &str) -> bool {
    let parts: Vec<&str> = s
        .split(|c: char| c == 't' || c == 'T' || c.is_whitespace())
        .collect();
    parts.len() == 2 && is_date(parts[0]) && is_time(parts[1], true)
}

/// Whether every character may appear in a URI and every `%` starts a percent-encoding.
fn uri_chars_ok(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        let allowed = b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b);
        if !allowed {
            return false;
        }
        i += 1;
    }
    true
}

fn is_uri(s: &str) -> bool {
    URI_SCHEME.is_match(s) && uri_chars_ok(s)
}

fn is_uri_reference(s: &str) -> bool {
    uri_chars_ok(s)
}

fn is_uri_template(s: &str) -> bool {
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        let (literal, after) = rest.split_at(open);
        if literal.contains('}') || !uri_chars_ok(literal) {
            return false;
        }
        let Some(close) = after.find('}') else {
            return false;
        };
        let expr = &after[1..close];
        if expr.is_empty() || expr.contains('{') {
            return false;
        }
        rest = &after[close + 1..];
    }
    !rest.contains('}') && uri_chars_ok(rest)
}

/// Segment's `date-like` check (see the module docs).
pub(crate) fn is_date_like(s: &str) -> bool {
    if let Some(n) = super::js::to_number(s)
        && super::js::number_to_string(n) == s
    {
        // dayjs.unix(n) is valid when n seconds fit JavaScript's date range.
        return n.is_finite() && (n * 1000.0).abs() <= 8.64e15;
    }
    let ends_with_z = s.ends_with(['z', 'Z']);
    if !ends_with_z && DAYJS.is_match(s) {
        return true;
    }
    is_iso_date(s) || is_legacy_date(s)
}

fn is_iso_date(s: &str) -> bool {
    let Some(caps) = ISO.captures(s) else {
        return false;
    };
    let num = |i: usize| caps.get(i).map(|m| m.as_str().parse::<u32>().unwrap_or(99));
    let month_ok = num(2).is_none_or(|m| (1..=12).contains(&m));
    let day_ok = num(3).is_none_or(|d| (1..=31).contains(&d));
    let (hour, minute, second) = (num(4), num(5), num(6));
    let time_ok = match hour {
        None => true,
        Some(24) => minute == Some(0) && second.unwrap_or(0) == 0,
        Some(h) => h <= 23 && minute.is_some_and(|m| m <= 59) && second.unwrap_or(0) <= 59,
    };
    month_ok && day_ok && time_ok
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const ZONES: [&str; 12] = [
    "ut", "utc", "gmt", "z", "est", "edt", "cst", "cdt", "mst", "mdt", "pst", "pdt",
];

/// Whether `word` (lower case, three letters or more) abbreviates one of `names`.
fn find_prefix(names: &[&str], word: &str) -> Option<usize> {
    if word.len() < 3 {
        return None;
    }
    names.iter().position(|name| name.starts_with(word))
}

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Number(&'a str),
    Word(String),
    Symbol(char),
}

fn tokenize(s: &str) -> Option<Vec<Token<'_>>> {
    let mut tokens = Vec::new();
    let mut depth = 0usize;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '(' {
            depth += 1;
            continue;
        }
        if c == ')' {
            depth = depth.checked_sub(1)?;
            continue;
        }
        if depth > 0 || c.is_whitespace() {
            continue;
        }
        if c.is_ascii_digit() {
            let mut end = i + 1;
            while let Some(&(j, d)) = chars.peek() {
                if !d.is_ascii_digit() {
                    break;
                }
                end = j + 1;
                chars.next();
            }
            tokens.push(Token::Number(&s[i..end]));
        } else if c.is_alphabetic() {
            let mut word = c.to_lowercase().collect::<String>();
            while let Some(&(_, d)) = chars.peek() {
                if !d.is_alphabetic() {
                    break;
                }
                word.extend(d.to_lowercase());
                chars.next();
            }
            tokens.push(Token::Word(word));
        } else if ":./-,+".contains(c) {
            tokens.push(Token::Symbol(c));
        } else {
            return None;
        }
    }
    (depth == 0).then_some(tokens)
}

/// A subset of V8's legacy date parser (see the module docs).
fn is_legacy_date(s: &str) -> bool {
    let Some(tokens) = tokenize(s) else {
        return false;
    };
    let mut comps: Vec<(u32, usize)> = Vec::new();
    let mut named_month: Option<u32> = None;
    let mut time: Vec<u32> = Vec::new();
    let mut ampm: Option<bool> = None;
    let mut zone_seen = false;
    let mut read_number = false;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Number(digits) => {
                read_number = true;
                let Ok(value) = digits.parse::<u32>() else {
                    return false;
                };
                if matches!(tokens.get(i + 1), Some(Token::Symbol(':'))) && time.is_empty() {
                    // A time: h:m[:s[.ms]].
                    time.push(value);
                    i += 2;
                    while let Some(Token::Number(part)) = tokens.get(i) {
                        let Ok(part) = part.parse::<u32>() else {
                            return false;
                        };
                        time.push(part);
                        i += 1;
                        match tokens.get(i) {
                            Some(Token::Symbol(':')) if time.len() < 3 => i += 1,
                            Some(Token::Symbol('.')) if time.len() == 3 => {
                                i += 1;
                                if matches!(tokens.get(i), Some(Token::Number(_))) {
                                    i += 1;
                                }
                                break;
                            }
                            _ => break,
                        }
                    }
                    if time.len() < 2 {
                        return false;
                    }
                    continue;
                }
                if comps.len() == 3 {
                    return false;
                }
                comps.push((value, digits.len()));
                i += 1;
            }
            Token::Symbol('+' | '-')
                if (zone_seen || !time.is_empty())
                    && matches!(tokens.get(i + 1), Some(Token::Number(_))) =>
            {
                let Some(Token::Number(offset)) = tokens.get(i + 1) else {
                    return false;
                };
                i += 2;
                let (hours, minutes) = if offset.len() == 4 {
                    (
                        offset[..2].parse::<u32>().unwrap_or(99),
                        offset[2..].parse().unwrap_or(99),
                    )
                } else if offset.len() <= 2 {
                    let hours = offset.parse::<u32>().unwrap_or(99);
                    let mut minutes = 0;
                    if matches!(tokens.get(i), Some(Token::Symbol(':'))) {
                        let Some(Token::Number(m)) = tokens.get(i + 1) else {
                            return false;
                        };
                        minutes = m.parse().unwrap_or(99);
                        i += 2;
                    }
                    (hours, minutes)
                } else {
                    return false;
                };
                if hours > 23 || minutes > 59 {
                    return false;
                }
                zone_seen = true;
            }
            Token::Symbol(_) => i += 1,
            Token::Word(word) => {
                i += 1;
                if let Some(month) = find_prefix(&MONTHS, word) {
                    if named_month.is_some() {
                        return false;
                    }
                    named_month = Some(month as u32 + 1);
                } else if word == "am" || word == "pm" {
                    ampm = Some(word == "pm");
                } else if ZONES.contains(&word.as_str()) {
                    zone_seen = true;
                } else if word == "t" || find_prefix(&WEEKDAYS, word).is_some() {
                    // A separator or a weekday name: ignored.
                } else if read_number {
                    return false;
                }
            }
        }
    }
    compose(&comps, named_month, &time, ampm)
}

fn compose(
    comps: &[(u32, usize)],
    named_month: Option<u32>,
    time: &[u32],
    ampm: Option<bool>,
) -> bool {
    let is_day = |(value, digits): (u32, usize)| digits <= 2 && (1..=31).contains(&value);
    // The year may be any number; only the month and the day are range-checked.
    let (month, day) = match (named_month, comps) {
        (Some(m), [d]) => (m, d.0),
        (Some(m), [a, b]) if !is_day(*a) => (m, b.0),
        (Some(m), [a, _]) => (m, a.0),
        (None, [m]) => (m.0, 1),
        (None, [m, d]) => (m.0, d.0),
        (None, [_, m, d]) if !is_day(comps[0]) => (m.0, d.0),
        (None, [m, d, _]) => (m.0, d.0),
        _ => return false,
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    let (hour, minute, second) = (
        time.first().copied().unwrap_or(0),
        time.get(1).copied().unwrap_or(0),
        time.get(2).copied().unwrap_or(0),
    );
    let hour_ok = match ampm {
        Some(_) => (1..=12).contains(&hour) || (time.is_empty() && hour == 0),
        None => hour <= 24,
    };
    hour_ok && minute <= 59 && second <= 59
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_like_accepts_what_segment_accepts() {
        for ok in [
            "2021-01-01",
            "2021-01-01T00:00:00Z",
            "2021-01-01T00:00:00.000Z",
            "2021-02-01T10:00:00+02:00",
            "2021-02-01 10:00:00",
            "2021/02/01",
            "2021",
            "20210201",
            "1612137600",
            "-5",
            "0",
            "12.5",
            " 12",
            "+5",
            "Feb 1 2021",
            "February 1, 2021",
            "1 Feb 2021",
            "Mon, 01 Feb 2021 10:00:00 GMT",
            "Feb 1, 2021 10:00 PM",
            "2/1/2021",
            "Tue Mar 02 2021 00:00:00 GMT+0000 (Coordinated Universal Time)",
        ] {
            assert!(is_date_like(ok), "{ok} should be date-like");
        }
        for bad in [
            "garbage",
            "hello",
            "true",
            "false",
            "2021-13-01T00:00:00Z",
            "Feb 30x",
            "   ",
            "Infinity",
            "1e10",
            "1E10",
            "1e3",
            "0x10",
        ] {
            assert!(!is_date_like(bad), "{bad} should not be date-like");
        }
    }

    #[test]
    fn ajv_formats() {
        assert!(check(Format::Date, "2020-02-29"));
        assert!(!check(Format::Date, "2021-02-29"));
        assert!(!check(Format::Date, "2021-2-1"));
        assert!(check(Format::Time, "10:00:00"));
        assert!(check(Format::Time, "10:00:00.5+02:00"));
        assert!(!check(Format::Time, "25:00:00"));
        assert!(check(Format::DateTime, "2021-02-01T10:00:00Z"));
        assert!(check(Format::DateTime, "2021-02-01 10:00:00+02:00"));
        assert!(!check(Format::DateTime, "2021-02-01T10:00:00"));
        assert!(!check(Format::DateTime, "2021-02-01"));
        assert!(check(Format::Email, "a.b+c@example.co"));
        assert!(!check(Format::Email, "a@b"));
        assert!(!check(Format::Email, "not an email"));
        assert!(check(Format::Uri, "https://analytex.userpilot.io/"));
        assert!(check(Format::Uri, "mailto:a@example.com"));
        assert!(!check(Format::Uri, "/relative/path"));
        assert!(!check(Format::Uri, "89X4YJ9nBQcMn%#"));
        assert!(!check(Format::Uri, "https://exa mple.com"));
        assert!(check(Format::UriReference, "/relative/path?x=1"));
        assert!(check(Format::UriTemplate, "https://x.io/{id}/items{?page}"));
        assert!(!check(Format::UriTemplate, "https://x.io/{id"));
        assert!(check(Format::Hostname, "api.example.com"));
        assert!(!check(Format::Hostname, "-bad.example.com"));
        assert!(check(Format::Ipv4, "192.168.0.1"));
        assert!(!check(Format::Ipv4, "256.1.1.1"));
        assert!(check(Format::Ipv6, "::1"));
        assert!(check(Format::Ipv6, "2001:db8::8a2e:370:7334"));
        assert!(!check(Format::Ipv6, "2001:db8:::1"));
        assert!(check(Format::Uuid, "123e4567-e89b-12d3-a456-426614174000"));
        assert!(check(
            Format::Uuid,
            "urn:uuid:123E4567-E89B-12D3-A456-426614174000"
        ));
        assert!(!check(Format::Uuid, "123e4567e89b12d3a456426614174000"));
        assert!(check(Format::Regex, "^a+$"));
        assert!(!check(Format::Regex, "(unclosed"));
        assert!(check(Format::Text, ""));
        assert!(check(Format::Password, "anything"));
    }
}
