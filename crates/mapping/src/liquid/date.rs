//! The date filters: liquidjs's input rules, JavaScript's `Date` string parsing (ISO 8601 and
//! V8's legacy forms), and liquidjs's `strftime`, all in UTC (Segment's time zone).

use std::rc::Rc;

use super::render::{Ctx, MAX_STRING_BYTES, MEMORY_MESSAGE, RResult};
use super::value::{LVal, num_to_string, u16_len};

const MS_PER_DAY: f64 = 86_400_000.0;

/// liquidjs's default date format.
const DEFAULT_FORMAT: &str = "%A, %B %-e, %Y at %-l:%M %P %z";

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A date to format: the instant, and the offset (minutes west of UTC, like
/// `getTimezoneOffset`) it is shown in.
struct LiquidDate {
    /// Milliseconds since the epoch.
    time: f64,
    offset: f64,
    /// The zone name given as the third argument, if any.
    zone: Option<String>,
    /// Whether a zone argument was given at all.
    fixed: bool,
}

impl LiquidDate {
    /// The wall-clock fields in the display zone.
    fn fields(&self) -> Fields {
        Fields::of(self.time - self.offset * 60_000.0)
    }
}

/// Calendar fields of a time value, read in UTC.
struct Fields {
    year: i64,
    /// 0-based.
    month: i64,
    day: i64,
    hours: i64,
    minutes: i64,
    seconds: i64,
    ms: i64,
    /// 0 = Sunday.
    weekday: i64,
}

impl Fields {
    fn of(t: f64) -> Fields {
        let days = (t / MS_PER_DAY).floor();
        let ms_in_day = (t - days * MS_PER_DAY) as i64;
        let days = days as i64;
        let (year, month, day) = civil_from_days(days);
        Fields {
            year,
            month: month - 1,
            day,
            hours: ms_in_day / 3_600_000,
            minutes: ms_in_day / 60_000 % 60,
            seconds: ms_in_day / 1000 % 60,
            ms: ms_in_day % 1000,
            weekday: (days + 4).rem_euclid(7),
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (`month` 1-12).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (`month` 1-12) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// JavaScript's `MakeDate(MakeDay(y, m, d), time)` followed by `TimeClip`.
fn make_time(year: i64, month0: i64, day: i64, ms_in_day: f64) -> f64 {
    if year.abs() > 400_000 {
        return f64::NAN;
    }
    let y = year + month0.div_euclid(12);
    let m = month0.rem_euclid(12) + 1;
    let days = days_from_civil(y, m, 1) + day - 1;
    time_clip(days as f64 * MS_PER_DAY + ms_in_day)
}

fn time_clip(t: f64) -> f64 {
    if !t.is_finite() || t.abs() > 8.64e15 {
        f64::NAN
    } else {
        t.trunc() + 0.0
    }
}

/// The current time in milliseconds.
fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64)
}

/// liquidjs's `parseDate`: `None` for nil, else the time value (maybe `NaN`).
fn parse_input(v: &LVal<'_>) -> Option<f64> {
    let v = v.to_value();
    match &v {
        LVal::Undef | LVal::Null => None,
        LVal::Num(n) => Some(time_clip(n * 1000.0)),
        LVal::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        LVal::Str(_) | LVal::JStr(_) => {
            let s = v.as_str().unwrap_or_default();
            if s == "now" || s == "today" {
                Some(now_ms())
            } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                Some(time_clip(super::value::str_to_number(s) * 1000.0))
            } else {
                Some(parse_js_date(s))
            }
        }
        LVal::Arr(_) | LVal::JArr(_) => Some(parse_js_date(&v.js_string())),
        _ => Some(f64::NAN),
    }
}

/// The offset in minutes west of UTC for a zone argument; an error for zones we do not know.
fn zone_offset(zone: &LVal<'_>) -> RResult<(f64, Option<String>)> {
    if let Some(name) = zone.as_str() {
        return match fixed_zone(name) {
            Some(minutes) => Ok((minutes, Some(name.to_owned()))),
            None => Err(format!("Invalid time zone specified: {name}")),
        };
    }
    Ok((zone.js_number(), None))
}

/// Zone names that are a fixed offset from UTC (`UTC`, `Etc/GMT+5`, …), in minutes west.
fn fixed_zone(name: &str) -> Option<f64> {
    let lower = name.to_ascii_lowercase();
    let base = lower.strip_prefix("etc/").unwrap_or(&lower);
    match base {
        "utc" | "gmt" | "uct" | "universal" | "zulu" | "greenwich" | "gmt0" | "gmt+0" | "gmt-0" => {
            return Some(0.0);
        }
        _ => {}
    }
    if !lower.starts_with("etc/gmt") {
        return None;
    }
    let rest = &base[3..];
    let (sign, digits) = match rest.as_bytes().first() {
        Some(b'+') => (1.0, &rest[1..]),
        Some(b'-') => (-1.0, &rest[1..]),
        _ => return None,
    };
    let hours: u32 = digits.parse().ok()?;
    let max = if sign > 0.0 { 12 } else { 14 };
    if digits.len() > 2 || digits.starts_with('0') || hours > max {
        return None;
    }
    // `Etc/GMT+5` is five hours west of Greenwich.
    Some(sign * f64::from(hours) * 60.0)
}

/// Builds the date to format; `Ok(None)` when the input is nil or not a valid date.
fn liquid_date(v: &LVal<'_>, zone: &LVal<'_>) -> RResult<Option<LiquidDate>> {
    let Some(time) = parse_input(v) else {
        return Ok(None);
    };
    let (offset, name, fixed) = match zone {
        LVal::Undef => (0.0, None, false),
        z => {
            let (o, n) = zone_offset(z)?;
            (o, n, true)
        }
    };
    let display = time_clip(time - offset * 60_000.0);
    if display.is_nan() || time.is_nan() {
        return Ok(None);
    }
    Ok(Some(LiquidDate {
        time,
        offset,
        zone: name,
        fixed,
    }))
}

/// The `date` filter.
pub(super) fn date_filter<'a>(
    ctx: &mut Ctx<'a>,
    v: &LVal<'a>,
    format: &LVal<'a>,
    zone: &LVal<'a>,
) -> RResult<LVal<'a>> {
    let size = v.length().unwrap_or(0) + zone.as_str().map_or(0, u16_len);
    ctx.use_memory(size as f64)?;
    let Some(date) = liquid_date(v, zone)? else {
        return Ok(v.clone());
    };
    let format = format.to_value();
    let format: Rc<str> = if format.is_nil() {
        Rc::from(DEFAULT_FORMAT)
    } else {
        format.liquid_string()
    };
    ctx.use_memory(u16_len(&format) as f64)?;
    Ok(LVal::string(strftime(ctx, &date, &format)?))
}

