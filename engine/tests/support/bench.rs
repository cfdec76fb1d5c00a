//! Measurements behind `cargo xtask bench`, shared by the native benchmark
//! (`engine/examples/bench.rs`) and the browser one (`engine/tests/wasm_bench.rs`).
//! Each result is printed as one line `BENCH<TAB>group<TAB>backend<TAB>case<TAB>value`
//! that xtask collects into docs/BENCHMARKS.md.

use engine::{Backend, Capture, ForwardInput, SchemeSpec};

/// Prints one result line.
pub fn report(group: &str, backend: &str, case: &str, value: f64) {
    let line = format!("BENCH\t{group}\t{backend}\t{case}\t{value:.4}");
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_test::console_log!("{line}");
    #[cfg(not(target_arch = "wasm32"))]
    println!("{line}");
}

/// A repeatable prompt of `n` token ids below `vocab`.
pub fn prompt(n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + 13) % vocab) as u32).collect()
}

async fn forward<B: Backend>(
    backend: &B,
    cache: &mut B::Cache,
    tokens: &[u32],
    total: usize,
) -> Result<(), String> {
    let config = backend.config();
    let scheme: SchemeSpec = "rope"
        .parse()
        .map_err(|e: engine::EngineError| e.to_string())?;
    let applied = config
        .apply_scheme(&scheme, total)
        .map_err(|e| e.to_string())?;
    backend
        .forward(
            cache,
            ForwardInput {
                tokens,
                position_offset: 0,
                scheme: &applied,
                capture: &Capture::default(),
                top_k: 5,
                return_logits: false,
            },
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Milliseconds of a full forward pass over `n` tokens from an empty cache (median of
/// `repeats`).
pub async fn full_forward_ms<B: Backend>(
    backend: &B,
    n: usize,
    repeats: usize,
    now_ms: &impl Fn() -> f64,
) -> Result<f64, String> {
    let tokens = prompt(n, backend.config().vocab_size);
    let mut times = Vec::new();
    for _ in 0..repeats.max(1) {
        let mut cache = backend.new_cache();
        let start = now_ms();
        forward(backend, &mut cache, &tokens, n).await?;
        times.push(now_ms() - start);
    }
    Ok(median(times))
}

/// Milliseconds of extending a cached prompt by one token `steps` times in a row,
/// ending at `n` tokens (after a prefill of `n - steps` into a fresh cache): the median
/// of each step over `repeats`. The first step follows a full pass; later ones follow
/// a one-token pass, as when the studio grows a prompt token by token.
pub async fn extend_steps_ms<B: Backend>(
    backend: &B,
    n: usize,
    steps: usize,
    repeats: usize,
    now_ms: &impl Fn() -> f64,
) -> Result<Vec<f64>, String> {
    let tokens = prompt(n, backend.config().vocab_size);
    let mut times = vec![Vec::new(); steps];
    for _ in 0..repeats.max(1) {
        let mut cache = backend.new_cache();
        forward(backend, &mut cache, &tokens[..n - steps], n).await?;
        for (step, at) in (n - steps..n).enumerate() {
            let start = now_ms();
            forward(backend, &mut cache, &tokens[at..at + 1], n).await?;
            times[step].push(now_ms() - start);
        }
    }
    Ok(times.into_iter().map(median).collect())
}

/// Steps in a run of one-token extensions; the first is not counted as "in a run".
const RUN_STEPS: usize = 4;

/// Milliseconds of one token's extension at `n` tokens in a run of them: the median of
/// the 2nd to last of [`RUN_STEPS`] single-token steps in a row.
pub async fn extend_in_run_ms<B: Backend>(
    backend: &B,
    n: usize,
    repeats: usize,
    now_ms: &impl Fn() -> f64,
) -> Result<f64, String> {
    let run = extend_steps_ms(backend, n, RUN_STEPS, repeats, now_ms).await?;
    Ok(median(run[1..].to_vec()))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the forward-pass and extension measurements for one backend: a short warm-up
/// pass and a one-token extension first (GPU pipelines compile on first use, and a few
/// new tokens take kernels of their own), then `repeats` runs per length.
pub async fn forward_suite<B: Backend>(
    label: &str,
    backend: &B,
    lengths: &[usize],
    repeats: usize,
    now_ms: &impl Fn() -> f64,
) -> Result<(), String> {
    full_forward_ms(backend, 16, 1, now_ms).await?;
    extend_steps_ms(backend, 17, 2, 1, now_ms).await?;
    let mut longest = None;
    for &n in lengths {
        let ms = full_forward_ms(backend, n, repeats, now_ms).await?;
        report("forward_ms", label, &format!("T={n}"), ms);
        if longest.is_none_or(|(m, _)| n > m) {
            longest = Some((n, ms));
        }
    }
    if let Some((n, full)) = longest {
        let first = extend_steps_ms(backend, n, 1, repeats, now_ms).await?[0];
        let in_run = extend_in_run_ms(backend, n, repeats, now_ms).await?;
        for (case, ms) in [("", first), (", in a run of +1s", in_run)] {
            report("extend_one", label, &format!("T={n} ms{case}"), ms);
            let share = 100.0 * ms / full;
            report(
                "extend_one",
                label,
                &format!("T={n} % of full{case}"),
                share,
            );
        }
    }
    Ok(())
}
