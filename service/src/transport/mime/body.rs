//! A body part's transfer encoding, written in one pass over the body.
//!
//! The choice is the usual one (lettre's and email-encoding's rule): 7bit
//! for ASCII whose lines are all shorter than 76 octets, quoted-printable
//! when at most a third of the octets need escaping, base64 otherwise.
//! Bodies reach here with CRLF line ends only ([`super::wire_bodies`]), so
//! 7bit text goes out as it is and quoted-printable keeps each CRLF as a
//! hard line break.

use lettre::message::header::ContentTransferEncoding;
use lettre::message::{Body, SinglePart, header::ContentType};

/// Longest encoded line, CRLF not counted (RFC 2045, 6.7 rule 5).
const LINE: usize = 76;

/// `text` as a body part of `content_type`, encoded for the wire.
pub(super) fn part(content_type: ContentType, text: &str) -> SinglePart {
    let body = match choose(text.as_bytes()) {
        ContentTransferEncoding::SevenBit => {
            Body::dangerous_pre_encoded(text.as_bytes().to_vec(), ContentTransferEncoding::SevenBit)
        }
        ContentTransferEncoding::QuotedPrintable => Body::dangerous_pre_encoded(
            quoted_printable(text.as_bytes()),
            ContentTransferEncoding::QuotedPrintable,
        ),
        // Mostly non-ASCII text (base64 is shorter): rare, lettre encodes it.
        _ => Body::new(text.to_owned()),
    };
    SinglePart::builder().header(content_type).body(body)
}

/// 7bit, quoted-printable or base64 (never 8bit: the server may not take it).
fn choose(body: &[u8]) -> ContentTransferEncoding {
    if body.is_ascii() && !has_long_line(body) {
        return ContentTransferEncoding::SevenBit;
    }
    let escaped = body.iter().filter(|&&b| !LITERAL[usize::from(b)]).count();
    if escaped <= body.len() / 3 {
        ContentTransferEncoding::QuotedPrintable
    } else {
        ContentTransferEncoding::Base64
    }
}

/// Whether a line (LF to LF) is 76 octets or longer.
fn has_long_line(body: &[u8]) -> bool {
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', body) {
        if end - start >= LINE {
            return true;
        }
        start = end;
    }
    body.len() - start >= LINE
}

/// Octets written as themselves in quoted-printable: printable ASCII but
/// `=`, and space and tab (which are escaped where a line would end in them).
static LITERAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8, b'!'..=b'<' | b'>'..=b'~' | b' ' | b'\t');
        b += 1;
    }
    table
};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// RFC 2045 quoted-printable of text with CRLF line ends: CRLF stays a
/// hard line break, a CR or LF on its own is escaped, lines are broken
/// softly (`=` CRLF) to at most 76 octets, space and tab at the end of a
/// line are escaped.
pub(super) fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 8 + 8);
    let mut rest = body;
    loop {
        let (line, next) = match find_crlf(rest) {
            Some(at) => (&rest[..at], Some(&rest[at + 2..])),
            None => (rest, None),
        };
        encode_line(line, &mut out);
        match next {
            Some(next) => {
                out.extend_from_slice(b"\r\n");
                rest = next;
            }
            None => return out,
        }
    }
}

/// Where the first CRLF of `text` starts (a CR scan: cheaper than setting
/// up a substring search for each line).
fn find_crlf(text: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\r', text).find(|&at| text.get(at + 1) == Some(&b'\n'))
}

