//! Checks on the raw request before any JSON is parsed: headers, credentials, inflating,
//! UTF-8 validity and nesting depth.
//!
//! Everything here works on borrowed bytes with hard limits, so that hostile input (gzip bombs,
//! deeply nested arrays, binary junk) costs bounded time and memory.

use std::io::Read;

use base64::Engine as _;

use crate::error::{ErrorCode, Rejection};

/// How the body is encoded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Sent as is.
    Identity,
    /// Sent gzip-compressed.
    Gzip,
}

/// Adds the request's content type to a rejection that says the body is not JSON (bad bytes,
/// bad gzip or bad syntax), when the type is not JSON's own: "JSON is JSON whatever the header
/// says", but a sender who posted a form or a file by mistake learns from the message what went
/// out.
pub(crate) fn name_content_type(
    mut rejection: Rejection,
    content_type: Option<&[u8]>,
) -> Rejection {
    if !matches!(
        rejection.code,
        ErrorCode::InvalidJson | ErrorCode::InvalidUtf8 | ErrorCode::InvalidGzip
    ) {
        return rejection;
    }
    let media = content_type
        .map(|raw| {
            String::from_utf8_lossy(raw)
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if media == "application/json" {
        return rejection;
    }
    if media.is_empty() {
        rejection.message.push_str(
            " (the request had no content-type; the body is read as JSON whatever it says)",
        );
    } else {
        rejection.message.push_str(&format!(
            " (the request's content-type was `{}`; the body is read as JSON whatever it says)",
            clip(&media, 64)
        ));
    }
    rejection
}

/// The two bytes every gzip member starts with (RFC 1952 §2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads the `Content-Encoding`: absent or `identity`, or `gzip` (also spelt `x-gzip`).
///
/// A body without the header that starts with gzip's magic bytes is gzip all the same: no JSON
/// text starts with byte 0x1f, and some clients compress without saying so.
pub(crate) fn content_encoding(value: Option<&[u8]>, body: &[u8]) -> Result<Encoding, Rejection> {
    let Some(raw) = value else {
        return Ok(if body.starts_with(&GZIP_MAGIC) {
            Encoding::Gzip
        } else {
            Encoding::Identity
        });
    };
    let text = std::str::from_utf8(raw).unwrap_or("\u{fffd}").trim();
    if text.is_empty() || text.eq_ignore_ascii_case("identity") {
        Ok(Encoding::Identity)
    } else if text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip") {
        Ok(Encoding::Gzip)
    } else {
        Err(Rejection::new(
            ErrorCode::UnsupportedContentEncoding,
            format!(
                "content-encoding `{}` is not supported; send gzip or no encoding",
                clip(text, 32)
            ),
        ))
    }
}

/// A write key taken from a header, still unverified.
pub(crate) enum HeaderKey {
    /// No usable credential in the headers.
    None,
    /// The key bytes presented.
    Key(Vec<u8>),
}

/// Extracts a write key from `Authorization: Basic` (the key is the user name), from
/// `X-Write-Key`, or from the query string's `writeKey` (RudderStack's browser SDK sends it there
/// with `navigator.sendBeacon`, which cannot set headers), in that order.
///
/// Another `Authorization` scheme (such as Segment's OAuth `Bearer`) is ignored, so the key is
/// then looked for in `X-Write-Key`, the query or the body.
pub(crate) fn header_key(
    authorization: Option<&[u8]>,
    x_write_key: Option<&[u8]>,
    query_key: Option<&[u8]>,
) -> Result<HeaderKey, Rejection> {
    if let Some(auth) = authorization {
        let auth = trim_ascii(auth);
        let is_basic = auth.len() >= 6 && auth[..6].eq_ignore_ascii_case(b"basic ");
        if is_basic {
            let encoded = trim_ascii(&auth[6..]);
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded))
                .map_err(|_| {
                    Rejection::new(
                        ErrorCode::InvalidWriteKey,
                        "authorization header is not valid HTTP Basic: the credentials are not base64",
                    )
                })?;
            // The user name is the write key; the password (normally empty) is ignored.
            let user = match decoded.iter().position(|&b| b == b':') {
                Some(colon) => &decoded[..colon],
                None => &decoded[..],
            };
            if user.is_empty() {
                return Err(Rejection::new(
                    ErrorCode::MissingWriteKey,
                    "authorization header has an empty user name; put the write key in the user name",
                ));
            }
            return Ok(HeaderKey::Key(user.to_vec()));
        }
    }
    for key in [x_write_key, query_key].into_iter().flatten() {
        let key = trim_ascii(key);
        if !key.is_empty() {
            return Ok(HeaderKey::Key(key.to_vec()));
        }
    }
    Ok(HeaderKey::None)
}

