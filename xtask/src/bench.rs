//! `cargo xtask bench`: one table of forward-pass times, extension cost and matmul
//! throughput, measured in one run on this machine:
//! - native: `engine/examples/bench.rs` (CPU path, and WebGPU on the machine's Vulkan
//!   adapter: lavapipe here);
//! - native again on one thread (`RAYON_NUM_THREADS=1`), the CPU path only;
//! - browser: `engine/tests/wasm_bench.rs` in headless Chromium (CPU path as wasm, and
//!   WebGPU on SwiftShader), then the CPU path again built without WebAssembly SIMD;
//!   the ratios of the three CPU columns get a table of their own.
//!
//! - the studio: its release build served under the sub-path, `tests/e2e/studio.bench.mjs`
//!   in headless Chromium (k series one after another against side by side, the first
//!   figure's time and bytes).
//!
//! Each side prints `BENCH<TAB>group<TAB>backend<TAB>case<TAB>value` lines; this module
//! gathers them into docs/BENCHMARKS.md. `--native-only` skips the browser half;
//! `--quick` runs one repetition.
//!
//! Runs recorded on other machines (a lent GPU: the native benchmark binary run there)
//! are kept as `docs/bench/*.tsv` (`# machine: ...`, `# f32 peak GFLOP/s: N (source)`,
//! `# command: ...`, then the BENCH lines) and appended as their own sections, with
//! the matmul kernel's share of the card's f32 peak.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

use crate::server::StaticServer;
use crate::setup::{self, E2E_DIR};
use crate::test::{wasm_test, SUB_PATH};
use crate::util::{self, root, Result};

/// The columns the wasm ratios compare (the labels the two benchmarks print).
const NATIVE_ONE_THREAD: &str = "CPU native, one thread";
const WASM_SIMD: &str = "CPU wasm (Chromium)";
const WASM_PLAIN: &str = "CPU wasm without SIMD (Chromium)";
/// The columns of the series benchmark (`tests/e2e/studio.bench.mjs`).
const ONE_WORKER: &str = "one worker (ms)";
const WORKER_PER_SERIES: &str = "a worker per series (ms)";

/// The tables of docs/BENCHMARKS.md, in order: (group, title, unit of the cases).
const TABLES: [(&str, &str, &str); 10] = [
    ("forward_ms", "Forward pass", "ms"),
    ("wasm_ratio", "The browser's CPU path against native code on one thread", "ratio of forward-pass times"),
    ("extend_one", "Extending by one token", "ms, % of a full pass"),
    ("matmul_gflops", "Matmul throughput", "GFLOP/s, M x N x K"),
    ("open_135m", "Opening a model of SmolLM-135M's shape (issue 18; random weights, 30 layers, width 576, vocabulary 49152; the memory is the benchmark module's peak: weights made in wasm, uploaded, then the CPU passes below)", "what"),
    ("forward_135m", "Forward pass of the SmolLM-135M-shaped model (one pass from an empty cache; WebGPU on SwiftShader at 64 tokens only: about 1 GFLOP/s)", "ms"),
    ("heatmap_ms", "Drawing an attention map (colour every cell, put the pixels on a canvas)", "ms, median of 5"),
    ("series_parallel", "Series side by side on the CPU path (issue 19): the studio's Run over 8L = 1024 tokens with the models loaded, one CPU worker (the series take turns) against the studio's choice (a worker per series, up to one more than the cores), median of 3", "k series"),
    ("first_figure", "The first figure (issue 19): from opening the page to its first chart line, on the CPU path; cold: an empty cache, with the files the page and its workers asked for before the line (each once; gzipped as a host like GitHub Pages sends them); warm: the same page opened again", "page"),
    ("matmul_tiling", "Matmul kernel by register blocking (rows x columns per invocation, K per slice)", "GFLOP/s, M x N x K"),
];

/// `group -> case -> backend -> value`, plus adapter names.
#[derive(Default)]
struct Results {
    values: BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>,
    adapters: Vec<String>,
}

