//! The prompt's tokens coloured by surprise (NLL); hover shows NLL, rank and what the
//! model expected instead.

use leptos::prelude::*;

use crate::analysis::TokenStat;
use crate::colormap::YL_OR_RD;
use crate::views::{token_tooltip, ColourLegend};

/// The text shown for a token: newlines get a visible mark (the line still breaks).
pub fn display_text(text: &str) -> String {
    text.replace('\n', "\u{21B5}\n")
}

/// One `span[data-testid="token"]` per token, background from NLL on a fixed scale
/// `0..=nll_max` (the page uses `ln V`, so colours compare across models), and a
/// divider before position `L`.
#[component]
pub fn TokenStrip(
    /// The prompt's tokens.
    #[prop(into)]
    tokens: Signal<Vec<TokenStat>>,
    /// NLL that gets the darkest colour (larger values are clamped), in nats.
    #[prop(into)]
    nll_max: Signal<f32>,
    /// The training length `L`.
    #[prop(into)]
    training_length: Signal<usize>,
) -> impl IntoView {
    let token_view = move |token: TokenStat, nll_max: f32, l: usize| {
        let tooltip = token_tooltip(&token);
        // A token holding only the first bytes of a character has no text of its own
        // (see `analysis::display_texts`): it is drawn as a narrow block, still hoverable.
        let partial = token.text.is_empty();
        let (class, style) = match token.nll {
            Some(nll) => {
                let background = YL_OR_RD.at(nll / nll_max.max(f32::EPSILON));
                (
                    if partial { "token partial" } else { "token" },
                    format!(
                        "background: {}; color: {}",
                        background.hex(),
                        background.text_colour().hex()
                    ),
                )
            }
            None if partial => ("token no-nll partial", String::new()),
            None => ("token no-nll", String::new()),
        };
        let divider = (l > 0 && token.position == l).then(|| {
            view! {
                <span class="l-divider" title=format!("training length L = {l}: the model never saw positions from here on")>
                    "L"
                </span>
            }
        });
        view! {
            {divider}
            // `data-nll`: the exact value, for tests that compare backends.
            <span data-testid="token" class=class style=style title=tooltip data-nll=token.nll.map(|nll| nll.to_string())>
                {display_text(&token.text)}
            </span>
        }
    };
    view! {
        <div class="token-strip-view">
            <ColourLegend
                colormap=YL_OR_RD
                title="NLL (nats)"
                low="0"
                high=Signal::derive(move || format!("{:.1}+", nll_max.get()))
            />
            <div class="token-strip" data-testid="token-strip">
                {move || {
                    let (max, l) = (nll_max.get(), training_length.get());
                    tokens.get().into_iter().map(|t| token_view(t, max, l)).collect_view()
                }}
            </div>
        </div>
    }
}
