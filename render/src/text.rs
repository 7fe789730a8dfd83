//! HTML to plain text in one pass over a streaming tokenizer: time linear in
//! the input, memory bounded by it. A tree builder (html5ever's, which
//! html2text used) checks scopes on every tag and is quadratic in nesting.

use std::cell::RefCell;

use html5ever::TokenizerResult;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};

use super::nesting::{HtmlTooComplex, Nesting};

/// Lines are wrapped at this width; longer words (links) keep their own line.
const WIDTH: usize = 78;

/// A readable plain-text version of an HTML body: blocks become lines,
/// lists get `* `, links keep their URLs (`text <URL>`), scripts, styles and
/// the title are left out. Refused when the HTML nests too deep.
pub fn html_to_text(html: &str) -> Result<String, HtmlTooComplex> {
    let sink = Sink::default();
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    // Our sink never asks to pause for a script, so one feed consumes it all.
    while let TokenizerResult::Script(()) = tokenizer.feed(&input) {}
    tokenizer.end();
    tokenizer.sink.state.into_inner().finish()
}

#[derive(Default)]
struct Sink {
    state: RefCell<Conversion>,
}

impl TokenSink for Sink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        self.state.borrow_mut().token(token)
    }
}

/// The conversion so far.
#[derive(Default)]
struct Conversion {
    text: TextWriter,
    nesting: Nesting,
    too_complex: bool,
    /// The element whose raw content (script, style, title) is being skipped.
    skipping: Option<html5ever::LocalName>,
    /// The open links: their URL and where their text starts in the output.
    links: Vec<(Option<String>, usize)>,
}

impl Conversion {
    fn token(&mut self, token: Token) -> TokenSinkResult<()> {
        if self.too_complex {
            return TokenSinkResult::Continue;
        }
        match token {
            Token::TagToken(tag) => return self.tag(tag),
            Token::CharacterTokens(text) if self.skipping.is_none() => self.text.write(&text),
            _ => {}
        }
        TokenSinkResult::Continue
    }

    fn tag(&mut self, tag: Tag) -> TokenSinkResult<()> {
        if let Some(skipped) = &self.skipping {
            if tag.kind == TagKind::EndTag && *skipped == tag.name {
                self.skipping = None;
            }
            return TokenSinkResult::Continue;
        }
        match tag.kind {
            TagKind::StartTag => {
                if self.nesting.start(&tag.name, tag.self_closing).is_err() {
                    self.too_complex = true;
                    return TokenSinkResult::Continue;
                }
                self.start(&tag)
            }
            TagKind::EndTag => {
                self.nesting.end(&tag.name);
                self.end(&tag);
                TokenSinkResult::Continue
            }
        }
    }

    fn start(&mut self, tag: &Tag) -> TokenSinkResult<()> {
        let raw = match &*tag.name {
            "script" => Some(RawKind::ScriptData),
            "style" => Some(RawKind::Rawtext),
            "title" | "textarea" => Some(RawKind::Rcdata),
            _ => None,
        };
        if let Some(kind) = raw {
            if !tag.self_closing {
                self.skipping = Some(tag.name.clone());
            }
            return TokenSinkResult::RawData(kind);
        }
        match &*tag.name {
            "br" => self.text.line_break(),
            "li" => self.text.bullet(),
            "td" | "th" => self.text.space(),
            "pre" => {
                self.text.block(2);
                self.text.pre += 1;
            }
            "img" => {
                if let Some(alt) = attribute(tag, "alt") {
                    self.text.write(alt);
                }
            }
            "a" => self.open_link(tag),
            name => {
                if let Some(breaks) = block_breaks(name) {
                    self.text.block(breaks);
                }
            }
        }
        TokenSinkResult::Continue
    }

    fn end(&mut self, tag: &Tag) {
        match &*tag.name {
            "a" => self.close_link(),
            "pre" => {
                self.text.pre = self.text.pre.saturating_sub(1);
                self.text.block(2);
            }
            name => {
                if let Some(breaks) = block_breaks(name) {
                    self.text.block(breaks);
                }
            }
        }
    }

    fn open_link(&mut self, tag: &Tag) {
        let url = attribute(tag, "href")
            .map(str::trim)
            .filter(|href| is_readable_link(href))
            .map(str::to_owned);
        self.links.push((url, self.text.out.len()));
    }

