//! What the probes logged during training say (`probes` in `train-log.json`, written by
//! `trainer::probes`): the second-copy loss of a repeated random span over training,
//! when a model starts copying from its context, what a drop of RoPE does to that, and
//! each layer's strongest previous-token head; and the needle accuracy of the snapshots
//! saved during training (`trainer probe`), with its 95% Wilson interval. DOM-free;
//! `views/probe_story.rs` draws it.

use crate::published::{InductionScore, ModelTrainLog, ProbeRow, TrainHistory};

/// How much lower (nats) the second copy's loss must be than the first's for a model to
/// count as copying: 1 nat makes each copied token e (2.7) times likelier.
pub const COPYING_MARGIN: f64 = 1.0;

/// Which induction probe: the repeated span within the training length, or at `4L`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeLength {
    /// Sequences of `min(100, L)` tokens.
    WithinL,
    /// Sequences of `4L` tokens, under the model's native scheme.
    FourL,
}

/// Both probe lengths, in drawing order.
pub const PROBE_LENGTHS: [ProbeLength; 2] = [ProbeLength::WithinL, ProbeLength::FourL];

impl ProbeLength {
    /// This probe's score in `row`, if it was logged.
    pub fn score(self, row: &ProbeRow) -> Option<InductionScore> {
        match self {
            ProbeLength::WithinL => row.induction,
            ProbeLength::FourL => row.induction_4l,
        }
    }

    /// `within` or `4l`: the `data-length` of its curve.
    pub fn key(self) -> &'static str {
        match self {
            ProbeLength::WithinL => "within",
            ProbeLength::FourL => "4l",
        }
    }

    /// `within L` or `at 4L`.
    pub fn name(self) -> &'static str {
        match self {
            ProbeLength::WithinL => "within L",
            ProbeLength::FourL => "at 4L",
        }
    }
}

/// One logged second-copy loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CopyPoint {
    /// Optimizer step.
    pub step: f64,
    /// Mean NLL of the first copy, nats.
    pub first: Option<f64>,
    /// Mean NLL of the second copy, nats.
    pub second: f64,
    /// Probe sequence length.
    pub tokens: usize,
}

/// The second-copy losses of `log` at `length`, in log order; rows without one are
/// skipped. A drop's two rows at one step stay in order, so the jump draws as a
/// vertical segment.
pub fn second_copy_series(log: &TrainHistory, length: ProbeLength) -> Vec<CopyPoint> {
    log.probes
        .iter()
        .filter_map(|row| {
            let score = length.score(row)?;
            Some(CopyPoint {
                step: row.step as f64,
                first: Some(score.first).filter(|v| v.is_finite()),
                second: Some(score.second).filter(|v| v.is_finite())?,
                tokens: score.tokens,
            })
        })
        .collect()
}

/// Whether any log has a second-copy loss to draw.
pub fn has_probes(logs: &[ModelTrainLog]) -> bool {
    logs.iter().any(|m| {
        PROBE_LENGTHS
            .iter()
            .any(|&l| !second_copy_series(&m.log, l).is_empty())
    })
}

/// The first step at which the model copies: its second copy (within `L`) at least
/// [`COPYING_MARGIN`] below the first.
pub fn copying_onset(log: &TrainHistory) -> Option<f64> {
    second_copy_series(log, ProbeLength::WithinL)
        .into_iter()
        .find(|p| {
            p.first
                .is_some_and(|first| first - p.second >= COPYING_MARGIN)
        })
        .map(|p| p.step)
}

/// Indices of the two probe rows at the drop step: RoPE's, then the just-dropped model's.
fn drop_rows(log: &TrainHistory) -> Option<(usize, usize)> {
    let drop = log.drop_step?;
    let i = log.probes.iter().position(|r| r.step as f64 == drop)?;
    (log.probes.get(i + 1)?.step as f64 == drop).then_some((i, i + 1))
}

