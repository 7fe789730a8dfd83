//! The mailbridge renderer: a pure function of template sources and data (no
//! I/O, no threads, no clock), so that the same code runs natively in the
//! service and compiled to WebAssembly inside Keycloak (`render/wasm`,
//! `scripts/build-wasm.sh`) with byte-identical output.
//!
//! Layout of the sources (paths relative to the template directory):
//!
//! ```text
//! emails/<name>/subject.j2 | html.j2 | text.j2    text.j2 optional: derived from the HTML
//! emails/<name>/<lang>/…                          a language's own version
//! emails/<name>/sample.json                       sample data (for tests and `mailbridge check`)
//! locales/<lang>.ftl                              shared strings, `t("key", name=value)`
//! layouts/base.html.j2                            the HTML frame the emails extend
//! tenants/<tenant>/emails/<name>/…                a tenant's override (also per language)
//! tenants/<tenant>/layouts/base.html.j2           a tenant's frame
//! ```

mod fluent;
mod missing;
mod nesting;
mod text;
#[cfg(test)]
mod tree_depth;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fluent_bundle::FluentValue;
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{AutoEscape, Environment, State};

pub use missing::Missing;
pub use nesting::{HtmlTooComplex, MAX_NESTING};
pub use text::html_to_text;

/// The language used when a request names none, or names one we lack without content of its own.
pub const DEFAULT_LANG: &str = "en";
/// Bound on the work of one rendering (minijinja fuel): a runaway template fails instead of hanging.
const FUEL: u64 = 200_000;
/// Bound on nesting (includes, macros, recursion).
const RECURSION_LIMIT: usize = 32;
/// Bound on what one file renders to, in bytes: fuel bounds the steps, not
/// what they write (a loop printing request data, a link printed three
/// times with every `'` escaped to five bytes).
pub const MAX_RENDERED: usize = 8 << 20;
/// Longest subject a header line takes (RFC 5322).
pub const MAX_SUBJECT: usize = 998;

/// Template sources by relative path.
#[derive(Debug, Clone, Default)]
pub struct TemplateSources {
    files: BTreeMap<String, String>,
}

impl TemplateSources {
    /// No sources.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the file at `path`.
    pub fn insert(&mut self, path: impl Into<String>, contents: impl Into<String>) {
        self.files.insert(path.into(), contents.into());
    }

    /// Every file as (path, contents), in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().map(|(p, c)| (p.as_str(), c.as_str()))
    }
}

/// What to render.
#[derive(Debug, Clone, Copy)]
pub struct RenderRequest<'a> {
    /// The tenant whose overrides apply.
    pub tenant: &'a str,
    /// The template name (`password-reset`, …).
    pub template: &'a str,
    /// The recipient's language (`de`, `de-AT`, …).
    pub locale: Option<&'a str>,
    /// The template's data.
    pub data: &'a serde_json::Value,
    /// Refuse with [`RenderError::LanguageUnavailable`] rather than use another language.
    pub require_locale: bool,
}

