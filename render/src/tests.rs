use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;

fn shipped() -> Renderer {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../templates");
    let mut sources = TemplateSources::new();
    read_dir(&dir, &dir, &mut sources);
    Renderer::new(sources).expect("templates compile")
}

/// The shipped templates, as the service's `load_dir` reads them.
fn read_dir(root: &Path, dir: &Path, sources: &mut TemplateSources) {
    for entry in std::fs::read_dir(dir).expect("templates directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            read_dir(root, &path, sources);
        } else if path
            .extension()
            .is_some_and(|e| e == "j2" || e == "ftl" || e == "json")
        {
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            sources.insert(name, std::fs::read_to_string(&path).expect("template file"));
        }
    }
}

fn req<'a>(
    template: &'a str,
    locale: Option<&'a str>,
    data: &'a serde_json::Value,
) -> RenderRequest<'a> {
    RenderRequest {
        tenant: "acme",
        template,
        locale,
        data,
        require_locale: false,
    }
}

#[test]
fn every_shipped_template_renders_in_english_and_german() {
    let r = shipped();
    let names = r.template_names();
    for kind in [
        "password-reset",
        "email-verification",
        "execute-actions",
        "email-test",
        "identity-provider-link",
        "org-invite",
        "email-update-confirmation",
        "email-verification-with-code",
        "event-login_error",
        "event-update_password",
        "event-update_totp",
        "event-remove_totp",
        "event-update_credential",
        "event-remove_credential",
    ] {
        assert!(names.iter().any(|n| n == kind), "{kind} is shipped");
    }
    for name in &names {
        let data = r
            .sample_data(name)
            .unwrap_or_else(|| panic!("{name} has sample data"));
        let en = r.render(&req(name, Some("en"), &data)).unwrap();
        let de = r.render(&req(name, Some("de"), &data)).unwrap();
        for (lang, out) in [("en", &en), ("de", &de)] {
            assert!(
                !out.subject.is_empty() && !out.subject.contains('\n'),
                "{name}/{lang}: {:?}",
                out.subject
            );
            assert!(
                !out.subject.contains(&format!("{name}-subject")),
                "{name}/{lang}: a string is missing"
            );
            assert!(
                out.html
                    .contains(&format!("data-mailbridge-template=\"{name}\"")),
                "{name}/{lang}: marker"
            );
            assert!(
                out.html.contains(&format!("lang=\"{lang}\"")),
                "{name}/{lang}: html lang"
            );
            assert!(
                !out.text.contains("-heading") && !out.text.contains("-body"),
                "{name}/{lang}: {}",
                out.text
            );
            if let Some(link) = data["link"].as_str() {
                assert!(
                    out.text.contains(link),
                    "{name}/{lang}: link in text:\n{}",
                    out.text
                );
                let escaped = link.replace('/', "&#x2f;").replace('=', "&#x3d;");
                assert!(
                    out.html.contains(link) || out.html.contains(&escaped),
                    "{name}/{lang}: link in html"
                );
            }
        }
        assert_ne!(en.subject, de.subject, "{name}: the languages differ");
    }
}

#[test]
fn literal_subjects_and_expiry() {
    let r = shipped();
    let data = r.sample_data("password-reset").unwrap();
    let de = r
        .render(&req("password-reset", Some("de-AT"), &data))
        .unwrap();
    assert_eq!(de.subject, "Passwort für ACME zurücksetzen");
    assert!(
        de.text.contains("Dieser Link ist 5 Minuten lang gültig."),
        "{}",
        de.text
    );
    let en = r.render(&req("password-reset", None, &data)).unwrap();
    assert_eq!(en.subject, "Reset your password for ACME");
    assert!(
        en.text.contains("This link expires in 5 minutes."),
        "{}",
        en.text
    );
    let actions = r
        .render(&req(
            "execute-actions",
            Some("en"),
            &r.sample_data("execute-actions").unwrap(),
        ))
        .unwrap();
    assert!(
        actions.text.contains("- Choose a new password"),
        "{}",
        actions.text
    );
}

