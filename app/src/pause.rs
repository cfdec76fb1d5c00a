//! Yielding to the browser: long loops (growing a prompt, needle trials) await these
//! between steps so the page paints and handles input meanwhile.

use js_sys::Promise;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

/// Resolves after `ms` milliseconds, letting the browser paint meanwhile.
pub async fn pause(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        let scheduled = web_sys::window().and_then(|w| {
            w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
                .ok()
        });
        if scheduled.is_none() {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Resolves on the next turn of the event loop (after pending rendering).
pub async fn next_frame() {
    pause(0).await;
}

/// Resolves once the browser has painted what is pending: after its next animation
/// frame and a turn of the event loop, or after 100 ms where frames do not come (a
/// hidden tab).
pub async fn painted() {
    let frame = Promise::new(&mut |resolve, _| {
        let window = web_sys::window();
        let asked = window
            .as_ref()
            .and_then(|w| w.request_animation_frame(&resolve).ok());
        let timer = window.and_then(|w| {
            w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 100)
                .ok()
        });
        if asked.is_none() && timer.is_none() {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(frame).await;
    pause(0).await;
}
