//! What the studio's render does without: the shared strings the chosen
//! language lacks (English stands in) and the variables the templates look up
//! that the data lacks. Computed by the renderer itself (the same code the
//! WebAssembly module runs in the page), off the async threads.

use std::sync::Arc;

use serde_json::{Value, json};

use super::studio::Choice;
use crate::api::AppState;
use crate::render::RenderRequest;

/// `{"lang","translations","variables"}` for `choice` with `data` (JSON
/// text); `None` when the data is no JSON or the template cannot render (the
/// render itself says why).
pub async fn missing(state: &AppState, choice: &Choice, data: &str) -> Option<Value> {
    let data: Value = serde_json::from_str(data).ok()?;
    let renderer = Arc::clone(&state.renderer);
    let choice = choice.clone();
    let found = tokio::task::spawn_blocking(move || {
        renderer.missing(&RenderRequest {
            tenant: &choice.tenant,
            template: &choice.template,
            locale: Some(&choice.locale),
            data: &data,
            require_locale: false,
        })
    })
    .await
    .ok()?
    .ok()?;
    Some(json!({
        "lang": found.lang,
        "translations": found.translations,
        "variables": found.variables,
    }))
}
