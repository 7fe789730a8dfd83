//! What the tree-building rules need to know of an open element: its
//! namespace, the categories the HTML Standard's parsing rules name, and the
//! table part it belongs to. Worked out once, when the element opens.

use html5ever::LocalName;
use html5ever::tokenizer::Tag;

/// Where an element belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Namespace {
    Html,
    Svg,
    MathMl,
}

/// The table part an element sits in, which decides how table tags are
/// handled inside it (the Standard's insertion mode, as "reset the insertion
/// mode appropriately" finds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Body,
    Table,
    TableBody,
    Row,
    Cell,
    Caption,
    ColumnGroup,
    Template,
}

/// The "special" category: an end tag of another element stops there.
pub(super) const SPECIAL: u16 = 1;
/// Ends the default scope (and with it list item and button scope).
pub(super) const SCOPE: u16 = 1 << 1;
/// `ol`, `ul`: also end list item scope.
pub(super) const LIST_SCOPE: u16 = 1 << 2;
/// `button`: also ends button scope.
pub(super) const BUTTON_SCOPE: u16 = 1 << 3;
/// `table`, `template`: end table scope.
pub(super) const TABLE_SCOPE: u16 = 1 << 4;
/// Closed by "generate implied end tags" (`p`, `li`, `option`, …).
pub(super) const IMPLIED_END: u16 = 1 << 5;
/// `td`, `th`, `caption`: closing one clears the formatting elements back to its marker.
pub(super) const CELL: u16 = 1 << 6;
/// SVG `foreignObject`, `desc`, `title`, and MathML `annotation-xml` holding HTML.
pub(super) const HTML_INTEGRATION: u16 = 1 << 7;
/// MathML `mi`, `mo`, `mn`, `ms`, `mtext`.
pub(super) const MATHML_TEXT_INTEGRATION: u16 = 1 << 8;
/// MathML `annotation-xml`: an `<svg>` inside it is SVG again.
pub(super) const ANNOTATION_XML: u16 = 1 << 9;
/// Its text is never shown (SVG `style`, `script`, `title`, `desc`), nor its children's.
pub(super) const HIDES_TEXT: u16 = 1 << 10;
/// A heading, `h1` to `h6`.
pub(super) const HEADING: u16 = 1 << 11;

/// An element on the stack of open elements.
#[derive(Debug)]
pub(super) struct Entry {
    pub name: LocalName,
    pub namespace: Namespace,
    pub flags: u16,
    pub part: Part,
    /// Its entry in the list of active formatting elements, if it was given one.
    pub formatting: Option<u32>,
    /// Taken out of the stack while elements opened inside it stay open
    /// (`</form>`): it matches nothing, but is still their ancestor.
    pub removed: bool,
    /// The form the document's form pointer points at.
    pub form_pointer: bool,
}

impl Entry {
    /// The element `tag` opens in `namespace`, inside `parent`.
    pub fn new(tag: &Tag, namespace: Namespace, parent: Option<&Entry>) -> Self {
        let name = &*tag.name;
        let mut flags = match namespace {
            Namespace::Html => html_flags(name),
            Namespace::Svg => svg_flags(name),
            Namespace::MathMl => mathml_flags(tag),
        };
        if parent.is_some_and(|p| p.is(HIDES_TEXT)) {
            flags |= HIDES_TEXT;
        }
        let inherited = parent.map_or(Part::Body, |p| match p.part {
            // Inside a template, anything but a table part is in body.
            Part::Template => Part::Body,
            part => part,
        });
        let part = match namespace {
            Namespace::Html => own_part(name).unwrap_or(inherited),
            _ => inherited,
        };
        Self {
            name: tag.name.clone(),
            namespace,
            flags,
            part,
            formatting: None,
            removed: false,
            form_pointer: false,
        }
    }

    /// The formatting element `id` of the list of active formatting
    /// elements, reopened (or moved) inside `parent`.
    pub fn formatting(name: LocalName, id: u32, parent: Option<&Entry>) -> Self {
        let tag = Tag {
            kind: html5ever::tokenizer::TagKind::StartTag,
            name,
            self_closing: false,
            attrs: Vec::new(),
            had_duplicate_attributes: false,
        };
        let mut entry = Self::new(&tag, Namespace::Html, parent);
        entry.formatting = Some(id);
        entry
    }

    pub fn is(&self, flag: u16) -> bool {
        !self.removed && self.flags & flag != 0
    }

    /// An HTML element named `name`.
    pub fn is_html(&self, name: &str) -> bool {
        !self.removed && self.namespace == Namespace::Html && &*self.name == name
    }

    pub fn is_foreign(&self) -> bool {
        self.namespace != Namespace::Html
    }
}

