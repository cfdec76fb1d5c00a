//! The sentence above the chart: what this run shows, computed from its own numbers, so
//! that it stays true for whatever models are shipped and whatever prompt is run. It
//! compares each series' perplexity beyond L with its own inside L (a model that reads
//! past its training length keeps the two close) and names the best series there.

use crate::views::perplexity_chart::{report_windows, window_mean};
use crate::views::ChartSeries;

/// One series' perplexity inside L and in the furthest window reached.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesFinding {
    /// Legend name.
    pub label: String,
    /// Perplexity over 0-L.
    pub inside: f32,
    /// Perplexity over the furthest window.
    pub beyond: f32,
}

impl SeriesFinding {
    /// Beyond over inside: above 1, the series got worse past L.
    pub fn ratio(&self) -> f32 {
        self.beyond / self.inside
    }
}

/// What the run says: the furthest window past L that every series reached, and each
/// series there against its own 0-L.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The training length L.
    pub l: usize,
    /// The furthest window's name (`4L-8L`); `None` while no series is past L.
    pub window: Option<String>,
    /// Each series, in legend order (empty while no series is past L).
    pub series: Vec<SeriesFinding>,
}

/// Tokens a window needs before its perplexity counts: a handful of tokens past L says
/// little about a window of L or more.
fn enough(window_len: usize) -> usize {
    (window_len / 4).max(1)
}

/// The finding of `series` at training length `l`; `None` before any series has run.
pub fn finding(series: &[ChartSeries], l: usize) -> Option<Finding> {
    if l == 0 || series.iter().all(|s| s.nll.len() < 2) {
        return None;
    }
    let windows = report_windows(l);
    let inside = |s: &ChartSeries| window_mean(&s.nll, 0, l).map(|(m, _)| m.exp());
    // The furthest window past L where every series has enough tokens.
    let furthest = windows.iter().skip(1).rev().find(|(_, from, to)| {
        series
            .iter()
            .all(|s| window_mean(&s.nll, *from, *to).is_some_and(|(_, n)| n >= enough(to - from)))
    });
    let Some((name, from, to)) = furthest else {
        return Some(Finding {
            l,
            window: None,
            series: Vec::new(),
        });
    };
    let series = series
        .iter()
        .filter_map(|s| {
            Some(SeriesFinding {
                label: s.label.clone(),
                inside: inside(s)?,
                beyond: window_mean(&s.nll, *from, *to)?.0.exp(),
            })
        })
        .collect();
    Some(Finding {
        l,
        window: Some(name.clone()),
        series,
    })
}

impl Finding {
    /// The sentence: "At 4L-8L, past L = 128: RoPE's perplexity is 1.73x its own inside L
    /// (79.0 to 136.6); DroPE's 1.05x (95.0 to 99.8). Lowest there: DroPE (99.8)."
    pub fn sentence(&self) -> String {
        let Some(window) = &self.window else {
            return format!(
                "Every token so far is within L = {} tokens, the length the models were \
                 trained on, where they all do well: make the prompt longer than L to see them part.",
                self.l
            );
        };
        let parts: Vec<String> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let what = if i == 0 { "'s perplexity is" } else { "'s" };
                let ratio = s.ratio();
                let change = if ratio >= 1.0 {
                    format!("{ratio:.2}x")
                } else {
                    format!("{ratio:.2}x (lower)")
                };
                let own = if i == 0 { " its own inside L" } else { "" };
                format!(
                    "{}{what} {change}{own} ({:.1} to {:.1})",
                    s.label, s.inside, s.beyond
                )
            })
            .collect();
        let mut text = format!("At {window}, past L = {}: {}.", self.l, parts.join("; "));
        if let Some(best) = self
            .series
            .iter()
            .min_by(|a, b| a.beyond.total_cmp(&b.beyond))
            .filter(|_| self.series.len() > 1)
        {
            text += &format!(" Lowest there: {} ({:.1}).", best.label, best.beyond);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(label: &str, inside: f32, beyond: f32, len: usize, l: usize) -> ChartSeries {
        ChartSeries {
            key: label.to_lowercase(),
            label: label.to_string(),
            colour: "#000000",
            nll: (0..len)
                .map(|p| match p {
                    0 => None,
                    p if p < l => Some(inside.ln()),
                    _ => Some(beyond.ln()),
                })
                .collect(),
        }
    }

    #[test]
    fn compares_each_series_past_l_with_its_own_inside_l() {
        let l = 8;
        let series = [
            line("RoPE", 10.0, 40.0, 64, l),
            line("DroPE", 12.0, 13.2, 64, l),
        ];
        let f = finding(&series, l).unwrap();
        assert_eq!(f.window.as_deref(), Some("4L-8L"));
        assert!((f.series[0].ratio() - 4.0).abs() < 1e-3);
        assert!((f.series[1].ratio() - 1.1).abs() < 1e-3);
        assert_eq!(
            f.sentence(),
            "At 4L-8L, past L = 8: RoPE's perplexity is 4.00x its own inside L (10.0 to 40.0); \
             DroPE's 1.10x (12.0 to 13.2). Lowest there: DroPE (13.2)."
        );
    }

    #[test]
    fn the_window_is_the_furthest_every_series_reached_well() {
        let l = 8;
        // One series at 3L + 1 (a few tokens into 2L-4L, not enough), one at 8L.
        let series = [
            line("A", 10.0, 20.0, 3 * l + 1, l),
            line("B", 10.0, 5.0, 64, l),
        ];
        let f = finding(&series, l).unwrap();
        assert_eq!(
            f.window.as_deref(),
            Some("2L-4L"),
            "9 of 16 tokens is enough"
        );
        let short = [
            line("A", 10.0, 20.0, 2 * l + 2, l),
            line("B", 10.0, 5.0, 64, l),
        ];
        let f = finding(&short, l).unwrap();
        assert_eq!(f.window.as_deref(), Some("L-2L"), "2 of 16 tokens is not");
        assert!(
            f.sentence().contains("A's perplexity is 2.00x"),
            "{}",
            f.sentence()
        );
        // Better past L is said so.
        let better = [line("B", 10.0, 5.0, 64, l)];
        assert_eq!(
            finding(&better, l).unwrap().sentence(),
            "At 4L-8L, past L = 8: B's perplexity is 0.50x (lower) its own inside L (10.0 to 5.0)."
        );
    }

    #[test]
    fn within_l_it_says_what_to_do() {
        let l = 8;
        let f = finding(&[line("A", 10.0, 10.0, l, l)], l).unwrap();
        assert_eq!(f.window, None);
        assert!(f.sentence().contains("longer than L"), "{}", f.sentence());
        assert_eq!(finding(&[], l), None);
    }
}
