//! The studio's "send me a test": the template, language and data on screen,
//! rendered by the service and sent to an address the administrator types,
//! through the tenant's own transport and sender, at once; the transport's
//! answer is shown as the transports page shows its test sends.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::Visit;
use super::studio::{RenderForm, render, show};
use super::transports::{TestMessage, TestResult, send};
use super::view::error_page;
use crate::api::AppState;
use crate::email::Mailbox;

/// The studio's form and the address to send to.
#[derive(Debug, Deserialize)]
pub struct SendForm {
    #[serde(flatten)]
    rendering: RenderForm,
    #[serde(default)]
    to: String,
}

/// `POST /console/templates/test`: renders the form's choice and sends it.
pub async fn send_test(
    visit: Visit,
    State(state): State<AppState>,
    Form(form): Form<SendForm>,
) -> Response {
    if !visit.viewer().admin {
        return visit.answer(error_page(
            StatusCode::FORBIDDEN,
            "Only administrators may send a test.",
        ));
    }
    // The render checks the form's token (and the tenant) before anything is sent.
    let content = match render(&visit, &state, &form.rendering).await {
        Ok(content) => content,
        Err(refused) => return refused,
    };
    let to = match Mailbox::parse(form.to.trim()) {
        Ok(to) => to,
        Err(e) => {
            let detail = format!("The address cannot be used: {}", e.reason);
            return visit.answer(error_page(StatusCode::UNPROCESSABLE_ENTITY, &detail));
        }
    };
    let choice = form.rendering.choice;
    let transport = state.tenants.route(&choice.tenant).transport;
    let test = TestMessage {
        tenant: choice.tenant.clone(),
        transport: transport.clone(),
        to,
        content,
        kind: Some(choice.template.clone()),
    };
    let outcome = match send(&state, test).await {
        Ok(outcome) => outcome,
        Err(refused) => return visit.answer(refused),
    };
    let result = TestResult::new(transport, form.to.trim().to_owned(), outcome);
    let data = Some(form.rendering.data);
    show(&visit, &state, choice, data, Some(result)).await
}
