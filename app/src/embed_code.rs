//! The snippets behind the studio's "Copy embed code": the current view and state as
//! an iframe of `embed.html` and as a `<drope-studio>` element, both pointing at the
//! site the studio is served from.

use js_sys::{Function, Promise, Reflect};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::url_state::{encode_query, NeedleSettings, StudioState};

/// The folder of the page at `href` (query and fragment dropped): the site's root for
/// `https://host/drope-studio/?view=x` and `https://host/drope-studio/index.html`.
pub fn site_base(href: &str) -> String {
    let end = href.find(['?', '#']).unwrap_or(href.len());
    let path = &href[..end];
    match path.rfind('/') {
        Some(i) => path[..=i].to_string(),
        None => format!("{path}/"),
    }
}

/// `text` safe inside a double-quoted HTML attribute.
fn attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Height in CSS pixels that fits the view without a scroll bar in a blog column.
fn height_of(state: &StudioState) -> u32 {
    use crate::url_state::View;
    match state.view {
        View::Perplexity => 520,
        View::Attention => 760,
        View::Tokens => 480,
        View::Needle => 560,
        View::Frequencies => 640,
        View::Training => 620,
    }
}

/// The state a snippet carries: the figure, not where this visitor's browser runs it
/// (each reader's browser chooses its own backend) nor the studio's live needle settings
/// (an embed shows the published grid).
fn figure_state(state: &StudioState) -> StudioState {
    StudioState {
        backend: None,
        needle: NeedleSettings::default(),
        ..state.clone()
    }
}

/// An `<iframe>` of `embed.html` for `state` (lazy: the browser fetches it near the
/// viewport; the page inside also waits until it is on screen).
pub fn iframe_snippet(site: &str, state: &StudioState) -> String {
    let (pairs, _) = figure_state(state).to_pairs();
    let src = format!("{site}embed.html{}", encode_query(&pairs));
    format!(
        "<iframe src=\"{}\" title=\"{}\" width=\"100%\" height=\"{}\" loading=\"lazy\" \
         style=\"border: 0; max-width: 100%;\"></iframe>",
        attribute(&src),
        attribute(&format!("DroPE Studio: {}", state.view.title())),
        height_of(state)
    )
}

/// The module script (once per page) and a `<drope-studio>` element for `state`.
pub fn element_snippet(site: &str, state: &StudioState) -> String {
    let (pairs, _) = figure_state(state).to_pairs();
    let attributes: Vec<String> = pairs
        .iter()
        .map(|(key, value)| format!("{key}=\"{}\"", attribute(value)))
        .collect();
    format!(
        "<script type=\"module\" src=\"{}\"></script>\n<drope-studio {}></drope-studio>",
        attribute(&format!("{site}drope-studio.js")),
        attributes.join(" ")
    )
}

