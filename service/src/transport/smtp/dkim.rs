//! DKIM signatures (RFC 6376; Ed25519 per RFC 8463) for SMTP transports:
//! DSN options `dkim_domain`, `dkim_selector`, `dkim_key_file` (RSA of at
//! least 2048 bits or Ed25519, PEM). Relaxed/relaxed canonicalisation over
//! the exact bytes that go on the wire, after the message's own encoding, so
//! the signature survives the transport path. Signed with aws-lc-rs, the
//! crypto library already in use (no second RSA implementation).

use std::fmt::Write as _;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The headers signed, whether present or not (an absent one is signed as
/// empty, so it cannot be added later without breaking the signature).
pub const SIGNED_HEADERS: [&str; 9] = [
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "reply-to",
];
/// Smallest RSA key accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
/// The DER of OID 1.2.840.113549.1.1.1 (rsaEncryption), in a PKCS#8 key.
const RSA_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
/// Why an RSA key is refused (aws-lc-rs reads no key under 2048 bits).
const RSA_UNUSABLE: &str =
    "the RSA key cannot be used: DKIM needs an RSA key of at least 2048 bits";

enum Key {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// Signs messages for one domain and selector.
pub struct DkimSigner {
    domain: String,
    selector: String,
    key: Key,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DkimSigner({}._domainkey.{})",
            self.selector, self.domain
        )
    }
}

impl DkimSigner {
    /// Reads and checks the key in `pem` (PKCS#8 RSA or Ed25519, or PKCS#1 RSA).
    pub fn new(domain: &str, selector: &str, pem: &str) -> Result<Self, String> {
        let (label, der) = pem_block(pem).ok_or("the key file is not a PEM private key")?;
        let key = match label.as_str() {
            "RSA PRIVATE KEY" => Key::Rsa(RsaKeyPair::from_der(&der).map_err(|_| RSA_UNUSABLE)?),
            "PRIVATE KEY" if find(&der, RSA_OID).is_some() => {
                Key::Rsa(RsaKeyPair::from_pkcs8(&der).map_err(|_| RSA_UNUSABLE)?)
            }
            "PRIVATE KEY" => Key::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                    .map_err(|_| "the key is neither RSA nor Ed25519".to_owned())?,
            ),
            other => return Err(format!("a `{other}` PEM block is not a private key")),
        };
        if let Key::Rsa(rsa) = &key
            && rsa.public_modulus_len() * 8 < MIN_RSA_BITS
        {
            return Err(format!(
                "the RSA key has {} bits; DKIM needs at least {MIN_RSA_BITS}",
                rsa.public_modulus_len() * 8
            ));
        }
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
        };
        if !valid(domain) || !valid(selector) {
            return Err("dkim_domain and dkim_selector must be DNS names".into());
        }
        Ok(Self {
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_owned(),
            key,
        })
    }

    /// `message` (CRLF line endings, as formatted for the wire) with a
    /// `DKIM-Signature` header in front, signed at `now` (unix seconds).
    pub fn sign(&self, message: &[u8], now: u64) -> Result<Vec<u8>, String> {
        let split = find(message, b"\r\n\r\n").ok_or("the message has no body separator")?;
        let (head, body) = (&message[..split + 2], &message[split + 4..]);
        let body_hash = STANDARD.encode(digest(&SHA256, &relaxed_body(body)));
        let algorithm = match self.key {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        };
        let unsigned = format!(
            "v=1; a={algorithm}; c=relaxed/relaxed; d={}; s={};\r\n\tt={now}; h={};\r\n\tbh={body_hash};\r\n\tb=",
            self.domain,
            self.selector,
            SIGNED_HEADERS.join(":")
        );
        let headers = header_fields(head);
        let mut input = String::new();
        for name in SIGNED_HEADERS {
            // The last instance counts (RFC 6376 5.4.2); an absent one adds nothing.
            if let Some(field) = headers
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                input.push_str(&relaxed_header(&field.1));
                input.push_str("\r\n");
            }
        }
        input.push_str(&relaxed_header(&format!("DKIM-Signature: {unsigned}")));
        let signature = self.signature(input.as_bytes())?;
        let mut signed = format!("DKIM-Signature: {unsigned}{signature}\r\n").into_bytes();
        signed.extend_from_slice(message);
        Ok(signed)
    }

    fn signature(&self, input: &[u8]) -> Result<String, String> {
        let bytes = match &self.key {
            Key::Rsa(rsa) => {
                let mut signature = vec![0; rsa.public_modulus_len()];
                rsa.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input,
                    &mut signature,
                )
                .map_err(|_| "RSA signing failed".to_owned())?;
                signature
            }
            // RFC 8463: Ed25519 signs the SHA-256 hash of the input.
            Key::Ed25519(ed) => ed.sign(digest(&SHA256, input).as_ref()).as_ref().to_vec(),
        };
        Ok(STANDARD.encode(bytes))
    }
}