impl Results {
    fn parse(&mut self, output: &str) {
        for line in output.lines() {
            let Some(rest) = line.trim().strip_prefix("BENCH\t") else {
                continue;
            };
            let fields: Vec<&str> = rest.split('\t').collect();
            let [group, backend, case, value] = fields[..] else {
                continue;
            };
            if group.starts_with("adapter") {
                self.adapters.push(format!(
                    "{backend} ({})",
                    if group == "adapter" {
                        "native"
                    } else {
                        "browser"
                    }
                ));
                continue;
            }
            if let Ok(value) = value.parse::<f64>() {
                self.values
                    .entry(group.to_string())
                    .or_default()
                    .entry(case.to_string())
                    .or_default()
                    .insert(backend.to_string(), value);
            }
        }
    }

    /// The browser's CPU path against the native one on one thread, with and without
    /// SIMD: forward-pass time ratios (`wasm_ratio`).
    fn add_ratios(&mut self) {
        let Some(forward) = self.values.get("forward_ms") else {
            return;
        };
        let mut ratios: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        for (case, by) in forward {
            let (Some(native), Some(simd), Some(plain)) = (
                by.get(NATIVE_ONE_THREAD),
                by.get(WASM_SIMD),
                by.get(WASM_PLAIN),
            ) else {
                continue;
            };
            let row = ratios.entry(case.clone()).or_default();
            row.insert("wasm SIMD / native".into(), simd / native);
            row.insert("wasm without SIMD / native".into(), plain / native);
            row.insert("without / with SIMD".into(), plain / simd);
        }
        self.values.insert("wasm_ratio".into(), ratios);
    }

    /// Series one after another against side by side: the ratio of their times
    /// (`series_parallel`'s third column).
    fn add_speedups(&mut self) {
        let Some(series) = self.values.get_mut("series_parallel") else {
            return;
        };
        for by in series.values_mut() {
            if let (Some(one), Some(each)) = (by.get(ONE_WORKER), by.get(WORKER_PER_SERIES)) {
                let ratio = one / each;
                by.insert("speed-up".into(), ratio);
            }
        }
    }

