//! The whole training path at toy size, fast enough for CI: corpus excerpt -> tokenizer
//! -> RoPE -> DroPE (RoPE dropped at 87.5% of the steps) -> export -> the engine loads
//! the exported files and reproduces the trainer's numbers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::cpu::{CpuBackend, ForwardSettings, Transformer};
use engine::{ModelConfig, SchemeSpec, Session, SessionOptions, TextTokenizer};
use trainer::export::load_run;
use trainer::train::training_rotary;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn validation_losses(run: &Path) -> Vec<f64> {
    let log: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("train-log.json")).unwrap()).unwrap();
    log["validation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_f64().unwrap())
        .collect()
}

#[test]
fn corpus_to_tokenizer_to_rope_to_drope_to_engine() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let corpus = root.join("tests/fixtures/corpus");
    let work: PathBuf = std::env::temp_dir().join(format!("drope-tiny-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let models = work.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let tokenizer_path = models.join("tokenizer.json");
    trainer::bpe::run(&args(&[
        "--corpus",
        corpus.to_str().unwrap(),
        "--out",
        tokenizer_path.to_str().unwrap(),
        "--vocab",
        "512",
    ]))
    .unwrap();

    let common = |out: &Path, extra: &[&str]| {
        let mut a = args(&[
            "--corpus",
            corpus.to_str().unwrap(),
            "--tokenizer",
            tokenizer_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--batch",
            "4",
            "--length",
            "64",
            "--layers",
            "2",
            "--hidden",
            "32",
            "--heads",
            "4",
            "--intermediate",
            "64",
            "--warmup",
            "4",
            "--lr",
            "3e-3",
            "--eval-every",
            "8",
            "--snapshot-every",
            "8",
            "--eval-windows",
            "8",
        ]);
        a.extend(args(extra));
        trainer::train::run(&a).unwrap();
    };
    let rope = work.join("rope");
    // As the recipe: sequences start with the first token from the drop step on.
    common(
        &rope,
        &["--positions", "rope", "--steps", "64", "--bos-from", "56"],
    );
    let losses = validation_losses(&rope);
    assert!(
        losses.last().unwrap() < &(losses[0] - 0.3),
        "RoPE validation loss must fall: {losses:?}"
    );

    // DroPE: the RoPE snapshot at 87.5% (step 56), positions removed, trained to step 64.
    let drope = work.join("drope");
    let snapshot = rope.join("snapshot-56.safetensors");
    common(
        &drope,
        &[
            "--positions",
            "none",
            "--init-from",
            snapshot.to_str().unwrap(),
            "--first-step",
            "56",
            "--steps",
            "64",
            "--bos-from",
            "56",
        ],
    );
    assert!(validation_losses(&drope).iter().all(|l| l.is_finite()));

    for (name, run) in [("rope", &rope), ("drope", &drope)] {
        trainer::export::run(&args(&[
            "--run",
            run.to_str().unwrap(),
            "--models",
            models.to_str().unwrap(),
            "--name",
            name,
            "--corpus",
            corpus.to_str().unwrap(),
            "--log-from",
            rope.to_str().unwrap(),
        ]))
        .unwrap();
        // The exported files load in the engine ...
        let dir = models.join(name);
        let backend = CpuBackend::load(
            &std::fs::read(dir.join("config.json")).unwrap(),
            &std::fs::read(dir.join("model.safetensors")).unwrap(),
        )
        .unwrap();
        // ... and give the trainer's numbers: per-token NLL of one window, trainer forward
        // (f32 snapshot) against an engine session (exported storage, possibly f16).
        let (config, weights): (ModelConfig, _) = load_run(run).unwrap();
        assert_eq!(
            config.bos_token_id,
            Some(0),
            "trained with the first token from step 56: {name}'s config says so"
        );
        let tokenizer = TextTokenizer::from_json(&std::fs::read(&tokenizer_path).unwrap()).unwrap();
        let text = std::fs::read_to_string(corpus.join("austen.txt")).unwrap();
        let ids: Vec<u32> = tokenizer
            .encode(&text[..2000])
            .unwrap()
            .iter()
            .map(|p| p.id)
            .take(64)
            .collect();
        let rotary = training_rotary(&config).unwrap();
        let settings = ForwardSettings {
            rotary: rotary.as_ref(),
            logit_scale: 1.0,
            head_scales: None,
        };
        let input = engine::cpu::token_tensor(&ids, &candle_core::Device::Cpu).unwrap();
        let logits = Transformer::new(&config, &weights)
            .forward(&input, &settings, None, |_, _| Ok(()))
            .unwrap();
        let logits: Vec<Vec<f32>> = logits.squeeze(0).unwrap().to_vec2().unwrap();
        let scheme = if name == "rope" {
            SchemeSpec::ROPE
        } else {
            SchemeSpec::NONE
        };
        let mut session = Session::new(Arc::new(backend), SessionOptions::new(scheme, 64)).unwrap();
        let trace = pollster::block_on(session.extend(&ids)).unwrap();
        for (t, position) in trace.positions.iter().enumerate().skip(1) {
            let expected = -engine::analysis::log_softmax(&logits[t - 1])[ids[t] as usize];
            let got = position.nll.unwrap();
            assert!(
                (expected - got).abs() < 0.02 * (1.0 + expected),
                "{name} position {t}: {expected} vs {got}"
            );
        }
        let log: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("train-log.json")).unwrap()).unwrap();
        if name == "drope" {
            assert_eq!(log["drop_step"], 56);
            let first_logged = log["train"][0][0].as_f64().unwrap();
            assert!(
                first_logged < 56.0,
                "the DroPE log starts with the RoPE steps before the drop"
            );
            // Probes: RoPE's up to the drop, then the dropped model's at the drop step
            // (before recalibration), then the recalibrated model's.
            let steps: Vec<f64> = log["probes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["step"].as_f64().unwrap())
                .collect();
            assert_eq!(steps, [8.0, 16.0, 24.0, 32.0, 40.0, 48.0, 56.0, 56.0, 64.0]);
            let probe = &log["probes"][8];
            assert_eq!(probe["induction"]["tokens"], 64);
            assert_eq!(probe["induction_4l"]["tokens"], 256);
            assert_eq!(probe["previous_token"].as_array().unwrap().len(), 2);
            assert_eq!(probe["previous_token"][0].as_array().unwrap().len(), 4);
        }
    }
    // The evaluation runs end to end and writes what the studio and RESULTS.md need.
    let results = work.join("results");
    let report = work.join("RESULTS.md");
    trainer::results::run(&args(&[
        "--models",
        models.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--sequences",
        "2",
        "--fit-sequences",
        "1",
        "--head-fit-sequences",
        "1",
        "--needle-min-trials",
        "5",
        "--needle-max-trials",
        "10",
        "--only",
        "rope,drope",
    ]))
    .unwrap();
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let perplexity = read(results.join("perplexity.json"));
    let rows = perplexity["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 7 + 4, "7 RoPE schemes and 4 DroPE ones");
    for row in rows {
        let values = row["perplexity"].as_array().unwrap();
        assert_eq!(values.len(), 4);
        assert!(
            values
                .iter()
                .all(|v| v.as_f64().unwrap().is_finite() && v.as_f64().unwrap() > 1.0),
            "{row}"
        );
    }
    let niah = read(results.join("niah.json"));
    // At L = 64, 1x is below the needle test's 128-token minimum: 2x, 4x and 8x remain.
    let cells = niah["cells"].as_array().unwrap();
    let lengths = niah["lengths"].as_array().unwrap();
    assert_eq!(cells.len(), (4 + 3) * 3 * 5);
    assert_eq!(lengths.len(), (4 + 3) * 3);
    let number = |v: &serde_json::Value, key: &str| v[key].as_f64().unwrap();
    for length in lengths {
        // No accuracy over 10 trials is within +-5 points, so the cap of 10 ends every
        // length, after 2 rounds over the 5 depths; never fewer than the minimum of 5.
        assert_eq!(number(length, "trials"), 10.0, "{length}");
        assert!(
            length.get("depth").is_none(),
            "pooled over depths: {length}"
        );
        let (acc, low, high) = (
            number(length, "accuracy"),
            number(length, "wilson_low"),
            number(length, "wilson_high"),
        );
        assert!(
            0.0 <= low && low <= acc && acc <= high && high <= 1.0,
            "{length}"
        );
        assert!(
            high - low > 0.1,
            "10 trials cannot pin the accuracy down: {length}"
        );
        let digits = number(length, "digit_accuracy");
        assert!((acc..=1.0).contains(&digits), "{length}");
        // The pooled cell is the sum of its depths, each run equally often.
        let depths: Vec<&serde_json::Value> = cells
            .iter()
            .filter(|c| {
                ["model", "scheme", "length_multiple"]
                    .iter()
                    .all(|k| c[k] == length[k])
            })
            .collect();
        assert_eq!(depths.len(), 5);
        for key in ["trials", "correct", "digits_correct"] {
            let sum: f64 = depths.iter().map(|c| number(c, key)).sum();
            assert_eq!(sum, number(length, key), "{key} of {length}");
        }
        assert!(depths.iter().all(|c| number(c, "trials") == 2.0));
    }
    let c = read(models.join("drope/config.json"))["drope_c"]
        .as_f64()
        .expect("fitted c stored");
    assert!((-0.3..=1.0).contains(&c));
    // One c per head, stored for the studio's `+beta=heads` and in the fit's file.
    let drope_config = read(models.join("drope/config.json"));
    let heads = drope_config["num_hidden_layers"].as_u64().unwrap()
        * drope_config["num_attention_heads"].as_u64().unwrap();
    let head_c = drope_config["drope_head_c"]
        .as_array()
        .expect("per-head c stored");
    assert_eq!(head_c.len() as u64, heads);
    assert_eq!(
        read(results.join("drope-c.json"))["head_c"].as_array(),
        Some(head_c)
    );
    let markdown = std::fs::read_to_string(&report).unwrap();
    assert!(
        markdown.contains("| rope | `yarn:dyn` |")
            && markdown.contains("| drope | `none+beta` | - | ")
            && markdown.contains("Per-digit accuracy")
            && markdown.contains("## Claims"),
        "{markdown}"
    );

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(models.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["models"].as_array().unwrap().len(), 2);
    let _ = std::fs::remove_dir_all(&work);
}
