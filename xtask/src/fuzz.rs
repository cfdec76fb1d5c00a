//! `cargo xtask fuzz [SECONDS] [SEED]`: every parser that reads what a visitor gives the
//! studio, fuzzed for SECONDS each (default 60). The targets are tests, ignored in
//! ordinary runs: `engine/tests/fuzz.rs` (safetensors, shard index, config.json,
//! tokenizer.json) and the app's URL state (`app/src/url_state.rs`). They mutate the
//! saved corpus in `fuzz/corpus/<target>/` and save there the first input that panics
//! at each new place, which `cargo xtask test` then replays on every run. Built with
//! overflow checks on (the test profile), so arithmetic overflow counts as a crash.

use std::process::Command;

use crate::util::{self, Result};

pub fn run(args: &[String]) -> Result<()> {
    let seconds: u64 = match args.first() {
        Some(s) => s
            .parse()
            .map_err(|_| format!("SECONDS must be a whole number, not `{s}`"))?,
        None => 60,
    };
    let seed: u64 = match args.get(1) {
        Some(s) => s
            .parse()
            .map_err(|_| format!("SEED must be a whole number, not `{s}`"))?,
        None => 1,
    };
    let fuzz = |package_args: &[&str]| {
        let mut cmd = Command::new("cargo");
        cmd.current_dir(util::root())
            .arg("test")
            .args(package_args)
            .args(["--", "--ignored", "--nocapture", "--test-threads=1"])
            .env("DROPE_FUZZ_SECONDS", seconds.to_string())
            .env("DROPE_FUZZ_SEED", seed.to_string());
        util::run(&mut cmd)
    };
    let engine = fuzz(&["-p", "engine", "--test", "fuzz", "fuzz_for_a_while"]);
    let app = fuzz(&["-p", "app", "--lib", "url_state::tests::fuzz_for_a_while"]);
    engine.and(app)
}