    /// Writes the link's URL after its text, unless the text is the URL.
    fn close_link(&mut self) {
        let Some((Some(url), start)) = self.links.pop() else {
            return;
        };
        let shown = self.text.out.get(start..).unwrap_or_default().trim();
        let bare = url.strip_prefix("mailto:").unwrap_or(&url);
        if shown.is_empty() || shown == bare {
            if shown.is_empty() {
                self.text.word(&url);
            }
            return;
        }
        self.text.space();
        self.text.word(&format!("<{url}>"));
    }

    fn finish(mut self) -> Result<String, HtmlTooComplex> {
        if self.too_complex {
            return Err(HtmlTooComplex);
        }
        while !self.links.is_empty() {
            self.close_link();
        }
        Ok(self.text.out.trim_end().to_owned())
    }
}

/// Links worth showing to a reader: not fragments or scripts.
fn is_readable_link(href: &str) -> bool {
    !href.is_empty()
        && !href.starts_with('#')
        && !href
            .get(..11)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("javascript:"))
}

fn attribute<'t>(tag: &'t Tag, name: &str) -> Option<&'t str> {
    tag.attrs
        .iter()
        .find(|a| &*a.name.local == name)
        .map(|a| &*a.value)
}

/// The line breaks around a block element: a blank line around paragraphs,
/// headings, lists and tables; one line break around the other blocks.
fn block_breaks(name: &str) -> Option<u8> {
    match name {
        "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "ul" | "ol" | "dl" | "table"
        | "blockquote" | "hr" => Some(2),
        "div" | "tr" | "li" | "dt" | "dd" | "section" | "article" | "header" | "footer"
        | "main" | "nav" | "aside" | "address" | "center" | "figure" | "figcaption" | "form"
        | "fieldset" | "details" | "summary" | "caption" | "body" => Some(1),
        _ => None,
    }
}

/// Plain text with collapsed white space, wrapped at [`WIDTH`].
#[derive(Default)]
struct TextWriter {
    out: String,
    /// Characters on the current line.
    column: usize,
    /// Line breaks owed before the next word.
    breaks: u8,
    /// A space is owed before the next word.
    spaced: bool,
    /// Inside `<pre>`: white space is kept.
    pre: usize,
}

impl TextWriter {
    fn write(&mut self, text: &str) {
        if self.pre > 0 {
            self.flush_breaks();
            self.out.push_str(text);
            self.column = text.rsplit('\n').next().map_or(0, |l| l.chars().count());
            return;
        }
        if text.starts_with(|c: char| c.is_whitespace()) {
            self.space();
        }
        let mut words = text.split_whitespace().peekable();
        while let Some(word) = words.next() {
            self.word(word);
            if words.peek().is_some() {
                self.space();
            }
        }
        if text.ends_with(|c: char| c.is_whitespace()) {
            self.space();
        }
    }

    fn word(&mut self, word: &str) {
        self.flush_breaks();
        let width = word.chars().count();
        if self.spaced && self.column > 0 {
            if self.column + 1 + width > WIDTH {
                self.out.push('\n');
                self.column = 0;
            } else {
                self.out.push(' ');
                self.column += 1;
            }
        }
        self.spaced = false;
        self.out.push_str(word);
        self.column += width;
    }

    fn space(&mut self) {
        self.spaced = true;
    }

    fn block(&mut self, breaks: u8) {
        if !self.out.is_empty() {
            self.breaks = self.breaks.max(breaks);
        }
    }

    fn line_break(&mut self) {
        self.breaks = (self.breaks + 1).min(3);
    }

    fn bullet(&mut self) {
        self.block(1);
        self.flush_breaks();
        self.out.push_str("* ");
        self.column += 2;
        self.spaced = false;
    }

    fn flush_breaks(&mut self) {
        if self.breaks == 0 {
            return;
        }
        if !self.out.is_empty() {
            // Trailing spaces of the line just ended are not kept.
            let kept = self.out.trim_end_matches(' ').len();
            self.out.truncate(kept);
            for _ in 0..self.breaks {
                self.out.push('\n');
            }
        }
        self.breaks = 0;
        self.column = 0;
        self.spaced = false;
    }
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
