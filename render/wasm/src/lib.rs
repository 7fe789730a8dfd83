//! The renderer as a WebAssembly module (`scripts/build-wasm.sh`): no
//! imports, and a small C ABI over buffers in the module's memory.
//!
//! A host renders like this:
//! 1. `mb_alloc(len)` → address; write `len` bytes of JSON there;
//! 2. `mb_load_templates(address)` with `{path: source, …}` (laid out like the
//!    service's template directory), or `mb_render(address)` with a render
//!    request (the body of `POST /v1/render` plus `tenant`); either call takes
//!    the input buffer over and returns the address of an answer buffer;
//! 3. `mb_len(answer)` bytes of JSON at `answer`, then `mb_free(answer)`.
//!
//! Answers: `{"templates": N}` to a load; `{"subject","text","html"}` to a
//! render; `{"lang","translations","variables"}` to `mb_missing` (what a
//! render had to do without); `{"error","kind"}` when any fails. Work is bounded by the
//! renderer's own fuel; the host bounds memory and time.

mod buffers;
mod request;

use std::cell::RefCell;

use mailbridge_render::Renderer;

thread_local! {
    static RENDERER: RefCell<Option<Renderer>> = const { RefCell::new(None) };
}

/// A new zeroed buffer of `len` bytes in the module's memory; returns its address.
#[allow(
    unsafe_code,
    reason = "exported under its own name; no pointer is dereferenced"
)]
#[unsafe(no_mangle)]
pub extern "C" fn mb_alloc(len: usize) -> usize {
    buffers::alloc(len)
}

/// Frees the buffer at `address` (an unknown address is ignored).
#[allow(
    unsafe_code,
    reason = "exported under its own name; no pointer is dereferenced"
)]
#[unsafe(no_mangle)]
pub extern "C" fn mb_free(address: usize) {
    buffers::free(address);
}

/// The length in bytes of the buffer at `address` (0 if unknown).
#[allow(
    unsafe_code,
    reason = "exported under its own name; no pointer is dereferenced"
)]
#[unsafe(no_mangle)]
pub extern "C" fn mb_len(address: usize) -> usize {
    buffers::len(address)
}

/// Replaces the templates with the JSON object `{path: source}` at `input`.
#[allow(
    unsafe_code,
    reason = "exported under its own name; no pointer is dereferenced"
)]
#[unsafe(no_mangle)]
pub extern "C" fn mb_load_templates(input: usize) -> usize {
    let json = buffers::take(input).unwrap_or_default();
    let answer = match request::load_templates(&json) {
        Ok(renderer) => {
            let answer = request::loaded(&renderer);
            RENDERER.with_borrow_mut(|slot| *slot = Some(renderer));
            answer
        }
        Err(answer) => answer,
    };
    buffers::keep(answer)
}

/// Renders the request at `input` with the loaded templates.
#[allow(
    unsafe_code,
    reason = "exported under its own name; no pointer is dereferenced"
)]
#[unsafe(no_mangle)]
pub extern "C" fn mb_render(input: usize) -> usize {
    let json = buffers::take(input).unwrap_or_default();
    let answer = RENDERER.with_borrow(|renderer| request::render(renderer.as_ref(), &json));
    buffers::keep(answer)
}

/// What rendering the request at `input` does without (translations, variables).
#[allow(
    unsafe_code,
    reason = "exported under its own name; no pointer is dereferenced"
)]
#[unsafe(no_mangle)]
pub extern "C" fn mb_missing(input: usize) -> usize {
    let json = buffers::take(input).unwrap_or_default();
    let answer = RENDERER.with_borrow(|renderer| request::missing(renderer.as_ref(), &json));
    buffers::keep(answer)
}

#[cfg(test)]
mod tests;
