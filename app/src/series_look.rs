//! One identity per compared series: a readable name and a colour that belong to the
//! series itself, not to its place in the list, so that making another series the focus
//! recolours nothing, and DroPE is the same green on every chart, chip, legend and embed.
//! Pure logic: the chips, the charts and the attention labels all ask here.

use engine::position::{LogitScale, PositionScheme, ScaleFactor};
use engine::SchemeSpec;

use crate::manifest::ModelEntry;
use crate::url_state::SeriesSpec;

/// Okabe-Ito colours: told apart with the common colour-vision deficiencies, and
/// readable on light and dark backgrounds.
pub const SERIES_COLOURS: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8F7F00", "#999999",
];

/// Index into [`SERIES_COLOURS`] of each kind of series.
mod colour {
    pub const ROPE: usize = 0; // blue
    pub const YARN: usize = 1; // vermillion
    pub const NO_POSITIONS: usize = 2; // green: DroPE and other models trained without
    pub const NOPE: usize = 3; // reddish purple: the model trained without from the start
    pub const NTK: usize = 4; // orange
    pub const PI: usize = 5; // sky blue
    pub const DROPPED: usize = 7; // grey: RoPE removed with no recalibration
}

/// What naming and colouring a series needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesFacts {
    /// The series' URL form (`rope:yarn:dyn`): its identity.
    pub key: String,
    /// The model's id (`drope`, `local-smollm`).
    pub model_id: String,
    /// The model's label (`DroPE`).
    pub model_label: String,
    /// The scheme the model was trained with, when known.
    pub trained: Option<SchemeSpec>,
    /// The scheme asked for (`None`: as trained).
    pub scheme: Option<SchemeSpec>,
}

impl SeriesFacts {
    /// The facts of `spec`, its model described by `entry` when the manifest lists it.
    pub fn of(spec: &SeriesSpec, entry: Option<&ModelEntry>) -> SeriesFacts {
        SeriesFacts {
            key: spec.to_string(),
            model_id: spec.model.clone(),
            model_label: entry.map_or_else(|| spec.model.clone(), |e| e.label.clone()),
            trained: entry.and_then(ModelEntry::trained_scheme),
            scheme: spec.scheme,
        }
    }
}

fn scale_phrase(scale: ScaleFactor) -> Option<String> {
    match scale {
        ScaleFactor::Dynamic => Some("dynamic".to_string()),
        ScaleFactor::Fixed(s) if s != 1.0 => Some(format!("s = {s}")),
        ScaleFactor::Fixed(_) => None,
    }
}

fn beta_phrase(beta: LogitScale) -> Option<String> {
    match beta {
        LogitScale::Off => None,
        LogitScale::Fitted => Some("beta fitted".to_string()),
        LogitScale::PerHead => Some("beta per head".to_string()),
        LogitScale::Coefficient(c) => Some(format!("beta c = {c}")),
    }
}

impl SeriesFacts {
    fn trained_rotary(&self) -> Option<bool> {
        self.trained
            .map(|t| !matches!(t.position, PositionScheme::None))
    }

    /// A name a reader understands without the scheme syntax: "RoPE + YaRN (dynamic)",
    /// "DroPE, beta fitted (dynamic)", "RoPE, dropped without recalibration".
    pub fn name(&self) -> String {
        let label = &self.model_label;
        let scheme = match self.scheme {
            Some(s) if Some(s) != self.trained => s,
            _ => return label.clone(),
        };
        let method = match scheme.position {
            PositionScheme::Rope => Some(" + RoPE"),
            PositionScheme::Pi => Some(" + PI"),
            PositionScheme::Ntk => Some(" + NTK"),
            PositionScheme::Yarn { .. } => Some(" + YaRN"),
            PositionScheme::YarnRamp { .. } => Some(" + YaRN, continuous ramp"),
            // A model trained without positions runs as it was; a RoPE model loses them.
            PositionScheme::None if self.trained_rotary() == Some(false) => None,
            PositionScheme::None => Some(", dropped without recalibration"),
        };
        let mut name = label.clone();
        // Plain RoPE on a RoPE model with only a logit scale added: no method to name.
        if !(scheme.position == PositionScheme::Rope && self.trained_rotary() == Some(true)) {
            name += method.unwrap_or("");
        }
        if let Some(beta) = beta_phrase(scheme.logit_scale) {
            name += ", ";
            name += &beta;
        }
        // Without a logit scale, s changes nothing for a scheme that does not rotate.
        let scale_matters =
            scheme.position != PositionScheme::None || scheme.logit_scale != LogitScale::Off;
        if let Some(scale) = scale_phrase(scheme.scale).filter(|_| scale_matters) {
            name += &format!(" ({scale})");
        }
        name
    }

    /// The colour this kind of series asks for (an index into [`SERIES_COLOURS`]).
    fn preferred_colour(&self) -> usize {
        let position = self
            .scheme
            .or(self.trained)
            .map_or(PositionScheme::Rope, |s| s.position);
        match position {
            PositionScheme::Yarn { .. } | PositionScheme::YarnRamp { .. } => colour::YARN,
            PositionScheme::Ntk => colour::NTK,
            PositionScheme::Pi => colour::PI,
            PositionScheme::Rope => colour::ROPE,
            PositionScheme::None if self.trained_rotary() != Some(false) => colour::DROPPED,
            // The shipped model trained without positions from the start.
            PositionScheme::None if self.model_id == "nope" => colour::NOPE,
            PositionScheme::None => colour::NO_POSITIONS,
        }
    }
}

