//! Training is deterministic given the seed (and thread count), and a run stopped and
//! resumed ends with exactly the weights of an uninterrupted run.

use std::path::{Path, PathBuf};

fn train(corpus: &Path, tokenizer: &Path, out: &Path, extra: &[&str]) {
    let mut args: Vec<String> = [
        "--corpus",
        corpus.to_str().unwrap(),
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--positions",
        "rope",
        "--steps",
        "8",
        "--batch",
        "2",
        "--length",
        "32",
        "--layers",
        "1",
        "--hidden",
        "32",
        "--heads",
        "2",
        "--intermediate",
        "64",
        "--warmup",
        "2",
        "--eval-every",
        "4",
        "--snapshot-every",
        "4",
        "--eval-windows",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    trainer::train::run(&args).unwrap();
}

#[test]
fn same_seed_same_weights_and_resume_is_exact() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let corpus = root.join("tests/fixtures/corpus");
    let tokenizer = root.join("public/models/tokenizer.json");
    let work: PathBuf = std::env::temp_dir().join(format!("drope-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (a, b, c) = (work.join("a"), work.join("b"), work.join("c"));
    train(&corpus, &tokenizer, &a, &[]);
    train(&corpus, &tokenizer, &b, &[]);
    train(&corpus, &tokenizer, &c, &["--stop-at", "3"]);
    assert!(
        !c.join("snapshot-8.safetensors").exists(),
        "the stopped run must not have finished"
    );
    train(&corpus, &tokenizer, &c, &[]);
    let final_weights = |dir: &Path| std::fs::read(dir.join("snapshot-8.safetensors")).unwrap();
    assert_eq!(
        final_weights(&a),
        final_weights(&b),
        "same seed, different weights"
    );
    assert_eq!(
        final_weights(&a),
        final_weights(&c),
        "a resumed run differs from an uninterrupted one"
    );
    let d = work.join("d");
    train(&corpus, &tokenizer, &d, &["--seed", "2"]);
    assert_ne!(final_weights(&a), final_weights(&d), "the seed must matter");
    let _ = std::fs::remove_dir_all(&work);
}
