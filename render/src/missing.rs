//! What a rendering had to do without: the shared strings (`t("key")`) the
//! language lacks, so that English stood in, and the variables the templates
//! looked up that the data lacks, so that they rendered empty.
//!
//! Found by rendering once more while watching: the data is wrapped in
//! objects that note each lookup of a key they do not hold, and `t()` notes
//! each key its language lacks. Only what the templates really looked up
//! counts (a branch not taken looks nothing up), includes and layouts too.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, Serde, Value};

use super::{RenderError, RenderRequest, Renderer};

/// Names the engine itself provides to templates (not data).
const ENGINE_NAMES: [&str; 6] = ["loop", "self", "super", "caller", "varargs", "kwargs"];

/// What a rendering of a request had to do without.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Missing {
    /// The language the email was rendered in.
    pub lang: String,
    /// Keys of `t()` that language lacks (English, or the key itself, stood in), sorted.
    pub translations: Vec<String>,
    /// Variables the templates looked up that the data lacks (`user.firstName`), sorted.
    pub variables: Vec<String>,
}

/// What the current watched rendering noted.
#[derive(Debug, Default)]
struct Noted {
    translations: BTreeSet<String>,
    variables: BTreeSet<String>,
}

thread_local! {
    // Rendering is synchronous on one thread: what this thread's watched
    // rendering notes cannot mix with another's.
    static NOTED: RefCell<Option<Noted>> = const { RefCell::new(None) };
}

/// Whether a watched rendering runs on this thread.
pub(crate) fn recording() -> bool {
    NOTED.with_borrow(Option::is_some)
}

/// Notes a key of `t()` the language lacks.
pub(crate) fn note_translation(key: &str) {
    NOTED.with_borrow_mut(|noted| {
        if let Some(noted) = noted {
            noted.translations.insert(key.to_owned());
        }
    });
}

fn note_variable(path: String) {
    NOTED.with_borrow_mut(|noted| {
        if let Some(noted) = noted {
            noted.variables.insert(path);
        }
    });
}

/// A map of the data that notes lookups of keys it does not hold.
#[derive(Debug)]
struct Watched {
    /// Where it is in the data (`user`), empty for the top.
    path: String,
    map: serde_json::Map<String, serde_json::Value>,
}

impl Watched {
    fn value(path: String, value: &serde_json::Value) -> Value {
        match value {
            serde_json::Value::Object(map) => Value::from_object(Watched {
                path,
                map: map.clone(),
            }),
            other => Value::from(Serde(other)),
        }
    }

    fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

impl Object for Watched {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        match self.map.get(key) {
            Some(value) => Some(Watched::value(self.path_of(key), value)),
            None => {
                note_variable(self.path_of(key));
                None
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.map.keys().map(|k| Value::from(k.as_str())).collect())
    }
}

impl Renderer {
    /// What rendering `req` has to do without: the translations its language
    /// lacks and the variables its data lacks.
    pub fn missing(&self, req: &RenderRequest<'_>) -> Result<Missing, RenderError> {
        let (dir, lang) = self.resolve(req)?;
        let ctx = Watched::value(String::new(), &self.context(req, &lang));
        NOTED.with_borrow_mut(|noted| *noted = Some(Noted::default()));
        let rendered = self.render_in(req, &dir, &ctx);
        let noted = NOTED.with_borrow_mut(Option::take).unwrap_or_default();
        rendered?;
        // Globals (`t`, `range`, …) are looked up in the data first, then found.
        let globals: BTreeSet<&str> = self.env.globals().map(|(name, _)| name).collect();
        let variables = noted
            .variables
            .into_iter()
            .filter(|v| !globals.contains(v.as_str()) && !ENGINE_NAMES.contains(&v.as_str()))
            .collect();
        Ok(Missing {
            lang,
            translations: noted.translations.into_iter().collect(),
            variables,
        })
    }
}
