//! `trainer`: builds the studio's tokenizer and models and the manifest the page reads.
//!
//! ```text
//! trainer tokenizer --corpus DIR --out public/models/tokenizer.json [--vocab 4096]
//! trainer untrained --out public/models/untrained [--seed 1] [--vocab-from TOKENIZER]
//! trainer manifest  --models public/models
//! trainer train     --corpus DIR --tokenizer FILE --out runs/NAME --positions rope|none
//!                   [--steps N] [--first-step K --init-from SNAPSHOT] [--batch 8]
//!                   [--length 128] [--lr 1e-3] ... (see trainer/src/train.rs)
//! trainer export    --run runs/NAME --models public/models --name ID --corpus DIR
//!                   [--label TEXT] [--description TEXT] [--log-from runs/ROPE]
//! trainer eval      --models public/models --corpus DIR --results public/results
//!                   --report docs/RESULTS.md [--sequences 16] [--needle-min-trials 40]
//!                   [--needle-max-trials 400] [--needle-half-width 0.05] (see results.rs)
//! trainer probe     --run runs/NAME --corpus DIR --tokenizer FILE [--trials 24]
//!                   [--bos-from S] [--init-from SNAPSHOT] (needle accuracy of every
//!                   snapshot into the run's train-log.json; see trainer/src/probe.rs)
//! trainer samples   --corpus DIR --tokenizer FILE --out public/samples.json [--length L | --models DIR]
//! trainer score     --model DIR --text FILE [--length N] [--scheme S] (per-token NLLs
//!                   of a text under a Hugging Face checkpoint folder; see score.rs)
//! trainer bench     [--batch 8] [--length 128] [--layers 4] [--hidden 128] ... (the
//!                   training step's speed and where its time goes; see bench.rs)
//! ```

use trainer::{bench, bpe, export, manifest, probe, results, samples, score, train, untrained};

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = match argv.first().map(String::as_str) {
        Some("tokenizer") => bpe::run(&argv[1..]),
        Some("untrained") => untrained::run(&argv[1..]),
        Some("manifest") => manifest::run(&argv[1..]),
        Some("train") => train::run(&argv[1..]),
        Some("export") => export::run(&argv[1..]),
        Some("eval") => results::run(&argv[1..]),
        Some("probe") => probe::run(&argv[1..]),
        Some("samples") => samples::run(&argv[1..]),
        Some("score") => score::run(&argv[1..]),
        Some("bench") => bench::run(&argv[1..]),
        _ => Err(
            "usage: trainer <tokenizer|untrained|manifest|train|export|eval|probe|samples|score|bench> [options] (see trainer/src/main.rs)"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("trainer: {message}");
            ExitCode::FAILURE
        }
    }
}
