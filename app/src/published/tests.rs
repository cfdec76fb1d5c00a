//! Parse tests of `published.rs`: `niah.json`, train logs, perplexity and the `c` fit,
//! and malformed files (errors that name the file, not panics).

use super::*;

#[test]
fn the_committed_niah_file_parses() {
    let bytes = include_bytes!("../../../public/results/niah.json");
    let grid = parse_needle_grid("results/niah.json", bytes).unwrap();
    assert!(!grid.rows().is_empty());
    assert!(grid.lengths.iter().all(|c| c.accuracy().is_some()));
}

#[test]
fn malformed_niah_files_are_errors() {
    let err = parse_needle_grid("results/niah.json", b"{\"cells\": [").unwrap_err();
    assert!(
        err.to_string().contains("results/niah.json is malformed"),
        "{err}"
    );
    // The checks themselves are `engine::results`' tests; here, that the error names
    // the file.
    let impossible = r#"{"cells": [{"model": "m", "scheme": "s", "length_multiple": 1,
        "trials": 2, "correct": 3}]}"#;
    let err = parse_needle_grid("niah.json", impossible.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("niah.json") && err.to_string().contains("3 correct of 2"),
        "{err}"
    );
}

#[test]
fn train_logs_parse_and_skip_non_finite_losses() {
    let text = r#"{"positions": "none", "drop_step": 20, "batch": 2, "length": 8,
        "train": [[10, 5.0, 0.001, 1.0], [20, null, 0.001, 2.0], [30, 4.0, 0.0005, 3.0]],
        "validation": [[20, 4.5]], "tokens_per_second": 100.0}"#;
    let log = TrainHistory::parse("train-log.json", text.as_bytes()).unwrap();
    assert_eq!(log.drop_step, Some(20.0));
    assert_eq!(log.train.len(), 2, "the NaN (null) loss is left out");
    assert_eq!(log.train[1].step, 30.0);
    assert_eq!(log.validation[0].loss, 4.5);
    assert_eq!(log.tokens_at(30.0), 480.0);
    for bad in [
        r#"{"positions": "rope", "drop_step": null, "batch": 2, "length": 8,
            "train": [[10, 5.0]], "validation": []}"#,
        r#"{"positions": "rope", "drop_step": null, "batch": 2, "length": 8,
            "train": [[20, 5.0, 0.1, 1.0], [10, 4.0, 0.1, 2.0]], "validation": []}"#,
        r#"{"positions": "rope", "batch": 2}"#,
        "not json",
    ] {
        let err = TrainHistory::parse("models/x/train-log.json", bad.as_bytes()).unwrap_err();
        assert!(
            err.to_string().starts_with("models/x/train-log.json"),
            "{err}"
        );
    }
}

/// A DroPE log with probes: RoPE's row at the drop step (40), the just-dropped model's
/// row at the same step, a recalibration row; one NaN written as null.
const DROPE_LOG_WITH_PROBES: &str = r#"{"positions": "none", "drop_step": 40, "batch": 2,
    "length": 8, "train": [[40, 5.0, 0.001, 1.0], [50, 5.5, 0.001, 1.0]],
    "validation": [[40, 5.1]],
    "probes": [
      {"step": 40, "induction": {"tokens": 8, "first": 8.4, "second": 1.2},
       "induction_4l": {"tokens": 32, "first": 8.5, "second": 7.9},
       "previous_token": [[0.1, 0.9], [0.3, 0.2]]},
      {"step": 40, "induction": {"tokens": 8, "first": 8.4, "second": 8.1},
       "induction_4l": {"tokens": 32, "first": 8.4, "second": null},
       "previous_token": [[0.1, 0.2], [null, 0.2]]},
      {"step": 50, "induction": {"tokens": 8, "first": 8.3, "second": 2.0},
       "induction_4l": {"tokens": 32, "first": 8.3, "second": 2.5},
       "previous_token": [[0.1, 0.6], [0.2, 0.2]], "a_later_probe": 1}
    ]}"#;