/// The `date_to_rfc822` filter.
pub(super) fn date_to_rfc822<'a>(ctx: &mut Ctx<'a>, v: &LVal<'a>) -> RResult<LVal<'a>> {
    let Some(date) = liquid_date(v, &LVal::Undef)? else {
        return Ok(v.clone());
    };
    Ok(LVal::string(strftime(
        ctx,
        &date,
        "%a, %d %b %Y %H:%M:%S %z",
    )?))
}

/// The `date_to_string` (`%b`) and `date_to_long_string` (`%B`) filters.
pub(super) fn date_to_string<'a>(
    ctx: &mut Ctx<'a>,
    v: &LVal<'a>,
    month: &str,
    kind: &LVal<'a>,
    style: &LVal<'a>,
) -> RResult<LVal<'a>> {
    let Some(date) = liquid_date(v, &LVal::Undef)? else {
        return Ok(v.clone());
    };
    let format = if kind.as_str() == Some("ordinal") {
        let d = date.fields().day;
        if style.as_str() == Some("US") {
            format!("{month} {d}%q, %Y")
        } else {
            format!("{d}%q {month} %Y")
        }
    } else {
        format!("%d {month} %Y")
    };
    Ok(LVal::string(strftime(ctx, &date, &format)?))
}

fn is_leap(year: i64) -> bool {
    // liquidjs's test, which (unlike the calendar) does not count year 0 as leap.
    (year & 3) == 0 && (year % 100 != 0 || (year % 400 == 0 && year != 0))
}

