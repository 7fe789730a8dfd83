//! Embeds the renderer's WebAssembly module (built by `scripts/build-wasm.sh`)
//! for the console's template studio, when it has been built: a binary built
//! without it renders the studio's previews on the server instead.
//!
//! The module is read from `MAILBRIDGE_RENDER_WASM` when set (a missing file
//! is then an error), else from `target/wasm/mailbridge_render.wasm` of the
//! workspace. `OUT_DIR/mailbridge_render.wasm` is always written: empty means
//! "no module".
//!
//! It also makes a new SQL migration rebuild the service (see `main`).

use std::path::{Path, PathBuf};

const VARIABLE: &str = "MAILBRIDGE_RENDER_WASM";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `sqlx::migrate!` embeds the migrations at compile time: a new migration
    // file alone must rebuild the service too.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=migrations-postgres");
    println!("cargo:rerun-if-env-changed={VARIABLE}");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("mailbridge_render.wasm");
    let module = match std::env::var_os(VARIABLE) {
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            Some(std::fs::read(&path).map_err(|e| format!("{VARIABLE}={}: {e}", path.display()))?)
        }
        None => default_module(&manifest.join("../target/wasm"))?,
    };
    std::fs::write(out, module.unwrap_or_default())?;
    Ok(())
}

/// The module in `dir` if it is there. The directory is watched rather than
/// the file: a file that does not exist yet would make cargo run this script
/// (and rebuild the service) on every build; a directory is scanned for changes.
fn default_module(dir: &Path) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    println!("cargo:rerun-if-changed={}", dir.display());
    match std::fs::read(dir.join("mailbridge_render.wasm")) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}
