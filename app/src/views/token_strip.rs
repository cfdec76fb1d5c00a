//! The prompt's tokens coloured by surprise (NLL); hover shows NLL, rank and what the
//! model expected instead.

use leptos::prelude::*;

use crate::analysis::TokenStat;
use crate::colormap::YL_OR_RD;
use crate::export::csv_field;
use crate::views::{token_tooltip, ColourLegend, ExportButtons};

/// The text shown for a token: newlines get a visible mark (the line still breaks).
pub fn display_text(text: &str) -> String {
    text.replace('\n', "\u{21B5}\n")
}

/// One `span[data-testid="token"]` per token, background from NLL on a fixed scale
/// `0..=nll_max` (the page uses `ln V`, so colours compare across models), and a
/// divider before position `L`.
/// The tokens as CSV: position, text, NLL, rank and the model's top guess before it.
pub fn tokens_csv(tokens: &[TokenStat]) -> String {
    let mut out = String::from("position,text,nll,rank,expected,expected_probability\n");
    for t in tokens {
        let guess = t.expected.first();
        out += &format!(
            "{},{},{},{},{},{}\n",
            t.position,
            csv_field(&t.text),
            t.nll.map(|v| v.to_string()).unwrap_or_default(),
            t.rank.map(|r| (r + 1).to_string()).unwrap_or_default(),
            guess.map(|g| csv_field(&g.text)).unwrap_or_default(),
            guess.map(|g| g.probability.to_string()).unwrap_or_default()
        );
    }
    out
}

/// The tokens as JSON, with every guess the model made before each.
pub fn tokens_json(tokens: &[TokenStat]) -> String {
    serde_json::Value::Array(
        tokens
            .iter()
            .map(|t| {
                serde_json::json!({
                    "position": t.position, "id": t.id, "text": t.text, "nll": t.nll,
                    "rank": t.rank.map(|r| r + 1),
                    "expected": t.expected.iter().map(|g| serde_json::json!({"text": g.text, "probability": g.probability})).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
    .to_string()
}

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
                    // Custom properties (set through the CSSOM, which the CSP allows;
                    // a style attribute it would refuse), read by `.token` in style.css.
                    Some((background.hex(), background.text_colour().hex())),
                )
            }
            None if partial => ("token no-nll partial", None),
            None => ("token no-nll", None),
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
            <span data-testid="token" class=class data-token-id=token.id
                style:--token-background=style.as_ref().map(|s| s.0.clone())
                style:--token-ink=style.map(|s| s.1)
                title=tooltip data-nll=token.nll.map(|nll| nll.to_string())>
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
            <ExportButtons stem="drope-tokens"
                csv=Callback::new(move |()| tokens.with_untracked(|t| tokens_csv(t)))
                json=Callback::new(move |()| tokens.with_untracked(|t| tokens_json(t))) />
            <div class="token-strip" data-testid="token-strip">
                {move || {
                    let (max, l) = (nll_max.get(), training_length.get());
                    tokens.get().into_iter().map(|t| token_view(t, max, l)).collect_view()
                }}
            </div>
        </div>
    }
}
