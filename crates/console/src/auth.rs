//! Who may call the console's API: the token, and the refusal of cross-site requests.
//!
//! Every `/console/api` call must carry the token as `Authorization: Bearer <token>` or
//! `X-Console-Token: <token>`. A browser adds neither header to a request another site makes
//! it send (a form, an image, a link), and without CORS headers no other site's script may set
//! them, so the token alone stops cross-site requests; calls that change anything are also
//! `POST` with `Content-Type: application/json` and refused when `Sec-Fetch-Site` or `Origin`
//! says another site made them. The token is compared in constant time: both sides are hashed
//! with SHA-256 and the digests compared with `subtle`, so neither its bytes nor its length
//! leak through timing. The intake's write keys are never accepted (Basic authentication is
//! refused with a message saying so). Neither the token nor anything derived from it is
//! logged, printed or answered.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::{ApiError, Shared};

/// The fewest characters a console token may have.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The header that carries the token besides `Authorization: Bearer`.
pub const TOKEN_HEADER: &str = "x-console-token";

/// The console's token, kept only as its SHA-256 digest.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    /// The digest is left out: it would let a reader check guesses offline.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([hidden])")
    }
}

/// Why a token cannot be used; the messages name where it comes from, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The environment variable is not set.
    #[error(
        "the console token variable {0} is not set; set it to a random string of at least {MIN_TOKEN_CHARS} characters"
    )]
    NotSet(String),
    /// The token is too short to resist guessing.
    #[error("the console token in {variable} has {found} characters, fewer than {MIN_TOKEN_CHARS}")]
    TooShort {
        /// Where the token came from (the variable's name).
        variable: String,
        /// How many characters it has.
        found: usize,
    },
}

impl Token {
    /// A token from its text; `source` names where it came from, for errors.
    pub fn new(secret: &str, source: &str) -> Result<Token, TokenError> {
        let found = secret.chars().count();
        if found < MIN_TOKEN_CHARS {
            return Err(TokenError::TooShort {
                variable: source.to_owned(),
                found,
            });
        }
        Ok(Token {
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// The token in the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Token, TokenError> {
        match std::env::var(var) {
            Ok(secret) => Token::new(&secret, var),
            Err(_) => Err(TokenError::NotSet(var.to_owned())),
        }
    }

    /// Whether `given` is the token, in constant time.
    pub fn matches(&self, given: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(given).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// What a request presents as the token.
enum Presented<'a> {
    Token(&'a [u8]),
    Basic,
    Nothing,
}

fn presented(headers: &HeaderMap) -> Presented<'_> {
    if let Some(value) = headers.get(TOKEN_HEADER) {
        return Presented::Token(value.as_bytes());
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Presented::Nothing;
    };
    let bytes = value.as_bytes();
    let scheme_end = bytes.iter().position(|b| *b == b' ').unwrap_or(bytes.len());
    let (scheme, rest) = bytes.split_at(scheme_end);
    if scheme.eq_ignore_ascii_case(b"bearer") {
        Presented::Token(rest.trim_ascii())
    } else if scheme.eq_ignore_ascii_case(b"basic") {
        Presented::Basic
    } else {
        Presented::Nothing
    }
}

/// Whether the browser says another site made this request: `Sec-Fetch-Site` other than
/// `same-origin` or `none`, or an `Origin` whose host and port are not the request's `Host`.
fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Some("Sec-Fetch-Site");
        }
    }
    let origin = headers.get(header::ORIGIN)?;
    let host = headers.get(header::HOST).map(|h| h.as_bytes());
    let origin_host = origin
        .as_bytes()
        .strip_prefix(b"http://")
        .or_else(|| origin.as_bytes().strip_prefix(b"https://"));
    match (origin_host, host) {
        (Some(origin_host), Some(host)) if origin_host.eq_ignore_ascii_case(host) => None,
        _ => Some("Origin"),
    }
}

/// The check in front of every `/console/api` route.
pub async fn guard(State(shared): State<Shared>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if req.method() == Method::POST {
        if let Some(which) = cross_site(headers) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                format!("cross-site request refused: its {which} header names another site"),
            )
            .into_response();
        }
    }
    match presented(headers) {
        Presented::Token(given) if shared.console.token.matches(given) => {}
        Presented::Token(_) => {
            return unauthorized("wrong console token");
        }
        Presented::Basic => {
            return unauthorized(
                "the console takes its token as `Authorization: Bearer <token>`; write keys and Basic authentication do not open it",
            );
        }
        Presented::Nothing => {
            return unauthorized(
                "missing console token: send `Authorization: Bearer <token>` or `X-Console-Token: <token>`",
            );
        }
    }
    if req.method() == Method::POST {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON, sent with `Content-Type: application/json`",
            )
            .into_response();
        }
    }
    next.run(req).await
}

fn unauthorized(message: &str) -> Response {
    let mut res = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"actionkit console\""),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves_and_short_ones_are_refused() {
        let token = Token::new("0123456789abcdef", "T").expect("long enough");
        assert!(token.matches(b"0123456789abcdef"));
        assert!(!token.matches(b"0123456789abcdeF"));
        assert!(!token.matches(b"0123456789abcdef "));
        assert!(!token.matches(b""));
        assert_eq!(format!("{token:?}"), "Token([hidden])");
        let err = Token::new("short-secret", "T").expect_err("too short");
        assert_eq!(
            err.to_string(),
            "the console token in T has 12 characters, fewer than 16"
        );
        assert!(!err.to_string().contains("short-secret"));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, header::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        let same = headers(&[
            ("host", "127.0.0.1:8090"),
            ("origin", "http://127.0.0.1:8090"),
        ]);
        assert_eq!(cross_site(&same), None);
        assert_eq!(cross_site(&headers(&[("host", "h")])), None);
        let other = headers(&[
            ("host", "127.0.0.1:8090"),
            ("origin", "http://evil.example"),
        ]);
        assert_eq!(cross_site(&other), Some("Origin"));
        let port = headers(&[
            ("host", "127.0.0.1:8090"),
            ("origin", "http://127.0.0.1:9999"),
        ]);
        assert_eq!(cross_site(&port), Some("Origin"));
        let null = headers(&[("host", "h"), ("origin", "null")]);
        assert_eq!(cross_site(&null), Some("Origin"));
        let fetch = headers(&[("sec-fetch-site", "cross-site")]);
        assert_eq!(cross_site(&fetch), Some("Sec-Fetch-Site"));
        let same_site = headers(&[("sec-fetch-site", "same-site")]);
        assert_eq!(cross_site(&same_site), Some("Sec-Fetch-Site"));
        assert_eq!(
            cross_site(&headers(&[("sec-fetch-site", "same-origin")])),
            None
        );
    }

    #[test]
    fn the_token_is_read_from_either_header_and_basic_is_named() {
        assert!(matches!(
            presented(&headers(&[("authorization", "Bearer abc")])),
            Presented::Token(b"abc")
        ));
        assert!(matches!(
            presented(&headers(&[("x-console-token", "abc")])),
            Presented::Token(b"abc")
        ));
        assert!(matches!(
            presented(&headers(&[("authorization", "Basic d2s6")])),
            Presented::Basic
        ));
        assert!(matches!(presented(&HeaderMap::new()), Presented::Nothing));
    }
}
