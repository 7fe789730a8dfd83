//! The nesting bound of HTML bodies: a cheap model of the elements left open,
//! kept while tokenizing, so that a body nested absurdly deep is refused.
//!
//! Our own conversion is linear whatever the nesting, but the HTML also goes
//! to mail clients, whose tree builders are quadratic in it (48,000 nested
//! `<div>` take seconds); no real email comes near the bound.

use html5ever::LocalName;

/// Most elements open inside one another that an HTML body may have.
pub const MAX_NESTING: usize = 256;

/// How far down the open elements an implied end tag is looked for: enough
/// for `<li><a><b>…<li>`, and constant so that each tag costs O(1).
const IMPLIED_END_REACH: usize = 8;

/// The HTML nests deeper than [`MAX_NESTING`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the HTML nests elements more than {MAX_NESTING} deep; send it flatter, or with a `text` part"
)]
pub struct HtmlTooComplex;

/// The elements currently open, as far as a tokenizer can tell.
#[derive(Debug, Default)]
pub(super) struct Nesting {
    open: Vec<LocalName>,
}

impl Nesting {
    /// A start tag: opens an element unless it is void (or self-closed
    /// inside SVG/MathML, where `<x/>` really closes; in HTML it does not).
    pub(super) fn start(
        &mut self,
        name: &LocalName,
        self_closing: bool,
    ) -> Result<(), HtmlTooComplex> {
        if is_void(name) || (self_closing && self.in_foreign_content()) {
            return Ok(());
        }
        if let Some(group) = implied_end_group(name) {
            let reach = self.open.len().saturating_sub(IMPLIED_END_REACH);
            if let Some(at) = self.open[reach..]
                .iter()
                .rposition(|open| implied_end_group(open) == Some(group))
            {
                self.open.truncate(reach + at);
            }
        }
        if self.open.len() >= MAX_NESTING {
            return Err(HtmlTooComplex);
        }
        self.open.push(name.clone());
        Ok(())
    }

    /// An end tag: closes the innermost open element of that name, and
    /// everything opened inside it; an end tag with nothing to close is ignored.
    pub(super) fn end(&mut self, name: &LocalName) {
        if let Some(at) = self.open.iter().rposition(|open| open == name) {
            self.open.truncate(at);
        }
    }

    fn in_foreign_content(&self) -> bool {
        self.open
            .iter()
            .any(|open| &**open == "svg" || &**open == "math")
    }
}

/// Elements that never have content.
fn is_void(name: &LocalName) -> bool {
    matches!(
        &**name,
        "area"
            | "base"
            | "basefont"
            | "bgsound"
            | "br"
            | "col"
            | "embed"
            | "frame"
            | "hr"
            | "img"
            | "input"
            | "keygen"
            | "link"
            | "meta"
            | "param"
            | "source"
            | "track"
            | "wbr"
    )
}

/// Elements whose end tag may be left out: a new one of the same group closes
/// the previous one (`<li>a<li>b`, `<td>1<td>2`, `<p>x<p>y`).
fn implied_end_group(name: &LocalName) -> Option<&'static str> {
    Some(match &**name {
        "p" => "p",
        "li" => "li",
        "dt" | "dd" => "dt",
        "option" => "option",
        "tr" => "tr",
        "td" | "th" => "td",
        "thead" | "tbody" | "tfoot" => "tbody",
        "rt" | "rp" => "rt",
        _ => return None,
    })
}
