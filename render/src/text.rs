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

use super::nesting::{Content, HtmlTooComplex, Nesting};

/// Lines are wrapped at this width; longer words (links) keep their own line.
const WIDTH: usize = 78;

/// A readable plain-text version of an HTML body: blocks become lines,
/// lists get `* `, links keep their URLs (`text <URL>`), scripts, styles and
/// the title are left out. Refused when the HTML nests too deep for a
/// browser's tree builder (see `nesting`).
pub fn html_to_text(html: &str) -> Result<String, HtmlTooComplex> {
    // Mail clients run no scripts: `<noscript>` holds markup for them.
    let conversion = convert(html, false);
    if conversion.nesting.saw_noscript() && convert(html, true).too_complex {
        // A browser that runs scripts reads it as text and nests the rest
        // differently: that reading is bounded too.
        return Err(HtmlTooComplex);
    }
    conversion.finish()
}

/// One pass of the tokenizer over `html`, for a browser that runs scripts or not.
fn convert(html: &str, scripting: bool) -> Conversion {
    let sink = Sink {
        state: RefCell::new(Conversion::new(scripting)),
    };
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    // Our sink never asks to pause for a script, so one feed consumes it all.
    while let TokenizerResult::Script(()) = tokenizer.feed(&input) {}
    tokenizer.end();
    tokenizer.sink.state.into_inner()
}

/// The deepest nesting the model saw in `html` (scripts not run).
#[cfg(test)]
pub(crate) fn deepest_nesting(html: &str, scripting: bool) -> Option<usize> {
    let conversion = convert(html, scripting);
    (!conversion.too_complex).then(|| conversion.nesting.deepest())
}

struct Sink {
    state: RefCell<Conversion>,
}

impl TokenSink for Sink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        self.state.borrow_mut().token(token)
    }

    /// In SVG and MathML, `<![CDATA[…]]>` is text (elsewhere a bogus comment).
    fn adjusted_current_node_present_but_not_in_html_namespace(&self) -> bool {
        self.state.borrow().nesting.in_foreign_content()
    }
}

/// An element whose content the tokenizer reads as text.
struct RawText {
    name: html5ever::LocalName,
    /// Shown as preformatted text (`xmp`), or left out (script, style, …).
    shown: bool,
}

/// The conversion so far.
struct Conversion {
    text: TextWriter,
    nesting: Nesting,
    too_complex: bool,
    /// The element whose raw content is being read.
    raw: Option<RawText>,
    /// The open links: their URL and where their text starts in the output.
    links: Vec<(Option<String>, usize)>,
}

impl Conversion {
    fn new(scripting: bool) -> Self {
        Self {
            text: TextWriter::default(),
            nesting: Nesting::new(scripting),
            too_complex: false,
            raw: None,
            links: Vec::new(),
        }
    }

    fn token(&mut self, token: Token) -> TokenSinkResult<()> {
        if self.too_complex {
            return TokenSinkResult::Continue;
        }
        match token {
            Token::TagToken(tag) => return self.tag(tag),
            Token::CharacterTokens(text) if self.raw.is_none() => {
                if self.nesting.text(&text).is_err() {
                    self.too_complex = true;
                } else if !self.nesting.hides_text() {
                    self.text.write(&text);
                }
            }
            Token::CharacterTokens(text) if self.raw.as_ref().is_some_and(|r| r.shown) => {
                self.text.write(&text);
            }
            Token::DoctypeToken(doctype) if self.text.out.is_empty() => {
                self.nesting.doctype(&doctype);
            }
            _ => {}
        }
        TokenSinkResult::Continue
    }

    fn tag(&mut self, tag: Tag) -> TokenSinkResult<()> {
        if let Some(raw) = &self.raw {
            // The tokenizer ends raw text only at the element's own end tag.
            if tag.kind == TagKind::EndTag && raw.name == tag.name {
                if raw.shown {
                    self.end_pre();
                }
                self.raw = None;
            }
            return TokenSinkResult::Continue;
        }
        match tag.kind {
            TagKind::StartTag => match self.nesting.start(&tag) {
                Err(HtmlTooComplex) => self.too_complex = true,
                Ok(Content::Text(kind)) => return self.start_raw(&tag, kind),
                Ok(Content::Plaintext) => {
                    self.start_pre();
                    return TokenSinkResult::Plaintext;
                }
                Ok(Content::Markup) => self.start(&tag),
            },
            TagKind::EndTag => {
                if self.nesting.end(&tag).is_err() {
                    self.too_complex = true;
                }
                self.end(&tag);
            }
        }
        TokenSinkResult::Continue
    }

    /// Script, style, title and the like are left out; `xmp` shows its text as is.
    fn start_raw(&mut self, tag: &Tag, kind: RawKind) -> TokenSinkResult<()> {
        let shown = &*tag.name == "xmp";
        if shown {
            self.start_pre();
        }
        self.raw = Some(RawText {
            name: tag.name.clone(),
            shown,
        });
        TokenSinkResult::RawData(kind)
    }

    fn start(&mut self, tag: &Tag) {
        match &*tag.name {
            "br" => self.text.line_break(),
            "li" => self.text.bullet(),
            "td" | "th" => self.text.space(),
            "pre" => self.start_pre(),
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
    }

    fn end(&mut self, tag: &Tag) {
        match &*tag.name {
            "a" => self.close_link(),
            "pre" => self.end_pre(),
            name => {
                if let Some(breaks) = block_breaks(name) {
                    self.text.block(breaks);
                }
            }
        }
    }

    fn start_pre(&mut self) {
        self.text.block(2);
        self.text.pre += 1;
    }

    fn end_pre(&mut self) {
        self.text.pre = self.text.pre.saturating_sub(1);
        self.text.block(2);
    }

    fn open_link(&mut self, tag: &Tag) {
        // A link never holds another: as in a browser, a new one ends the
        // one open. So at most one is open, and closing each looks only at
        // its own text (a stack of unclosed links made every close look at
        // everything written since the first: quadratic on a body of
        // `<a>`s over white space).
        self.close_link();
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
