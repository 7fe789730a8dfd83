//! The nesting bound of HTML bodies: a cheap model of the elements a
//! browser's tree builder keeps open, run while tokenizing, so that a body
//! nested absurdly deep is refused.
//!
//! Our own conversion is linear whatever the nesting, but the HTML also goes
//! to mail clients, whose tree builders are quadratic in it (48,000 nested
//! `<div>` take seconds); no real email comes near the bound.
//!
//! The model follows the HTML Standard's tree construction where it changes
//! the depth: implied end tags, scopes, tables, SVG and MathML, and the
//! formatting elements a browser reopens. Where it cannot follow exactly
//! (no text, no quirks list), it keeps more open, never fewer: it may refuse a
//! little early, it never lets a deeper tree through. Every search down the
//! stack stops at the bound, so each tag costs at most [`MAX_NESTING`] steps.

mod elements;
mod formatting;
mod rules;

use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{Doctype, Tag};

use elements::{Entry, HTML_INTEGRATION, MATHML_TEXT_INTEGRATION, Namespace, Part};
use formatting::ActiveFormatting;

/// Most elements open inside one another that an HTML body may have.
pub const MAX_NESTING: usize = 256;

/// The HTML nests deeper than [`MAX_NESTING`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the HTML nests elements more than {MAX_NESTING} deep; send it flatter, or with a `text` part"
)]
pub struct HtmlTooComplex;

/// How the tokenizer reads on after a start tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Content {
    Markup,
    /// Text up to the element's end tag (script, style, title, …).
    Text(RawKind),
    /// Text to the end of the input.
    Plaintext,
}

/// The elements currently open, as far as a tokenizer can tell (`html` and
/// `body` left out: a browser always has them).
#[derive(Debug)]
pub(super) struct Nesting {
    open: Vec<Entry>,
    formatting: ActiveFormatting,
    /// Whether `<noscript>` holds text (a browser running scripts) or markup.
    scripting: bool,
    saw_noscript: bool,
    /// A doctype that puts the browser in no-quirks mode, where `<table>` closes a `<p>`.
    no_quirks: bool,
    saw_tag: bool,
    /// A form is the document's current one (`<form>` is ignored meanwhile).
    form_pointer: bool,
    /// Still in the head, where `<noscript>` holds only head elements.
    in_head: bool,
    deepest: usize,
}

impl Nesting {
    /// The model of a browser that runs scripts (`scripting`) or does not.
    pub(super) fn new(scripting: bool) -> Self {
        Self {
            open: Vec::new(),
            formatting: ActiveFormatting::default(),
            scripting,
            saw_noscript: false,
            no_quirks: false,
            saw_tag: false,
            form_pointer: false,
            in_head: true,
            deepest: 0,
        }
    }

    /// A start tag: what it opens, and how the tokenizer goes on.
    pub(super) fn start(&mut self, tag: &Tag) -> Result<Content, HtmlTooComplex> {
        self.saw_tag = true;
        if self.in_head && !is_head_content(&tag.name) {
            self.leave_head();
        }
        if let Some(namespace) = self.foreign_namespace_for(tag) {
            if !elements::breaks_out_of_foreign_content(tag) {
                // In SVG and MathML, `<x/>` really closes.
                if tag.self_closing {
                    self.leaf()?;
                } else {
                    self.push(tag, namespace)?;
                }
                return Ok(Content::Markup);
            }
            self.close_foreign_content();
        }
        self.html_start(tag)
    }

    /// An end tag: closes what it closes; one with nothing to close is
    /// ignored (`</br>` and a lone `</p>` open an empty element).
    pub(super) fn end(&mut self, tag: &Tag) -> Result<(), HtmlTooComplex> {
        self.saw_tag = true;
        if self.in_head && matches!(&*tag.name, "head" | "body" | "html" | "br") {
            self.leave_head();
        }
        if !self.open.last().is_some_and(Entry::is_foreign) {
            return self.html_end(tag);
        }
        if matches!(&*tag.name, "br" | "p") {
            self.close_foreign_content();
            return self.html_end(tag);
        }
        // The innermost foreign element of that name closes, unless an HTML
        // element comes first: then the HTML rules decide.
        for at in (0..self.open.len()).rev() {
            let entry = &self.open[at];
            if entry.removed {
                continue;
            }
            if !entry.is_foreign() {
                return self.html_end(tag);
            }
            if entry.name == tag.name {
                self.truncate(at);
                return Ok(());
            }
        }
        self.html_end(tag)
    }

