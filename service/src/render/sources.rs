//! The one place the renderer touches the file system: reading a template
//! directory into memory. Everything else in `render` is pure.

use std::path::Path;

use super::{RenderError, TemplateSources};

/// Extensions of the files a template directory holds.
const KINDS: [&str; 3] = ["j2", "ftl", "json"];

/// Reads every template, Fluent file and sample under `dir`.
pub fn load_dir(dir: &Path) -> Result<TemplateSources, RenderError> {
    let mut sources = TemplateSources::new();
    walk(dir, dir, &mut sources)?;
    Ok(sources)
}

fn walk(root: &Path, dir: &Path, sources: &mut TemplateSources) -> Result<(), RenderError> {
    let io = |path: &Path, e: std::io::Error| RenderError::Io {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| io(dir, e))?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, sources)?;
            continue;
        }
        let known = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| KINDS.contains(&e));
        if !known {
            continue;
        }
        let contents = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let name: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        sources.insert(name.join("/"), contents);
    }
    Ok(())
}
