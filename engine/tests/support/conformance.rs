//! The conformance suite: a backend under test must reproduce the CPU reference on
//! the same model, scheme and prompt: logits, row summaries (NLL, rank, top-k), head
//! statistics and attention probabilities, within 1e-4 (relative to the value's size
//! where values are large). Used natively (lavapipe) and in the browser (WebGPU).

use engine::analysis::rank_of;
use engine::cpu::CpuBackend;
use engine::{Backend, Capture, ForwardInput, ForwardOutput, ModelConfig, SchemeSpec};

/// Tolerance of every comparison.
pub const TOLERANCE: f32 = 1e-4;

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= TOLERANCE * b.abs().max(1.0)
}

/// All heads of every layer, and a span for the statistics.
pub fn capture_all(config: &ModelConfig, span_end: usize) -> Capture {
    let heads = config.num_attention_heads;
    Capture {
        heads: (0..config.num_hidden_layers)
            .flat_map(|l| (0..heads).map(move |h| (l, h)))
            .collect(),
        span: Some(1.min(span_end)..span_end),
    }
}

/// Runs `tokens` through `backend` in the given chunk sizes from an empty cache.
pub async fn run<B: Backend>(
    backend: &B,
    tokens: &[u32],
    chunks: &[usize],
    scheme: &SchemeSpec,
    capture: &Capture,
) -> Result<ForwardOutput, String> {
    let config = backend.config();
    let applied = config
        .apply_scheme(scheme, tokens.len())
        .map_err(|e| e.to_string())?;
    let mut cache = backend.new_cache();
    let mut all = ForwardOutput::default();
    let mut start = 0;
    for &size in chunks.iter().chain(std::iter::repeat(&tokens.len())) {
        if start >= tokens.len() {
            break;
        }
        let end = (start + size.max(1)).min(tokens.len());
        let out = backend
            .forward(
                &mut cache,
                ForwardInput {
                    tokens: &tokens[start..end],
                    position_offset: 0,
                    scheme: &applied,
                    capture,
                    top_k: 5,
                    return_logits: true,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        // A chunk's last row has no successor in that chunk; score it from the logits so
        // the concatenation reads like one forward.
        let mut rows = out.rows;
        if let (Some(last), Some(&next)) = (rows.last_mut(), tokens.get(end)) {
            let logits = &out.last_logits;
            last.next = Some((logits[next as usize], rank_of(logits, next)));
        }
        all.rows.extend(rows);
        all.attention.extend(out.attention);
        all.head_stats.extend(out.head_stats);
        all.logits
            .get_or_insert_with(Vec::new)
            .extend(out.logits.unwrap_or_default());
        all.last_logits = out.last_logits;
        start = end;
    }
    Ok(all)
}

/// Compares two outputs; returns the first disagreement, described.
pub fn compare(what: &str, expected: &ForwardOutput, actual: &ForwardOutput) -> Result<(), String> {
    let fail = |msg: String| Err(format!("{what}: {msg}"));
    let (e_logits, a_logits) = (
        expected.logits.as_deref().unwrap_or_default(),
        actual.logits.as_deref().unwrap_or_default(),
    );
    if e_logits.len() != a_logits.len() || e_logits.is_empty() {
        return fail(format!("{} vs {} logits", e_logits.len(), a_logits.len()));
    }
    if let Some((i, (e, a))) = e_logits
        .iter()
        .zip(a_logits)
        .enumerate()
        .find(|(_, (e, a))| !close(**a, **e))
    {
        return fail(format!("logit {i}: expected {e}, got {a}"));
    }
    if expected.rows.len() != actual.rows.len() {
        return fail(format!(
            "{} vs {} rows",
            expected.rows.len(),
            actual.rows.len()
        ));
    }
    for (t, (e, a)) in expected.rows.iter().zip(&actual.rows).enumerate() {
        if !close(a.log_norm, e.log_norm) {
            return fail(format!(
                "row {t} log_norm: expected {}, got {}",
                e.log_norm, a.log_norm
            ));
        }
        match (e.next, a.next) {
            (Some((el, er)), Some((al, ar))) => {
                // NLL = log_norm - logit; ranks may differ only between near-tied logits.
                if !close(a.log_norm - al, e.log_norm - el) {
                    return fail(format!(
                        "row {t} nll: expected {}, got {}",
                        e.log_norm - el,
                        a.log_norm - al
                    ));
                }
                if er.abs_diff(ar) > 1 {
                    return fail(format!("row {t} rank: expected {er}, got {ar}"));
                }
            }
            (None, None) => {}
            other => return fail(format!("row {t} next: {other:?}")),
        }
        if e.top.len() != a.top.len() {
            return fail(format!("row {t} top-k length"));
        }
        for ((et, el), (at, al)) in e.top.iter().zip(&a.top) {
            // Near-ties may swap order; their logits must still agree.
            if et != at && !close(*al, *el) {
                return fail(format!(
                    "row {t} top-k: expected {et} ({el}), got {at} ({al})"
                ));
            }
            if !close(*al, *el) {
                return fail(format!("row {t} top-k logit: expected {el}, got {al}"));
            }
        }
    }
    for (t, (e, a)) in expected
        .head_stats
        .iter()
        .zip(&actual.head_stats)
        .enumerate()
    {
        for (h, (e, a)) in e.iter().zip(a).enumerate() {
            for (name, ev, av) in [
                ("entropy", e.entropy, a.entropy),
                ("mean distance", e.mean_distance, a.mean_distance),
                ("span mass", e.span_mass, a.span_mass),
            ] {
                if !close(av, ev) {
                    return fail(format!(
                        "token {t} head {h} {name}: expected {ev}, got {av}"
                    ));
                }
            }
        }
    }
    if expected.head_stats.len() != actual.head_stats.len() {
        return fail("head statistics length".into());
    }
    if expected.attention.len() != actual.attention.len() {
        return fail("attention length".into());
    }
    for (t, (e, a)) in expected.attention.iter().zip(&actual.attention).enumerate() {
        for (c, (e, a)) in e.iter().zip(a).enumerate() {
            if e.len() != a.len() {
                return fail(format!(
                    "token {t} capture {c}: {} vs {} keys",
                    e.len(),
                    a.len()
                ));
            }
            if let Some((j, (ev, av))) = e
                .iter()
                .zip(a)
                .enumerate()
                .find(|(_, (ev, av))| (**ev - **av).abs() > TOLERANCE)
            {
                return fail(format!(
                    "token {t} capture {c} key {j}: expected {ev}, got {av}"
                ));
            }
        }
    }
    Ok(())
}

/// Every position scheme of the studio, in text form (DroPE's beta with an explicit c,
/// so models without a fitted one run it too; the per-head beta needs the model's
/// `drope_head_c`, see [`per_head_c`]).
pub const SCHEMES: &[&str] = &[
    "rope",
    "pi:4",
    "ntk:4",
    "yarn:4",
    "yarn-ramp:4",
    "pi:dyn",
    "ntk:dyn",
    "yarn:dyn",
    "none",
    "none:4+beta=0.412",
    "none:dyn+beta=0.412",
    "none:dyn+beta=heads",
    "yarn:4+beta=heads",
];

/// A `drope_head_c` for a test model: a different `c` per head, some negative, so a
/// backend that applies one head's scale to another shows.
pub fn per_head_c(layers: usize, heads: usize) -> String {
    let cs: Vec<String> = (0..layers * heads)
        .map(|i| format!("{:.2}", 0.15 * (i % 5) as f64 - 0.2))
        .collect();
    format!("[{}]", cs.join(", "))
}

/// Checks `backend` against the CPU reference on one prompt for each of `schemes`, as
/// one forward and, when `grown`, also grown in uneven chunks (1, 1, 1, 2, T/2, rest).
pub async fn check_model<B: Backend>(
    name: &str,
    reference: &CpuBackend,
    backend: &B,
    tokens: &[u32],
    schemes: &[&str],
    grown: bool,
) -> Result<(), String> {
    let capture = capture_all(reference.config(), tokens.len().min(3));
    for scheme in schemes {
        let spec: SchemeSpec = scheme
            .parse()
            .map_err(|e: engine::EngineError| e.to_string())?;
        let expected = run(reference, tokens, &[tokens.len()], &spec, &capture).await?;
        let what = format!("{name}, {scheme}, {} tokens", tokens.len());
        let whole = run(backend, tokens, &[tokens.len()], &spec, &capture).await?;
        compare(&what, &expected, &whole)?;
        if grown && tokens.len() > 3 {
            // Single tokens in a row reuse the last pass's bind groups on the GPU.
            let chunks = [1, 1, 1, 2, tokens.len() / 2];
            let grown = run(backend, tokens, &chunks, &spec, &capture).await?;
            compare(
                &format!("{what} (grown 1+1+1+2+T/2+rest)"),
                &expected,
                &grown,
            )?;
        }
    }
    Ok(())
}