/// The second-copy loss (within `L`) around a drop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropEffect {
    /// The drop step.
    pub step: f64,
    /// With RoPE, at the drop step.
    pub with_rope: f64,
    /// Right after RoPE is removed, before any recalibration.
    pub dropped: f64,
    /// `(step, loss)` of the last row after the drop, once recalibration has been logged.
    pub recalibrated: Option<(f64, f64)>,
}

/// What the drop did to copying, for a log with both rows at its drop step.
pub fn drop_effect(log: &TrainHistory) -> Option<DropEffect> {
    let (i, j) = drop_rows(log)?;
    let second = |row: &ProbeRow| Some(row.induction?.second).filter(|v| v.is_finite());
    let step = log.probes[i].step as f64;
    // The last row with a second-copy loss (a row `trainer probe` added may have only
    // needle counts).
    let recalibrated = log
        .probes
        .iter()
        .rev()
        .take_while(|r| r.step as f64 > step)
        .find_map(|r| Some((r.step as f64, second(r)?)));
    Some(DropEffect {
        step,
        with_rope: second(&log.probes[i])?,
        dropped: second(&log.probes[j])?,
        recalibrated,
    })
}

/// When a row of the previous-token table was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    /// At the drop step, still with RoPE.
    WithRope,
    /// At the drop step, RoPE just removed.
    JustDropped,
    /// The last probe of the log.
    End,
}

impl Snapshot {
    /// The row's label.
    pub fn label(self) -> &'static str {
        match self {
            Snapshot::WithRope => "at the drop, with RoPE",
            Snapshot::JustDropped => "just dropped",
            Snapshot::End => "end of training",
        }
    }

    /// `with-rope`, `just-dropped` or `end`: the row's `data-when`.
    pub fn key(self) -> &'static str {
        match self {
            Snapshot::WithRope => "with-rope",
            Snapshot::JustDropped => "just-dropped",
            Snapshot::End => "end",
        }
    }
}

/// The probe rows the previous-token table shows for a log: for a drop, both rows at
/// the drop step; then the last row with previous-token values (unless it is one of
/// those). Rows without previous-token values are left out.
pub fn head_snapshots(log: &TrainHistory) -> Vec<(Snapshot, &ProbeRow)> {
    let mut rows = Vec::new();
    let last = log
        .probes
        .iter()
        .rposition(|r| !r.previous_token.is_empty());
    if let Some((i, j)) = drop_rows(log) {
        rows.push((Snapshot::WithRope, i));
        rows.push((Snapshot::JustDropped, j));
    }
    if let Some(last) = last.filter(|l| rows.iter().all(|(_, i)| i != l)) {
        rows.push((Snapshot::End, last));
    }
    rows.into_iter()
        .map(|(when, i)| (when, &log.probes[i]))
        .filter(|(_, row)| !row.previous_token.is_empty())
        .collect()
}