#[test]
fn never_the_wrong_language_when_required() {
    let r = shipped();
    let data = r.sample_data("password-reset").unwrap();
    let strict = RenderRequest {
        require_locale: true,
        ..req("password-reset", Some("ja"), &data)
    };
    assert_eq!(
        r.render(&strict),
        Err(RenderError::LanguageUnavailable {
            template: "password-reset".into(),
            locale: "ja".into()
        })
    );
    let lenient = r.render(&req("password-reset", Some("ja"), &data)).unwrap();
    assert_eq!(
        lenient.subject, "Reset your password for ACME",
        "falls back to English"
    );
    let unknown = r.render(&req("no-such", None, &data));
    assert_eq!(
        unknown,
        Err(RenderError::UnknownTemplate {
            name: "no-such".into()
        })
    );
}

fn small() -> TemplateSources {
    let mut s = TemplateSources::new();
    s.insert("locales/en.ftl", "hello = Hello { $name }\n");
    s.insert("locales/de.ftl", "hello = Hallo { $name }\n");
    s.insert(
        "emails/greet/subject.j2",
        "{{ t(\"hello\", name=user.name) }}",
    );
    s.insert(
        "emails/greet/html.j2",
        "<p>{{ user.name }}</p><a href=\"{{ link }}\">go</a>",
    );
    s
}

#[test]
fn a_tenant_override_wins_and_others_keep_the_shipped_one() {
    let mut sources = small();
    sources.insert("tenants/acme/emails/greet/subject.j2", "ACME says hi");
    sources.insert("tenants/acme/emails/greet/html.j2", "<p>acme</p>");
    sources.insert("emails/greet/fr/subject.j2", "Bonjour");
    sources.insert("emails/greet/fr/html.j2", "<p>fr</p>");
    let r = Renderer::new(sources).unwrap();
    let data = json!({"user": {"name": "Ada"}});
    assert_eq!(
        r.render(&req("greet", Some("de"), &data)).unwrap().subject,
        "ACME says hi"
    );
    let other = RenderRequest {
        tenant: "globex",
        ..req("greet", Some("de"), &data)
    };
    assert_eq!(r.render(&other).unwrap().subject, "Hallo Ada");
    let french = RenderRequest {
        tenant: "globex",
        ..req("greet", Some("fr-CA"), &data)
    };
    assert_eq!(
        r.render(&french).unwrap().subject,
        "Bonjour",
        "a language's own version"
    );
    assert!(r.has_template("acme", "greet") && !r.has_template("acme", "nope"));
}

#[test]
fn html_is_escaped_and_text_is_derived() {
    let r = Renderer::new(small()).unwrap();
    let data =
        json!({"user": {"name": "<script>alert(1)</script>"}, "link": "https://x.example/a?b=1"});
    let out = r.render(&req("greet", None, &data)).unwrap();
    assert!(!out.html.contains("<script>"), "{}", out.html);
    assert!(out.html.contains("&lt;script&gt;"), "{}", out.html);
    assert_eq!(
        out.subject, "Hello <script>alert(1)</script>",
        "subjects are not HTML"
    );
    assert!(
        out.text.contains("https://x.example/a?b=1"),
        "derived text keeps the link: {}",
        out.text
    );
}

#[test]
fn escaping_replaces_exactly_the_five_and_keeps_the_rest() {
    let mut sources = TemplateSources::new();
    sources.insert("emails/esc/subject.j2", "x");
    sources.insert("emails/esc/html.j2", "<p>{{ v }}</p>");
    let r = Renderer::new(sources).unwrap();
    let cases = [
        ("", ""),
        ("plain / = ü", "plain / = ü"),
        ("&<>\"'", "&amp;&lt;&gt;&quot;&#39;"),
        ("ü&ü<ü", "ü&amp;ü&lt;ü"),
        ("a'b\"c", "a&#39;b&quot;c"),
        ("<<", "&lt;&lt;"),
    ];
    for (value, escaped) in cases {
        let out = r.render(&req("esc", None, &json!({ "v": value }))).unwrap();
        assert!(
            out.html.contains(&format!("<p>{escaped}</p>")),
            "{value:?}: {}",
            out.html
        );
    }
}

