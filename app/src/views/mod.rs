//! The studio's views. Each takes signals as props (no global state), so it can be
//! mounted on its own: in a component test, or embedded in another page.

pub mod attention_heatmap;
pub mod legend;
pub mod nll_chart;
pub mod token_strip;

pub use attention_heatmap::{AttentionHeatmap, HeatScale};
pub use legend::ColourLegend;
pub use nll_chart::NllChart;
pub use token_strip::TokenStrip;

use crate::analysis::TokenStat;
use crate::format::{percent, quoted};

/// The hover text of a token, shared by the token strip and the chart: position,
/// text, NLL, rank and what the model expected there.
pub fn token_tooltip(token: &TokenStat) -> String {
    let mut text = if token.text.is_empty() {
        format!(
            "#{} (first bytes of a character that a later token completes)\n",
            token.position
        )
    } else {
        format!("#{} {}\n", token.position, quoted(&token.text))
    };
    match (token.nll, token.rank) {
        (Some(nll), rank) => {
            text += &format!("NLL {nll:.2} nats");
            if let Some(rank) = rank {
                text += &format!(" (rank {} of the model's guesses)", rank + 1);
            }
        }
        (None, _) => {
            text += "first token: no context, so no NLL \
                     (the chart plots ln V, the cost of a uniform guess)";
        }
    }
    if !token.expected.is_empty() {
        text += "\nthe model expected:";
        for guess in &token.expected {
            text += &format!(
                "\n  {}  {}",
                quoted(&guess.text),
                percent(guess.probability)
            );
        }
    }
    text
}