/// The first PEM block: its label and decoded contents.
fn pem_block(pem: &str) -> Option<(String, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_owned();
    let body = &rest[label_end + 5..];
    let end = body.find("-----END ")?;
    let base64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    Some((label, STANDARD.decode(base64).ok()?))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The header fields of `head` (each with its folded continuation lines), as `(name, field)`.
fn header_fields(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        match (line.starts_with([' ', '\t']), fields.last_mut()) {
            (true, Some((_, field))) => {
                field.push_str("\r\n");
                field.push_str(line);
            }
            _ => {
                let name = line.split(':').next().unwrap_or_default().trim().to_owned();
                fields.push((name, line.to_owned()));
            }
        }
    }
    fields
}

/// Relaxed header canonicalisation (RFC 6376 3.4.2), without the final CRLF.
fn relaxed_header(field: &str) -> String {
    let (name, value) = field.split_once(':').unwrap_or((field, ""));
    let unfolded = value.replace("\r\n", "");
    let mut out = name.trim_end().to_ascii_lowercase();
    out.push(':');
    out.push_str(&collapse_whitespace(unfolded.trim_matches([' ', '\t'])));
    out
}

/// Relaxed body canonicalisation (RFC 6376 3.4.4).
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut lines: Vec<String> = text
        .split("\r\n")
        .map(|line| collapse_whitespace(line.trim_end_matches([' ', '\t'])))
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let mut out = String::new();
    for line in lines {
        let _ = write!(out, "{line}\r\n");
    }
    out.into_bytes()
}

fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if c == ' ' || c == '\t' {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_canonicalisation_as_in_rfc_6376() {
        // RFC 6376 3.4.5's example.
        let head = b"A: X\r\nB : Y\t\r\n\tZ  \r\n";
        let fields = header_fields(head);
        let canon: Vec<String> = fields.iter().map(|(_, f)| relaxed_header(f)).collect();
        assert_eq!(canon, ["a:X", "b:Y Z"]);
        assert_eq!(
            relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"),
            b" C\r\nD E\r\n".to_vec()
        );
        assert_eq!(relaxed_body(b""), b"".to_vec());
    }

    #[test]
    fn small_rsa_keys_and_non_keys_are_refused() {
        assert!(DkimSigner::new("acme.example", "mb", "not a key").is_err());
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = DkimSigner::new("acme.example", "mb", cert).unwrap_err();
        assert!(err.contains("not a private key"), "{err}");
        let small = include_str!("../../../tests/fixtures/dkim/rsa-1024.pem");
        let err = DkimSigner::new("acme.example", "mb", small).unwrap_err();
        assert!(err.contains("at least 2048 bits"), "{err}");
        let pkcs1 = include_str!("../../../tests/fixtures/dkim/rsa-2048-pkcs1.pem");
        assert!(DkimSigner::new("acme.example", "mb", pkcs1).is_ok());
        let ed = include_str!("../../../tests/fixtures/dkim/ed25519.pem");
        assert!(DkimSigner::new("acme.example", "mb", ed).is_ok());
    }
}