/// Puts `text` on the clipboard (`navigator.clipboard.writeText`); the error says why
/// not (no clipboard outside a secure page, or the browser refused).
async fn copy_to_clipboard(text: &str) -> Result<(), String> {
    let navigator = web_sys::window().ok_or("no window")?.navigator();
    let clipboard = Reflect::get(&navigator, &"clipboard".into()).unwrap_or(JsValue::UNDEFINED);
    if clipboard.is_undefined() {
        return Err("this page has no clipboard access".into());
    }
    let write: Function = Reflect::get(&clipboard, &"writeText".into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or("this page has no clipboard access")?;
    let promise = write
        .call1(&clipboard, &JsValue::from_str(text))
        .map_err(|e| crate::error::js_message(&e))?;
    JsFuture::from(Promise::resolve(&promise))
        .await
        .map(|_| ())
        .map_err(|e| crate::error::js_message(&e))
}

/// One snippet, read-only, with its Copy button; `status` says how the copy went.
fn snippet_box(
    kind: &'static str,
    text: impl Fn() -> String + Clone + Send + Sync + 'static,
    status: RwSignal<String>,
) -> impl IntoView {
    let shown = text.clone();
    let title = if kind == "iframe" {
        "An iframe"
    } else {
        "A custom element (several per page share one engine)"
    };
    view! {
        <h4>{title}</h4>
        <textarea readonly data-testid=format!("embed-code-{kind}") prop:value=shown></textarea>
        <button type="button" data-testid=format!("embed-copy-{kind}") on:click=move |_| {
            let text = text();
            spawn_local(async move {
                status.set(match copy_to_clipboard(&text).await {
                    Ok(()) => format!("Copied the {kind} snippet."),
                    Err(e) => format!("Could not copy ({e}): select the text and copy it yourself."),
                });
            });
        }>"Copy"</button>
    }
}

/// The two snippets for `state`, each in a box with a Copy button.
#[component]
pub fn EmbedCode(
    /// The view and settings to embed.
    #[prop(into)]
    state: Signal<StudioState>,
) -> impl IntoView {
    let site = web_sys::window()
        .and_then(|w| w.location().href().ok())
        .map(|href| site_base(&href))
        .unwrap_or_default();
    let status = RwSignal::new(String::new());
    let incomplete = move || !state.with(|s| s.to_pairs().1);
    let snippet = move |kind: &'static str| {
        let site = site.clone();
        move || {
            state.with(|s| match kind {
                "iframe" => iframe_snippet(&site, s),
                _ => element_snippet(&site, s),
            })
        }
    };
    view! {
        <div class="embed-code" data-testid="embed-code">
            <p class="view-note">
                "Paste either snippet into a page to show this view, with these settings, live. "
                "The figure starts when a reader scrolls to it; see docs/EMBEDDING.md."
            </p>
            {move || incomplete().then(|| view! {
                <p class="notice" role="status">"The prompt is too long for a link, so the snippets use the default sample instead."</p>
            })}
            {snippet_box("iframe", snippet("iframe"), status)}
            {snippet_box("element", snippet("element"), status)}
            <p class="hint" data-testid="embed-copy-status" role="status">{move || status.get()}</p>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url_state::{BackendChoice, PromptSource, SeriesSpec, View};

    fn state() -> StudioState {
        StudioState {
            view: View::Attention,
            series: vec![
                SeriesSpec::model("drope"),
                SeriesSpec::with_scheme("rope", "yarn".parse().unwrap()),
            ],
            prompt: PromptSource::Sample("austen-3".into()),
            length: Some(512),
            // Never in a snippet: the reader's browser chooses.
            backend: Some(BackendChoice::Cpu),
            // Nor the studio's live needle settings.
            needle: NeedleSettings {
                lengths: vec![8],
                trials: 3,
            },
        }
    }

    #[test]
    fn the_site_is_the_studio_page_folder() {
        assert_eq!(
            site_base("https://h.io/drope-studio/?view=x#y"),
            "https://h.io/drope-studio/"
        );
        assert_eq!(
            site_base("https://h.io/drope-studio/index.html"),
            "https://h.io/drope-studio/"
        );
        assert_eq!(
            site_base("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/"
        );
    }

    #[test]
    fn snippets_carry_the_state() {
        let site = "https://h.io/s/";
        let frame = iframe_snippet(site, &state());
        assert!(
            frame.contains("src=\"https://h.io/s/embed.html?view=attention&amp;models=drope,rope:yarn&amp;sample=austen-3&amp;length=512\""),
            "{frame}"
        );
        assert!(frame.contains("loading=\"lazy\""));
        let element = element_snippet(site, &state());
        assert!(element.starts_with(
            "<script type=\"module\" src=\"https://h.io/s/drope-studio.js\"></script>"
        ));
        assert!(
            element.contains("<drope-studio view=\"attention\" models=\"drope,rope:yarn\" sample=\"austen-3\" length=\"512\"></drope-studio>"),
            "{element}"
        );
    }

    #[test]
    fn prompt_text_is_escaped_in_attributes() {
        let own = StudioState {
            prompt: PromptSource::Text("a \"quoted\" <b> & more".into()),
            ..state()
        };
        let element = element_snippet("/", &own);
        assert!(
            element.contains("prompt=\"a &quot;quoted&quot; &lt;b&gt; &amp; more\""),
            "{element}"
        );
    }
}
