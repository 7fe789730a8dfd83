//! Templates: the renderer (crate `mailbridge-render`, the same code that runs
//! as WebAssembly inside Keycloak) and the one place it meets the file system,
//! reading a template directory into memory.

mod sources;
pub mod threads;

pub use mailbridge_render::*;
pub use sources::{has_email_template, load_dir};
