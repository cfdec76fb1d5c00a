//! The one-line messages of a page: a notice (something the visitor should know, the
//! page still works) and an error (something failed). Both are live regions, so screen
//! readers announce them.

use leptos::prelude::*;

/// A notice line while `text` holds one.
#[component]
pub fn Notice(
    /// The line's `data-testid`.
    testid: &'static str,
    /// What to say, if anything.
    #[prop(into)]
    text: Signal<Option<String>>,
) -> impl IntoView {
    line("notice", "status", testid, text)
}

/// An error line while `text` holds one.
#[component]
pub fn ErrorLine(
    /// The line's `data-testid`.
    testid: &'static str,
    /// What went wrong, if anything.
    #[prop(into)]
    text: Signal<Option<String>>,
) -> impl IntoView {
    line("error", "alert", testid, text)
}

/// A paragraph of `class` and ARIA `role` while `text` holds something.
fn line(
    class: &'static str,
    role: &'static str,
    testid: &'static str,
    text: Signal<Option<String>>,
) -> impl IntoView {
    move || {
        text.get()
            .map(|t| view! { <p class=class data-testid=testid role=role>{t}</p> })
    }
}
