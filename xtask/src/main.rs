//! `cargo xtask ...`: the project's build and test driver.
//!
//! Std only, so that it compiles in seconds on a fresh machine.
//!
//! ```text
//! cargo xtask setup            install whatever is missing (idempotent)
//! cargo xtask serve [ARGS..]   setup, then `trunk serve ARGS..`
//! cargo xtask build [ARGS..]   setup, then `trunk build --release ARGS..` (into dist/)
//! cargo xtask assets [DIR]      dist/asset-manifest.json for the offline cache
//! cargo xtask test [GROUPS..]  setup, then native, wasm (headless Chromium) and e2e tests
//! cargo xtask static DIR [PORT] [SUB-PATH]  serve a folder with the built-in static file server
//! cargo xtask untrained        regenerate the random-weight model
//! cargo xtask models [--steps N]  train and export the RoPE, DroPE and NoPE models
//! cargo xtask results [ARGS..] evaluate the shipped models: public/results + docs/RESULTS.md
//! cargo xtask bench [--quick] [--native-only]  forward/matmul benchmarks -> docs/BENCHMARKS.md
//! cargo xtask fuzz [SECONDS] [SEED]  fuzz every parser of visitor input (fuzz/corpus/)
//! cargo xtask wasm-size [FILE..]  what makes up the studio's wasm, by crate and part
//! ```

mod assets;
mod bench;
mod fuzz;
mod models;
mod server;
mod setup;
mod test;
mod util;
mod wasm_size;

use std::process::ExitCode;

use util::{root, Result};

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  setup              install what is missing (rustup target, trunk, wasm-bindgen-cli,
                     wasm-opt from npm binaryen, apt chromium/chromedriver/mesa, e2e node packages)
  serve [ARGS..]     build tools, then `trunk serve ARGS..` (studio at http://127.0.0.1:8080)
  build [ARGS..]     build tools (no browsers), then `trunk build --release ARGS..` into dist/:
                     a static site that works from any sub-path (docs/EMBEDDING.md), with
                     dist/asset-manifest.json (the offline cache's SHA-256 list)
  assets [DIR]       write DIR/asset-manifest.json (default dist) for a build made by hand
  test [GROUPS..]    setup, then every test; GROUPS (default: all) among
                     native, wasm, e2e
  static DIR [PORT] [SUB-PATH]  serve DIR on 127.0.0.1:PORT (default 8080) with the built-in
                    server, at /SUB-PATH/ when given (as GitHub Pages serves a project)
  untrained          regenerate the random-weight model public/models/untrained
                     (with public/models/tokenizer.json)
  models [--steps N] [--corpus DIR]
                     train RoPE, DroPE (drop at N/2) and NoPE for N steps (default 11520 = 11.8M
                     tokens each; resumable, about 2 hours on 2 cores when last timed, before the
                     trainer's 2x: run with nohup) and export them (docs/TRAINING.md)
  bench [--quick] [--native-only]
                     CPU and WebGPU forward-pass times (native, and in headless Chromium),
                     extension cost and matmul GFLOP/s, into docs/BENCHMARKS.md
  fuzz [SECONDS] [SEED]
                     fuzz every parser that reads a visitor's files or URL for SECONDS each
                     (default 60); inputs that panic are saved in fuzz/corpus/, which
                     `cargo xtask test` replays
  wasm-size [FILE..] what makes up the wasm of the last release build (target/, with names),
                     by crate and by part of the product (UI, engine, candle, tokenizer...)
  results [ARGS..]   `trainer samples` and `trainer eval` on the shipped models and the corpus
                     in $DROPE_CORPUS (default ../shared/corpus): public/samples.json (the
                     studio's test-split prompts), public/results/*.json, docs/RESULTS.md;
                     ARGS e.g. --sequences 16, --needle-min-trials 40, --needle-max-trials 400,
                     --needle-half-width 0.05 (needle trials per model, scheme and length,
                     depths pooled, run until the 95% Wilson interval is that narrow); about
                     12 minutes on 2 cores, 9 of them fitting DroPE's c per head
";

fn main() -> ExitCode {
    util::init_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((cmd, rest)) => (cmd.as_str(), rest.to_vec()),
        None => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match cmd {
        "setup" => setup::run().map(|_| ()),
        "serve" => serve(&rest),
        "build" => build(&rest),
        "assets" => assets::run(&rest),
        "test" => test::run(&rest),
        "static" => static_serve(&rest),
        "untrained" => untrained(),
        "results" => results(&rest),
        "models" => models::run(&rest),
        "bench" => bench::run(&rest),
        "fuzz" => fuzz::run(&rest),
        "wasm-size" => wasm_size::run(&rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask {cmd}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &[String]) -> Result<()> {
    setup::build_tools()?;
    let mut cmd = util::trunk();
    cmd.arg("serve").args(args);
    util::run(&mut cmd)
}

fn build(args: &[String]) -> Result<()> {
    setup::build_tools()?;
    let mut cmd = util::trunk();
    cmd.args(["build", "--release"]).args(args);
    util::run(&mut cmd)?;
    // The service worker keeps only what this list vouches for.
    assets::write_manifest(&root().join("dist")).map(|_| ())
}

/// The placeholder model the page ships until trained checkpoints exist: seeded random
/// weights (deterministic) over the shipped tokenizer.
fn untrained() -> Result<()> {
    util::run(
        std::process::Command::new("cargo")
            .args(["run", "--quiet", "--release", "-p", "trainer", "--"])
            .args(["untrained", "--models", "public/models"])
            .current_dir(root()),
    )
}

/// The paper's measurements on the shipped models (test split of the full corpus).
fn results(args: &[String]) -> Result<()> {
    let corpus = std::env::var("DROPE_CORPUS").unwrap_or_else(|_| "../shared/corpus".into());
    // The studio's prompt samples: test-split text, like the evaluation's.
    util::run(
        std::process::Command::new("cargo")
            .args([
                "run",
                "--quiet",
                "--release",
                "-p",
                "trainer",
                "--",
                "samples",
            ])
            .args(["--tokenizer", "public/models/tokenizer.json"])
            .args(["--out", "public/samples.json", "--corpus", &corpus])
            .args(["--models", "public/models"])
            .current_dir(root()),
    )?;
    util::run(
        std::process::Command::new("cargo")
            .args(["run", "--quiet", "--release", "-p", "trainer", "--", "eval"])
            .args(["--models", "public/models", "--results", "public/results"])
            .args(["--report", "docs/RESULTS.md", "--corpus", &corpus])
            .args(["--samples", "public/samples.json"])
            .args(args)
            .current_dir(root()),
    )
}

fn static_serve(args: &[String]) -> Result<()> {
    let dir = args
        .first()
        .map(|d| root().join(d))
        .ok_or("usage: cargo xtask static DIR [PORT] [SUB-PATH]")?;
    let port: u16 = match args.get(1) {
        Some(p) => p.parse().map_err(|_| format!("bad port `{p}`"))?,
        None => 8080,
    };
    // A sub-path (`drope-studio`) serves the folder as GitHub Pages serves a project site.
    let mount = args.get(2).map_or("/", String::as_str);
    let server = server::StaticServer::start_at(&dir, port, mount)?;
    println!("serving {} at {}", dir.display(), server.url());
    server.wait();
    Ok(())
}