/// Each series' colour, in the order given. It depends on the set of series only, never
/// on their order: each asks for its kind's colour ([`SeriesFacts`]), and where two ask
/// for the same, the one whose key sorts first keeps it and the other takes the next free
/// colour. So changing the focus (the order) recolours nothing.
pub fn series_colours(series: &[SeriesFacts]) -> Vec<&'static str> {
    let mut by_key: Vec<usize> = (0..series.len()).collect();
    by_key.sort_by(|&a, &b| series[a].key.cmp(&series[b].key));
    let mut taken = [false; SERIES_COLOURS.len()];
    let mut chosen = vec![0; series.len()];
    for i in by_key {
        let preferred = series[i].preferred_colour();
        let free = (0..SERIES_COLOURS.len())
            .map(|k| (preferred + k) % SERIES_COLOURS.len())
            .find(|&c| !taken[c])
            // More series than colours: share (the studio compares at most 8).
            .unwrap_or(preferred);
        taken[free] = true;
        chosen[i] = free;
    }
    chosen.into_iter().map(|c| SERIES_COLOURS[c]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(model: &str, label: &str, trained: &str, scheme: Option<&str>) -> SeriesFacts {
        SeriesFacts {
            key: match scheme {
                Some(s) => format!("{model}:{s}"),
                None => model.to_string(),
            },
            model_id: model.to_string(),
            model_label: label.to_string(),
            trained: Some(trained.parse().unwrap()),
            scheme: scheme.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn names_say_the_method_and_the_scale_in_words() {
        let rope = |s| facts("rope", "RoPE", "rope", s).name();
        let drope = |s| facts("drope", "DroPE", "none", s).name();
        assert_eq!(rope(None), "RoPE");
        assert_eq!(rope(Some("rope")), "RoPE");
        assert_eq!(rope(Some("yarn:dyn")), "RoPE + YaRN (dynamic)");
        assert_eq!(rope(Some("pi:4")), "RoPE + PI (s = 4)");
        assert_eq!(rope(Some("ntk:8")), "RoPE + NTK (s = 8)");
        assert_eq!(
            rope(Some("yarn-ramp:8")),
            "RoPE + YaRN, continuous ramp (s = 8)"
        );
        assert_eq!(rope(Some("none")), "RoPE, dropped without recalibration");
        assert_eq!(drope(None), "DroPE");
        assert_eq!(drope(Some("none")), "DroPE");
        assert_eq!(drope(Some("none:8")), "DroPE");
        assert_eq!(drope(Some("none:dyn+beta")), "DroPE, beta fitted (dynamic)");
        assert_eq!(
            drope(Some("none:dyn+beta=heads")),
            "DroPE, beta per head (dynamic)"
        );
        assert_eq!(
            drope(Some("none:4+beta=0.3")),
            "DroPE, beta c = 0.3 (s = 4)"
        );
        // A model whose training scheme the manifest does not give: say what runs.
        let unknown = SeriesFacts {
            trained: None,
            ..facts("mine", "Mine", "rope", Some("none"))
        };
        assert_eq!(unknown.name(), "Mine, dropped without recalibration");
    }

    #[test]
    fn a_series_keeps_its_colour_whatever_the_order() {
        let series = vec![
            facts("rope", "RoPE", "rope", None),
            facts("rope", "RoPE", "rope", Some("yarn:dyn")),
            facts("drope", "DroPE", "none", Some("none:dyn+beta")),
            facts("nope", "NoPE", "none", None),
        ];
        let colours = series_colours(&series);
        assert_eq!(
            colours,
            vec![
                SERIES_COLOURS[colour::ROPE],
                SERIES_COLOURS[colour::YARN],
                SERIES_COLOURS[colour::NO_POSITIONS],
                SERIES_COLOURS[colour::NOPE],
            ]
        );
        // Every rotation of the list (a new focus) keeps each series' colour.
        for shift in 1..series.len() {
            let mut moved = series.clone();
            moved.rotate_left(shift);
            let again = series_colours(&moved);
            for (i, s) in moved.iter().enumerate() {
                let before = series.iter().position(|x| x.key == s.key).unwrap();
                assert_eq!(
                    again[i], colours[before],
                    "{} after a shift of {shift}",
                    s.key
                );
            }
        }
    }

    #[test]
    fn series_of_one_kind_get_distinct_colours() {
        let series = vec![
            facts("drope", "DroPE", "none", Some("none:dyn+beta=heads")),
            facts("drope", "DroPE", "none", None),
            facts("drope", "DroPE", "none", Some("none:dyn+beta")),
            facts("rope", "RoPE", "rope", Some("none")),
        ];
        let colours = series_colours(&series);
        let mut unique = colours.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 4, "{colours:?}");
        // The key that sorts first keeps the kind's colour: `drope`.
        assert_eq!(colours[1], SERIES_COLOURS[colour::NO_POSITIONS]);
        assert_eq!(colours[3], SERIES_COLOURS[colour::DROPPED]);
    }
}
