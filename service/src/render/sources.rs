//! The one place the renderer touches the file system: reading a template
//! directory into memory. Everything else in `render` is pure.

use std::path::Path;

use super::{RenderError, TemplateSources};

/// Extensions of the files a template directory holds.
const KINDS: [&str; 3] = ["j2", "ftl", "json"];

/// Reads every template, Fluent file and sample under `dir`, following
/// symbolic links (a Kubernetes ConfigMap mount links `emails` to
/// `..data/emails`); a link back to a directory above it is an error.
pub fn load_dir(dir: &Path) -> Result<TemplateSources, RenderError> {
    let mut sources = TemplateSources::new();
    walk(dir, dir, &mut Vec::new(), &mut sources)?;
    Ok(sources)
}

fn io(path: &Path, e: impl std::fmt::Display) -> RenderError {
    RenderError::Io {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

/// Reads `dir` into `sources`; `above` holds the real paths of the
/// directories it is inside of.
fn walk(
    root: &Path,
    dir: &Path,
    above: &mut Vec<std::path::PathBuf>,
    sources: &mut TemplateSources,
) -> Result<(), RenderError> {
    let real = std::fs::canonicalize(dir).map_err(|e| io(dir, e))?;
    if above.contains(&real) {
        return Err(io(
            dir,
            "a symbolic link leads back to a directory above it",
        ));
    }
    above.push(real);
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| io(dir, e))?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, above, sources)?;
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
    above.pop();
    Ok(())
}

/// Whether `sources` hold an email template (a subject and an HTML body,
/// shared or a tenant's own): without one every render answers
/// `unknown-template`.
pub fn has_email_template(sources: &TemplateSources) -> bool {
    let paths: std::collections::BTreeSet<&str> = sources.iter().map(|(path, _)| path).collect();
    paths.iter().any(|path| {
        let email = path.starts_with("emails/")
            || (path.starts_with("tenants/") && path.split('/').nth(2) == Some("emails"));
        path.strip_suffix("subject.j2")
            .filter(|dir| email && dir.ends_with('/'))
            .is_some_and(|dir| paths.contains(format!("{dir}html.j2").as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_followed_and_a_loop_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real/emails/hello");
        std::fs::create_dir_all(&real).unwrap();
        std::fs::write(real.join("subject.j2"), "Hi").unwrap();
        std::fs::write(real.join("html.j2"), "<p>Hi</p>").unwrap();
        let mount = dir.path().join("mount");
        std::fs::create_dir(&mount).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real/emails"), mount.join("emails")).unwrap();
        let sources = load_dir(&mount).unwrap();
        assert!(has_email_template(&sources));

        std::os::unix::fs::symlink(&mount, mount.join("emails/hello/again")).unwrap();
        let err = load_dir(&mount).unwrap_err().to_string();
        assert!(err.contains("leads back to a directory above it"), "{err}");
    }

    #[test]
    fn a_directory_without_an_email_template_has_none() {
        let mut sources = TemplateSources::new();
        sources.insert("locales/en.ftl", "x = y");
        sources.insert("emails/hello/subject.j2", "Hi");
        assert!(!has_email_template(&sources));
        sources.insert("tenants/acme/emails/hello/html.j2", "<p>Hi</p>");
        assert!(!has_email_template(&sources));
        sources.insert("tenants/acme/emails/hello/subject.j2", "Hi");
        assert!(has_email_template(&sources));
    }
}
