//! The studio's backend line: the select between WebGPU and the CPU path, where the
//! models run and why, the models' sizes, and the notice when WebGPU failed and the page
//! moved to the CPU.

use engine::DeviceKind;
use leptos::prelude::*;

use crate::manifest::Manifest;
use crate::model_store::GpuStatus;
use crate::run_controller::{Activity, RunController, RunInputs};
use crate::views::Notice;

/// The backend line: "WebGPU · <adapter>" when models run on the GPU, else "CPU" and why
/// (`gpu` is `None` while the page is still opening the WebGPU device; `failure` is a
/// WebGPU error that moved the page to the CPU).
pub fn backend_label(
    on_gpu: bool,
    gpu: Option<&GpuStatus>,
    failure: Option<&str>,
    chosen: bool,
) -> String {
    if let (true, Some(GpuStatus::Ready { adapter, .. })) = (on_gpu, gpu) {
        return format!("WebGPU \u{b7} {adapter}");
    }
    let why = match (gpu, failure) {
        (_, Some(reason)) => format!("WebGPU failed: {reason}"),
        (Some(GpuStatus::Failed(reason)), None) => format!("WebGPU failed: {reason}"),
        (Some(GpuStatus::NoAdapter), None) => "no WebGPU adapter in this browser".to_string(),
        (
            Some(GpuStatus::Ready {
                adapter,
                software: true,
                ..
            }),
            None,
        ) if !chosen => format!(
            "this browser's WebGPU is a software adapter ({adapter}), slower than the CPU path; \
             choose WebGPU to use it anyway"
        ),
        (Some(GpuStatus::Ready { .. }), None) => "chosen; WebGPU is available".to_string(),
        (None, None) => "looking for WebGPU\u{2026}".to_string(),
    };
    format!("CPU ({why})")
}

/// The notice shown when WebGPU failed and the page moved to the CPU.
pub fn fallback_notice(reason: &str) -> String {
    format!(
        "WebGPU failed ({reason}), so the studio now runs on the CPU path. \
         Choose WebGPU under Backend to try the GPU again."
    )
}

/// The backend select (WebGPU or the CPU), where the models run and why, the models'
/// sizes, and the notice of a move to the CPU.
#[component]
pub fn BackendLine(
    /// The page's run.
    run: RunController,
) -> impl IntoView {
    let RunController {
        activity,
        focus,
        inputs:
            RunInputs {
                manifest,
                gpu,
                backend: choice,
                gpu_failure,
                ..
            },
        ..
    } = run;
    let busy = move || matches!(activity.get(), Activity::Loading | Activity::Running);
    let has_gpu = move || gpu.with(|s| matches!(s, Some(GpuStatus::Ready { .. })));
    // The backend of the run shown, else the page's choice.
    let shows_gpu = move || {
        focus.with(|f| match f {
            Some(run) => run.backend == DeviceKind::WebGpu,
            None => run.inputs.on_gpu(),
        })
    };
    let backend = move || {
        let on_gpu = shows_gpu();
        let chosen = choice.get().is_some();
        gpu.with(|status| {
            gpu_failure.with(|f| backend_label(on_gpu, status.as_ref(), f.as_deref(), chosen))
        })
    };
    view! {
        <p class="backend-line">
            <label title="Where the models run: WebGPU (this browser's GPU) or the CPU path (the reference). Switching re-runs the prompt.">
                "Backend "
                <select
                    data-testid="backend-select"
                    on:change=move |ev| run.choose_backend(event_target_value(&ev) == "webgpu")
                    prop:disabled=busy
                >
                    <option value="webgpu" prop:selected=shows_gpu prop:disabled=move || !has_gpu()>"WebGPU"</option>
                    <option value="cpu" prop:selected=move || !shows_gpu()>"CPU"</option>
                </select>
            </label>
            " "
            <span data-testid="backend">{backend}</span>
            " "
            {move || manifest.get().map(|m| view! { <span class="model-sizes">{model_sizes(&m)}</span> })}
        </p>
        <Notice testid="backend-notice" text=Signal::derive(move || gpu_failure.get().map(|reason| fallback_notice(&reason))) />
    }
}

/// "RoPE 10.2 MB · DroPE 10.2 MB ..." from the manifest.
fn model_sizes(manifest: &Manifest) -> String {
    manifest
        .models
        .iter()
        .filter(|m| m.trained)
        .map(|m| format!("{} {}", m.label, crate::format::megabytes(m.total_bytes())))
        .collect::<Vec<_>>()
        .join(" \u{b7} ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_label_says_why_the_cpu_runs() {
        let label = |gpu: Option<GpuStatus>, failure: Option<&str>| {
            backend_label(false, gpu.as_ref(), failure, false)
        };
        assert_eq!(
            label(Some(GpuStatus::NoAdapter), None),
            "CPU (no WebGPU adapter in this browser)"
        );
        assert_eq!(
            label(Some(GpuStatus::Failed("device refused".into())), None),
            "CPU (WebGPU failed: device refused)"
        );
        assert_eq!(
            label(Some(GpuStatus::NoAdapter), Some("device lost")),
            "CPU (WebGPU failed: device lost)"
        );
        assert!(label(None, None).starts_with("CPU (looking for WebGPU"));
        assert!(fallback_notice("device lost").contains("WebGPU failed (device lost)"));
    }
}