fn day_of_year(f: &Fields) -> i64 {
    const DAYS_IN: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut n = 0;
    for (i, d) in DAYS_IN.iter().enumerate().take(f.month as usize) {
        n += if i == 1 && is_leap(f.year) { 29 } else { *d };
    }
    n + f.day
}

fn week_of_year(f: &Fields, start: i64) -> i64 {
    let since = (f.weekday - start + 7) % 7;
    (day_of_year(f) - 1 - since + 7).div_euclid(7)
}

fn iso_weeks_in_year(year: i64) -> i64 {
    let p = |y: i64| (y + y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400)).rem_euclid(7);
    if p(year) == 4 || p(year - 1) == 3 {
        53
    } else {
        52
    }
}

fn iso_week(f: &Fields) -> (i64, i64) {
    let mut year = f.year;
    let wd = if f.weekday == 0 { 7 } else { f.weekday };
    let mut week = (day_of_year(f) - wd + 10).div_euclid(7);
    if week < 1 {
        year -= 1;
        week = iso_weeks_in_year(year);
    } else if week > iso_weeks_in_year(year) {
        year += 1;
        week = 1;
    }
    (year, week)
}

fn ordinal_suffix(day: i64) -> &'static str {
    if (11..=13).contains(&day) {
        return "th";
    }
    match day % 10 {
        1 => "st",
        2 => "nd",
        3 => "rd",
        _ => "th",
    }
}

fn offset_text(offset: f64, colon: bool) -> String {
    let abs = offset.abs();
    let h = (abs / 60.0).floor();
    let m = abs % 60.0;
    let pad2 = |x: f64| {
        let t = num_to_string(x);
        if t.len() < 2 { format!("0{t}") } else { t }
    };
    format!(
        "{}{}{}{}",
        if offset > 0.0 { '-' } else { '+' },
        pad2(h),
        if colon { ":" } else { "" },
        pad2(m)
    )
}

fn hour12(h: i64) -> i64 {
    if h % 12 == 0 { 12 } else { h % 12 }
}

/// en-US `toLocaleDateString` / `toLocaleTimeString`.
fn locale_date(f: &Fields) -> String {
    format!("{}/{}/{}", f.month + 1, f.day, f.year)
}

fn locale_time(f: &Fields) -> String {
    format!(
        "{}:{:02}:{:02} {}",
        hour12(f.hours),
        f.minutes,
        f.seconds,
        if f.hours < 12 { "AM" } else { "PM" }
    )
}

/// liquidjs's `strftime`: `%[flags][width][E|O]conversion`.
fn strftime(ctx: &mut Ctx<'_>, date: &LiquidDate, format: &str) -> RResult<String> {
    let f = date.fields();
    let mut out = String::with_capacity(format.len() + 16);
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // Try to read a directive at `i`; when it does not match, the `%` is literal.
        let mut j = i + 1;
        let flags_start = j;
        while j < chars.len() && "-_0^#:".contains(chars[j]) {
            j += 1;
        }
        let flags: String = chars[flags_start..j].iter().collect();
        let width_start = j;
        while j < chars.len() && chars[j].is_ascii_digit() {
            j += 1;
        }
        let width: String = chars[width_start..j].iter().collect();
        if j < chars.len() && (chars[j] == 'E' || chars[j] == 'O') && j + 1 < chars.len() {
            j += 1;
        }
        if j >= chars.len()
            || chars[j] == '\n'
            || chars[j] == '\r'
            || chars[j] == '\u{2028}'
            || chars[j] == '\u{2029}'
        {
            out.push('%');
            i += 1;
            continue;
        }
        let conv = chars[j];
        let whole: String = chars[i..=j].iter().collect();
        i = j + 1;
        let piece = format_one(ctx, date, &f, conv, &flags, &width)?;
        match piece {
            Some(p) => out.push_str(&p),
            None => out.push_str(&whole),
        }
        if out.len() > MAX_STRING_BYTES {
            return Err(MEMORY_MESSAGE.to_owned());
        }
    }
    Ok(out)
}

