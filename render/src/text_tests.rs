use super::{deepest_nesting, html_to_text};
use crate::nesting::{HtmlTooComplex, MAX_NESTING};
use crate::tree_depth::standard_depth;

#[test]
fn blocks_become_lines_and_links_keep_their_url() {
    let html = r#"<!DOCTYPE html><html><head><title>Reset</title><style>p { color: red }</style></head>
<body><h1>Hello   Ada</h1><p>Someone asked to reset your password.<br>If it was you:</p>
<p><a href="https://id.example/reset?key=abc&amp;x=1">Reset password</a></p>
<ul><li>one<li>two</ul><script>alert("no")</script><p>Write to <a href="mailto:help@x.example">help@x.example</a>.</p></body></html>"#;
    assert_eq!(
        html_to_text(html).unwrap(),
        "Hello Ada\n\nSomeone asked to reset your password.\nIf it was you:\n\n\
         Reset password <https://id.example/reset?key=abc&x=1>\n\n* one\n* two\n\n\
         Write to help@x.example."
    );
}

#[test]
fn a_link_without_text_shows_its_url_and_fragments_are_left_out() {
    assert_eq!(
        html_to_text(r##"<a href="https://a.example/x"></a> and <a href="#top">top</a>"##).unwrap(),
        "https://a.example/x and top"
    );
    assert_eq!(
        html_to_text(r#"<a href="https://a.example/x">https://a.example/x</a>"#).unwrap(),
        "https://a.example/x"
    );
}

#[test]
fn a_link_opened_inside_another_ends_it_as_in_a_browser() {
    assert_eq!(
        html_to_text(r#"<a href="https://x.example">one<a href="https://y.example">two</a>"#)
            .unwrap(),
        "one <https://x.example>two <https://y.example>"
    );
    // Many unclosed links over white space: each shows its URL once, and
    // each close looks only at its own text.
    let html = format!(
        "<pre>{}{}",
        "<a href=https://u.example>".repeat(2_000),
        " ".repeat(20_000)
    );
    let text = html_to_text(&html).unwrap();
    assert_eq!(text.matches("https://u.example").count(), 2_000);
}

#[test]
fn long_lines_wrap_at_78_and_pre_keeps_its_spaces() {
    let words = "word ".repeat(40);
    let text = html_to_text(&format!("<p>{words}</p><pre>a  b\n  c</pre>")).unwrap();
    let (wrapped, pre) = text.split_once("\n\n").unwrap();
    assert!(wrapped.lines().all(|l| l.len() <= 78), "{text}");
    assert_eq!(wrapped.split_whitespace().count(), 40);
    assert_eq!(pre, "a  b\n  c");
}

#[test]
fn nesting_beyond_the_bound_is_refused() {
    let nested = |depth: usize| "<div>".repeat(depth) + "x" + &"</div>".repeat(depth);
    assert_eq!(html_to_text(&nested(MAX_NESTING)).unwrap(), "x");
    assert_eq!(html_to_text(&nested(MAX_NESTING + 1)), Err(HtmlTooComplex));
    assert_eq!(
        html_to_text(&"<div/>".repeat(MAX_NESTING + 1)),
        Err(HtmlTooComplex)
    );
    assert_eq!(html_to_text(&nested(48_000)), Err(HtmlTooComplex));
}

#[test]
fn many_siblings_and_left_open_paragraphs_are_not_nesting() {
    let flat = "<div><p>a</p><br><img alt=i></div>".repeat(10_000);
    assert!(html_to_text(&flat).is_ok());
    let open = "<p>para<li>item<td>cell".repeat(10_000);
    assert!(html_to_text(&open).is_ok());
    let svg = format!("<svg>{}</svg>", "<path/>".repeat(1_000));
    assert!(html_to_text(&svg).is_ok());
}

/// The depth a browser's tree builder reaches, and the model's verdict, agree:
/// what nests deeper than the bound in the browser is refused.
fn assert_refused_as_a_browser_nests_it(html: &str) {
    let depth = standard_depth(html, false).max(standard_depth(html, true));
    assert!(
        depth > MAX_NESTING,
        "the browser nests {depth} deep: {html:.80}"
    );
    assert_eq!(html_to_text(html), Err(HtmlTooComplex), "{html:.80}");
}

/// Accepted, and the model's depth is never below the browser's.
fn assert_accepted_as_deep_as_a_browser_nests_it(html: &str) -> usize {
    assert!(html_to_text(html).is_ok(), "refused: {html:.80}");
    for scripting in [false, true] {
        let browser = standard_depth(html, scripting);
        let model = deepest_nesting(html, scripting).unwrap_or(usize::MAX);
        assert!(
            model >= browser,
            "model {model} < browser {browser}: {html:.80}"
        );
    }
    deepest_nesting(html, false).unwrap_or_default()
}

#[test]
fn end_tags_that_close_nothing_in_a_browser_close_nothing() {
    let cases = [
        // A block closes the p; `</p>` then finds none and leaves the div open.
        "<p><div></p>",
        "<p><ul></p>",
        // Not in scope: an object, a list or a button stands between.
        "<span><div></span>",
        "<div><object></div>",
        "<li><ol></li>",
        "<p><object></p>",
        // `</form>` takes out the form only.
        "<form><div></form>",
        // A formatting element with a block inside is moved, not closed.
        "<b><div></b>",
    ];
    for case in cases {
        assert_refused_as_a_browser_nests_it(&case.repeat(400));
        assert_eq!(
            html_to_text(&case.repeat(20_000)),
            Err(HtmlTooComplex),
            "{case}"
        );
    }
}

#[test]
fn list_items_nest_inside_lists_opened_in_them() {
    for case in ["<li><ul>", "<li><ol>", "<dd><dl>", "<li><div><ul>"] {
        assert_refused_as_a_browser_nests_it(&case.repeat(400));
        assert_eq!(
            html_to_text(&case.repeat(20_000)),
            Err(HtmlTooComplex),
            "{case}"
        );
    }
    // Unclosed items of one list stay siblings.
    let flat = format!("<ul>{}</ul>", "<li>item".repeat(5_000));
    assert!(assert_accepted_as_deep_as_a_browser_nests_it(&flat) <= 2);
}

#[test]
fn blocks_break_out_of_svg_and_math() {
    for html in [
        format!("<svg>{}", "<div/>".repeat(400)),
        format!("<math>{}", "<ul/>".repeat(400)),
        format!("<svg>{}", "<font color=red>".repeat(400)),
        "<svg><g>".repeat(200),
        format!("<svg><foreignObject>{}", "<div>".repeat(400)),
    ] {
        assert_refused_as_a_browser_nests_it(&html);
    }
    assert_eq!(
        html_to_text(&format!("<svg>{}", "<div/>".repeat(20_000))),
        Err(HtmlTooComplex)
    );
    // Without presentation attributes a font stays SVG, and `<x/>` closes there.
    let font = format!("<svg>{}</svg>", "<font/>".repeat(400));
    assert!(assert_accepted_as_deep_as_a_browser_nests_it(&font) <= 2);
}

#[test]
fn style_and_script_in_svg_are_markup_not_text() {
    let hidden = |depth: usize| format!("<svg><style>{}visible text", "<div>".repeat(depth));
    assert_refused_as_a_browser_nests_it(&hidden(400));
    assert_eq!(html_to_text(&hidden(20_000)), Err(HtmlTooComplex));
    assert_eq!(html_to_text(&hidden(100)).unwrap(), "visible text");
    // The style sheet of an inline icon is not text either way.
    let icon = r#"<p>Hi <svg viewBox="0 0 8 8"><style>.a{fill:red}</style><title>Logo</title><path class="a" d="M0 0h8v8z"/></svg>Ada</p>"#;
    assert_eq!(html_to_text(icon).unwrap(), "Hi Ada");
    // In HTML they are raw text, whatever they hold.
    let css = format!("<style>{}</style>x", "<div>".repeat(20_000));
    assert_eq!(html_to_text(&css).unwrap(), "x");
    assert_eq!(
        html_to_text("<script/>alert(1)</script>shown").unwrap(),
        "shown"
    );
}

#[test]
fn cdata_is_text_in_svg_and_a_comment_in_html() {
    let hidden_by_a_comment = format!("<svg><![CDATA[x><!--]]>{}-->", "<div>".repeat(400));
    assert_refused_as_a_browser_nests_it(&hidden_by_a_comment);
    let in_html = format!("<![CDATA[x><!--]]>{}-->", "<div>".repeat(400));
    assert!(html_to_text(&in_html).is_ok());
}

#[test]
fn raw_text_elements_end_only_at_their_own_end_tag() {
    for case in [
        "<xmp><style></xmp>",
        "<iframe><style></iframe>",
        "<noembed><style></noembed>",
        "<noframes><style></noframes>",
    ] {
        let html = format!("{case}{}", "<div>".repeat(400));
        assert_refused_as_a_browser_nests_it(&html);
    }
    // Each opens nothing that outlasts it.
    let many = "<script>x</script><style>y</style><title>t</title><textarea>z</textarea>";
    assert!(assert_accepted_as_deep_as_a_browser_nests_it(&many.repeat(1_000)) <= 1);
}

#[test]
fn noscript_is_bounded_whether_scripts_run_or_not() {
    // Running scripts, a browser reads noscript as text: the style is not one.
    let text = format!("<noscript><style></noscript>{}", "<div>".repeat(400));
    assert!(standard_depth(&text, true) > MAX_NESTING);
    assert_eq!(html_to_text(&text), Err(HtmlTooComplex));
    // Without scripts it is markup, and what opens inside stays open.
    let markup = "<noscript><div></noscript>".repeat(400);
    assert!(standard_depth(&markup, false) > MAX_NESTING);
    assert_eq!(html_to_text(&markup), Err(HtmlTooComplex));
    assert_eq!(
        html_to_text("<noscript><p>Enable images</p></noscript><p>Hi</p>").unwrap(),
        "Enable images\n\nHi"
    );
}

#[test]
fn formatting_elements_closed_implicitly_are_reopened() {
    // Each distinct `<b>` left open in a paragraph is reopened in the next.
    let distinct: String = (1..=400).map(|n| format!("<p><b id={n}></p>")).collect();
    assert_refused_as_a_browser_nests_it(&distinct);
    let many: String = (1..=20_000).map(|n| format!("<p><b id={n}></p>")).collect();
    assert_eq!(html_to_text(&many), Err(HtmlTooComplex));
    let fonts: String = (1..=400).map(|n| format!("<p><font size={n}>x")).collect();
    assert_refused_as_a_browser_nests_it(&fonts);
    // Alike ones are kept three at most: sloppy paragraphs stay flat.
    let sloppy = "<p>Dear <b>Ada,</p>".repeat(300);
    assert!(assert_accepted_as_deep_as_a_browser_nests_it(&sloppy) <= 5);
    // A cell's formatting ends with the cell.
    let cells: String = (1..=400)
        .map(|n| format!("<tr><td><font size={n}>x"))
        .collect();
    let table = format!("<table>{cells}</table>");
    assert!(assert_accepted_as_deep_as_a_browser_nests_it(&table) <= 6);
}

#[test]
fn realistic_mail_is_accepted() {
    // Outlook-style: 40 tables nested in cells, paragraphs, cells and fonts left open.
    let mut outlook = String::from("<html><head><style>p{margin:0}</style></head><body>");
    for level in 0..40 {
        outlook += &format!(
            "<table width=\"100%\" cellpadding=0><tr><td valign=top><p class=MsoNormal>\
             <font face=Arial size=2>Level {level}<o:p></o:p><td><p>"
        );
    }
    outlook += "Deepest";
    for _ in 0..40 {
        outlook += "</table>";
    }
    outlook += "<p>Regards</body></html>";
    let text = html_to_text(&outlook).unwrap();
    assert!(
        text.contains("Level 39") && text.contains("Deepest"),
        "{text}"
    );
    assert!(text.ends_with("Regards"), "{text}");
    assert_accepted_as_deep_as_a_browser_nests_it(&outlook);
    // An inline icon drawn with many paths.
    let icon = format!(
        "<p>Logo <svg width=16 height=16><g>{}</g></svg></p>",
        r##"<path d="M0 0h1v1z" fill="#000"/>"##.repeat(500)
    );
    assert!(assert_accepted_as_deep_as_a_browser_nests_it(&icon) <= 4);
    // Lists nested 20 deep, items left open.
    let lists = "<ul><li>item".repeat(20) + &"</ul>".repeat(20);
    assert!(assert_accepted_as_deep_as_a_browser_nests_it(&lists) <= 41);
    // A word processor's markup: spans and fonts in every paragraph.
    let word = r#"<p class=MsoNormal><span lang=EN-US style='font-size:11.0pt'><font face=Calibri>Hello<o:p></o:p></font></span></p>"#
        .repeat(300);
    assert!(assert_accepted_as_deep_as_a_browser_nests_it(&word) <= 5);
}

#[test]
fn the_model_is_never_shallower_than_the_standard_tree_builder() {
    const TAGS: &[&str] = &[
        "div",
        "p",
        "span",
        "b",
        "b id=1",
        "i",
        "a href=x",
        "font color=red",
        "font size=2",
        "em",
        "nobr",
        "li",
        "ul",
        "ol",
        "dd",
        "dt",
        "dl",
        "table",
        "tbody",
        "tr",
        "td",
        "th",
        "caption",
        "colgroup",
        "col",
        "h1",
        "h2",
        "pre",
        "form",
        "button",
        "select",
        "option",
        "optgroup",
        "input",
        "hr",
        "br",
        "img",
        "svg",
        "math",
        "mi",
        "mtext",
        "g",
        "path/",
        "div/",
        "annotation-xml encoding=text/html",
        "foreignObject",
        "desc",
        "title",
        "style",
        "script",
        "textarea",
        "xmp",
        "noscript",
        "template",
        "object",
        "marquee",
        "ruby",
        "rt",
        "rb",
        "rp",
        "body",
        "html",
        "head",
        "listing",
        "address",
        "center",
        "x-card",
        "font",
    ];
    // NEST_RUNS and NEST_SEED run longer or other sequences by hand.
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let runs = number("NEST_RUNS").unwrap_or(1_500);
    let mut seed: u64 = number("NEST_SEED").map_or(0x9e37_79b9_7f4a_7c15, |s: usize| s as u64);
    let mut next = move |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound as u64) as usize
    };
    for _ in 0..runs {
        let mut html = String::new();
        for _ in 0..(20 + next(200)) {
            let tag = TAGS[next(TAGS.len())];
            match next(10) {
                0..=4 => html += &format!("<{tag}>"),
                5..=7 => {
                    let name = tag.split([' ', '/']).next().unwrap_or(tag);
                    html += &format!("</{name}>");
                }
                8 => html += "text ",
                _ => html += ["<![CDATA[c]]>", "<!--c-->", "</p>", "</br>"][next(4)],
            }
        }
        for scripting in [false, true] {
            let browser = standard_depth(&html, scripting);
            if let Some(model) = deepest_nesting(&html, scripting) {
                assert!(
                    model >= browser,
                    "model {model} < browser {browser} (scripting {scripting}): {html}"
                );
            }
        }
    }
}