/// One line (no CRLF inside), broken softly where it would pass 76 octets.
fn encode_line(line: &[u8], out: &mut Vec<u8>) {
    let mut column = 0;
    let mut i = 0;
    while i < line.len() {
        // A run of octets written as themselves, the line's last one
        // excluded when it is a space or tab.
        let mut run = line[i..]
            .iter()
            .position(|&b| !LITERAL[usize::from(b)])
            .unwrap_or(line.len() - i);
        if i + run == line.len() && matches!(line[line.len() - 1], b' ' | b'\t') {
            run -= 1;
        }
        while run > 0 {
            // The line's last octets may fill it to the limit; anything
            // followed by more must leave room for a soft break's `=`.
            let take = if i + run == line.len() && column + run <= LINE {
                run
            } else {
                let room = (LINE - 1).saturating_sub(column);
                if room == 0 {
                    soft_break(out, &mut column);
                    continue;
                }
                run.min(room)
            };
            out.extend_from_slice(&line[i..i + take]);
            column += take;
            i += take;
            run -= take;
        }
        if i == line.len() {
            break;
        }
        // One escaped octet.
        let b = line[i];
        let last = i + 1 == line.len();
        if column + 3 > if last { LINE } else { LINE - 1 } {
            soft_break(out, &mut column);
        }
        out.extend_from_slice(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        column += 3;
        i += 1;
    }
}

fn soft_break(out: &mut Vec<u8>, column: &mut usize) {
    out.extend_from_slice(b"=\r\n");
    *column = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes strictly and checks the lines: what a receiving client sees.
    fn check(input: &[u8]) {
        let encoded = quoted_printable(input);
        for line in encoded.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            assert!(line.len() <= LINE, "{:?}", String::from_utf8_lossy(line));
            assert!(
                !matches!(line.last(), Some(b' ' | b'\t')),
                "a line ends in white space: {:?}",
                String::from_utf8_lossy(line)
            );
            assert!(
                line.iter()
                    .all(|&b| (b' '..=b'~').contains(&b) || b == b'\t'),
                "{line:?}"
            );
        }
        let decoded =
            ::quoted_printable::decode(&encoded, ::quoted_printable::ParseMode::Strict).unwrap();
        assert_eq!(
            decoded,
            input,
            "{:?} encoded as {:?}",
            String::from_utf8_lossy(input),
            String::from_utf8_lossy(&encoded)
        );
    }

    #[test]
    fn every_short_string_of_awkward_octets_round_trips() {
        // Every string of up to five of these octets: escapes, white space
        // at line ends, lone CR and LF, CRLF, UTF-8.
        let alphabet: &[&[u8]] = &[
            b"a",
            b" ",
            b"\t",
            b"=",
            b"\r",
            b"\n",
            b"\r\n",
            "ü".as_bytes(),
        ];
        let mut strings: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..5 {
            let mut longer = Vec::new();
            for s in &strings {
                for piece in alphabet {
                    let mut next = s.clone();
                    next.extend_from_slice(piece);
                    longer.push(next);
                }
            }
            for s in &longer {
                check(s);
            }
            strings = longer;
        }
    }

    #[test]
    fn long_lines_break_softly_at_every_position() {
        // A long line with an escape, a space or a tab at every position
        // around the soft-break boundary.
        for filler in 60..160 {
            for odd in ["=", " ", "\t", "é", "x "] {
                let mut line = "x".repeat(filler);
                line.push_str(odd);
                check(line.as_bytes());
                line.push_str(&"y".repeat(filler / 2));
                check(line.as_bytes());
                check(format!("{line}\r\n{line}\r\n").as_bytes());
            }
        }
        let spaces = " ".repeat(300);
        check(spaces.as_bytes());
        let escapes = "=".repeat(300);
        check(escapes.as_bytes());
    }

    #[test]
    fn ascii_with_short_lines_is_7bit_and_sent_as_it_is() {
        assert_eq!(
            choose(b"Hello\r\nworld\r\n"),
            ContentTransferEncoding::SevenBit
        );
        assert_eq!(
            choose("x".repeat(75).as_bytes()),
            ContentTransferEncoding::SevenBit
        );
        assert_eq!(
            choose("x".repeat(76).as_bytes()),
            ContentTransferEncoding::QuotedPrintable
        );
        assert_eq!(
            choose("Grüße aus Köln, bis bald".as_bytes()),
            ContentTransferEncoding::QuotedPrintable
        );
        assert_eq!(
            choose("Сброс пароля".as_bytes()),
            ContentTransferEncoding::Base64
        );
    }

    #[test]
    fn chooses_as_lettre_does() {
        // The same choice as lettre makes for a body it encodes itself, so
        // messages look as they did.
        let samples = [
            "Hello".to_owned(),
            "x".repeat(75),
            "x".repeat(76),
            format!("{}\r\n{}", "x".repeat(74), "y".repeat(10)),
            "Grüße aus Köln".to_owned(),
            "パスワードをリセット".to_owned(),
            format!(
                "<a href=\"https://id.example/{}\">reset</a>",
                "t".repeat(800)
            ),
        ];
        for text in samples {
            let ours = part(ContentType::TEXT_PLAIN, &text);
            let theirs = SinglePart::plain(text.clone());
            assert_eq!(
                ours.headers().get::<ContentTransferEncoding>(),
                theirs.headers().get::<ContentTransferEncoding>(),
                "{text}"
            );
            if ours.headers().get::<ContentTransferEncoding>()
                == Some(ContentTransferEncoding::Base64)
            {
                assert_eq!(ours.raw_body(), theirs.raw_body());
            }
        }
    }
}
