//! The module's work, free of the ABI: template sources in, a renderer out;
//! a render request in, JSON out.

use mailbridge_render::{RenderError, RenderRequest, Renderer, TemplateSources};
use serde::{Deserialize, Serialize};

/// The tenant of a request that names none (as the service's default).
const DEFAULT_TENANT: &str = "default";

/// A render request: the body of the service's `POST /v1/render` plus its
/// `tenant` (other fields of a message are ignored).
#[derive(Debug, Deserialize)]
struct Request {
    tenant: Option<String>,
    template: Option<String>,
    locale: Option<String>,
    #[serde(default)]
    data: serde_json::Value,
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
}

/// What the module answers: the content, or why there is none.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Answer {
    Rendered {
        subject: String,
        text: String,
        html: String,
    },
    Missing {
        lang: String,
        translations: Vec<String>,
        variables: Vec<String>,
    },
    Failed {
        error: String,
        kind: &'static str,
    },
}

/// Compiles the sources given as a JSON object `{path: source}`.
pub fn load_templates(json: &[u8]) -> Result<Renderer, Vec<u8>> {
    let files: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(json).map_err(|e| failed("bad-request", &e))?;
    let mut sources = TemplateSources::new();
    for (path, source) in files {
        sources.insert(path, source);
    }
    Renderer::new(sources).map_err(|e| failed(kind(&e), &e))
}

/// The answer `{"templates": N}` to a successful load.
pub fn loaded(renderer: &Renderer) -> Vec<u8> {
    let count = renderer.template_names().len();
    format!("{{\"templates\":{count}}}").into_bytes()
}

/// Renders the request `json` into `{"subject","text","html"}` or `{"error","kind"}`.
pub fn render(renderer: Option<&Renderer>, json: &[u8]) -> Vec<u8> {
    with_request(renderer, json, |renderer, render| {
        match renderer.render(render) {
            Ok(rendered) => answer(&Answer::Rendered {
                subject: rendered.subject,
                text: rendered.text,
                html: rendered.html,
            }),
            Err(e) => failed(kind(&e), &e),
        }
    })
}

/// What rendering the request `json` does without:
/// `{"lang","translations","variables"}` or `{"error","kind"}`.
pub fn missing(renderer: Option<&Renderer>, json: &[u8]) -> Vec<u8> {
    with_request(renderer, json, |renderer, render| {
        match renderer.missing(render) {
            Ok(missing) => answer(&Answer::Missing {
                lang: missing.lang,
                translations: missing.translations,
                variables: missing.variables,
            }),
            Err(e) => failed(kind(&e), &e),
        }
    })
}

/// Reads the request `json` and answers what `work` makes of it.
fn with_request(
    renderer: Option<&Renderer>,
    json: &[u8],
    work: impl FnOnce(&Renderer, &RenderRequest<'_>) -> Vec<u8>,
) -> Vec<u8> {
    let Some(renderer) = renderer else {
        return failed("no-templates", &"no templates loaded");
    };
    let request: Request = match serde_json::from_slice(json) {
        Ok(request) => request,
        Err(e) => return failed("bad-request", &e),
    };
    let Some(template) = request.template.as_deref() else {
        return failed("bad-request", &"the request names no `template`");
    };
    let has_content = mailbridge_render::sendable_as_is(
        request.subject.as_deref(),
        request.text.as_deref(),
        request.html.as_deref(),
    );
    let render = RenderRequest {
        tenant: request.tenant.as_deref().unwrap_or(DEFAULT_TENANT),
        template,
        locale: request.locale.as_deref(),
        data: &request.data,
        // As the service: with content of its own, a missing language is not replaced by another.
        require_locale: has_content,
    };
    work(renderer, &render)
}

fn kind(error: &RenderError) -> &'static str {
    match error {
        RenderError::UnknownTemplate { .. } => "unknown-template",
        RenderError::LanguageUnavailable { .. } => "language-unavailable",
        RenderError::Syntax { .. } => "syntax",
        RenderError::Render { .. } => "render",
        RenderError::HtmlTooComplex { .. } => "html-too-complex",
        RenderError::Io { .. } => "io",
    }
}

fn failed(kind: &'static str, error: &dyn std::fmt::Display) -> Vec<u8> {
    answer(&Answer::Failed {
        error: error.to_string(),
        kind,
    })
}

fn answer(answer: &Answer) -> Vec<u8> {
    // Serialising strings into memory cannot fail; the fallback keeps it total.
    serde_json::to_vec(answer)
        .unwrap_or_else(|_| b"{\"error\":\"unserialisable\",\"kind\":\"render\"}".to_vec())
}