fn format_one(
    ctx: &mut Ctx<'_>,
    date: &LiquidDate,
    f: &Fields,
    conv: char,
    flags: &str,
    width: &str,
) -> RResult<Option<String>> {
    let colon = flags.contains(':');
    let width_num: f64 = if width.is_empty() {
        0.0
    } else {
        width.parse().unwrap_or(f64::INFINITY)
    };
    let ret: String = match conv {
        'a' => DAYS[f.weekday as usize][..3].to_owned(),
        'A' => DAYS[f.weekday as usize].to_owned(),
        'b' | 'h' => MONTHS[f.month as usize][..3].to_owned(),
        'B' => MONTHS[f.month as usize].to_owned(),
        'c' => format!("{}, {}", locale_date(f), locale_time(f)),
        'C' => f.year.div_euclid(100).to_string(),
        'd' | 'e' => f.day.to_string(),
        'g' => iso_week(f).0.rem_euclid(100).to_string(),
        'G' => iso_week(f).0.to_string(),
        'H' | 'k' => f.hours.to_string(),
        'I' | 'l' => hour12(f.hours).to_string(),
        'j' => day_of_year(f).to_string(),
        'L' => f.ms.to_string(),
        'm' => (f.month + 1).to_string(),
        'M' => f.minutes.to_string(),
        'N' => {
            let w = if width_num > 0.0 && width_num.is_finite() {
                width_num
            } else {
                9.0
            };
            let digits = format!("{:03}", f.ms);
            let keep = (w as usize).min(3);
            let mut s = digits[..keep].to_owned();
            ctx.use_memory(w - s.len() as f64)?;
            if w as usize > MAX_STRING_BYTES {
                return Err(MEMORY_MESSAGE.to_owned());
            }
            while s.len() < w as usize {
                s.push('0');
            }
            s
        }
        'p' => if f.hours < 12 { "AM" } else { "PM" }.to_owned(),
        'P' => if f.hours < 12 { "am" } else { "pm" }.to_owned(),
        'q' => ordinal_suffix(f.day).to_owned(),
        's' => num_to_string((date.time / 1000.0).floor()),
        'S' => f.seconds.to_string(),
        'u' => (if f.weekday == 0 { 7 } else { f.weekday }).to_string(),
        'U' => week_of_year(f, 0).to_string(),
        'V' => iso_week(f).1.to_string(),
        'w' => f.weekday.to_string(),
        'W' => week_of_year(f, 1).to_string(),
        'x' => locale_date(f),
        'X' => locale_time(f),
        'y' => f.year.rem_euclid(100).to_string(),
        'Y' => f.year.to_string(),
        'z' => offset_text(date.offset, colon),
        'Z' => {
            let name = if date.fixed {
                date.zone.clone().unwrap_or_default()
            } else {
                "UTC".to_owned()
            };
            if name.is_empty() {
                offset_text(date.offset, colon)
            } else {
                name
            }
        }
        't' => "\t".to_owned(),
        'n' => "\n".to_owned(),
        '%' => "%".to_owned(),
        'D' => strftime(ctx, date, "%m/%d/%y")?,
        'F' => strftime(ctx, date, "%Y-%m-%d")?,
        'r' => strftime(ctx, date, "%I:%M:%S %p")?,
        'R' => strftime(ctx, date, "%H:%M")?,
        'T' => strftime(ctx, date, "%H:%M:%S")?,
        _ => return Ok(None),
    };
    let mut ret = ret;
    let mut pad_char = if "aAbBceklpPDFrRT".contains(conv) {
        ' '
    } else {
        '0'
    };
    let default_width = match conv {
        'C' | 'd' | 'e' | 'g' | 'H' | 'I' | 'k' | 'l' | 'm' | 'M' | 'S' | 'U' | 'V' | 'W' | 'y' => {
            2.0
        }
        'G' | 'Y' => 4.0,
        'j' | 'L' => 3.0,
        _ => 0.0,
    };
    let mut pad_width = if width_num > 0.0 {
        width_num
    } else {
        default_width
    };
    if flags.contains('^') {
        ret = ret.to_uppercase();
    } else if flags.contains('#') {
        ret = if ret.chars().any(|c| c.is_ascii_lowercase()) {
            ret.to_uppercase()
        } else {
            ret.to_lowercase()
        };
    }
    if flags.contains('_') {
        pad_char = ' ';
    } else if flags.contains('0') {
        pad_char = '0';
    }
    if flags.contains('-') {
        pad_width = 0.0;
    }
    let len = u16_len(&ret) as f64;
    ctx.use_memory(pad_width - len)?;
    if pad_width > MAX_STRING_BYTES as f64 {
        return Err(MEMORY_MESSAGE.to_owned());
    }
    let pad_width = pad_width as usize;
    if pad_char == '0' && ret.starts_with('-') {
        let body = &ret[1..];
        let n = pad_width.saturating_sub(1).saturating_sub(u16_len(body));
        return Ok(Some(format!("-{}{}", "0".repeat(n), body)));
    }
    let n = pad_width.saturating_sub(u16_len(&ret));
    let mut padded = String::with_capacity(ret.len() + n);
    padded.extend(std::iter::repeat_n(pad_char, n));
    padded.push_str(&ret);
    Ok(Some(padded))
}

