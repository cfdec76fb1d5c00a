//! The studio's views. Each takes signals as props (no global state), so it can be
//! mounted on its own: in a component test, or embedded in another page.

pub mod attention_heatmap;
pub mod chart_math;
pub mod export_buttons;
pub mod frequency_explorer;
pub mod head_grid;
pub mod legend;
pub mod needle_live;
pub mod needle_results;
pub mod notice;
pub mod perplexity_chart;
pub mod probe_story;
pub mod token_strip;
pub mod training_story;

pub use attention_heatmap::{AttentionHeatmap, HeatScale};
pub use export_buttons::ExportButtons;
pub use frequency_explorer::FrequencyExplorer;
pub use head_grid::HeadGrid;
pub use legend::ColourLegend;
pub use needle_live::NeedleLive;
pub use needle_results::NeedleResults;
pub use notice::{ErrorLine, Notice};
pub use perplexity_chart::{ChartSeries, PerplexityChart};
pub use probe_story::ProbeStory;
pub use token_strip::TokenStrip;
pub use training_story::{StoryAxis, TrainingStory};

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
