//! `cargo xtask test`: every test, in order, with a duration per step.
//!
//! 0. lint:    `cargo fmt --all -- --check`, then `cargo clippy -D warnings` on the native
//!    crates (with the GPU backend) and on the app for wasm: style and lint failures
//!    fail the run before any test
//! 1. native:  `cargo test --workspace --exclude app --features engine/gpu` (the GPU
//!    conformance suite runs on Mesa's lavapipe), then `cargo test -p app --lib`: the
//!    studio's DOM-free logic (URL state, published files, head profiles, chart maths,
//!    formatting) runs natively; only what needs a browser stays in step 2
//! 2. wasm:    `cargo test --target wasm32-unknown-unknown -p engine` and `-p app`,
//!    in headless Chromium through wasm-bindgen-test-runner + chromedriver
//! 3. e2e:     `trunk build --release`, dist/ served by the built-in static server
//!    under `/drope-studio/`, then `tests/e2e/studio.test.mjs` (playwright-core) with
//!    WebGPU, then without, then `tests/e2e/embed.test.mjs` (the example post, embeds),
//!    then `tests/e2e/local-model.test.mjs` (a checkpoint opened from disk)

use std::env;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::server::StaticServer;
use crate::setup::{self, E2E_DIR, WASM_TARGET};
use crate::util::{self, root, secs, Result};

const GROUPS: &[&str] = &["lint", "native", "wasm", "e2e"];
/// Where the e2e tests find the site: a sub-path, as GitHub Pages serves a project.
pub const SUB_PATH: &str = "/drope-studio/";
/// Seconds wasm-bindgen-test-runner waits for a browser test binary (default 20 s is
/// too short for numerical tests of unoptimised wasm on a 2-core CI machine).
const WASM_TEST_TIMEOUT: &str = "600";
/// Seconds chromedriver may take to start (default 5 s; a busy 2-core machine needs more).
const DRIVER_TIMEOUT: &str = "60";

enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
}

struct Step {
    name: String,
    time: Duration,
    outcome: Outcome,
}

#[derive(Default)]
struct Report {
    steps: Vec<Step>,
}

impl Report {
    /// Runs one step with a header and its duration.
    fn step(&mut self, name: &str, f: impl FnOnce() -> Result<()>) -> bool {
        println!("\n======== {name} ({})", disk_free());
        let start = Instant::now();
        let result = f();
        let time = start.elapsed();
        let outcome = match result {
            Ok(()) => {
                println!("======== {name}: ok in {}", secs(time));
                Outcome::Passed
            }
            Err(e) => {
                println!("======== {name}: FAILED in {}: {e}", secs(time));
                Outcome::Failed(e)
            }
        };
        let ok = matches!(outcome, Outcome::Passed);
        self.steps.push(Step {
            name: name.to_owned(),
            time,
            outcome,
        });
        ok
    }

    fn skip(&mut self, name: &str, why: &str) {
        println!("\n======== {name}: skipped ({why})");
        self.steps.push(Step {
            name: name.to_owned(),
            time: Duration::ZERO,
            outcome: Outcome::Skipped(why.to_owned()),
        });
    }

    fn failed(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Failed(_)))
            .count()
    }

    fn print(&self, total: Duration) {
        let width = self
            .steps
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(4)
            .max(5);
        println!("\n======== summary");
        println!("  {:<width$}  {:<7}  {:>14}", "step", "result", "time");
        for s in &self.steps {
            let result = match &s.outcome {
                Outcome::Passed => "ok",
                Outcome::Failed(_) => "FAILED",
                Outcome::Skipped(_) => "skipped",
            };
            println!("  {:<width$}  {:<7}  {:>14}", s.name, result, secs(s.time));
        }
        println!("  {:<width$}  {:<7}  {:>14}", "total", "", secs(total));
        for s in &self.steps {
            match &s.outcome {
                Outcome::Failed(e) => println!("  {} failed: {e}", s.name),
                Outcome::Skipped(why) => println!("  {} skipped: {why}", s.name),
                Outcome::Passed => {}
            }
        }
    }
}