/// Whether a request's own content can be sent as it is: a subject, and a
/// text or an HTML body. A request that has it renders its template only in
/// the language asked for ([`RenderRequest::require_locale`]); where that
/// language is missing, its own content is sent rather than another
/// language. A part alone (an `html` without a subject) is not enough.
pub fn sendable_as_is(subject: Option<&str>, text: Option<&str>, html: Option<&str>) -> bool {
    subject.is_some() && (text.is_some() || html.is_some())
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subject line (one line).
    pub subject: String,
    /// The HTML body.
    pub html: String,
    /// The plain-text body.
    pub text: String,
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// No such template, for this tenant or shipped.
    #[error("unknown template `{name}`")]
    UnknownTemplate {
        /// The name asked for.
        name: String,
    },
    /// The template exists, but not in this language.
    #[error("template `{template}` is not available in `{locale}`")]
    LanguageUnavailable {
        /// The template.
        template: String,
        /// The language asked for.
        locale: String,
    },
    /// A template or Fluent file does not parse.
    #[error("{path}: {detail}")]
    Syntax {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// Rendering failed (bad data, a runaway loop).
    #[error("rendering `{template}` failed: {detail}")]
    Render {
        /// The template file.
        template: String,
        /// What went wrong.
        detail: String,
    },
    /// The rendered HTML nests too deep to derive its text.
    #[error("rendering `{template}`: {source}")]
    HtmlTooComplex {
        /// The template.
        template: String,
        /// The bound that was passed.
        source: HtmlTooComplex,
    },
    /// Reading the template directory failed.
    #[error("{path}: {detail}")]
    Io {
        /// The file or directory.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

/// Compiled templates and strings. Cheap to share.
#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
    strings: Arc<fluent::Strings>,
    /// Paths of every template file.
    files: BTreeSet<String>,
    samples: BTreeMap<String, serde_json::Value>,
    /// Languages with shared strings.
    locales: BTreeSet<String>,
    /// The sources compiled, for hosts that hand them on (the console gives
    /// them to the same renderer in the browser).
    sources: TemplateSources,
}

impl Renderer {
    /// Compiles every template and Fluent file; a syntax error names its file.
    pub fn new(sources: TemplateSources) -> Result<Renderer, RenderError> {
        let mut strings = fluent::Strings::default();
        let mut env = Environment::new();
        env.set_fuel(Some(FUEL));
        // Keycloak data varies by kind and version: a missing attribute renders empty.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env.set_recursion_limit(RECURSION_LIMIT);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html.j2") || name.ends_with("/html.j2") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(html_formatter);
        let mut files = BTreeSet::new();
        let mut samples = BTreeMap::new();
        let mut locales = BTreeSet::new();
        for (path, contents) in &sources.files {
            if let Some(lang) = path
                .strip_prefix("locales/")
                .and_then(|p| p.strip_suffix(".ftl"))
            {
                strings.add(lang, path, contents)?;
                locales.insert(lang.to_owned());
            } else if path.ends_with(".j2") {
                env.add_template_owned(path.clone(), contents.clone())
                    .map_err(|e| RenderError::Syntax {
                        path: path.clone(),
                        detail: e.to_string(),
                    })?;
                files.insert(path.clone());
            } else if let Some(name) = path
                .strip_prefix("emails/")
                .and_then(|p| p.strip_suffix("/sample.json"))
            {
                let data = serde_json::from_str(contents).map_err(|e| RenderError::Syntax {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
                samples.insert(name.to_owned(), data);
            }
        }
        let strings = Arc::new(strings);
        let lookup = strings.clone();
        env.add_function("t", move |state: &State, key: String, kwargs: Kwargs| {
            let lang = state
                .lookup("lang")
                .map(|l| l.to_string())
                .unwrap_or_else(|| DEFAULT_LANG.into());
            let mut args = Vec::new();
            for name in kwargs.args() {
                let value: Value = kwargs.get(name)?;
                args.push((name.to_owned(), fluent_value(&value)));
            }
            if missing::recording() && !lookup.has_message(&lang, &key) {
                missing::note_translation(&key);
            }
            Ok(lookup.format(&lang, &key, &args))
        });
        Ok(Renderer {
            env,
            strings,
            files,
            samples,
            locales,
            sources,
        })
    }

    /// The sources these templates were compiled from.
    pub fn sources(&self) -> &TemplateSources {
        &self.sources
    }

    /// Renders `req`.
    pub fn render(&self, req: &RenderRequest<'_>) -> Result<Rendered, RenderError> {
        let (dir, lang) = self.resolve(req)?;
        let ctx = self.context(req, &lang);
        self.render_in(req, &dir, &Value::from(minijinja::value::Serde(&ctx)))
    }

    /// The data of `req` with what every template may use: `lang`,
    /// `template_name` and `layout`.
    fn context(&self, req: &RenderRequest<'_>, lang: &str) -> serde_json::Value {
        let mut ctx = match req.data {
            serde_json::Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        ctx.insert("lang".into(), lang.into());
        ctx.insert("template_name".into(), req.template.into());
        ctx.insert("layout".into(), self.layout(req.tenant).into());
        serde_json::Value::Object(ctx)
    }

    /// Renders the version in `dir` with `ctx`.
    fn render_in(
        &self,
        req: &RenderRequest<'_>,
        dir: &str,
        ctx: &Value,
    ) -> Result<Rendered, RenderError> {
        let subject = self.render_file(&format!("{dir}/subject.j2"), ctx)?;
        let html = self.render_file(&format!("{dir}/html.j2"), ctx)?;
        let text_file = format!("{dir}/text.j2");
        let text = if self.files.contains(&text_file) {
            self.render_file(&text_file, ctx)?
        } else {
            html_to_text(&html).map_err(|source| RenderError::HtmlTooComplex {
                template: req.template.to_owned(),
                source,
            })?
        };
        fits(
            req.template,
            Rendered {
                subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
                html,
                text: text.trim().to_owned() + "\n",
            },
        )
    }

    /// Whether `tenant` has (its own or the shipped) template `name`.
    pub fn has_template(&self, tenant: &str, name: &str) -> bool {
        self.versions(tenant, name).next().is_some()
    }

    /// The shipped template names, sorted.
    pub fn template_names(&self) -> Vec<String> {
        let names: BTreeSet<String> = self
            .files
            .iter()
            .filter_map(|f| f.strip_prefix("emails/"))
            .filter_map(|f| f.split('/').next())
            .filter(|name| self.has_template("", name))
            .map(str::to_owned)
            .collect();
        names.into_iter().collect()
    }

    /// The languages that have shared strings (`locales/<lang>.ftl`), sorted.
    pub fn locales(&self) -> Vec<String> {
        self.locales.iter().cloned().collect()
    }

    /// The sample data of a shipped template.
    pub fn sample_data(&self, name: &str) -> Option<serde_json::Value> {
        self.samples.get(name).cloned()
    }

    /// The directories that hold a complete version (subject and HTML) of
    /// `name`, most specific first, each with its language (None: shared).
    fn versions<'a>(
        &'a self,
        tenant: &str,
        name: &'a str,
    ) -> impl Iterator<Item = (String, Option<String>)> + 'a {
        let bases = [
            format!("tenants/{tenant}/emails/{name}"),
            format!("emails/{name}"),
        ];
        bases.into_iter().flat_map(move |base| {
            let prefix = format!("{base}/");
            let mut found: Vec<(String, Option<String>)> = self
                .files
                .iter()
                .filter_map(|f| f.strip_prefix(&prefix)?.strip_suffix("/subject.j2"))
                .filter(|lang| !lang.contains('/'))
                .map(|lang| (format!("{base}/{lang}"), Some(lang.to_owned())))
                .collect();
            if self.files.contains(&format!("{base}/subject.j2")) {
                found.push((base.clone(), None));
            }
            found.retain(|(dir, _)| self.files.contains(&format!("{dir}/html.j2")));
            found
        })
    }

    /// The directory and language to render `req` in.
    fn resolve(&self, req: &RenderRequest<'_>) -> Result<(String, String), RenderError> {
        let versions: Vec<_> = self.versions(req.tenant, req.template).collect();
        if versions.is_empty() {
            return Err(RenderError::UnknownTemplate {
                name: req.template.to_owned(),
            });
        }
        let wanted = req.locale.map(language_candidates).unwrap_or_default();
        for lang in &wanted {
            if let Some(found) = self.pick(&versions, lang) {
                return Ok(found);
            }
        }
        if req.require_locale && !wanted.is_empty() {
            return Err(RenderError::LanguageUnavailable {
                template: req.template.to_owned(),
                locale: req.locale.unwrap_or_default().to_owned(),
            });
        }
        self.pick(&versions, DEFAULT_LANG)
            .or_else(|| {
                versions
                    .iter()
                    .find(|(_, l)| l.is_none())
                    .map(|(d, _)| (d.clone(), DEFAULT_LANG.into()))
            })
            .or_else(|| {
                versions
                    .first()
                    .map(|(d, l)| (d.clone(), l.clone().unwrap_or_default()))
            })
            .ok_or_else(|| RenderError::UnknownTemplate {
                name: req.template.to_owned(),
            })
    }

    /// A version in `lang`: its own directory, or the shared one when strings exist for `lang`.
    fn pick(&self, versions: &[(String, Option<String>)], lang: &str) -> Option<(String, String)> {
        versions
            .iter()
            .find(|(_, l)| match l {
                Some(own) => own.eq_ignore_ascii_case(lang),
                None => self.strings.has(lang),
            })
            // A language's own directory names it as its files spell it.
            .map(|(dir, own)| (dir.clone(), own.clone().unwrap_or_else(|| lang.to_owned())))
    }

    fn layout(&self, tenant: &str) -> String {
        let own = format!("tenants/{tenant}/layouts/base.html.j2");
        if self.files.contains(&own) {
            own
        } else {
            "layouts/base.html.j2".to_owned()
        }
    }

    fn render_file(&self, path: &str, ctx: &Value) -> Result<String, RenderError> {
        let failed = |e: minijinja::Error| RenderError::Render {
            template: path.to_owned(),
            detail: e.to_string(),
        };
        let template = self.env.get_template(path).map_err(failed)?;
        // Room for about what the template's own text becomes: fewer
        // reallocations while the output grows.
        let mut out = Capped(Vec::with_capacity(2 * template.source().len()));
        template
            .render_captured_to(ctx.clone(), &mut out)
            .map(drop)
            .map_err(|e| match e.kind() {
                minijinja::ErrorKind::WriteFailure => RenderError::Render {
                    template: path.to_owned(),
                    detail: format!("the output is longer than {MAX_RENDERED} bytes"),
                },
                _ => failed(e),
            })?;
        String::from_utf8(out.0).map_err(|_| RenderError::Render {
            template: path.to_owned(),
            detail: "the output is not UTF-8".to_owned(),
        })
    }
}

/// A buffer that refuses to grow past [`MAX_RENDERED`].
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + bytes.len() > MAX_RENDERED {
            return Err(std::io::Error::other("the rendered output is too long"));
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a rendered email must be to be sent as it is, wherever it is
/// rendered (the service, Keycloak's fallback, the command line): a subject
/// fit for a header (no NUL, at most [`MAX_SUBJECT`] bytes; white space is
/// already collapsed) and parts without NUL (no transfer encoding of text
/// carries it). Request data can put either there.
fn fits(template: &str, rendered: Rendered) -> Result<Rendered, RenderError> {
    let refused = |part: &str, detail: String| RenderError::Render {
        template: format!("{template} ({part})"),
        detail,
    };
    if rendered.subject.contains('\0') {
        return Err(refused(
            "subject",
            "the rendered subject must not contain CR, LF or NUL".into(),
        ));
    }
    if rendered.subject.len() > MAX_SUBJECT {
        return Err(refused(
            "subject",
            format!("the rendered subject is longer than {MAX_SUBJECT} bytes"),
        ));
    }
    for (part, text) in [("html", &rendered.html), ("text", &rendered.text)] {
        if text.contains('\0') {
            return Err(refused(
                part,
                format!("the rendered {part} must not contain NUL"),
            ));
        }
    }
    Ok(rendered)
}

/// HTML escaping of `&`, `<`, `>`, `"` and `'` only: minijinja's own also
/// escapes `/`, which leaves links unreadable in the source of the email.
fn html_formatter(
    out: &mut minijinja::Output,
    state: &mut State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    let text = value
        .as_str()
        .filter(|_| *state.auto_escape() == AutoEscape::Html && !value.is_safe());
    let Some(text) = text else {
        return minijinja::escape_formatter(out, state, value);
    };
    // The five are ASCII: every cut falls between whole characters, and
    // the text between them is written as it is.
    let write = |out: &mut minijinja::Output, piece: &str| {
        out.write_str(piece)
            .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
    };
    let mut start = 0;
    for (at, byte) in text.bytes().enumerate() {
        let entity = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        write(out, &text[start..at])?;
        write(out, entity)?;
        start = at + 1;
    }
    write(out, &text[start..])
}

/// `de-AT` → `de-AT`, `de`; `pt_BR` → `pt-BR`, `pt`.
/// The languages to try for `locale`, the most specific first:
/// `zh-Hant-TW`, `zh-Hant`, `zh` (each dropping its last subtag).
fn language_candidates(locale: &str) -> Vec<String> {
    let normalized = locale.replace('_', "-");
    let mut out: Vec<String> = (1..=normalized.len())
        .rev()
        .filter(|&end| end == normalized.len() || normalized.as_bytes()[end] == b'-')
        .map(|end| normalized[..end].to_owned())
        .filter(|candidate| !candidate.is_empty() && !candidate.ends_with('-'))
        .collect();
    if let Some(primary) = out.last_mut() {
        primary.make_ascii_lowercase();
    }
    out.dedup();
    out
}

fn fluent_value(value: &Value) -> FluentValue<'static> {
    // Strings (most arguments: names, links) as they are: the number
    // conversions below would each fail for them only after formatting an
    // error message.
    if value.kind() == ValueKind::String
        && let Some(text) = value.as_str()
    {
        return FluentValue::from(text.to_owned());
    }
    match value.as_i64() {
        Some(n) => FluentValue::from(n),
        None => match f64::try_from(value.clone()) {
            Ok(n) if value.is_number() => FluentValue::from(n),
            _ => FluentValue::from(value.to_string()),
        },
    }
}

#[cfg(test)]
mod tests;