#[test]
fn runaway_templates_stop_and_syntax_errors_name_the_file() {
    let mut sources = small();
    sources.insert("emails/loop/subject.j2", "x");
    sources.insert(
        "emails/loop/html.j2",
        "{% for a in range(100000) %}{% for b in range(100000) %}.{% endfor %}{% endfor %}",
    );
    let r = Renderer::new(sources).unwrap();
    let err = r.render(&req("loop", None, &json!({}))).unwrap_err();
    assert!(matches!(err, RenderError::Render { .. }), "{err:?}");

    let mut broken = small();
    broken.insert("emails/bad/html.j2", "{% if %}");
    let err = Renderer::new(broken).unwrap_err();
    assert!(
        matches!(&err, RenderError::Syntax { path, .. } if path == "emails/bad/html.j2"),
        "{err:?}"
    );
}

#[test]
fn a_regional_version_takes_its_language_strings_whatever_the_case() {
    let mut sources = small();
    sources.insert(
        "emails/greet/de-AT/subject.j2",
        "{{ t(\"hello\", name=user.name) }} ({{ lang }})",
    );
    sources.insert(
        "emails/greet/de-AT/html.j2",
        "<p>{{ t(\"hello\", name=user.name) }}</p>",
    );
    sources.insert("locales/pt-BR.ftl", "hello = Olá { $name }\n");
    sources.insert("locales/zh-Hant.ftl", "hello = 你好 { $name }\n");
    let r = Renderer::new(sources).unwrap();
    let data = json!({"user": {"name": "Ada"}, "link": "https://x.example"});
    for locale in ["de-AT", "de-at", "DE_at"] {
        let out = r.render(&req("greet", Some(locale), &data)).unwrap();
        assert_eq!(out.subject, "Hallo Ada (de-AT)", "{locale}");
    }
    for (locale, subject) in [
        ("pt-br", "Olá Ada"),
        ("zh-Hant-TW", "你好 Ada"),
        ("de-CH", "Hallo Ada"),
    ] {
        let out = r.render(&req("greet", Some(locale), &data)).unwrap();
        assert_eq!(out.subject, subject, "{locale}");
    }
}

#[test]
fn what_a_file_renders_to_is_bounded() {
    let mut sources = small();
    sources.insert("emails/big/subject.j2", "x");
    sources.insert(
        "emails/big/html.j2",
        "{% for i in range(20000) %}{{ s }}{% endfor %}",
    );
    let r = Renderer::new(sources).unwrap();
    let huge = json!({"s": "y".repeat(100_000)});
    let err = r.render(&req("big", None, &huge)).unwrap_err();
    assert!(
        matches!(&err, RenderError::Render { detail, .. } if detail.contains("longer than")),
        "{err:?}"
    );
    let small_data = json!({"s": "y"});
    assert!(r.render(&req("big", None, &small_data)).is_ok());
}

#[test]
fn a_rendered_subject_fits_a_header_and_no_part_holds_nul() {
    let r = Renderer::new(small()).unwrap();
    let long = json!({"user": {"name": "n".repeat(1_000)}, "link": "https://x.example"});
    let err = r.render(&req("greet", None, &long)).unwrap_err();
    assert!(
        matches!(&err, RenderError::Render { template, detail } if template == "greet (subject)" && detail.contains("998")),
        "{err:?}"
    );
    let nul = json!({"user": {"name": "a\u{0}b"}, "link": "https://x.example"});
    let err = r.render(&req("greet", None, &nul)).unwrap_err();
    assert!(
        matches!(&err, RenderError::Render { detail, .. } if detail.contains("NUL")),
        "{err:?}"
    );
    // Line breaks in data are white space in a subject: collapsed, not refused.
    let lines =
        json!({"user": {"name": "Ada\r\nBcc: x@evil.example"}, "link": "https://x.example"});
    let ok = r.render(&req("greet", None, &lines)).unwrap();
    assert_eq!(ok.subject, "Hello Ada Bcc: x@evil.example");
}

#[test]
fn a_renderer_hands_on_the_sources_it_compiled() {
    let mut sources = TemplateSources::new();
    sources.insert("emails/x/subject.j2", "Hi {{ name }}");
    sources.insert("emails/x/html.j2", "<p>Hi</p>");
    let renderer = Renderer::new(sources).expect("compiles");
    let kept: Vec<(&str, &str)> = renderer.sources().iter().collect();
    assert_eq!(
        kept,
        [
            ("emails/x/html.j2", "<p>Hi</p>"),
            ("emails/x/subject.j2", "Hi {{ name }}")
        ]
    );
}