    fn table(&self, group: &str, title: &str, unit: &str) -> String {
        let Some(cases) = self.values.get(group) else {
            return String::new();
        };
        let mut backends: Vec<&String> = cases.values().flat_map(|b| b.keys()).collect();
        backends.sort();
        backends.dedup();
        let mut out = format!("### {title}\n\n| case ({unit}) |");
        for b in &backends {
            let _ = write!(out, " {b} |");
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(backends.len()));
        out.push('\n');
        let mut ordered: Vec<(&String, &BTreeMap<String, f64>)> = cases.iter().collect();
        // T=256 before T=1024: order by the number in the case name, then by name.
        ordered.sort_by_key(|(case, _)| {
            let digits: String = case
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(|c| c.is_ascii_digit())
                .collect();
            (digits.parse::<u64>().unwrap_or(0), (*case).clone())
        });
        for (case, by_backend) in ordered {
            let _ = write!(out, "| {case} |");
            for b in &backends {
                match by_backend.get(*b) {
                    Some(v) if *v >= 100.0 => {
                        let _ = write!(out, " {v:.0} |");
                    }
                    Some(v) => {
                        let _ = write!(out, " {v:.2} |");
                    }
                    None => out.push_str(" - |"),
                }
            }
            out.push('\n');
        }
        out.push('\n');
        out
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    // Other work on the machine skews every column alike; say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    format!("{cpu}, {cores} cores available, load average {load} when the run started")
}

pub fn run(args: &[String]) -> Result<()> {
    let native_only = args.iter().any(|a| a == "--native-only");
    let quick = args.iter().any(|a| a == "--quick");
    setup::run()?;
    let machine = machine();
    let mut results = Results::default();

    // The native benchmark binary, run with `extra` arguments.
    let native_bench = |extra: &[&str]| {
        let mut cmd = Command::new("cargo");
        cmd.args(["run", "--profile", "bench-native", "-p", "engine"])
            .args(["--features", "gpu", "--example", "bench", "--"])
            .args(extra)
            .current_dir(root());
        if quick {
            cmd.arg("--quick");
        }
        cmd
    };
    results.parse(&measure(native_bench(&[]), "native benchmark")?);
    // The single-threaded native CPU path: what the browser's CPU path (one worker, no
    // threads) is compared with.
    let mut single = native_bench(&["--cpu-only", "--label", NATIVE_ONE_THREAD]);
    single.env("RAYON_NUM_THREADS", "1");
    results.parse(&measure(single, "native benchmark, one thread")?);

    if !native_only {
        let mut browser = wasm_test("engine")?;
        // SwiftShader runs a 2048-token pass in about a minute: more than the test
        // runner's usual wait.
        browser
            .env("WASM_BINDGEN_TEST_TIMEOUT", "1800")
            .args(["--profile", "bench-native", "--features", "browser-bench"])
            .args(["--test", "wasm_bench", "--", "--nocapture"]);
        results.parse(&measure(browser, "browser benchmark")?);
        // The same CPU path built without WebAssembly SIMD (RUSTFLAGS replaces the
        // config's simd128 flag), in a target folder of its own so neither build
        // overwrites the other.
        let mut plain = wasm_test("engine")?;
        plain
            .env("RUSTFLAGS", "")
            .env("CARGO_TARGET_DIR", root().join("target/wasm-without-simd"))
            .args(["--profile", "bench-native", "--features", "browser-bench"])
            .args(["--test", "wasm_bench", "--", "--nocapture"]);
        results.parse(&measure(plain, "browser benchmark without SIMD")?);
        results.add_ratios();

        let mut heatmap = wasm_test("app")?;
        heatmap.args(["--release", "--test", "heatmap_bench", "--", "--nocapture"]);
        results.parse(&measure(heatmap, "attention map benchmark")?);

        // The studio as a visitor meets it.
        util::run(util::trunk().args(["build", "--release"]))?;
        crate::assets::write_manifest(&root().join("dist"))?;
        let server = StaticServer::start_at(&root().join("dist"), 0, SUB_PATH)?;
        let mut studio = Command::new("node");
        studio
            .arg("studio.bench.mjs")
            .current_dir(root().join(E2E_DIR))
            .env("STUDIO_URL", server.url());
        if quick {
            studio.arg("--quick");
        }
        results.parse(&measure(studio, "studio benchmark")?);
        results.add_speedups();
    }

    let mut doc = format!(
        "# Benchmarks\n\nWritten by `cargo xtask bench` (all numbers below from one run on one \
         machine). Forward pass: the shipped RoPE model ({}), \
         one full pass over T tokens from an empty cache, median of 3 natively, 1 in the browser, \
         after a 16-token warm-up pass; wall time including reading results back. Extension: one more token \
         after a full pass over T-1 tokens; \"in a run of +1s\": the median of the 2nd to 4th of \
         four one-token extensions in a row ending at T (as when the studio grows a prompt token \
         by token). Matmul: the WGSL kernel alone (many dispatches per submission) \
         beside candle's CPU matmul on the same shape.\n\n",
        shipped_shape()
    );
    let _ = writeln!(doc, "- machine: {machine}");
    for adapter in &results.adapters {
        let _ = writeln!(doc, "- GPU adapter: {adapter}");
    }
    doc.push('\n');
    for (group, title, unit) in TABLES {
        doc.push_str(&results.table(group, title, unit));
    }
    doc.push_str(&recorded_runs()?);
    let path = root().join("docs/BENCHMARKS.md");
    doc.push_str(&kept_history(
        &std::fs::read_to_string(&path).unwrap_or_default(),
    ));
    println!("\n{doc}");
    std::fs::write(&path, &doc).map_err(|e| format!("docs/BENCHMARKS.md: {e}"))?;
    println!("wrote docs/BENCHMARKS.md");
    Ok(())
}

/// "4 layers, width 128, vocabulary 4096": the benchmarked model's shape, from its
/// `config.json` (xtask has no JSON parser; the trainer writes one field per line).
fn shipped_shape() -> String {
    let text =
        std::fs::read_to_string(root().join("public/models/rope/config.json")).unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(&format!("\"{key}\":")))
            .map(|v| v.trim().trim_end_matches(',').to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "{} layers, width {}, vocabulary {}",
        field("num_hidden_layers"),
        field("hidden_size"),
        field("vocab_size")
    )
}