    /// Text: in HTML, a browser first reopens the formatting elements closed
    /// implicitly (in a table's rows, only for text that is not white space).
    pub(super) fn text(&mut self, text: &str) -> Result<(), HtmlTooComplex> {
        if self.in_head && !text.bytes().all(|b| b.is_ascii_whitespace()) {
            self.leave_head();
        }
        let Some(current) = self.open.last() else {
            return self.reconstruct();
        };
        if current.is_foreign() && !current.is(HTML_INTEGRATION | MATHML_TEXT_INTEGRATION) {
            return Ok(());
        }
        let table_text = ["table", "tbody", "thead", "tfoot", "tr", "colgroup"]
            .iter()
            .any(|name| current.is_html(name));
        if table_text && text.bytes().all(|b| b.is_ascii_whitespace()) {
            return Ok(());
        }
        if current.is_html("colgroup") {
            self.pop();
        }
        self.reconstruct()
    }

    /// A doctype before any tag: only a plain one (`<!DOCTYPE html>`, XHTML
    /// 1.0, HTML 4.01 Strict) is known to mean no-quirks mode.
    pub(super) fn doctype(&mut self, doctype: &Doctype) {
        if self.saw_tag {
            return;
        }
        let public = doctype.public_id.as_deref().unwrap_or_default();
        let plain_public = public.is_empty()
            || [
                "-//W3C//DTD XHTML 1.0 Transitional//",
                "-//W3C//DTD XHTML 1.0 Frameset//",
                "-//W3C//DTD XHTML 1.0 Strict//",
                "-//W3C//DTD XHTML 1.1//",
                "-//W3C//DTD HTML 4.01//",
            ]
            .iter()
            .any(|prefix| {
                public
                    .get(..prefix.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
            });
        let system = doctype.system_id.as_deref().unwrap_or_default();
        self.no_quirks = !doctype.force_quirks
            && doctype.name.as_deref() == Some("html")
            && plain_public
            && !system
                .eq_ignore_ascii_case("http://www.ibm.com/data/dtd/v11/ibmxhtml1-transitional.dtd");
    }

    /// The body starts: a `<noscript>` of the head ends with it.
    fn leave_head(&mut self) {
        self.in_head = false;
        if self.open.len() == 1 && self.open[0].is_html("noscript") {
            self.pop();
        }
    }

    /// Whether the tokenizer is in SVG or MathML (where `<![CDATA[` is text).
    pub(super) fn in_foreign_content(&self) -> bool {
        self.open.last().is_some_and(Entry::is_foreign)
    }

    /// Whether text here is never shown (inside an SVG `style`, `title`, …).
    pub(super) fn hides_text(&self) -> bool {
        self.open.last().is_some_and(|e| e.is(elements::HIDES_TEXT))
    }

    /// Whether a `<noscript>` was read as markup: a browser that runs
    /// scripts reads it as text, and nests differently.
    pub(super) fn saw_noscript(&self) -> bool {
        self.saw_noscript
    }

    /// The deepest the elements went.
    #[cfg(test)]
    pub(super) fn deepest(&self) -> usize {
        self.deepest
    }

    /// The namespace a start tag opens its element in when SVG or MathML
    /// rules apply to it; `None` when the HTML rules do.
    fn foreign_namespace_for(&self, tag: &Tag) -> Option<Namespace> {
        let current = self.open.last()?;
        let html_rules = !current.is_foreign()
            || current.is(HTML_INTEGRATION)
            || (current.is(MATHML_TEXT_INTEGRATION)
                && !matches!(&*tag.name, "mglyph" | "malignmark"))
            || (current.is(elements::ANNOTATION_XML) && &*tag.name == "svg");
        (!html_rules).then_some(current.namespace)
    }

    /// Closes SVG and MathML elements down to HTML or an integration point.
    fn close_foreign_content(&mut self) {
        while self.open.last().is_some_and(|e| {
            e.is_foreign() && !e.is(HTML_INTEGRATION) && !e.is(MATHML_TEXT_INTEGRATION)
        }) {
            self.pop();
        }
    }

    /// Elements open, counting the formatting elements a browser reopens.
    fn depth(&self) -> usize {
        self.open.len() + self.formatting.closed()
    }

    /// Room for one more element inside the open ones.
    fn leaf(&mut self) -> Result<(), HtmlTooComplex> {
        let depth = self.depth() + 1;
        if depth > MAX_NESTING {
            return Err(HtmlTooComplex);
        }
        self.deepest = self.deepest.max(depth);
        Ok(())
    }

    /// "Reconstruct the active formatting elements": the ones closed since
    /// the last marker open again, inside the current element.
    fn reconstruct(&mut self) -> Result<(), HtmlTooComplex> {
        for (id, name) in self.formatting.reopen() {
            // Already counted in the depth while closed.
            let entry = Entry::formatting(name, id, self.open.last());
            self.open.push(entry);
        }
        Ok(())
    }

    fn push(&mut self, tag: &Tag, namespace: Namespace) -> Result<(), HtmlTooComplex> {
        self.leaf()?;
        let entry = Entry::new(tag, namespace, self.open.last());
        self.open.push(entry);
        Ok(())
    }

    /// Closes the current element (and those taken out of the stack
    /// that it was the last one open inside).
    fn pop(&mut self) -> Option<Entry> {
        let entry = self.open.pop()?;
        if let Some(id) = entry.formatting {
            self.formatting.close(id);
        }
        while self.open.last().is_some_and(|e| e.removed) {
            self.open.pop();
        }
        Some(entry)
    }

    /// Closes the elements from `len` on; `true` when a cell or caption was
    /// among them.
    fn truncate(&mut self, len: usize) -> bool {
        let mut cell = false;
        while self.open.len() > len {
            cell |= self.pop().is_some_and(|e| e.is(elements::CELL));
        }
        cell
    }

    /// Takes the element at `at` out of the stack, leaving those inside it
    /// open: they stay as deep as they were.
    fn remove(&mut self, at: usize) {
        if at + 1 == self.open.len() {
            self.pop();
            return;
        }
        let entry = &mut self.open[at];
        entry.removed = true;
        if let Some(id) = entry.formatting.take() {
            self.formatting.close(id);
        }
    }

    /// Where the innermost open element that is `wanted` is, looking down
    /// from the current one and giving up at the first that `ends` the search.
    fn innermost(
        &self,
        wanted: impl Fn(&Entry) -> bool,
        ends: impl Fn(&Entry) -> bool,
    ) -> Option<usize> {
        for (at, entry) in self.open.iter().enumerate().rev() {
            if wanted(entry) {
                return Some(at);
            }
            if ends(entry) {
                return None;
            }
        }
        None
    }

    /// Where the innermost open HTML `name` is, if it is in the scope that
    /// elements flagged `bounds` end.
    fn in_scope(&self, name: &str, bounds: u16) -> Option<usize> {
        self.innermost(|e| e.is_html(name), |e| e.is(bounds))
    }

    /// The table part the current element is in.
    fn part(&self) -> Part {
        self.open.last().map_or(Part::Body, |e| e.part)
    }
}

/// Tags that leave a browser in the head (when it reads one).
fn is_head_content(name: &str) -> bool {
    matches!(
        name,
        "html"
            | "head"
            | "base"
            | "basefont"
            | "bgsound"
            | "link"
            | "meta"
            | "noframes"
            | "script"
            | "style"
            | "template"
            | "title"
            | "noscript"
    )
}