#[test]
fn missing_lists_the_keys_the_language_lacks_and_the_variables_the_data_lacks() {
    let mut sources = TemplateSources::new();
    sources.insert("locales/en.ftl", "a = A\nb = B\n");
    sources.insert("locales/de.ftl", "a = A auf Deutsch\n");
    sources.insert(
        "emails/x/subject.j2",
        "{{ t(\"a\") }} {{ t(\"b\") }} {{ name }} {{ user.nick }} {{ user.name }}",
    );
    sources.insert(
        "emails/x/html.j2",
        "<p>{{ t(\"b\") }}{% for i in range(2) %}{{ loop.index }}{% endfor %}\
         {% if user.admin %}{{ never_looked_up }}{% endif %}</p>",
    );
    let renderer = Renderer::new(sources).expect("compiles");
    let data = json!({"user": {"name": "Ada"}});
    let missing = renderer
        .missing(&req("x", Some("de-AT"), &data))
        .expect("renders");
    assert_eq!(missing.lang, "de");
    assert_eq!(missing.translations, ["b"]);
    assert_eq!(missing.variables, ["name", "user.admin", "user.nick"]);
    let english = renderer
        .missing(&req("x", Some("en"), &data))
        .expect("renders");
    assert!(english.translations.is_empty(), "{english:?}");
    // A regional file lacking a key its language has: not missing.
    let mut regional = TemplateSources::new();
    for (path, text) in renderer.sources().iter() {
        regional.insert(path, text);
    }
    regional.insert("locales/de-AT.ftl", "b = B auf Österreichisch\n");
    regional.insert("emails/x/de-AT/subject.j2", "{{ t(\"a\") }} {{ t(\"b\") }}");
    regional.insert("emails/x/de-AT/html.j2", "<p>{{ t(\"a\") }}</p>");
    let missing = Renderer::new(regional)
        .expect("compiles")
        .missing(&req("x", Some("de-AT"), &data))
        .expect("renders");
    assert_eq!(missing.lang, "de-AT");
    assert!(missing.translations.is_empty(), "{missing:?}");
    // Watching changes nothing of the email itself.
    let rendered = renderer
        .render(&req("x", Some("de"), &data))
        .expect("renders");
    assert_eq!(rendered.subject, "A auf Deutsch B Ada");
}

#[test]
fn the_shipped_samples_lack_nothing_the_shipped_templates_use() {
    let renderer = shipped();
    for name in renderer.template_names() {
        let data = renderer.sample_data(&name).expect("sample data");
        for lang in renderer.locales() {
            let missing = renderer
                .missing(&req(&name, Some(&lang), &data))
                .expect("renders");
            assert!(
                missing.translations.is_empty(),
                "{name} {lang}: {missing:?}"
            );
            assert!(missing.variables.is_empty(), "{name} {lang}: {missing:?}");
        }
    }
    // The link is used only by an included file: lookups there count too.
    let mut data = renderer.sample_data("password-reset").expect("sample");
    data.as_object_mut().expect("object").remove("link");
    let missing = renderer
        .missing(&req("password-reset", Some("de"), &data))
        .expect("renders");
    assert_eq!(missing.variables, ["link"]);
}

#[test]
fn translation_arguments_keep_their_kind() {
    let mut sources = small();
    sources.insert(
        "locales/en.ftl",
        "args = { $s } { $digits } { $n } { $f } { $b } { $count ->\n    [one] one\n   *[other] many\n}\n",
    );
    sources.insert(
        "emails/greet/subject.j2",
        "{{ t(\"args\", s=user.name, digits=\"42\", n=3, f=2.5, b=true, count=1) }} \
         {{ t(\"args\", s=\"\", digits=\"1\", n=-7, f=0.5, b=false, count=\"1\") }}",
    );
    let r = Renderer::new(sources).unwrap();
    let data = json!({"user": {"name": "Ada"}});
    // A number selects its plural form; a string of digits stays a string
    // (no form matches it: the default); booleans count as 1 and 0.
    assert_eq!(
        r.render(&req("greet", Some("en"), &data)).unwrap().subject,
        "Ada 42 3 2.5 1 one 1 -7 0.5 0 many"
    );
}
