//! The HTML rules of tree construction ("in body" and the table modes), as
//! far as they open and close elements.

use html5ever::tokenizer::Tag;
use html5ever::tokenizer::states::RawKind;

use super::elements::{
    self, BUTTON_SCOPE, Entry, HEADING, IMPLIED_END, LIST_SCOPE, Namespace, Part, SCOPE, SPECIAL,
    TABLE_SCOPE,
};
use super::{Content, HtmlTooComplex, Nesting};

impl Nesting {
    pub(super) fn html_start(&mut self, tag: &Tag) -> Result<Content, HtmlTooComplex> {
        let name = &*tag.name;
        self.choose_template_part(name)?;
        // In a column group, anything but a column or a template closes it.
        if self.part() == Part::ColumnGroup
            && !matches!(name, "col" | "template")
            && self.open.last().is_some_and(|e| e.is_html("colgroup"))
        {
            self.pop();
        }
        match name {
            // A browser has exactly one of each, always open.
            "html" | "head" | "body" | "frameset" | "frame" => {}
            "base" | "basefont" | "bgsound" | "link" | "meta" | "param" | "source" | "track" => {
                self.leaf()?;
            }
            "area" | "br" | "embed" | "img" | "image" | "keygen" | "wbr" => {
                self.reconstruct()?;
                self.leaf()?;
            }
            "script" => return self.raw_text(RawKind::ScriptData),
            "style" | "noframes" | "iframe" | "noembed" => return self.raw_text(RawKind::Rawtext),
            "title" | "textarea" => return self.raw_text(RawKind::Rcdata),
            "xmp" => {
                self.close_p();
                self.reconstruct()?;
                return self.raw_text(RawKind::Rawtext);
            }
            "noscript" if self.scripting => return self.raw_text(RawKind::Rawtext),
            // In the head it holds head elements only (see `leave_head`).
            "noscript" if self.in_head && self.open.is_empty() => {
                self.saw_noscript = true;
                self.push(tag, Namespace::Html)?;
            }
            "noscript" => {
                self.saw_noscript = true;
                self.reconstruct()?;
                self.push(tag, Namespace::Html)?;
            }
            "plaintext" => {
                self.close_p();
                self.push(tag, Namespace::Html)?;
                return Ok(Content::Plaintext);
            }
            "input" => {
                self.close_select();
                self.reconstruct()?;
                self.leaf()?;
            }
            "hr" => {
                self.close_p();
                if self.in_scope("select", SCOPE).is_some() {
                    self.implied_end_except(None);
                }
                self.leaf()?;
            }
            "address" | "article" | "aside" | "blockquote" | "center" | "details" | "dialog"
            | "dir" | "div" | "dl" | "fieldset" | "figcaption" | "figure" | "footer" | "header"
            | "hgroup" | "main" | "menu" | "nav" | "ol" | "p" | "search" | "section"
            | "summary" | "ul" | "pre" | "listing" => {
                self.close_p();
                self.push(tag, Namespace::Html)?;
            }
            "form" => self.open_form(tag)?,
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.close_p();
                if self.open.last().is_some_and(|e| e.is(HEADING)) {
                    self.pop();
                }
                self.push(tag, Namespace::Html)?;
            }
            "li" => self.list_item(tag, &["li"])?,
            "dd" | "dt" => self.list_item(tag, &["dd", "dt"])?,
            "button" => {
                if let Some(at) = self.in_scope("button", SCOPE) {
                    self.truncate(at);
                }
                self.reconstruct()?;
                self.push(tag, Namespace::Html)?;
            }
            "a" => {
                self.close_misnested_link();
                self.reconstruct()?;
                self.push_formatting(tag)?;
            }
            "nobr" => {
                self.reconstruct()?;
                if self.in_scope("nobr", SCOPE).is_some() {
                    self.adoption("nobr");
                    self.reconstruct()?;
                }
                self.push_formatting(tag)?;
            }
            _ if elements::is_formatting(name) => {
                self.reconstruct()?;
                self.push_formatting(tag)?;
            }
            "applet" | "marquee" | "object" => {
                self.reconstruct()?;
                self.push(tag, Namespace::Html)?;
                self.formatting.push_marker();
            }
            "template" => {
                self.push(tag, Namespace::Html)?;
                self.formatting.push_marker();
            }
            "table" => self.table(tag)?,
            "caption" | "col" | "colgroup" | "tbody" | "td" | "tfoot" | "th" | "thead" | "tr" => {
                self.table_part(tag)?;
            }
            "select" => match self.in_scope("select", SCOPE) {
                // A select inside a select closes it.
                Some(at) => drop(self.truncate(at)),
                None => {
                    self.reconstruct()?;
                    self.push(tag, Namespace::Html)?;
                }
            },
            "option" | "optgroup" => {
                if self.in_scope("select", SCOPE).is_some() {
                    let except = (name == "option").then_some("optgroup");
                    self.implied_end_except(except);
                } else if self.open.last().is_some_and(|e| e.is_html("option")) {
                    self.pop();
                }
                self.reconstruct()?;
                self.push(tag, Namespace::Html)?;
            }
            "rb" | "rtc" | "rp" | "rt" => {
                if self.in_scope("ruby", SCOPE).is_some() {
                    let except = matches!(name, "rp" | "rt").then_some("rtc");
                    self.implied_end_except(except);
                }
                self.push(tag, Namespace::Html)?;
            }
            "svg" | "math" => {
                let namespace = if name == "svg" {
                    Namespace::Svg
                } else {
                    Namespace::MathMl
                };
                self.reconstruct()?;
                if tag.self_closing {
                    self.leaf()?;
                } else {
                    self.push(tag, namespace)?;
                }
            }
            _ => {
                self.reconstruct()?;
                self.push(tag, Namespace::Html)?;
            }
        }
        Ok(Content::Markup)
    }

    pub(super) fn html_end(&mut self, tag: &Tag) -> Result<(), HtmlTooComplex> {
        let name = &*tag.name;
        if self.part() == Part::ColumnGroup
            && !matches!(name, "col" | "colgroup" | "template")
            && self.open.last().is_some_and(|e| e.is_html("colgroup"))
        {
            self.pop();
        }
        match name {
            "html" | "head" | "body" | "col" => {}
            // `</br>` is read as `<br>`; `</p>` with no p open as `<p></p>`.
            "br" => {
                self.reconstruct()?;
                self.leaf()?;
            }
            "p" if self.in_scope("p", SCOPE | BUTTON_SCOPE).is_none() => self.leaf()?,
            "p" => self.close_p(),
            "address" | "article" | "aside" | "blockquote" | "button" | "center" | "details"
            | "dialog" | "dir" | "div" | "dl" | "fieldset" | "figcaption" | "figure" | "footer"
            | "header" | "hgroup" | "listing" | "main" | "menu" | "nav" | "ol" | "pre"
            | "search" | "section" | "select" | "summary" | "ul" | "dd" | "dt" => {
                self.close_in_scope(name, SCOPE);
            }
            "li" => self.close_in_scope(name, SCOPE | LIST_SCOPE),
            "form" => self.close_form(),
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => self.close_heading(),
            _ if elements::is_formatting(name) => self.adoption(name),
            "template" => {
                if let Some(at) = self.open.iter().rposition(|e| e.is_html("template")) {
                    self.truncate(at);
                    self.formatting.clear_to_last_marker();
                }
            }
            "applet" | "marquee" | "object" => {
                if let Some(at) = self.in_scope(name, SCOPE) {
                    self.truncate(at);
                    self.formatting.clear_to_last_marker();
                }
            }
            "table" | "tbody" | "tfoot" | "thead" | "tr" | "td" | "th" | "caption" | "colgroup"
                if self.part() != Part::Body =>
            {
                if let Some(at) = self.in_scope(name, TABLE_SCOPE)
                    && self.truncate(at)
                {
                    self.formatting.clear_to_last_marker();
                }
            }
            _ => self.close_other(name),
        }
        Ok(())
    }

    /// Right inside a template, the first tag other than a head element
    /// decides how the template's content is read: as body, or as table
    /// parts, whose switching modes are not followed here (and have no use
    /// in email): refused.
    fn choose_template_part(&mut self, name: &str) -> Result<(), HtmlTooComplex> {
        let Some(template) = self
            .open
            .last_mut()
            .filter(|e| e.is_html("template") && e.part == Part::Template)
        else {
            return Ok(());
        };
        match name {
            "caption" | "colgroup" | "col" | "tbody" | "tfoot" | "thead" | "tr" | "td" | "th" => {
                return Err(HtmlTooComplex);
            }
            "base" | "basefont" | "bgsound" | "link" | "meta" | "noframes" | "script" | "style"
            | "template" | "title" => {}
            _ => template.part = Part::Body,
        }
        Ok(())
    }

    /// A raw text element (script, style, …): it holds text only, so it
    /// opens nothing that outlasts it.
    pub(super) fn raw_text(&mut self, kind: RawKind) -> Result<Content, HtmlTooComplex> {
        self.leaf()?;
        Ok(Content::Text(kind))
    }

    /// "Close a p element" if one is in button scope.
    fn close_p(&mut self) {
        self.close_in_scope("p", SCOPE | BUTTON_SCOPE);
    }

    fn close_select(&mut self) {
        self.close_in_scope("select", SCOPE);
    }

    fn close_in_scope(&mut self, name: &str, bounds: u16) {
        if let Some(at) = self.in_scope(name, bounds) {
            self.truncate(at);
        }
    }

    /// "Generate implied end tags", except for `except`.
    fn implied_end_except(&mut self, except: Option<&str>) {
        while self
            .open
            .last()
            .is_some_and(|e| e.is(IMPLIED_END) && except.is_none_or(|x| !e.is_html(x)))
        {
            self.pop();
        }
    }

    /// `<li>` closes an open `li` unless a block other than address, div
    /// or p is open inside it (`<li><ul><li>` nests); likewise dd and dt.
    fn list_item(&mut self, tag: &Tag, closes: &[&str]) -> Result<(), HtmlTooComplex> {
        let passable = |e: &Entry| ["address", "div", "p"].iter().any(|n| e.is_html(n));
        if let Some(at) = self.innermost(
            |e| closes.iter().any(|name| e.is_html(name)),
            |e| e.is(SPECIAL) && !passable(e),
        ) {
            self.truncate(at);
        }
        self.close_p();
        self.push(tag, Namespace::Html)
    }

    /// `</form>` takes the form out of the stack but leaves open what was
    /// opened inside it (`<form><div></form>` keeps the div open).
    /// Outside templates, while a form is current another is ignored.
    fn open_form(&mut self, tag: &Tag) -> Result<(), HtmlTooComplex> {
        let in_template = self.open.iter().any(|e| e.is_html("template"));
        if self.form_pointer && !in_template {
            return Ok(());
        }
        if matches!(self.part(), Part::Table | Part::TableBody | Part::Row) {
            if !in_template {
                self.form_pointer = true;
                self.leaf()?;
            }
            return Ok(());
        }
        self.close_p();
        self.push(tag, Namespace::Html)?;
        if !in_template && let Some(form) = self.open.last_mut() {
            form.form_pointer = true;
            self.form_pointer = true;
        }
        Ok(())
    }

    fn close_form(&mut self) {
        if self.open.iter().any(|e| e.is_html("template")) {
            return self.close_in_scope("form", SCOPE);
        }
        if !std::mem::take(&mut self.form_pointer) || self.current_form().is_none() {
            return;
        }
        self.implied_end_except(None);
        if let Some(at) = self.current_form() {
            self.open[at].form_pointer = false;
            self.remove(at);
        }
    }

    /// Where the current form is, if it is in scope.
    fn current_form(&self) -> Option<usize> {
        self.innermost(|e| e.form_pointer && !e.removed, |e| e.is(SCOPE))
    }

    fn close_heading(&mut self) {
        if let Some(at) = self.innermost(|e| e.is(HEADING), |e| e.is(SCOPE)) {
            self.truncate(at);
        }
    }

    /// "Any other end tag": closes the innermost element of that name unless
    /// a special element (div, table, …) was opened inside it.
    fn close_other(&mut self, name: &str) {
        if let Some(at) = self.innermost(|e| e.is_html(name), |e| e.is(SPECIAL)) {
            self.truncate(at);
        }
    }

    pub(super) fn push_formatting(&mut self, tag: &Tag) -> Result<(), HtmlTooComplex> {
        self.push(tag, Namespace::Html)?;
        let id = self.formatting.push(tag);
        if let Some(entry) = self.open.last_mut() {
            entry.formatting = Some(id);
        }
        Ok(())
    }

    /// The end tag of a formatting element (the "adoption agency"): it
    /// closes the element, or, when a special element (div, p, …) was opened
    /// inside it, moves that block out and reopens the formatting inside it.
    pub(super) fn adoption(&mut self, name: &str) {
        if let Some(current) = self.open.last()
            && current.is_html(name)
            && !current
                .formatting
                .is_some_and(|id| self.formatting.contains(id))
        {
            self.pop();
            return;
        }
        for _ in 0..8 {
            let Some(found) = self.formatting.last_named(name) else {
                return self.close_other(name);
            };
            let Some(at) = self
                .open
                .iter()
                .rposition(|e| e.formatting == Some(found.id))
                .filter(|_| found.open)
            else {
                self.formatting.remove(found.id);
                return;
            };
            if self.open[at + 1..].iter().any(|e| e.is(SCOPE)) {
                return;
            }
            let Some(block) = (at + 1..self.open.len()).find(|&i| self.open[i].is(SPECIAL)) else {
                self.formatting.remove(found.id);
                self.truncate(at);
                return;
            };
            self.move_block_out(found.id, at, block);
        }
    }

    /// The adoption agency's furthest block at `block`, the formatting
    /// element `id` at `at`: the elements between close, except formatting
    /// ones (the first three), which the block goes into; the formatting
    /// element moves inside the block.
    fn move_block_out(&mut self, id: u32, at: usize, mut block: usize) {
        let mut bookmark = None;
        let mut inner = 0;
        let mut node = block;
        loop {
            node -= 1;
            if node == at {
                break;
            }
            if !self.open[node].removed {
                inner += 1;
                let mut kept = self.open[node]
                    .formatting
                    .filter(|&id| self.formatting.contains(id));
                if inner > 3
                    && let Some(dropped) = kept.take()
                {
                    self.formatting.remove(dropped);
                }
                if let Some(kept) = kept {
                    if node + 1 == block {
                        bookmark = Some(kept);
                    }
                    continue;
                }
            }
            // Not a formatting element: no longer an ancestor of the block.
            self.open.remove(node);
            block -= 1;
        }
        let element = self.open.remove(at);
        block -= 1;
        if let Some(after) = bookmark {
            self.formatting.move_after(id, after);
        }
        let moved = Entry::formatting(element.name, id, self.open.get(block));
        self.open.insert(block + 1, moved);
    }

    /// `<a>` while an `a` is active closes that one first, wherever it is.
    fn close_misnested_link(&mut self) {
        let Some(found) = self.formatting.last_named("a") else {
            return;
        };
        self.adoption("a");
        self.formatting.remove(found.id);
        if let Some(at) = self
            .open
            .iter()
            .rposition(|e| e.formatting == Some(found.id))
        {
            self.remove(at);
        }
    }

    /// `<table>`: inside a table's rows it closes that table first.
    fn table(&mut self, tag: &Tag) -> Result<(), HtmlTooComplex> {
        while matches!(
            self.part(),
            Part::Table | Part::TableBody | Part::Row | Part::ColumnGroup
        ) {
            let Some(at) = self.in_scope("table", TABLE_SCOPE) else {
                break;
            };
            self.truncate(at);
        }
        if self.no_quirks {
            self.close_p();
        }
        self.push(tag, Namespace::Html)
    }

    /// Row groups, rows, cells, captions and columns: they close the open
    /// parts down to where they belong and open those left out (`<table><td>`
    /// is `<table><tbody><tr><td>`). Outside a table they are ignored.
    fn table_part(&mut self, tag: &Tag) -> Result<(), HtmlTooComplex> {
        let name = &*tag.name;
        match self.part() {
            Part::Body => return Ok(()),
            Part::ColumnGroup if name == "col" => return self.leaf(),
            _ => {}
        }
        let belongs_in: &[&str] = match name {
            "td" | "th" => &["tr", "tbody", "thead", "tfoot"],
            "tr" => &["tbody", "thead", "tfoot"],
            _ => &[],
        };
        let Some(at) = self
            .open
            .iter()
            .rposition(|e| e.is(TABLE_SCOPE) || belongs_in.iter().any(|parent| e.is_html(parent)))
        else {
            return Ok(());
        };
        if self.truncate(at + 1) {
            self.formatting.clear_to_last_marker();
        }
        let anchor = &self.open[at];
        // A template reads its content as the part its first tag chose.
        let parent = match anchor.part {
            _ if !anchor.is_html("template") => &*anchor.name,
            Part::Table => "table",
            Part::TableBody => "tbody",
            _ => "tr",
        };
        let implied: &[&str] = match (name, parent) {
            ("td" | "th", "table") => &["tbody", "tr"],
            ("td" | "th", "tbody" | "thead" | "tfoot") => &["tr"],
            ("tr", "table") => &["tbody"],
            ("col", "table") => &["colgroup"],
            _ => &[],
        };
        for wrapper in implied {
            let mut implied_tag = tag.clone();
            implied_tag.name = (*wrapper).into();
            implied_tag.attrs.clear();
            self.push(&implied_tag, Namespace::Html)?;
        }
        self.open_table_part(tag)
    }

    fn open_table_part(&mut self, tag: &Tag) -> Result<(), HtmlTooComplex> {
        match &*tag.name {
            "col" => self.leaf(),
            name => {
                self.push(tag, Namespace::Html)?;
                if matches!(name, "td" | "th" | "caption") {
                    self.formatting.push_marker();
                }
                Ok(())
            }
        }
    }
}