fn own_part(name: &str) -> Option<Part> {
    Some(match name {
        "table" => Part::Table,
        "tbody" | "thead" | "tfoot" => Part::TableBody,
        "tr" => Part::Row,
        "td" | "th" => Part::Cell,
        "caption" => Part::Caption,
        "colgroup" => Part::ColumnGroup,
        "template" => Part::Template,
        _ => return None,
    })
}

fn html_flags(name: &str) -> u16 {
    let mut flags = 0;
    if is_special(name) {
        flags |= SPECIAL;
    }
    flags |= match name {
        // `select` ends scopes in the current Standard (and is harmless where it did not).
        "applet" | "marquee" | "object" | "select" => SCOPE,
        "table" | "template" => SCOPE | TABLE_SCOPE,
        "td" | "th" | "caption" => SCOPE | CELL,
        "ol" | "ul" => LIST_SCOPE,
        "button" => BUTTON_SCOPE,
        "dd" | "dt" | "li" | "option" | "optgroup" | "p" | "rb" | "rp" | "rt" | "rtc" => {
            IMPLIED_END
        }
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => HEADING,
        _ => 0,
    };
    flags
}

fn svg_flags(name: &str) -> u16 {
    match name {
        "foreignobject" => SPECIAL | SCOPE | HTML_INTEGRATION,
        "desc" | "title" => SPECIAL | SCOPE | HTML_INTEGRATION | HIDES_TEXT,
        "style" | "script" => HIDES_TEXT,
        _ => 0,
    }
}

fn mathml_flags(tag: &Tag) -> u16 {
    match &*tag.name {
        "mi" | "mo" | "mn" | "ms" | "mtext" => SPECIAL | SCOPE | MATHML_TEXT_INTEGRATION,
        "annotation-xml" => {
            let holds_html = tag.attrs.iter().any(|a| {
                &*a.name.local == "encoding"
                    && (a.value.eq_ignore_ascii_case("text/html")
                        || a.value.eq_ignore_ascii_case("application/xhtml+xml"))
            });
            SPECIAL | SCOPE | ANNOTATION_XML | if holds_html { HTML_INTEGRATION } else { 0 }
        }
        _ => 0,
    }
}

/// The Standard's "special" HTML elements (a few obsolete ones included: a
/// larger set only ever closes less).
fn is_special(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "applet"
            | "area"
            | "article"
            | "aside"
            | "base"
            | "basefont"
            | "bgsound"
            | "blockquote"
            | "body"
            | "br"
            | "button"
            | "caption"
            | "center"
            | "col"
            | "colgroup"
            | "dd"
            | "details"
            | "dialog"
            | "dir"
            | "div"
            | "dl"
            | "dt"
            | "embed"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "form"
            | "frame"
            | "frameset"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "head"
            | "header"
            | "hgroup"
            | "hr"
            | "html"
            | "iframe"
            | "img"
            | "input"
            | "isindex"
            | "keygen"
            | "li"
            | "link"
            | "listing"
            | "main"
            | "marquee"
            | "menu"
            | "meta"
            | "nav"
            | "noembed"
            | "noframes"
            | "noscript"
            | "object"
            | "ol"
            | "p"
            | "param"
            | "plaintext"
            | "pre"
            | "script"
            | "search"
            | "section"
            | "select"
            | "source"
            | "style"
            | "summary"
            | "table"
            | "tbody"
            | "td"
            | "template"
            | "textarea"
            | "tfoot"
            | "th"
            | "thead"
            | "title"
            | "tr"
            | "track"
            | "ul"
            | "wbr"
            | "xmp"
    )
}

/// Start tags that end SVG or MathML content: the open foreign elements
/// close and the tag is HTML again (`font` only with a presentation attribute).
pub(super) fn breaks_out_of_foreign_content(tag: &Tag) -> bool {
    match &*tag.name {
        "b" | "big" | "blockquote" | "body" | "br" | "center" | "code" | "dd" | "div" | "dl"
        | "dt" | "em" | "embed" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "head" | "hr" | "i"
        | "img" | "li" | "listing" | "menu" | "meta" | "nobr" | "ol" | "p" | "pre" | "ruby"
        | "s" | "small" | "span" | "strong" | "strike" | "sub" | "sup" | "table" | "tt" | "u"
        | "ul" | "var" => true,
        "font" => tag
            .attrs
            .iter()
            .any(|a| matches!(&*a.name.local, "color" | "face" | "size")),
        _ => false,
    }
}

/// Formatting elements: closed implicitly, a browser reopens them
/// ("reconstructs the active formatting elements").
pub(super) fn is_formatting(name: &str) -> bool {
    matches!(
        name,
        "a" | "b"
            | "big"
            | "code"
            | "em"
            | "font"
            | "i"
            | "nobr"
            | "s"
            | "small"
            | "strike"
            | "strong"
            | "tt"
            | "u"
    )
}
