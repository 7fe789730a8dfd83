//! Turns a validated request into rendered content and a message: template or
//! the caller's own content, per DESIGN.md's rule "never the wrong language".

use std::sync::Arc;

use serde::Serialize;

use super::error::ApiError;
use super::request::MessageRequest;
use crate::email::{Mailbox, OutgoingMessage, make_message_id};
use crate::render::{RenderError, RenderRequest, Renderer, threads};

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

/// [`content`] off the async threads ([`threads`]): rendering and deriving
/// text are CPU work, which would otherwise hold up every other request
/// (even `/healthz`).
pub async fn render_content(
    renderer: Arc<Renderer>,
    tenant: &str,
    req: &MessageRequest,
) -> Result<Content, ApiError> {
    let (_, content) = render_owned(renderer, tenant, req.clone()).await?;
    Ok(content)
}

/// [`render_content`] for a request that is needed afterwards: it travels to
/// the rendering thread and back instead of being copied (bodies and data are
/// most of its size).
pub async fn render_owned(
    renderer: Arc<Renderer>,
    tenant: &str,
    req: MessageRequest,
) -> Result<(MessageRequest, Content), ApiError> {
    let tenant = tenant.to_owned();
    threads::run(move || {
        let content = content(&renderer, &tenant, &req)?;
        Ok((req, content))
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
    let rendered = renderer.render(&render);
    match rendered {
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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use serde_json::json;

    use super::*;
    use crate::render::TemplateSources;

    fn renderer() -> Renderer {
        let mut sources = TemplateSources::new();
        sources.insert("emails/welcome/subject.j2", "Welcome to {{ realmName }}");
        sources.insert("emails/welcome/html.j2", "<p>Hello</p>");
        Renderer::new(sources).unwrap()
    }

    fn request(realm_name: &str) -> MessageRequest {
        MessageRequest {
            to: vec![Mailbox::new("ada@example.com")],
            template: Some("welcome".into()),
            data: json!({ "realmName": realm_name }),
            ..Default::default()
        }
    }

    #[test]
    fn a_subject_rendered_from_data_with_nul_is_refused() {
        // Found by fuzz/message_request: such a message was accepted, then
        // refused by every transport. (Validation now refuses NUL in data too.)
        let error = content(&renderer(), "acme", &request("a\0b")).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(error.detail.contains("subject"), "{}", error.detail);
    }

    #[test]
    fn a_subject_rendered_too_long_is_refused() {
        // A 1,000-character realm name passes validation; the subject it
        // renders into is over a header's 998 bytes.
        let error = content(&renderer(), "acme", &request(&"x".repeat(1000))).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn the_request_s_own_content_replaces_a_subject_that_does_not_fit() {
        let mut req = request("a\0b");
        req.subject = Some("Welcome".into());
        req.text = Some("Hello".into());
        let own = content(&renderer(), "acme", &req).unwrap();
        assert_eq!(own.subject, "Welcome");
        let plain = content(&renderer(), "acme", &request("ACME")).unwrap();
        assert_eq!(plain.subject, "Welcome to ACME");
    }
}