/// Per layer, the head with the most attention on the previous token and that share;
/// `None` for a layer without values.
pub fn strongest_previous_token_heads(row: &ProbeRow) -> Vec<Option<(usize, f64)>> {
    row.previous_token
        .iter()
        .map(|heads| {
            heads
                .iter()
                .enumerate()
                .filter_map(|(h, &v)| v.is_finite().then_some((h, v)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
        })
        .collect()
}
/// One needle probe: a snapshot's exact-match share on the probe's documents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeedlePoint {
    /// Optimizer step of the snapshot.
    pub step: f64,
    /// Documents answered.
    pub trials: usize,
    /// Exact answers.
    pub correct: usize,
    /// `correct / trials`.
    pub share: f64,
    /// 95% Wilson interval of `share`.
    pub interval: (f64, f64),
    /// Share of answer digits right in the right place.
    pub digit_share: f64,
}

impl NeedlePoint {
    fn of(row: &ProbeRow) -> Option<NeedlePoint> {
        let n = row.needles.filter(|n| n.trials > 0)?;
        Some(NeedlePoint {
            step: row.step as f64,
            trials: n.trials,
            correct: n.correct,
            share: n.accuracy(),
            interval: n.wilson(),
            digit_share: n.digit_accuracy(),
        })
    }
}

/// The needle probes of `log`, in log order; rows without one are skipped. A drop's two
/// rows at one step (RoPE's snapshot, then the model right after the drop) stay in
/// order, so the jump draws as a vertical segment.
pub fn needle_series(log: &TrainHistory) -> Vec<NeedlePoint> {
    log.probes.iter().filter_map(NeedlePoint::of).collect()
}

/// Whether any log has a needle probe to draw.
pub fn has_needle_probes(logs: &[ModelTrainLog]) -> bool {
    logs.iter().any(|m| !needle_series(&m.log).is_empty())
}

/// Documents per needle probe in `logs` (the most, should runs differ).
pub fn needle_documents(logs: &[ModelTrainLog]) -> Option<usize> {
    logs.iter()
        .flat_map(|m| needle_series(&m.log))
        .map(|p| p.trials)
        .max()
}

/// The needle probes at a drop: with RoPE, then just dropped; `None` unless the log has
/// both rows at its drop step and both were measured.
pub fn needle_drop(log: &TrainHistory) -> Option<(NeedlePoint, NeedlePoint)> {
    let (i, j) = drop_rows(log)?;
    Some((
        NeedlePoint::of(&log.probes[i])?,
        NeedlePoint::of(&log.probes[j])?,
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::published::{NeedleTally, TrainPoint};

    fn row(step: f64, first: f64, second: f64, at_4l: Option<f64>) -> ProbeRow {
        ProbeRow {
            step: step as usize,
            induction: Some(InductionScore {
                tokens: 100,
                first,
                second,
            }),
            induction_4l: Some(InductionScore {
                tokens: 1024,
                first,
                second: at_4l.unwrap_or(f64::NAN),
            }),
            previous_token: vec![vec![0.1, 0.8], vec![f64::NAN, f64::NAN]],
            needles: None,
        }
    }

    /// DroPE trained 40 steps (batch 2, length 8): copying from step 20, dropped at 30
    /// (second copy back near uniform, the 4L value NaN), recalibrated by 40.
    pub(crate) fn drope() -> TrainHistory {
        TrainHistory {
            positions: "none".into(),
            drop_step: Some(30.0),
            batch: 2,
            length: 8,
            train: (1..=4)
                .map(|i| TrainPoint {
                    step: 10.0 * i as f64,
                    loss: 5.0,
                    learning_rate: 1e-3,
                })
                .collect(),
            validation: Vec::new(),
            tokens_per_second: None,
            probes: vec![
                row(10.0, 8.4, 8.2, Some(8.3)),
                row(20.0, 8.4, 3.0, Some(9.0)),
                row(30.0, 8.4, 1.5, None),
                row(30.0, 8.4, 8.0, Some(8.1)),
                row(40.0, 8.4, 2.0, Some(2.5)),
            ],
        }
    }

    #[test]
    fn series_keep_both_rows_at_the_drop_and_skip_missing_values() {
        let log = drope();
        let within = second_copy_series(&log, ProbeLength::WithinL);
        let steps: Vec<f64> = within.iter().map(|p| p.step).collect();
        assert_eq!(steps, [10.0, 20.0, 30.0, 30.0, 40.0]);
        assert_eq!((within[2].second, within[3].second), (1.5, 8.0));
        assert_eq!(within[0].first, Some(8.4));
        let at_4l = second_copy_series(&log, ProbeLength::FourL);
        assert_eq!(at_4l.len(), 4, "the null at the drop is skipped");
        assert_eq!(at_4l[0].tokens, 1024);
    }

    #[test]
    fn onset_drop_effect_and_snapshots() {
        let log = drope();
        assert_eq!(copying_onset(&log), Some(20.0));
        assert_eq!(
            drop_effect(&log),
            Some(DropEffect {
                step: 30.0,
                with_rope: 1.5,
                dropped: 8.0,
                recalibrated: Some((40.0, 2.0)),
            })
        );
        let when: Vec<Snapshot> = head_snapshots(&log).iter().map(|(w, _)| *w).collect();
        assert_eq!(
            when,
            [Snapshot::WithRope, Snapshot::JustDropped, Snapshot::End]
        );
        assert_eq!(
            strongest_previous_token_heads(&log.probes[0]),
            [Some((1, 0.8)), None]
        );

        // Only one row at the drop (RoPE's log had no probes): no before/after.
        let mut one = drope();
        one.probes.remove(2);
        assert_eq!(drop_effect(&one), None);
        assert_eq!(head_snapshots(&one).len(), 1);
        // Without probes: nothing to say or draw.
        let mut none = drope();
        none.probes.clear();
        assert_eq!(copying_onset(&none), None);
        assert!(head_snapshots(&none).is_empty());
        let logs = [ModelTrainLog {
            model: "drope".into(),
            log: none,
        }];
        assert!(!has_probes(&logs));
        let logs = [ModelTrainLog {
            model: "drope".into(),
            log: drope(),
        }];
        assert!(has_probes(&logs));
    }

    /// `drope()` with the needle probe measured: RoPE's snapshots at 10 and 20, RoPE's at
    /// the drop (30), the just-dropped model, and the recalibrated one at 40.
    pub(crate) fn drope_with_needles() -> TrainHistory {
        let mut log = drope();
        for (row, correct) in log.probes.iter_mut().zip([0, 6, 20, 1, 16]) {
            row.needles = Some(NeedleTally {
                trials: 24,
                correct,
                digits_correct: 7 * correct + 10,
            });
        }
        log
    }

    #[test]
    fn needle_series_and_the_drop() {
        let log = drope_with_needles();
        let points = needle_series(&log);
        let steps: Vec<f64> = points.iter().map(|p| p.step).collect();
        assert_eq!(
            steps,
            [10.0, 20.0, 30.0, 30.0, 40.0],
            "both rows at the drop"
        );
        assert_eq!((points[1].correct, points[1].trials), (6, 24));
        assert_eq!(points[1].share, 0.25);
        assert_eq!(
            points[1].interval,
            engine::needles::wilson_interval(6, 24, engine::needles::Z_95)
        );
        assert!(points[1].interval.0 < 0.25 && 0.25 < points[1].interval.1);
        assert_eq!(points[0].digit_share, 10.0 / 168.0);
        let (with_rope, dropped) = needle_drop(&log).unwrap();
        assert_eq!((with_rope.correct, dropped.correct), (20, 1));
        let logs = [ModelTrainLog {
            model: "drope".into(),
            log: log.clone(),
        }];
        assert!(has_needle_probes(&logs));
        assert_eq!(needle_documents(&logs), Some(24));
        // A row with only needle counts after the last training probe changes nothing else.
        let mut trailing = log.clone();
        trailing.probes.push(ProbeRow {
            step: 50,
            needles: Some(NeedleTally {
                trials: 24,
                correct: 18,
                digits_correct: 130,
            }),
            ..ProbeRow::default()
        });
        assert_eq!(drop_effect(&trailing), drop_effect(&log));
        // Debug text, since the rows hold NaN (a head or score the log had as null).
        let snapshots = |log| format!("{:?}", head_snapshots(log));
        assert_eq!(snapshots(&trailing), snapshots(&log));
        assert_eq!(copying_onset(&trailing), copying_onset(&log));
        assert_eq!(needle_series(&trailing).len(), 6);

        // Rows without counts (or with no trials) are skipped; the drop needs both rows.
        let mut sparse = log;
        sparse.probes[3].needles = None;
        sparse.probes[0].needles = Some(NeedleTally::default());
        assert_eq!(needle_series(&sparse).len(), 3);
        assert_eq!(needle_drop(&sparse), None);
        // Logs from before the needle probe: nothing to draw.
        let logs = [ModelTrainLog {
            model: "drope".into(),
            log: drope(),
        }];
        assert!(needle_series(&logs[0].log).is_empty());
        assert!(!has_needle_probes(&logs));
        assert_eq!(needle_documents(&logs), None);
        assert_eq!(needle_drop(&logs[0].log), None);
    }
}
