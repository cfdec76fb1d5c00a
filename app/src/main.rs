//! The studio's entry point: mounts [`app::App`] on the page body.

fn main() {
    // Panics (bugs, not user errors: those are shown on the page) reach the console
    // with a Rust message instead of "unreachable executed".
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