// ----- JavaScript `Date` string parsing -----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A run of digits: its value (saturated) and digit string.
    Num(i64, String),
    /// A run of letters (lowercased).
    Word(String),
    Sym(char),
    Space,
    End,
}

impl Tok {
    fn num_len(&self, len: usize) -> Option<i64> {
        match self {
            Tok::Num(n, d) if d.len() == len => Some(*n),
            _ => None,
        }
    }
}

fn tokenize(s: &str) -> Vec<Tok> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            let start = i;
            let mut n: i64 = 0;
            while i < chars.len() && chars[i].is_ascii_digit() {
                if n < i64::from(i32::MAX) / 10 - 10 {
                    n = n * 10 + i64::from(chars[i] as u8 - b'0');
                }
                i += 1;
            }
            out.push(Tok::Num(n, chars[start..i].iter().collect()));
        } else if super::value::is_js_space(c) {
            while i < chars.len() && super::value::is_js_space(chars[i]) {
                i += 1;
            }
            out.push(Tok::Space);
        } else if c == '(' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '(' {
                    depth += 1;
                } else if chars[i] == ')' {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                i += 1;
            }
            out.push(Tok::Space);
        } else if c.is_ascii_alphabetic() || (c as u32) >= 128 {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphabetic()
                    || ((chars[i] as u32) >= 128 && !super::value::is_js_space(chars[i])))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(Tok::Word(word.to_ascii_lowercase()));
        } else {
            out.push(Tok::Sym(c));
            i += 1;
        }
    }
    out.push(Tok::End);
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Keyword {
    Month(i64),
    AmPm(i64),
    Zone(i64),
    TimeSeparator,
}

fn keyword(word: &str) -> Option<Keyword> {
    const MONTH_PREFIXES: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let prefix: String = word.chars().take(3).collect();
    if let Some(i) = MONTH_PREFIXES.iter().position(|m| *m == prefix) {
        return Some(Keyword::Month(i as i64 + 1));
    }
    Some(match word {
        "am" => Keyword::AmPm(0),
        "pm" => Keyword::AmPm(12),
        "ut" | "utc" | "z" | "gmt" => Keyword::Zone(0),
        "cdt" => Keyword::Zone(-5),
        "cst" => Keyword::Zone(-6),
        "edt" => Keyword::Zone(-4),
        "est" => Keyword::Zone(-5),
        "mdt" => Keyword::Zone(-6),
        "mst" => Keyword::Zone(-7),
        "pdt" => Keyword::Zone(-7),
        "pst" => Keyword::Zone(-8),
        "t" => Keyword::TimeSeparator,
        _ => return None,
    })
}

