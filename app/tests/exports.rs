//! What each figure saves as CSV and JSON: one row per data point, fields quoted where
//! they must be, JSON that parses back to the same numbers. (The PNG and download paths
//! are exercised end to end by tests/e2e.)
#![cfg(target_arch = "wasm32")]

use app::analysis::{AttentionMap, Guess, TokenStat};
use app::published::{parse_needle_grid, ModelTrainLog, TrainHistory, TrainPoint, ValidationPoint};
use app::views::attention_heatmap::{map_csv, map_json};
use app::views::frequency_explorer::{pair_frequencies, pairs_csv, pairs_json};
use app::views::needle_results::{grid_csv, grid_json};
use app::views::token_strip::{tokens_csv, tokens_json};
use app::views::training_story::{story_csv, story_json};
use serde_json::Value;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn lines(csv: &str) -> Vec<&str> {
    csv.lines().collect()
}

#[wasm_bindgen_test]
fn training_curves_save_every_point() {
    let logs = vec![ModelTrainLog {
        model: "drope".into(),
        log: TrainHistory {
            positions: "none".into(),
            drop_step: Some(20.0),
            batch: 4,
            length: 64,
            tokens_per_second: None,
            train: (1..=3)
                .map(|i| TrainPoint {
                    step: 10.0 * i as f64,
                    loss: 5.0 - i as f64,
                    learning_rate: 1e-3,
                })
                .collect(),
            validation: vec![ValidationPoint {
                step: 30.0,
                loss: 2.5,
            }],
            probes: Vec::new(),
        },
    }];
    let csv = story_csv(&logs);
    let rows = lines(&csv);
    assert_eq!(rows[0], "model,kind,step,tokens,loss");
    assert_eq!(rows.len(), 1 + 3 + 1);
    assert_eq!(rows[1], "drope,train,10,2560,4");
    assert_eq!(rows[4], "drope,validation,30,7680,2.5");
    let json: Value = serde_json::from_str(&story_json(&logs)).unwrap();
    assert_eq!(json["models"][0]["drop_step"], 20.0);
    assert_eq!(json["models"][0]["train"][2][1], 2.0);
    assert_eq!(json["models"][0]["validation"][0][1], 2.5);
    assert_eq!(json["models"][0]["probes"], Value::Array(Vec::new()));
}

#[wasm_bindgen_test]
fn frequency_pairs_save_each_scheme() {
    let pairs = pair_frequencies(8, 10_000.0, 256, 4.0).unwrap();
    let csv = pairs_csv(&pairs, 256);
    let rows = lines(&csv);
    assert_eq!(rows.len(), 1 + 4, "a header and one row per pair (D/2 = 4)");
    // Four columns for each of RoPE, PI, NTK, YaRN and YaRN (ramp).
    assert_eq!(rows[0].split(',').count(), 3 + 5 * 4);
    assert!(rows[0].ends_with(",yarn-ramp_phase_at_8L"), "{}", rows[0]);
    // Pair 0 under PI: frequency / RoPE's = 1/s.
    let pi_factor: f64 = rows[1].split(',').nth(3 + 4 + 1).unwrap().parse().unwrap();
    assert!((pi_factor - 0.25).abs() < 1e-12, "{}", rows[1]);
    let json: Value = serde_json::from_str(&pairs_json(&pairs, 8, 10_000.0, 256, 4.0)).unwrap();
    assert_eq!(json["pairs"].as_array().unwrap().len(), 4);
    assert_eq!(json["pairs"][0]["frequency"]["rope"], 1.0);
}

#[wasm_bindgen_test]
fn needle_grids_save_pooled_and_per_depth_cells() {
    let grid = parse_needle_grid(
        "niah.json",
        br#"{"cells": [
            {"model": "rope", "scheme": "yarn", "length_multiple": 2, "depth": 0.5, "trials": 4, "correct": 1},
            {"model": "rope", "scheme": "yarn", "length_multiple": 2, "depth": 0.9, "trials": 4, "correct": 3}]}"#,
    )
    .unwrap();
    let csv = grid_csv(&grid);
    let rows = lines(&csv);
    // The pooled cell (computed from the two) and the two per-depth cells.
    assert_eq!(rows.len(), 1 + 1 + 2, "{csv}");
    assert!(rows[1].starts_with("rope,yarn,2,,8,4,"), "{}", rows[1]);
    assert!(rows[3].starts_with("rope,yarn,2,0.9,4,3,"), "{}", rows[3]);
    let json: Value = serde_json::from_str(&grid_json(&grid)).unwrap();
    assert_eq!(json["by_depth"].as_array().unwrap().len(), 2);
    assert_eq!(json["paper"]["drope"].as_array().unwrap().len(), 3);
}

#[wasm_bindgen_test]
fn tokens_and_attention_maps_save_with_their_text_quoted() {
    let tokens = vec![
        TokenStat {
            position: 0,
            id: 7,
            text: "Hello".into(),
            nll: None,
            rank: None,
            expected: vec![],
        },
        TokenStat {
            position: 1,
            id: 9,
            text: ", \"you\"".into(),
            nll: Some(2.5),
            rank: Some(0),
            expected: vec![Guess {
                text: " world".into(),
                probability: 0.5,
            }],
        },
    ];
    let csv = tokens_csv(&tokens);
    let rows = lines(&csv);
    assert_eq!(rows[1], "0,Hello,,,,");
    assert_eq!(rows[2], "1,\", \"\"you\"\"\",2.5,1, world,0.5");
    let json: Value = serde_json::from_str(&tokens_json(&tokens)).unwrap();
    assert_eq!(json[1]["text"], ", \"you\"");
    assert_eq!(json[1]["rank"], 1);

    let rows: Vec<Vec<f32>> = vec![vec![1.0], vec![0.25, 0.75], vec![0.5, 0.25, 0.25]];
    let map = AttentionMap::from_rows(rows.iter().map(|r| &r[..]));
    let labels: Vec<String> = ["a", "b,", "c"].map(String::from).to_vec();
    let csv = map_csv(&map, &labels);
    let lines = lines(&csv);
    assert_eq!(lines.len(), 1 + 6, "one row per visible pair: 3 x 4 / 2");
    assert_eq!(lines[3], "1,1,\"b,\",\"b,\",0.75");
    let json: Value = serde_json::from_str(&map_json(&map, &labels)).unwrap();
    assert_eq!(json["rows"][2].as_array().unwrap().len(), 3);
    assert_eq!(json["rows"][1][1], 0.75);
}
