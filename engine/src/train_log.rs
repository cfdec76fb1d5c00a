//! `train-log.json`: what a training run logged, which the studio's training story
//! draws. One type for the file: the trainer writes it (`trainer train`, and `trainer
//! probe` adds needle counts), the studio reads it; a test here round-trips it and reads
//! the shipped logs.
//!
//! A number that was NaN (a diverged loss, a probe with nothing to measure) is written
//! as `null` (serde_json's way) and read back as NaN, so every number is an `f64` on
//! both sides.

use serde::{Deserialize, Deserializer, Serialize};

pub use crate::needles::NeedleTally;

/// A model's `train-log.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainLog {
    /// Positional embedding during this run: `rope` or `none`.
    pub positions: String,
    /// Step at which RoPE was dropped (DroPE runs), else `None`.
    pub drop_step: Option<usize>,
    /// Sequences per batch.
    pub batch: usize,
    /// Tokens per sequence (the training length L).
    pub length: usize,
    /// `[step, train loss, learning rate, seconds since start]`, in order.
    #[serde(deserialize_with = "rows")]
    pub train: Vec<[f64; 4]>,
    /// `[step, validation loss]`, in order.
    #[serde(deserialize_with = "rows")]
    pub validation: Vec<[f64; 2]>,
    /// Training throughput of the run's last segment, tokens per second (NaN where an
    /// older log has none).
    #[serde(default = "nan", deserialize_with = "nan_for_null")]
    pub tokens_per_second: f64,
    /// The probes at every evaluation (absent in logs written before they existed).
    #[serde(default)]
    pub probes: Vec<ProbeRow>,
}

/// One row of probes, at one training step (or for one exported model). Every part but
/// the step is optional in the file: `trainer probe` adds rows with only `needles` where
/// a snapshot has no row of training probes. A DroPE log has two rows at its drop step:
/// RoPE's, then the just-dropped model's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeRow {
    /// Training step.
    pub step: usize,
    /// Induction within L (sequences of `min(100, L)` tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub induction: Option<InductionScore>,
    /// Induction at 4L under the model's native scheme (RoPE unscaled), where RoPE's
    /// unseen rotations break copying and a model without positions need not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub induction_4l: Option<InductionScore>,
    /// Previous-token mass `[layer][head]` on validation prose.
    #[serde(default, deserialize_with = "grid")]
    pub previous_token: Vec<Vec<f64>>,
    /// The needle probe on the snapshot of this step, written by `trainer probe`: the same
    /// fixed documents from the validation split, one 7-digit number to retrieve in each,
    /// answered greedily (absent from rows logged during training and from older logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needles: Option<NeedleTally>,
}

/// Mean NLL of the first and the second copy of a random-token span repeated once. A
/// model that copies from its context predicts the second copy far better than the
/// first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct InductionScore {
    /// Total sequence length (two copies of `tokens / 2` random tokens).
    #[serde(default)]
    pub tokens: usize,
    /// Mean NLL over the first copy (its tokens after the first), nats.
    #[serde(default = "nan", deserialize_with = "nan_for_null")]
    pub first: f64,
    /// Mean NLL over the second copy, nats.
    #[serde(default = "nan", deserialize_with = "nan_for_null")]
    pub second: f64,
}

fn nan() -> f64 {
    f64::NAN
}

fn nan_for_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Rows of `N` numbers, each null read as NaN.
fn rows<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<Vec<[f64; N]>, D::Error>
where
    [Option<f64>; N]: Deserialize<'de>,
{
    let rows = Vec::<[Option<f64>; N]>::deserialize(d)?;
    Ok(rows
        .into_iter()
        .map(|r| r.map(|v| v.unwrap_or(f64::NAN)))
        .collect())
}

fn grid<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
    let rows = Vec::<Vec<Option<f64>>>::deserialize(d)?;
    Ok(rows
        .into_iter()
        .map(|r| r.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        .collect())
}

impl TrainLog {
    /// Parses `train-log.json`.
    pub fn parse(bytes: &[u8]) -> serde_json::Result<TrainLog> {
        serde_json::from_slice(bytes)
    }

    /// The file's text as the trainer writes it: pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a train log always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal, counting NaN equal to NaN (what a round trip must keep).
    fn same(a: f64, b: f64) -> bool {
        a == b || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn what_is_written_reads_back_with_its_nans() {
        let log = TrainLog {
            positions: "none".into(),
            drop_step: Some(8),
            batch: 2,
            length: 16,
            train: vec![[0.0, 9.1, 1e-4, 0.5], [20.0, f64::NAN, 1e-3, 1.0]],
            validation: vec![[20.0, 7.5]],
            tokens_per_second: 1234.5,
            probes: vec![ProbeRow {
                step: 20,
                induction: Some(InductionScore {
                    tokens: 100,
                    first: 8.3,
                    second: f64::NAN,
                }),
                induction_4l: None,
                previous_token: vec![vec![0.1, f64::NAN]],
                needles: Some(NeedleTally {
                    trials: 24,
                    correct: 3,
                    digits_correct: 40,
                }),
            }],
        };
        let json = log.to_json();
        assert!(json.contains("null"), "NaN is written as null: {json}");
        let back = TrainLog::parse(json.as_bytes()).unwrap();
        assert_eq!(back.train[0], log.train[0]);
        assert!(back.train[1][1].is_nan());
        let (row, was) = (&back.probes[0], &log.probes[0]);
        let (a, b) = (row.induction.unwrap(), was.induction.unwrap());
        assert!(same(a.first, b.first) && same(a.second, b.second));
        assert!(same(row.previous_token[0][1], was.previous_token[0][1]));
        assert_eq!(row.needles, was.needles);
        assert_eq!(back.to_json(), json, "a second round trip changes nothing");
    }

    #[test]
    fn older_logs_without_probes_or_throughput_read() {
        let log = TrainLog::parse(
            br#"{"positions": "rope", "drop_step": null, "batch": 8, "length": 128,
                 "train": [[0, 8.3, 0.0001, 0.2]], "validation": [[0, 8.2]],
                 "probes": [{"step": 0, "needles": {"trials": 24, "correct": 0}}]}"#,
        )
        .unwrap();
        assert!(log.tokens_per_second.is_nan());
        assert_eq!(log.probes[0].needles.unwrap().digits_correct, 0);
        assert!(log.probes[0].previous_token.is_empty());
    }

    #[test]
    fn the_shipped_logs_read() {
        for (name, bytes) in [
            (
                "rope",
                &include_bytes!("../../public/models/rope/train-log.json")[..],
            ),
            (
                "drope",
                &include_bytes!("../../public/models/drope/train-log.json")[..],
            ),
            (
                "nope",
                &include_bytes!("../../public/models/nope/train-log.json")[..],
            ),
        ] {
            let log = TrainLog::parse(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!log.train.is_empty() && !log.probes.is_empty(), "{name}");
        }
    }
}