struct Scanner {
    toks: Vec<Tok>,
    i: usize,
}

impl Scanner {
    fn peek(&self) -> &Tok {
        self.toks.get(self.i).unwrap_or(&Tok::End)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn skip_sym(&mut self, c: char) -> bool {
        if *self.peek() == Tok::Sym(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn peek_keyword(&self) -> Option<Keyword> {
        match self.peek() {
            Tok::Word(w) => keyword(w),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Day {
    comps: Vec<i64>,
    named_month: Option<i64>,
    iso: bool,
}

#[derive(Default)]
struct Time {
    comps: Vec<i64>,
    hour_offset: Option<i64>,
}

impl Time {
    fn add(&mut self, n: i64) -> bool {
        if self.comps.len() < 4 {
            self.comps.push(n);
            true
        } else {
            false
        }
    }

    fn add_final(&mut self, n: i64) -> bool {
        if !self.add(n) {
            return false;
        }
        while self.comps.len() < 4 {
            self.comps.push(0);
        }
        true
    }

    fn expecting(&self, n: i64) -> bool {
        match self.comps.len() {
            1 => (0..60).contains(&n),
            2 => (0..60).contains(&n),
            3 => (0..1000).contains(&n),
            _ => false,
        }
    }
}

#[derive(Default)]
struct Zone {
    sign: Option<i64>,
    hour: Option<i64>,
    minute: Option<i64>,
}

impl Zone {
    fn set(&mut self, hours: i64) {
        self.sign = Some(if hours < 0 { -1 } else { 1 });
        self.hour = Some(hours.abs());
        self.minute = Some(0);
    }

    fn is_utc(&self) -> bool {
        self.hour == Some(0) && self.minute == Some(0)
    }

    fn expecting(&self, n: i64) -> bool {
        self.hour.is_some() && self.minute.is_none() && (0..60).contains(&n)
    }
}

fn read_ms(digits: &str) -> i64 {
    let mut d: String = digits.chars().take(3).collect();
    while d.len() < 3 {
        d.push('0');
    }
    d.parse().unwrap_or(0)
}

/// JavaScript's `Date.parse` as V8 does it; `NaN` when the string is not a date.
pub(super) fn parse_js_date(s: &str) -> f64 {
    let mut sc = Scanner {
        toks: tokenize(s),
        i: 0,
    };
    let mut day = Day::default();
    let mut time = Time::default();
    let mut zone = Zone::default();
    let first = match parse_iso(&mut sc, &mut day, &mut time, &mut zone) {
        IsoResult::Done => return compose(&day, &mut time, &zone),
        IsoResult::Invalid => return f64::NAN,
        IsoResult::Continue(tok) => tok,
    };
    let mut has_read_number = !day.comps.is_empty();
    let mut tok = first;
    loop {
        match tok {
            Tok::End => break,
            Tok::Num(n, _) => {
                has_read_number = true;
                if sc.skip_sym(':') {
                    if sc.skip_sym(':') {
                        if !time.comps.is_empty() {
                            return f64::NAN;
                        }
                        time.add(n);
                        time.add(0);
                    } else {
                        if !time.add(n) {
                            return f64::NAN;
                        }
                        if *sc.peek() == Tok::Sym('.') {
                            sc.next();
                        }
                    }
                } else if *sc.peek() == Tok::Sym('.') && time.expecting(n) {
                    sc.next();
                    time.add(n);
                    let Tok::Num(_, ms_digits) = sc.peek().clone() else {
                        return f64::NAN;
                    };
                    sc.next();
                    time.add_final(read_ms(&ms_digits));
                } else if zone.expecting(n) {
                    zone.minute = Some(n);
                } else if time.expecting(n) {
                    time.add_final(n);
                    let ok = match sc.peek() {
                        Tok::End | Tok::Space | Tok::Sym('+') | Tok::Sym('-') => true,
                        Tok::Word(w) => w == "z",
                        _ => false,
                    };
                    if !ok {
                        return f64::NAN;
                    }
                } else {
                    if day.comps.len() >= 3 {
                        return f64::NAN;
                    }
                    day.comps.push(n);
                    sc.skip_sym('-');
                }
            }
            Tok::Word(w) => match keyword(&w) {
                Some(Keyword::AmPm(h)) if !time.comps.is_empty() => time.hour_offset = Some(h),
                Some(Keyword::Month(m)) => {
                    day.named_month = Some(m);
                    sc.skip_sym('-');
                }
                Some(Keyword::Zone(h)) if has_read_number => zone.set(h),
                _ => {
                    if has_read_number || matches!(sc.peek(), Tok::Num(..)) {
                        return f64::NAN;
                    }
                }
            },
            Tok::Sym(c) if (c == '+' || c == '-') && (zone.is_utc() || !time.comps.is_empty()) => {
                zone.sign = Some(if c == '+' { 1 } else { -1 });
                let (n, len) = match sc.peek().clone() {
                    Tok::Num(n, d) => {
                        sc.next();
                        (n, d.len())
                    }
                    _ => (0, 0),
                };
                has_read_number = true;
                if *sc.peek() == Tok::Sym(':') {
                    zone.hour = Some(n);
                    zone.minute = None;
                } else if len == 1 || len == 2 {
                    zone.hour = Some(n);
                    zone.minute = Some(0);
                } else if len == 3 || len == 4 {
                    zone.hour = Some(n / 100);
                    zone.minute = Some(n % 100);
                } else {
                    return f64::NAN;
                }
            }
            Tok::Sym(c) if (c == '+' || c == '-' || c == ')') && has_read_number => {
                return f64::NAN;
            }
            _ => {}
        }
        tok = sc.next();
    }
    compose(&day, &mut time, &zone)
}

enum IsoResult {
    Done,
    Invalid,
    /// Not (entirely) ISO: the legacy parser continues with this token.
    Continue(Tok),
}

/// V8's ES5 date-time parsing; hands the first token it cannot place to the legacy parser.
fn parse_iso(sc: &mut Scanner, day: &mut Day, time: &mut Time, zone: &mut Zone) -> IsoResult {
    // Year: four digits, or a sign and six digits.
    if let Tok::Sym(c @ ('+' | '-')) = *sc.peek() {
        sc.next();
        let Some(y) = sc.peek().num_len(6) else {
            return IsoResult::Continue(sc.next());
        };
        sc.next();
        if c == '-' && y == 0 {
            return IsoResult::Continue(sc.next());
        }
        day.comps.push(if c == '-' { -y } else { y });
    } else if let Some(y) = sc.peek().num_len(4) {
        sc.next();
        day.comps.push(y);
    } else {
        return IsoResult::Continue(sc.next());
    }
    if sc.skip_sym('-') {
        match sc.peek().num_len(2) {
            Some(m) if (1..=12).contains(&m) => {
                sc.next();
                day.comps.push(m);
            }
            _ => return IsoResult::Continue(sc.next()),
        }
        if sc.skip_sym('-') {
            match sc.peek().num_len(2) {
                Some(d) if (1..=31).contains(&d) => {
                    sc.next();
                    day.comps.push(d);
                }
                _ => return IsoResult::Continue(sc.next()),
            }
        }
    }
    if sc.peek_keyword() != Some(Keyword::TimeSeparator) {
        if *sc.peek() != Tok::End {
            return IsoResult::Continue(sc.next());
        }
    } else {
        sc.next();
        let Some(h) = sc.peek().num_len(2).filter(|h| (0..=24).contains(h)) else {
            return IsoResult::Invalid;
        };
        let h24 = h == 24;
        sc.next();
        time.add(h);
        if !sc.skip_sym(':') {
            return IsoResult::Invalid;
        }
        let Some(m) = sc
            .peek()
            .num_len(2)
            .filter(|m| (0..60).contains(m) && !(h24 && *m > 0))
        else {
            return IsoResult::Invalid;
        };
        sc.next();
        time.add(m);
        if sc.skip_sym(':') {
            let Some(sec) = sc
                .peek()
                .num_len(2)
                .filter(|s| (0..60).contains(s) && !(h24 && *s > 0))
            else {
                return IsoResult::Invalid;
            };
            sc.next();
            time.add(sec);
            if sc.skip_sym('.') {
                let Tok::Num(n, digits) = sc.peek().clone() else {
                    return IsoResult::Invalid;
                };
                if h24 && n > 0 {
                    return IsoResult::Invalid;
                }
                sc.next();
                time.add(read_ms(&digits));
            }
        }
        if matches!(sc.peek(), Tok::Word(w) if w == "z") {
            sc.next();
            zone.set(0);
        } else if let Tok::Sym(c @ ('+' | '-')) = *sc.peek() {
            sc.next();
            zone.sign = Some(if c == '+' { 1 } else { -1 });
            if let Some(hm) = sc.peek().num_len(4) {
                let (hh, mm) = (hm / 100, hm % 100);
                if !(0..24).contains(&hh) || !(0..60).contains(&mm) {
                    return IsoResult::Invalid;
                }
                sc.next();
                zone.hour = Some(hh);
                zone.minute = Some(mm);
            } else {
                let Some(hh) = sc.peek().num_len(2).filter(|h| (0..24).contains(h)) else {
                    return IsoResult::Invalid;
                };
                sc.next();
                zone.hour = Some(hh);
                if !sc.skip_sym(':') {
                    return IsoResult::Invalid;
                }
                let Some(mm) = sc.peek().num_len(2).filter(|m| (0..60).contains(m)) else {
                    return IsoResult::Invalid;
                };
                sc.next();
                zone.minute = Some(mm);
            }
        }
        if *sc.peek() != Tok::End {
            return IsoResult::Invalid;
        }
    }
    // Date-only forms are UTC; date-time forms without an offset are local time, which for
    // Segment is UTC as well.
    if zone.hour.is_none() && time.comps.is_empty() {
        zone.set(0);
    }
    day.iso = true;
    IsoResult::Done
}

/// Combines the parsed parts into a time value (local time is UTC).
fn compose(day: &Day, time: &mut Time, zone: &Zone) -> f64 {
    if day.comps.is_empty() && day.named_month.is_none() {
        return f64::NAN;
    }
    if day.comps.is_empty() {
        return f64::NAN;
    }
    let mut c = day.comps.clone();
    while c.len() < 3 {
        c.push(1);
    }
    let (mut year, month, d) = match day.named_month {
        None => {
            if day.iso || !(1..=31).contains(&c[0]) {
                (c[0], c[1], c[2])
            } else {
                (c[2], c[0], c[1])
            }
        }
        Some(m) => {
            if !(1..=31).contains(&c[0]) {
                (c[0], m, c[1])
            } else {
                (c[1], m, c[0])
            }
        }
    };
    if !day.iso {
        if (0..=49).contains(&year) {
            year += 2000;
        } else if (50..=99).contains(&year) {
            year += 1900;
        }
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&d) {
        return f64::NAN;
    }
    while time.comps.len() < 4 {
        time.comps.push(0);
    }
    let (mut h, mi, s, ms) = (time.comps[0], time.comps[1], time.comps[2], time.comps[3]);
    if let Some(off) = time.hour_offset {
        if !(0..=12).contains(&h) {
            return f64::NAN;
        }
        h = h % 12 + off;
    }
    let ok = (0..24).contains(&h)
        && (0..60).contains(&mi)
        && (0..60).contains(&s)
        && (0..1000).contains(&ms);
    let midnight = h == 24 && mi == 0 && s == 0 && ms == 0;
    if !(ok || midnight) {
        return f64::NAN;
    }
    let ms_in_day = ((h * 60 + mi) * 60 + s) as f64 * 1000.0 + ms as f64;
    let mut t = make_time(year, month - 1, d, ms_in_day);
    if let Some(sign) = zone.sign.or(zone.hour.map(|_| 1)) {
        let hh = zone.hour.unwrap_or(0);
        let mm = zone.minute.unwrap_or(0);
        t -= (sign * (hh * 3600 + mm * 60)) as f64 * 1000.0;
    }
    time_clip(t)
}
