//! Shared strings: one Fluent bundle per language, looked up by `t("key")`
//! in templates.

use std::collections::BTreeMap;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

use super::RenderError;

/// Every language's strings.
#[derive(Default)]
pub struct Strings {
    bundles: BTreeMap<String, FluentBundle<FluentResource>>,
}

impl std::fmt::Debug for Strings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.bundles.keys()).finish()
    }
}

impl Strings {
    /// Adds the Fluent source of `lang`, read from `path` (named in errors).
    pub fn add(&mut self, lang: &str, path: &str, source: &str) -> Result<(), RenderError> {
        let syntax = |detail: String| RenderError::Syntax {
            path: path.to_owned(),
            detail,
        };
        let id: LanguageIdentifier = lang
            .parse()
            .map_err(|_| syntax(format!("`{lang}` is not a language tag")))?;
        let resource = FluentResource::try_new(source.to_owned())
            .map_err(|(_, errors)| syntax(format!("{errors:?}")))?;
        // Language tags compare without case (`pt-BR` is `pt-br`).
        let bundle = self
            .bundles
            .entry(lang.to_ascii_lowercase())
            .or_insert_with(|| {
                let mut bundle = FluentBundle::new_concurrent(vec![id]);
                // No Unicode isolation marks around values: they would show in subjects.
                bundle.set_use_isolating(false);
                bundle
            });
        bundle
            .add_resource(resource)
            .map_err(|errors| syntax(format!("duplicate messages: {errors:?}")))
    }

    /// Whether there are strings for `lang`.
    pub fn has(&self, lang: &str) -> bool {
        self.bundles.contains_key(&lang.to_ascii_lowercase())
    }

    /// Whether `lang` or a language it narrows has the message `key`
    /// (without falling back to English).
    pub fn has_message(&self, lang: &str, key: &str) -> bool {
        let lang = lang.to_ascii_lowercase();
        narrowing(&lang).any(|l| self.bundles.get(l).is_some_and(|b| b.has_message(key)))
    }

    /// The message `key` in `lang`, else in the languages it narrows
    /// (`de-AT`, then `de`), else in English, else the key itself, with `args`.
    pub fn format(&self, lang: &str, key: &str, args: &[(String, FluentValue<'static>)]) -> String {
        let lang = lang.to_ascii_lowercase();
        for candidate in narrowing(&lang).chain(["en"]) {
            let Some(bundle) = self.bundles.get(candidate) else {
                continue;
            };
            let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
                continue;
            };
            let mut fluent_args = FluentArgs::new();
            for (name, value) in args {
                fluent_args.set(name.clone(), value.clone());
            }
            let mut errors = Vec::new();
            return bundle
                .format_pattern(pattern, Some(&fluent_args), &mut errors)
                .into_owned();
        }
        key.to_owned()
    }
}

/// `lang`, then the languages it narrows (`zh-hant-tw`, `zh-hant`, `zh`).
fn narrowing(lang: &str) -> impl Iterator<Item = &str> {
    let narrower = (0..lang.len())
        .rev()
        .filter(|&at| lang.as_bytes()[at] == b'-')
        .map(|at| &lang[..at]);
    std::iter::once(lang).chain(narrower)
}
