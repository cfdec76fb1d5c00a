//! The "Save PNG / CSV / JSON" group every figure carries: each button runs the view's
//! own exporter, and a failure shows under the buttons instead of vanishing.

use leptos::prelude::*;

use crate::export::save_text;

/// Buttons `[data-testid="export-png|csv|json"]` for a figure saved as `<stem>.png`,
/// `<stem>.csv` and `<stem>.json`. `png` draws and offers the image itself; `csv` and
/// `json` return the text to save. A missing exporter means no button.
#[component]
pub fn ExportButtons(
    /// File name without extension, e.g. `drope-training`.
    stem: &'static str,
    /// Saves the figure as a PNG.
    #[prop(optional)]
    png: Option<Callback<(), Result<(), String>>>,
    /// The figure's data as CSV.
    #[prop(optional)]
    csv: Option<Callback<(), String>>,
    /// The figure's data as JSON.
    #[prop(optional)]
    json: Option<Callback<(), String>>,
) -> impl IntoView {
    let failure = RwSignal::new(None::<String>);
    let text_button = move |kind: &'static str, mime: &'static str, make: Callback<(), String>| {
        let label = kind.to_uppercase();
        view! {
            <button type="button" data-testid=format!("export-{kind}") data-figure=stem
                on:click=move |_| {
                    let text = make.run(());
                    failure.set(save_text(&format!("{stem}.{kind}"), mime, &text).err());
                }>{label}</button>
        }
    };
    view! {
        <span class="export" role="group" aria-label="Save this figure">
            "Save "
            {png.map(|png| view! {
                <button type="button" data-testid="export-png" data-figure=stem
                    on:click=move |_| failure.set(png.run(()).err())>"PNG"</button>
            })}
            {csv.map(|csv| text_button("csv", "text/csv", csv))}
            {json.map(|json| text_button("json", "application/json", json))}
        </span>
        {move || failure.get().map(|e| view! { <p class="error" role="alert">{format!("Could not save: {e}")}</p> })}
    }
}
