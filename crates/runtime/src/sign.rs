//! Request signing: an HMAC of the exact body bytes sent, in a header, so that the receiver can
//! check that a request came from someone who knows the shared secret.
//!
//! A destination declares the signature in YAML (`sign` on a request or in `request_defaults`);
//! code generation turns it into a [`SignDef`]. When an instance is built, the secret mapping is
//! evaluated over its settings once ([`crate::build::RequestDefaults::resolve`]); a secret that
//! resolves to nothing or to `""` means "do not sign", and no header is sent. Otherwise every
//! request carries a [`Signer`], and the header is computed where the body is turned into bytes
//! ([`body_bytes`]): by the delivery engine right before sending, and by
//! [`crate::request::Request::signed`] for a dry run. Both serialise the body with the same
//! function, so the signature always covers the bytes that go on the wire, also after requests
//! for one record were merged.
//!
//! The header value derives from a secret, so it is marked as such: a dry run shows
//! `<prefix>[redacted]` unless secrets are asked for (see [`crate::redact`]). A signature does
//! not reveal the secret, but whoever holds one valid signature can replay that body; showing
//! it would be a credential in a log.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Sha256, Sha512};

/// The MAC algorithm of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignAlgorithm {
    /// HMAC with SHA-1 (RFC 2104, FIPS 180-4), as Segment's Webhook destination signs; SHA-1
    /// is weak as a hash, but HMAC-SHA1 is not known to be forgeable.
    HmacSha1,
    /// HMAC with SHA-256 (RFC 2104, FIPS 180-4).
    HmacSha256,
    /// HMAC with SHA-512.
    HmacSha512,
}

impl SignAlgorithm {
    /// The YAML spelling (`hmac-sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            SignAlgorithm::HmacSha1 => "hmac-sha1",
            SignAlgorithm::HmacSha256 => "hmac-sha256",
            SignAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }
}

/// How the MAC's bytes are written into the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignEncoding {
    /// Lower-case hexadecimal.
    Hex,
    /// Standard base64 with padding (RFC 4648).
    Base64,
}

/// A signature as generated code declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignDef {
    /// The MAC algorithm.
    pub algorithm: SignAlgorithm,
    /// The secret as mapping-kit JSON text over `{"settings": …}`; a string result is the key.
    pub secret: &'static str,
    /// The lower-case name of the header that carries the signature.
    pub header: &'static str,
    /// How the MAC is written.
    pub encoding: SignEncoding,
    /// Text written before the encoded MAC, such as `sha256=`.
    pub prefix: &'static str,
}

/// A signature with its key resolved from an instance's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Signer {
    /// What is computed and how it is written.
    pub def: SignDef,
    key: Arc<[u8]>,
}

impl std::fmt::Debug for Signer {
    /// The key is left out because it is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("algorithm", &self.def.algorithm)
            .field("header", &self.def.header)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer with `key`; `None` when the key is empty (nothing is signed then).
    pub fn new(def: SignDef, key: &str) -> Option<Signer> {
        if key.is_empty() {
            return None;
        }
        Some(Signer {
            def,
            key: Arc::from(key.as_bytes()),
        })
    }

    /// The header name and value that sign `body` (the exact bytes sent; empty without a body).
    pub fn header(&self, body: &[u8]) -> (String, String) {
        let mac = match self.def.algorithm {
            SignAlgorithm::HmacSha1 => mac::<Hmac<Sha1>>(&self.key, body),
            SignAlgorithm::HmacSha256 => mac::<Hmac<Sha256>>(&self.key, body),
            SignAlgorithm::HmacSha512 => mac::<Hmac<Sha512>>(&self.key, body),
        };
        let encoded = match self.def.encoding {
            SignEncoding::Hex => hex(&mac),
            SignEncoding::Base64 => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(&mac)
            }
        };
        (
            self.def.header.to_ascii_lowercase(),
            format!("{}{encoded}", self.def.prefix),
        )
    }
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this never fails.
    match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(body);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// The bytes a JSON body is sent as: what the delivery engine sends and what is signed.
pub fn body_bytes(json: &Value) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEF: SignDef = SignDef {
        algorithm: SignAlgorithm::HmacSha256,
        secret: "\"\"",
        header: "X-Signature",
        encoding: SignEncoding::Hex,
        prefix: "sha256=",
    };

    #[test]
    fn hmac_sha256_matches_rfc_4231_test_case_2() {
        let signer = Signer::new(DEF, "Jefe").expect("a key");
        let (name, value) = signer.header(b"what do ya want for nothing?");
        assert_eq!(name, "x-signature");
        assert_eq!(
            value,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_sha512_in_base64_matches_rfc_4231_test_case_2() {
        let def = SignDef {
            algorithm: SignAlgorithm::HmacSha512,
            encoding: SignEncoding::Base64,
            prefix: "",
            ..DEF
        };
        let signer = Signer::new(def, "Jefe").expect("a key");
        let (_, value) = signer.header(b"what do ya want for nothing?");
        use base64::Engine as _;
        let expected = "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737";
        let bytes: Vec<u8> = (0..expected.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&expected[i..i + 2], 16).ok())
            .collect();
        assert_eq!(
            value,
            base64::engine::general_purpose::STANDARD.encode(bytes)
        );
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202_test_case_2() {
        let def = SignDef {
            algorithm: SignAlgorithm::HmacSha1,
            prefix: "",
            ..DEF
        };
        let signer = Signer::new(def, "Jefe").expect("a key");
        let (_, value) = signer.header(b"what do ya want for nothing?");
        assert_eq!(value, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn an_empty_key_signs_nothing() {
        assert!(Signer::new(DEF, "").is_none());
    }
}
