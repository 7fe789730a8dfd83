//! Turns a validated request into rendered content and a message: template or
//! the caller's own content, per DESIGN.md's rule "never the wrong language".

use std::sync::{Arc, LazyLock};

use serde::Serialize;
use tokio::sync::Semaphore;

use super::error::ApiError;
use super::request::MessageRequest;
use crate::email::{Mailbox, OutgoingMessage, make_message_id};
use crate::render::{RenderError, RenderRequest, Renderer};

/// The content of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = RenderedContent)]
pub struct Content {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: Option<String>,
    /// The HTML body.
    pub html: Option<String>,
}

/// Renderings running at once on the blocking threads: one per core, so
/// that a burst of heavy requests queues here instead of taking every thread.
static RENDER_SLOTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    Arc::new(Semaphore::new(cores))
});

/// [`content`] off the async threads: rendering and deriving text are CPU
/// work, which would otherwise hold up every other request (even `/healthz`).
pub async fn render_content(
    renderer: Arc<Renderer>,
    tenant: &str,
    req: &MessageRequest,
) -> Result<Content, ApiError> {
    let slot = RENDER_SLOTS
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let (tenant, req) = (tenant.to_owned(), req.clone());
    // The slot goes with the work: it is freed when the work ends, even if
    // the client has gone and the request was dropped before.
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        content(&renderer, &tenant, &req)
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
}

/// Renders the request's template, or falls back to its own content.
pub fn content(
    renderer: &Renderer,
    tenant: &str,
    req: &MessageRequest,
) -> Result<Content, ApiError> {
    let Some(template) = &req.template else {
        return own_content(req);
    };
    let render = RenderRequest {
        tenant,
        template,
        locale: req.locale.as_deref(),
        data: &req.data,
        require_locale: req.has_content(),
    };
    match renderer.render(&render) {
        Ok(rendered) => Ok(Content {
            subject: rendered.subject,
            text: Some(rendered.text),
            html: Some(rendered.html),
        }),
        Err(RenderError::LanguageUnavailable { .. }) => own_content(req),
        Err(RenderError::UnknownTemplate { .. }) if req.has_content() => own_content(req),
        Err(RenderError::UnknownTemplate { name }) => Err(ApiError::unprocessable(format!(
            "unknown template `{name}` and no subject/text/html in the request: nothing to send"
        ))),
        Err(error) if req.has_content() => {
            tracing::warn!(tenant, template = %template, %error, "template failed; sending the request's own content");
            own_content(req)
        }
        Err(RenderError::HtmlTooComplex { source, .. }) => Err(ApiError::html_too_complex(
            format!("template `{template}`: {source}"),
        )),
        Err(error) => Err(ApiError::unprocessable(format!(
            "template `{template}` could not be rendered: {error}"
        ))),
    }
}

fn own_content(req: &MessageRequest) -> Result<Content, ApiError> {
    let subject = req.subject.clone().ok_or_else(|| {
        ApiError::unprocessable(
            "no `template` and no `subject`: give a template, or subject with text and/or html",
        )
    })?;
    if req.text.is_none() && req.html.is_none() {
        return Err(ApiError::unprocessable(
            "a `subject` needs `text` and/or `html`",
        ));
    }
    // A text part helps deliverability and plain-text readers: derive it when missing.
    let text = match (&req.text, &req.html) {
        (Some(text), _) => Some(text.clone()),
        (None, Some(html)) => Some(
            crate::render::html_to_text(html)
                .map_err(|e| ApiError::html_too_complex(format!("html: {e}")))?,
        ),
        (None, None) => None,
    };
    Ok(Content {
        subject,
        text,
        html: req.html.clone(),
    })
}

/// Builds the message to queue.
pub fn message(
    id: uuid::Uuid,
    tenant: &str,
    from: Mailbox,
    req: MessageRequest,
    content: Content,
) -> OutgoingMessage {
    let message_id = make_message_id(id, &from);
    OutgoingMessage {
        id,
        tenant: tenant.to_owned(),
        message_id,
        from,
        envelope_from: req.envelope_from,
        reply_to: req.reply_to,
        to: req.to,
        cc: req.cc,
        bcc: req.bcc,
        subject: content.subject,
        text: content.text,
        html: content.html,
        tags: req.tags,
        metadata: req.metadata,
    }
}