/// Inflates a gzip body, stopping as soon as the output would exceed `limit`.
///
/// At most `limit + 1` bytes are ever produced, so a gzip bomb costs bounded memory and time.
pub(crate) fn inflate_gzip(raw: &[u8], limit: usize) -> Result<Vec<u8>, Rejection> {
    let decoder = flate2::read::MultiGzDecoder::new(raw);
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut limited = decoder.take(cap);
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit.saturating_add(1)));
    limited.read_to_end(&mut out).map_err(|e| {
        Rejection::new(
            ErrorCode::InvalidGzip,
            format!("body is not valid gzip: {}", clip(&e.to_string(), 120)),
        )
    })?;
    if out.len() > limit {
        return Err(Rejection::new(
            ErrorCode::PayloadTooLarge,
            format!("inflated body exceeds the limit of {limit} bytes"),
        ));
    }
    Ok(out)
}

/// Checks that the body is UTF-8, naming the first bad byte, and returns it without a leading
/// byte order mark.
///
/// RFC 8259 §8.1 lets a parser ignore a byte order mark; some HTTP clients add one, and refusing
/// the body with "must be a JSON object" would name the wrong problem.
pub(crate) fn check_utf8(body: &[u8]) -> Result<&str, Rejection> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Rejection::new(
            ErrorCode::InvalidUtf8,
            format!("body is not valid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// What the pre-parse scan of a body found besides its depth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// The body has a number with an exponent or a `\uD800` to `\uDFFF` escape: the two things a
    /// skipping parse accepts but a full parse may refuse (a number out of range, a lone
    /// surrogate), so events are checked with a full parse too.
    pub needs_full_parse: bool,
}

/// Checks that objects and arrays nest at most `limit` deep, outside strings.
///
/// This is a single pass over the bytes, run before parsing so that a deeply nested document is
/// refused without recursing into it. Malformed JSON is left for the parser to report.
///
/// Events may sit inside `envelope` levels of container (two for a batch: the body object and its
/// `batch` array); `limit` counts from the event and the message names it.
pub(crate) fn check_depth(text: &str, limit: usize, envelope: usize) -> Result<Scan, Rejection> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut idx = 0usize;
    let mut scan = Scan::default();
    while idx < bytes.len() {
        match bytes[idx] {
            b'"' => {
                // Skip the string, honouring backslash escapes.
                idx += 1;
                while idx < bytes.len() {
                    idx = skip_plain(bytes, idx);
                    let Some(&byte) = bytes.get(idx) else { break };
                    match byte {
                        b'\\' => {
                            if bytes.get(idx + 1) == Some(&b'u')
                                && matches!(bytes.get(idx + 2), Some(b'd' | b'D'))
                                && matches!(
                                    bytes.get(idx + 3),
                                    Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
                                )
                            {
                                scan.needs_full_parse = true;
                            }
                            idx += 2;
                        }
                        b'"' => break,
                        _ => idx += 1,
                    }
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > limit + envelope {
                    let within = if envelope > 0 { " within an event" } else { "" };
                    return Err(Rejection::new(
                        ErrorCode::TooDeep,
                        format!(
                            "objects and arrays nest deeper than {limit} levels{within} at byte {idx}"
                        ),
                    ));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'e' | b'E' if idx > 0 && matches!(bytes[idx - 1], b'0'..=b'9' | b'.') => {
                scan.needs_full_parse = true;
            }
            _ => {}
        }
        idx += 1;
    }
    Ok(scan)
}

/// The index of the first `"` or `\\` at or after `idx` (or the length), eight bytes at a time.
///
/// Most of a JSON body is string content, so the depth scan spends its time here.
fn skip_plain(bytes: &[u8], mut idx: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_le_bytes([b'\\'; 8]);
    // Nonzero when some byte of `v` is zero.
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    while let Some(chunk) = bytes.get(idx..idx + 8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(chunk);
        if has_zero(word ^ QUOTES) | has_zero(word ^ BACKSLASHES) != 0 {
            break;
        }
        idx += 8;
    }
    while let Some(&byte) = bytes.get(idx) {
        if byte == b'"' || byte == b'\\' {
            break;
        }
        idx += 1;
    }
    idx
}

/// Cuts a string to at most `max` characters for use inside a message.
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn content_types_are_named_only_when_the_body_is_not_json() {
        let bad = || Rejection::new(ErrorCode::InvalidJson, "body is not valid JSON");
        assert_eq!(
            name_content_type(bad(), Some(b"application/json; charset=utf-8")).message,
            "body is not valid JSON"
        );
        let form = name_content_type(bad(), Some(b"Application/X-WWW-Form-Urlencoded"));
        assert!(
            form.message
                .ends_with("(the request's content-type was `application/x-www-form-urlencoded`; the body is read as JSON whatever it says)"),
            "{}",
            form.message
        );
        let none = name_content_type(bad(), None);
        assert!(none.message.contains("no content-type"), "{}", none.message);
        // Other problems are about something else and keep their message.
        let key = Rejection::new(ErrorCode::InvalidWriteKey, "write key is not valid");
        assert_eq!(
            name_content_type(key, Some(b"text/html")).message,
            "write key is not valid"
        );
        // Bytes that are not UTF-8 in the header are shown lossily, never refused.
        assert!(
            name_content_type(bad(), Some(&[0xff, 0xfe]))
                .message
                .contains('\u{fffd}')
        );
    }

    #[test]
    fn encodings() {
        assert_eq!(content_encoding(None, b"{}").unwrap(), Encoding::Identity);
        assert_eq!(
            content_encoding(Some(b"GZIP"), b"").unwrap(),
            Encoding::Gzip
        );
        assert_eq!(
            content_encoding(Some(b"x-gzip"), b"").unwrap(),
            Encoding::Gzip
        );
        assert_eq!(
            content_encoding(Some(b"identity"), b"{}").unwrap(),
            Encoding::Identity
        );
        // No header, but gzip's magic bytes: gzip.
        assert_eq!(
            content_encoding(None, &gzip(b"{}")).unwrap(),
            Encoding::Gzip
        );
        let err = content_encoding(Some(b"br"), b"").unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedContentEncoding);
        assert_eq!(err.status(), 415);
    }

    #[test]
    fn inflates_within_limit() {
        let data = br#"{"a":1}"#;
        assert_eq!(inflate_gzip(&gzip(data), 100).unwrap(), data);
        // Exactly at the limit is accepted; one byte over is not.
        assert_eq!(inflate_gzip(&gzip(data), data.len()).unwrap(), data);
        let err = inflate_gzip(&gzip(data), data.len() - 1).unwrap_err();
        assert_eq!(err.code, ErrorCode::PayloadTooLarge);
    }

    #[test]
    fn gzip_bomb_is_stopped_at_the_limit() {
        // 100 MB of zeros: a 1 MB gzip member repeated 100 times, about 100 KB in all.
        let member = gzip(&vec![0u8; 1 << 20]);
        let bomb = member.repeat(100);
        assert!(bomb.len() < 500 * 1024, "bomb is {} bytes", bomb.len());
        let err = inflate_gzip(&bomb, 500 * 1024).unwrap_err();
        assert_eq!(err.code, ErrorCode::PayloadTooLarge);
        assert_eq!(err.status(), 413);
    }

    #[test]
    fn invalid_and_truncated_gzip() {
        let err = inflate_gzip(b"not gzip at all", 1000).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidGzip);
        let good = gzip(br#"{"batch":[]}"#);
        let err = inflate_gzip(&good[..good.len() / 2], 1000).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidGzip);
    }

    #[test]
    fn basic_and_header_keys() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("wk:");
        let auth = format!("Basic {b64}");
        match header_key(Some(auth.as_bytes()), None, None).unwrap() {
            HeaderKey::Key(k) => assert_eq!(k, b"wk"),
            HeaderKey::None => panic!("no key"),
        }
        // Basic wins over X-Write-Key.
        match header_key(Some(auth.as_bytes()), Some(b"other"), None).unwrap() {
            HeaderKey::Key(k) => assert_eq!(k, b"wk"),
            HeaderKey::None => panic!("no key"),
        }
        // A Bearer token is ignored and X-Write-Key is used.
        match header_key(Some(b"Bearer abc"), Some(b" xk "), Some(b"qk")).unwrap() {
            HeaderKey::Key(k) => assert_eq!(k, b"xk"),
            HeaderKey::None => panic!("no key"),
        }
        // The query's key comes last, as for RudderStack's beacon requests.
        match header_key(None, None, Some(b"qk")).unwrap() {
            HeaderKey::Key(k) => assert_eq!(k, b"qk"),
            HeaderKey::None => panic!("no key"),
        }
        assert!(matches!(
            header_key(None, None, None).unwrap(),
            HeaderKey::None
        ));
        assert!(matches!(
            header_key(None, Some(b"  "), None).unwrap(),
            HeaderKey::None
        ));
        let err = header_key(Some(b"Basic !!!notbase64"), None, None)
            .err()
            .unwrap();
        assert_eq!(err.code, ErrorCode::InvalidWriteKey);
        let empty_user = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(":pw")
        );
        let err = header_key(Some(empty_user.as_bytes()), None, None)
            .err()
            .unwrap();
        assert_eq!(err.code, ErrorCode::MissingWriteKey);
    }

    #[test]
    fn depth_limit_ignores_brackets_in_strings() {
        assert!(check_depth(r#"{"a":[[1]]}"#, 3, 0).is_ok());
        assert_eq!(
            check_depth(r#"{"a":[[[1]]]}"#, 3, 0).unwrap_err().code,
            ErrorCode::TooDeep
        );
        assert!(check_depth(r#"{"a":"[[[[[[\"[[[["}"#, 1, 0).is_ok());
        assert!(
            !check_depth(r#"{"a":[true,false,1.5,"1e9"]}"#, 3, 0)
                .unwrap()
                .needs_full_parse
        );
        assert!(
            check_depth(r#"{"a":1e400}"#, 3, 0)
                .unwrap()
                .needs_full_parse
        );
        // Brackets, quotes and escapes at every offset of the eight-byte steps.
        for pad in 0..17 {
            let fill = "x".repeat(pad);
            let text = format!(r#"{{"{fill}":"{fill}[\"{fill}\\","b{fill}":[["{fill}"]]}}"#);
            assert!(check_depth(&text, 3, 0).is_ok(), "{text}");
            assert_eq!(
                check_depth(&text, 2, 0).unwrap_err().code,
                ErrorCode::TooDeep
            );
            let lone = format!(r#"{{"{fill}":"{fill}\ud800"}}"#);
            assert!(check_depth(&lone, 1, 0).unwrap().needs_full_parse, "{lone}");
        }
        assert!(check_depth(r#"{"a":2.E1}"#, 3, 0).unwrap().needs_full_parse);
        assert!(
            check_depth(r#"{"a":"\ud800"}"#, 3, 0)
                .unwrap()
                .needs_full_parse
        );
        assert!(
            !check_depth(r#"{"a":"\u00e9\\ud800"}"#, 3, 0)
                .unwrap()
                .needs_full_parse
        );
        let deep = "[".repeat(1_000_000);
        let err = check_depth(&deep, 64, 0).unwrap_err();
        assert!(err.message.contains("byte 64"), "{}", err.message);
    }

    #[test]
    fn a_leading_byte_order_mark_is_ignored() {
        assert_eq!(check_utf8(b"\xef\xbb\xbf{\"a\":1}").unwrap(), "{\"a\":1}");
        // Only one, and only at the start.
        assert_eq!(
            check_utf8(b"\xef\xbb\xbf\xef\xbb\xbf{}").unwrap(),
            "\u{feff}{}"
        );
        assert_eq!(check_utf8(b"{}\xef\xbb\xbf").unwrap(), "{}\u{feff}");
    }

    #[test]
    fn utf8_errors_name_the_byte() {
        let err = check_utf8(b"{\"a\":\"\xff\"}").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidUtf8);
        assert!(err.message.contains("byte 6"), "{}", err.message);
    }
}