pub fn run(args: &[String]) -> Result<()> {
    for a in args {
        if !GROUPS.contains(&a.as_str()) {
            return Err(format!(
                "unknown test group `{a}` (groups: {})",
                GROUPS.join(", ")
            ));
        }
    }
    let want = |g: &str| args.is_empty() || args.iter().any(|a| a == g);
    let start = Instant::now();
    let mut report = Report::default();

    if !report.step("setup", setup::run) {
        report.print(start.elapsed());
        return Err("setup failed".into());
    }

    if want("lint") {
        report.step("lint: cargo fmt --all -- --check", || {
            util::run(
                Command::new("cargo")
                    .args(["fmt", "--all", "--", "--check"])
                    .current_dir(root()),
            )
        });
        report.step(
            "lint: cargo clippy (native crates, engine/gpu) -D warnings",
            || {
                util::run(
                    Command::new("cargo")
                        .args(["clippy", "--workspace", "--exclude", "app", "--all-targets"])
                        .args(["--features", "engine/gpu", "--", "-D", "warnings"])
                        .current_dir(root()),
                )
            },
        );
        report.step("lint: cargo clippy -p app (wasm) -D warnings", || {
            util::run(
                Command::new("cargo")
                    .args(["clippy", "-p", "app", "--all-targets"])
                    .args(["--target", WASM_TARGET, "--", "-D", "warnings"])
                    .current_dir(root()),
            )?;
            // As the studio is built (index.html): without the page's CPU path.
            util::run(
                Command::new("cargo")
                    .args(["clippy", "-p", "app", "--lib", "--no-default-features"])
                    .args(["--target", WASM_TARGET, "--", "-D", "warnings"])
                    .current_dir(root()),
            )
        });
    }

    if want("native") {
        // engine/gpu: the WebGPU backend's conformance suite, on lavapipe (Vulkan on the CPU).
        report.step(
            "native: cargo test --workspace --exclude app --features engine/gpu",
            || {
                util::run(
                    Command::new("cargo")
                        .args(["test", "--workspace", "--exclude", "app", "--no-fail-fast"])
                        .args(["--features", "engine/gpu"])
                        .current_dir(root()),
                )
            },
        );
        report.step("native: cargo test -p app --lib (DOM-free logic)", || {
            util::run(
                Command::new("cargo")
                    .args(["test", "-p", "app", "--lib", "--no-fail-fast"])
                    .current_dir(root()),
            )
        });
    }

    if want("wasm") {
        for krate in ["engine", "app"] {
            report.step(
                &format!("wasm: cargo test -p {krate} (headless Chromium)"),
                || util::run(&mut wasm_test(krate)?),
            );
        }
    }

    if want("e2e") {
        if env::var_os("CI").is_some() {
            // The release build needs room; the wasm test build is no longer needed.
            free_wasm_test_build();
        }
        let built = report.step("e2e: trunk build --release", || {
            util::run(util::trunk().args(["build", "--release"]))?;
            crate::assets::write_manifest(&root().join("dist")).map(|_| ())
        });
        let names = [
            "e2e: studio, WebGPU",
            "e2e: studio, no WebGPU (CPU)",
            "e2e: embeds and the example post",
            "e2e: a model opened from disk, WebGPU (then the CPU)",
            "e2e: a model opened from disk, no WebGPU (CPU)",
        ];
        if built {
            // Under a sub-path, as GitHub Pages serves the site.
            match StaticServer::start_at(&root().join("dist"), 0, SUB_PATH) {
                Ok(server) => {
                    println!("serving dist/ at {}", server.url());
                    report.step(names[0], || e2e("studio.test.mjs", &server.url(), true));
                    report.step(names[1], || e2e("studio.test.mjs", &server.url(), false));
                    report.step(names[2], || e2e("embed.test.mjs", &server.url(), false));
                    for (name, webgpu) in [(names[3], true), (names[4], false)] {
                        report.step(name, || e2e("local-model.test.mjs", &server.url(), webgpu));
                    }
                }
                Err(e) => {
                    for name in names {
                        report.step(name, || Err(e.clone()));
                    }
                }
            }
        } else {
            for name in names {
                report.skip(name, "trunk build failed");
            }
        }
    }

    report.print(start.elapsed());
    match report.failed() {
        0 => Ok(()),
        n => Err(format!("{n} step(s) failed")),
    }
}

/// "N GiB free" on the disk that holds target/, read with `df` (CI once ran out of disk
/// mid-run; the step headers show where the space went).
fn disk_free() -> String {
    let out = Command::new("df")
        .args(["-Pk"])
        .arg(root())
        .output()
        .ok()
        .filter(|o| o.status.success());
    let kib = out.and_then(|o| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let line = text.lines().nth(1)?.to_owned();
        line.split_whitespace().nth(3)?.parse::<u64>().ok()
    });
    match kib {
        Some(k) => format!("{:.1} GiB free", k as f64 / (1024.0 * 1024.0)),
        None => "free disk unknown".to_owned(),
    }
}

/// Removes target/wasm32-unknown-unknown/debug (the browser tests' build, several GiB).
fn free_wasm_test_build() {
    let dir = root().join("target").join(WASM_TARGET).join("debug");
    if dir.is_dir() {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => println!("removed {} ({})", dir.display(), disk_free()),
            Err(e) => println!("could not remove {}: {e}", dir.display()),
        }
    }
}

fn chromedriver() -> Result<PathBuf> {
    if let Some(p) = env::var_os("CHROMEDRIVER") {
        return Ok(p.into());
    }
    let fixed = PathBuf::from("/usr/bin/chromedriver");
    if fixed.is_file() {
        return Ok(fixed);
    }
    util::which("chromedriver")
        .ok_or_else(|| "chromedriver not found (apt-get install chromium-driver)".into())
}

/// `cargo test --target wasm32-unknown-unknown -p KRATE`: cargo's runner for wasm32
/// (`.cargo/config.toml`) is wasm-bindgen-test-runner, which drives headless Chromium
/// through chromedriver with the flags in the repository's `webdriver.json`
/// (WebGPU on SwiftShader, no network).
pub fn wasm_test(krate: &str) -> Result<Command> {
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "--no-fail-fast", "--target", WASM_TARGET])
        .args(["-p", krate])
        // The engine's browser tests include the WebGPU conformance subset.
        .args(if krate == "engine" {
            &["--features", "gpu"][..]
        } else {
            &[]
        })
        .current_dir(root())
        .env("CHROMEDRIVER", chromedriver()?)
        // Read from the working directory otherwise, which cargo sets to the package's.
        .env(
            "WASM_BINDGEN_TEST_WEBDRIVER_JSON",
            root().join("webdriver.json"),
        );
    for (var, default) in [
        ("WASM_BINDGEN_TEST_TIMEOUT", WASM_TEST_TIMEOUT),
        ("WASM_BINDGEN_TEST_DRIVER_TIMEOUT", DRIVER_TIMEOUT),
    ] {
        if env::var_os(var).is_none() {
            cmd.env(var, default);
        }
    }
    Ok(cmd)
}

fn e2e(script: &str, url: &str, webgpu: bool) -> Result<()> {
    let dir = root().join(E2E_DIR);
    util::run(
        Command::new("node")
            .arg(script)
            .current_dir(&dir)
            .env("STUDIO_URL", url)
            .env("WEBGPU", if webgpu { "1" } else { "0" }),
    )
}