#[test]
fn train_logs_with_probes_keep_both_rows_at_the_drop() {
    let log = TrainHistory::parse("train-log.json", DROPE_LOG_WITH_PROBES.as_bytes()).unwrap();
    let steps: Vec<usize> = log.probes.iter().map(|p| p.step).collect();
    assert_eq!(steps, [40, 40, 50], "both rows at the drop step, in order");
    let within = |i: usize| log.probes[i].induction.unwrap();
    assert_eq!((within(0).first, within(0).second), (8.4, 1.2));
    assert_eq!(within(1).second, 8.1);
    assert_eq!(within(0).tokens, 8);
    let at_4l = log.probes[1].induction_4l.unwrap();
    assert_eq!(at_4l.tokens, 32);
    assert!(at_4l.second.is_nan(), "null is NaN");
    let heads = &log.probes[1].previous_token[1];
    assert!(heads[0].is_nan() && heads[1] == 0.2, "{heads:?}");
    assert_eq!(log.probes[2].previous_token.len(), 2);

    // Missing parts of a row are empty, not errors.
    let sparse = DROPE_LOG_WITH_PROBES.replace(
        r#""induction_4l": {"tokens": 32, "first": 8.3, "second": 2.5},"#,
        "",
    );
    let log = TrainHistory::parse("train-log.json", sparse.as_bytes()).unwrap();
    assert_eq!(log.probes[2].induction_4l, None);

    // Steps that go back, a row without a step, or a mistyped value are errors.
    for bad in [
        DROPE_LOG_WITH_PROBES.replacen(r#""step": 50"#, r#""step": 30"#, 1),
        DROPE_LOG_WITH_PROBES.replacen(r#""step": 50,"#, "", 1),
        DROPE_LOG_WITH_PROBES.replacen(r#""second": 2.0"#, r#""second": "low""#, 1),
    ] {
        let err = TrainHistory::parse("models/drope/train-log.json", bad.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("models/drope/train-log.json is malformed"),
            "{err}"
        );
    }
}

/// A RoPE log after `trainer probe`: needle counts in a row of training probes, a row
/// without them (no snapshot at that step), a row with only them (no training probes).
const ROPE_LOG_WITH_NEEDLES: &str = r#"{"positions": "rope", "drop_step": null, "batch": 2,
    "length": 8, "train": [[10, 5.0, 0.001, 1.0]], "validation": [],
    "probes": [
      {"step": 10, "induction": {"tokens": 8, "first": 8.4, "second": 8.2},
       "needles": {"trials": 24, "correct": 0, "digits_correct": 30}},
      {"step": 15, "induction": {"tokens": 8, "first": 8.4, "second": 4.0}},
      {"step": 20, "needles": {"trials": 24, "correct": 12, "digits_correct": 120}}
    ]}"#;

#[test]
fn train_logs_with_and_without_needle_probes() {
    let log = TrainHistory::parse("train-log.json", ROPE_LOG_WITH_NEEDLES.as_bytes()).unwrap();
    assert_eq!(
        log.probes[0].needles,
        Some(NeedleTally {
            trials: 24,
            correct: 0,
            digits_correct: 30
        })
    );
    assert_eq!(log.probes[1].needles, None);
    let only = &log.probes[2];
    assert_eq!(
        (only.step, only.induction, only.induction_4l),
        (20, None, None)
    );
    assert!(only.previous_token.is_empty());
    assert_eq!(only.needles.unwrap().correct, 12);
    // Logs written before the needle probe have none.
    let log = TrainHistory::parse("train-log.json", DROPE_LOG_WITH_PROBES.as_bytes()).unwrap();
    assert!(log.probes.iter().all(|r| r.needles.is_none()));

    // More right than tried, or a mistyped count, are errors.
    for bad in [
        ROPE_LOG_WITH_NEEDLES.replacen(r#""correct": 12"#, r#""correct": 25"#, 1),
        ROPE_LOG_WITH_NEEDLES.replacen(r#""digits_correct": 120"#, r#""digits_correct": 169"#, 1),
        ROPE_LOG_WITH_NEEDLES.replacen(r#""trials": 24"#, r#""trials": "24""#, 1),
    ] {
        let err = TrainHistory::parse("models/rope/train-log.json", bad.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("models/rope/train-log.json is malformed"),
            "{err}"
        );
    }
    let bad = ROPE_LOG_WITH_NEEDLES.replacen(r#""correct": 12"#, r#""correct": 25"#, 1);
    let err = TrainHistory::parse("train-log.json", bad.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("probes[2] has 25 needles right"),
        "{err}"
    );
}

#[test]
fn train_logs_without_probes_have_none() {
    let text = r#"{"positions": "rope", "drop_step": null, "batch": 2, "length": 8,
        "train": [[10, 5.0, 0.001, 1.0]], "validation": []}"#;
    let log = TrainHistory::parse("train-log.json", text.as_bytes()).unwrap();
    assert!(log.probes.is_empty());
    let empty = text.replace(r#""validation": []"#, r#""validation": [], "probes": []"#);
    let log = TrainHistory::parse("train-log.json", empty.as_bytes()).unwrap();
    assert!(log.probes.is_empty());
}

#[test]
fn the_committed_train_logs_parse() {
    for bytes in [
        &include_bytes!("../../../public/models/rope/train-log.json")[..],
        &include_bytes!("../../../public/models/drope/train-log.json")[..],
    ] {
        let log = TrainHistory::parse("train-log.json", bytes).unwrap();
        assert!(log.train.len() > 10);
        assert!(!log.validation.is_empty());
    }
}

#[test]
fn perplexity_and_c_fit_errors_name_their_file() {
    // The formats' own tests are the engine's (`engine::results`), natively.
    let table = parse_perplexity(
        "perplexity.json",
        include_bytes!("../../../public/results/perplexity.json"),
    )
    .unwrap();
    assert!(table.rows.iter().all(|r| r.nll.len() == 4));
    let short = r#"{"training_length": 8, "windows": ["0-L", "L-2L"], "sequences": 1,
        "rows": [{"model": "m", "scheme": "s", "nll": [1.0], "perplexity": [2.7]}]}"#;
    let err = parse_perplexity("results/perplexity.json", short.as_bytes()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("results/perplexity.json is malformed")
            && err.to_string().contains("one value per window"),
        "{err}"
    );
    let fit = parse_drope_fit(
        "drope-c.json",
        include_bytes!("../../../public/results/drope-c.json"),
    )
    .unwrap();
    assert_eq!(
        fit.paper_c_from_scratch,
        Some(engine::paper::C_FROM_SCRATCH)
    );
    let err = parse_drope_fit("drope-c.json", br#"{"c": "x", "grid": []}"#).unwrap_err();
    assert!(
        err.to_string().starts_with("drope-c.json is malformed"),
        "{err}"
    );
}
