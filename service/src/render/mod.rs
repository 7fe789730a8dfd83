//! TEMPORARY compile stub.
#![allow(missing_docs, dead_code)]
use std::collections::BTreeMap;
pub struct TemplateSources {
    files: BTreeMap<String, String>,
}
impl Default for TemplateSources {
    fn default() -> Self {
        Self::new()
    }
}
impl TemplateSources {
    pub fn new() -> Self {
        Self {
            files: BTreeMap::new(),
        }
    }
    pub fn insert(&mut self, p: impl Into<String>, c: impl Into<String>) {
        self.files.insert(p.into(), c.into());
    }
}
pub fn load_dir(_dir: &std::path::Path) -> Result<TemplateSources, RenderError> {
    Ok(TemplateSources::new())
}
#[derive(Debug)]
pub struct Renderer;
impl Renderer {
    pub fn new(_s: TemplateSources) -> Result<Renderer, RenderError> {
        Ok(Renderer)
    }
    pub fn render(&self, req: &RenderRequest<'_>) -> Result<Rendered, RenderError> {
        Err(RenderError::UnknownTemplate {
            name: req.template.to_owned(),
        })
    }
    pub fn has_template(&self, _t: &str, _n: &str) -> bool {
        false
    }
    pub fn template_names(&self) -> Vec<String> {
        vec![]
    }
    pub fn sample_data(&self, _n: &str) -> Option<serde_json::Value> {
        None
    }
}
pub struct RenderRequest<'a> {
    pub tenant: &'a str,
    pub template: &'a str,
    pub locale: Option<&'a str>,
    pub data: &'a serde_json::Value,
    pub require_locale: bool,
}
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("unknown template {name}")]
    UnknownTemplate { name: String },
    #[error("x")]
    LanguageUnavailable { template: String, locale: String },
    #[error("x")]
    Syntax { path: String, detail: String },
    #[error("x")]
    Render { template: String, detail: String },
    #[error("x")]
    Io { path: String, detail: String },
}
pub fn html_to_text(html: &str) -> String {
    html.to_owned()
}
