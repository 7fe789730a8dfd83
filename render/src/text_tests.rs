use super::html_to_text;
use crate::nesting::{HtmlTooComplex, MAX_NESTING};

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
