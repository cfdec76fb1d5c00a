//! "Open a model": the visitor's own Hugging Face checkpoint from disk, by file picker,
//! folder picker or drag and drop (`local_model.rs` reads and checks it). The opened
//! model joins the page's list of models and becomes the focus series; a link that
//! names a local model the page does not hold asks for its files here.

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::{DragEvent, File, FileList};

use crate::format::bytes_of;
use crate::local_model::{missing_local_models, open_local, OpenStage};
use crate::manifest::Manifest;
use crate::page_engine::add_local_model;
use crate::url_state::{SeriesSpec, MAX_SERIES};

/// Where opening stands, for the line under the buttons.
#[derive(Debug, Clone, PartialEq)]
enum Opening {
    Busy(OpenStage),
    Opened(String),
    Failed(String),
}

impl Opening {
    fn text(&self) -> String {
        match self {
            Opening::Busy(OpenStage::Checking) => {
                "Checking the config, the tokenizer and the weight files' headers\u{2026}".into()
            }
            Opening::Busy(OpenStage::Reading {
                summary,
                read,
                total,
            }) => format!(
                "{summary}. Reading the weights: {}",
                bytes_of(*read, *total)
            ),
            Opening::Opened(summary) => {
                format!("Opened {summary}. It is read on this computer and never uploaded.")
            }
            Opening::Failed(reason) => format!("This model cannot be opened: {reason}"),
        }
    }
}

/// Puts a newly opened model first in the comparison (its own scheme), unless a series
/// of it is there already (a link that named it).
pub fn with_opened_model(series: &[SeriesSpec], id: &str) -> Vec<SeriesSpec> {
    if series.iter().any(|s| s.model == id) {
        return series.to_vec();
    }
    let mut out = vec![SeriesSpec::model(id)];
    out.extend(series.iter().take(MAX_SERIES - 1).cloned());
    out
}

fn file_list(list: Option<FileList>) -> Vec<File> {
    list.map(|list| (0..list.length()).filter_map(|i| list.get(i)).collect())
        .unwrap_or_default()
}

/// The "Open a model" buttons, drop zone and status line.
#[component]
pub fn OpenModel(
    /// The page's list of models: an opened model joins it.
    manifest: RwSignal<Option<Manifest>>,
    /// The compared series: an opened model becomes the focus.
    series: RwSignal<Vec<SeriesSpec>>,
) -> impl IntoView {
    let opening = RwSignal::new(None::<Opening>);
    let dragging = RwSignal::new(false);
    let busy = move || matches!(opening.get(), Some(Opening::Busy(_)));
    let files_input = NodeRef::<leptos::html::Input>::new();
    let folder_input = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some(input) = folder_input.get() {
            input.set_webkitdirectory(true);
        }
    });
    let open = move |files: Vec<File>| {
        if files.is_empty() || opening.with_untracked(|o| matches!(o, Some(Opening::Busy(_)))) {
            return;
        }
        spawn_local(async move {
            let outcome = open_local(files, |stage| opening.set(Some(Opening::Busy(stage)))).await;
            match outcome {
                Ok(opened) => {
                    let entry = opened.entry.clone();
                    add_local_model(opened.download);
                    manifest.update(|m| {
                        if let Some(m) = m {
                            m.models.retain(|e| e.id != entry.id);
                            m.models.push(entry.clone());
                        }
                    });
                    series.update(|s| *s = with_opened_model(s, &entry.id));
                    opening.set(Some(Opening::Opened(opened.summary)));
                }
                Err(e) => opening.set(Some(Opening::Failed(e.to_string()))),
            }
        });
    };
    let from_input = move |input: NodeRef<leptos::html::Input>| {
        if let Some(input) = input.get_untracked() {
            open(file_list(input.files()));
            // The same files can be chosen again (after editing them on disk).
            input.set_value("");
        }
    };
    let missing = Memo::new(move |_| {
        manifest.with(|m| {
            let Some(m) = m else { return Vec::new() };
            series.with(|s| {
                missing_local_models(s.iter().map(|s| s.model.as_str()), |id| {
                    m.model(id).is_some()
                })
            })
        })
    });
    view! {
        <div class="open-model" class:dragging=move || dragging.get() data-testid="open-model"
            on:dragover=move |ev: DragEvent| { ev.prevent_default(); dragging.set(true); }
            on:dragleave=move |_| dragging.set(false)
            on:drop=move |ev: DragEvent| {
                ev.prevent_default();
                dragging.set(false);
                open(file_list(ev.data_transfer().and_then(|d| d.files())));
            }>
            <span class="label">"Your own model "</span>
            <input type="file" multiple accept=".json,.safetensors" class="hidden-input" node_ref=files_input
                data-testid="open-model-files" aria-label="Model files"
                on:change=move |_| from_input(files_input) />
            <input type="file" class="hidden-input" node_ref=folder_input
                data-testid="open-model-folder" aria-label="Model folder"
                on:change=move |_| from_input(folder_input) />
            <button type="button" prop:disabled=move || busy() || manifest.with(Option::is_none)
                on:click=move |_| { if let Some(i) = files_input.get_untracked() { i.click() } }>"Open files\u{2026}"</button>
            <button type="button" prop:disabled=move || busy() || manifest.with(Option::is_none)
                on:click=move |_| { if let Some(i) = folder_input.get_untracked() { i.click() } }>"Open a folder\u{2026}"</button>
            <span class="hint">" or drop a Hugging Face checkpoint's files here (Llama family; config.json, tokenizer.json, safetensors; read locally, never uploaded)"</span>
            {move || {
                let m = missing.get();
                (!m.is_empty()).then(|| view! {
                    <p class="notice" data-testid="local-model-needed" role="status">
                        {format!("This link compares {}, opened from disk on another visit: open the same files to run it (they stay on this computer).",
                            m.join(", "))}
                    </p>
                })
            }}
            {move || opening.get().map(|o| {
                let failed = matches!(o, Opening::Failed(_));
                view! {
                    <p class:error=failed data-testid="open-model-status" data-state=match &o {
                        Opening::Busy(_) => "busy", Opening::Opened(_) => "opened", Opening::Failed(_) => "failed" }
                        role=if failed { "alert" } else { "status" }>
                        {o.text()}
                    </p>
                }
            })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_opened_model_becomes_the_focus_once() {
        let shipped = vec![SeriesSpec::model("rope"), SeriesSpec::model("drope")];
        let with = with_opened_model(&shipped, "local-smollm");
        assert_eq!(with[0], SeriesSpec::model("local-smollm"));
        assert_eq!(&with[1..], &shipped[..]);
        // A link that already names it keeps its place and scheme.
        assert_eq!(with_opened_model(&with, "local-smollm"), with);
        // The list never grows past the cap.
        let full: Vec<SeriesSpec> = (0..MAX_SERIES)
            .map(|i| SeriesSpec::model(&format!("m{i}")))
            .collect();
        assert_eq!(with_opened_model(&full, "local-x").len(), MAX_SERIES);
    }
}