/// Runs one half of the benchmark and returns what it printed (its `BENCH` lines).
fn measure(mut command: Command, what: &str) -> Result<String> {
    println!("$ {}", util::show(&command));
    let out = command.output().map_err(|e| format!("{what}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    if !out.status.success() {
        return Err(format!(
            "{what} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(text)
}

/// Sections for the runs recorded in docs/bench/*.tsv.
fn recorded_runs() -> Result<String> {
    let dir = root().join("docs/bench");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(String::new());
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tsv"))
        .collect();
    files.sort();
    let mut out = String::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let header = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix("# ").and_then(|l| l.strip_prefix(key)))
                .map(|v| v.trim().to_string())
        };
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut results = Results::default();
        results.parse(&text);
        let _ = writeln!(
            out,
            "## Recorded elsewhere: `docs/bench/{name}`
"
        );
        for (label, key) in [
            ("machine", "machine:"),
            ("command", "command:"),
            ("f32 peak", "f32 peak GFLOP/s:"),
        ] {
            if let Some(value) = header(key) {
                let _ = writeln!(out, "- {label}: {value}");
            }
        }
        for adapter in &results.adapters {
            let _ = writeln!(out, "- GPU adapter: {adapter}");
        }
        out.push('\n');
        out.push_str(&results.table("forward_ms", "Forward pass", "ms"));
        out.push_str(&results.table(
            "extend_one",
            "Extending by one token",
            "ms, % of a full pass",
        ));
        let peak = header("f32 peak GFLOP/s:").and_then(|v| {
            v.split_whitespace()
                .next()
                .and_then(|n| n.parse::<f64>().ok())
        });
        if let (Some(peak), Some(cases)) = (peak, results.values.get_mut("matmul_gflops")) {
            for by_backend in cases.values_mut() {
                if let Some(&gflops) = by_backend.get("WebGPU native") {
                    by_backend.insert("% of f32 peak".into(), 100.0 * gflops / peak);
                }
            }
        }
        out.push_str(&results.table("matmul_gflops", "Matmul throughput", "GFLOP/s, M x N x K"));
        out.push_str(&results.table(
            "matmul_tiling",
            "Matmul kernel by register blocking (rows x columns per invocation, K per slice)",
            "GFLOP/s, M x N x K",
        ));
    }
    Ok(out)
}

/// The heading of BENCHMARKS.md's hand-written history: numbers measured while building
/// (each with its context), which no bench run reproduces, so every run keeps them.
const HISTORY_HEADING: &str = "## Measured while building (history)";

/// The history section of the current BENCHMARKS.md (from its heading to the end), with
/// a blank line before it; empty when the file has none.
fn kept_history(current: &str) -> String {
    current
        .find(HISTORY_HEADING)
        .map(|at| format!("\n{}", &current[at..]))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_keeps_the_history_section() {
        let current = format!("# Benchmarks\n\nold tables\n\n{HISTORY_HEADING}\n\n- 5x faster\n");
        assert_eq!(
            kept_history(&current),
            format!("\n{HISTORY_HEADING}\n\n- 5x faster\n")
        );
        assert_eq!(kept_history("# Benchmarks\n\nno history\n"), "");
    }
}
