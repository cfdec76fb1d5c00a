//! Running a prompt and turning the engine's [`Trace`](engine::Trace) into the plain
//! data the views draw. The views depend only on these types, so each can be mounted
//! with synthetic data.

use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;

use engine::{
    Backend, Capture, DeviceKind, EngineError, Prediction, SchemeSpec, Session, SessionOptions,
    TextTokenizer, Trace,
};

use crate::backend::{StudioBackend, StudioCache};
use crate::error::AppError;
use crate::model_store::{attention_rows, token_cap, LoadedModel, ATTENTION_BUDGET_BYTES};

/// A candidate token with the probability the model gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Guess {
    /// The token decoded on its own.
    pub text: String,
    /// Its probability.
    pub probability: f32,
}

/// One token of the prompt, as the token strip and the NLL chart show it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenStat {
    /// Sequence index.
    pub position: usize,
    /// Vocabulary id.
    pub id: u32,
    /// The text this token completes (see [`display_texts`]); empty for a token holding
    /// only the first bytes of a multi-byte character.
    pub text: String,
    /// `-ln p(token | earlier tokens)` in nats; `None` for the first token.
    pub nll: Option<f32>,
    /// Rank of the token among the model's predictions (0 = its top guess).
    pub rank: Option<u32>,
    /// What the model predicted at this position before seeing the token (top k).
    pub expected: Vec<Guess>,
}

/// A causal attention map of one head: `len x len`, row = query, column = key; the
/// upper triangle (future keys) is zero.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionMap {
    /// Number of tokens `T`.
    pub len: usize,
    /// Row-major weights, `T * T` values.
    pub weights: Arc<[f32]>,
}

impl AttentionMap {
    /// Builds the map from causal rows: row `q` holds the weights on keys `0..=q`
    /// (extra values are ignored, missing ones stay zero).
    pub fn from_rows<'a>(rows: impl ExactSizeIterator<Item = &'a [f32]>) -> AttentionMap {
        let len = rows.len();
        let mut weights = vec![0.0; len * len];
        for (q, row) in rows.enumerate() {
            let n = row.len().min(q + 1);
            weights[q * len..q * len + n].copy_from_slice(&row[..n]);
        }
        AttentionMap {
            len,
            weights: weights.into(),
        }
    }

    /// The weight query `q` puts on key `k`.
    pub fn weight(&self, q: usize, k: usize) -> f32 {
        if q < self.len && k < self.len {
            self.weights[q * self.len + k]
        } else {
            0.0
        }
    }
}

/// Everything one run of a prompt produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// The model's name, as the series list shows it.
    pub model: String,
    /// The scheme the run used.
    pub scheme: SchemeSpec,
    /// The model's training length `L`.
    pub training_length: usize,
    /// Vocabulary size `V` (a uniform guess costs `ln V` nats).
    pub vocab_size: usize,
    /// Number of layers.
    pub layers: usize,
    /// Query heads per layer.
    pub heads: usize,
    /// One entry per prompt token.
    pub tokens: Vec<TokenStat>,
    /// The model's top guesses for the token after the prompt.
    pub next: Vec<Guess>,
    /// Attention rows, index `layer * heads + head`, then query position (row `q` holds
    /// the weights on keys `0..=q`). Empty when the run did not record attention; at
    /// most [`Self::attention_rows`] rows each.
    pub attention: Vec<Vec<Arc<[f32]>>>,
    /// How many of the first positions record their rows ([`attention_rows`]).
    pub attention_rows: usize,
    /// Wall time of the forward pass, in milliseconds.
    pub elapsed_ms: f64,
    /// The kind of device that ran it.
    pub backend: DeviceKind,
}

impl RunResult {
    /// The attention map of one head.
    pub fn attention_map(&self, layer: usize, head: usize) -> Option<AttentionMap> {
        if layer < self.layers && head < self.heads {
            let rows = self.attention.get(layer * self.heads + head)?;
            Some(AttentionMap::from_rows(rows.iter().map(|r| &r[..])))
        } else {
            None
        }
    }

    /// `ln V`: the NLL of a uniform guess over the vocabulary.
    pub fn uniform_nll(&self) -> f32 {
        uniform_nll(self.vocab_size)
    }

    /// What the attention tab says when the run went past the positions that record
    /// attention rows; `None` while every position's are recorded.
    pub fn attention_note(&self) -> Option<String> {
        let (rows, tokens) = (self.attention_rows, self.tokens.len());
        (tokens > rows).then(|| {
            format!(
                "Attention is recorded for the first {rows} of the {tokens} tokens: every \
                 head's map ({} layers x {} heads) over more would take over {} MB. The \
                 other views cover all {tokens} tokens.",
                self.layers,
                self.heads,
                ATTENTION_BUDGET_BYTES >> 20
            )
        })
    }
}

/// A picked (layer, head) that the model's (layers, heads) does not have, set back to
/// 0 where it is out of range, with what was out of range; `None` when it fits (or the
/// shape is not known yet, (0, 0)). A URL can ask for any head, and the focus can
/// change to a smaller model.
pub fn head_in_shape(
    (layer, head): (usize, usize),
    (layers, heads): (usize, usize),
) -> Option<((usize, usize), String)> {
    if layers == 0 || heads == 0 || (layer < layers && head < heads) {
        return None;
    }
    let mut out_of_range = Vec::new();
    if layer >= layers {
        out_of_range.push(format!(
            "layer {layer} (the model has layers 0-{}; showing 0)",
            layers - 1
        ));
    }
    if head >= heads {
        out_of_range.push(format!(
            "head {head} (the model has heads 0-{}; showing 0)",
            heads - 1
        ));
    }
    let fixed = (
        if layer < layers { layer } else { 0 },
        if head < heads { head } else { 0 },
    );
    Some((fixed, out_of_range.join(", ")))
}

/// `ln V`: the NLL of a uniform guess over a vocabulary of `vocab_size` tokens.
pub fn uniform_nll(vocab_size: usize) -> f32 {
    (vocab_size.max(1) as f32).ln()
}

/// Mean NLL of the tokens at `positions` that have one, with their count.
pub fn mean_nll(tokens: &[TokenStat], positions: Range<usize>) -> Option<(f32, usize)> {
    let values: Vec<f32> = tokens
        .iter()
        .filter(|t| positions.contains(&t.position))
        .filter_map(|t| t.nll)
        .collect();
    (!values.is_empty()).then(|| {
        (
            values.iter().sum::<f32>() / values.len() as f32,
            values.len(),
        )
    })
}

/// The most tokens [`display_texts`] lets wait for the rest of a character: a UTF-8
/// character is at most 4 bytes, and a byte-level token holds at least one, so only
/// tokens that straddle characters chain further.
pub const MAX_PENDING_TOKENS: usize = 8;

/// The text each token contributes, for display. Byte-level BPE can split one
/// character over several tokens, and the tokenizer's offsets then give each of them the
/// whole character (an emoji over four tokens would show four times). Decoding
/// incrementally instead gives each character to the token that completes its UTF-8
/// bytes; the tokens before it get empty text. (A token that both completes a character
/// and starts another waits with it: the texts still concatenate to the prompt.)
/// A U+FFFD in the text itself looks like an incomplete character, so at most
/// [`MAX_PENDING_TOKENS`] wait: a run of them would otherwise make the decoding
/// quadratic (its texts then no longer concatenate to the prompt, and the caller falls
/// back to the offsets' text).
pub fn display_texts(tokenizer: &TextTokenizer, ids: &[u32]) -> Result<Vec<String>, EngineError> {
    let mut texts = Vec::with_capacity(ids.len());
    let mut pending = 0; // first token whose bytes are not yet shown
    for i in 0..ids.len() {
        let text = tokenizer.decode(&ids[pending..=i])?;
        // Lossy decoding ends in U+FFFD while a character is incomplete.
        let waiting = i + 1 - pending;
        if text.ends_with('\u{FFFD}') && i + 1 < ids.len() && waiting < MAX_PENDING_TOKENS {
            texts.push(String::new());
        } else {
            texts.push(text);
            pending = i + 1;
        }
    }
    Ok(texts)
}

fn guesses(tokenizer: &TextTokenizer, predictions: &[Prediction]) -> Vec<Guess> {
    predictions
        .iter()
        .map(|p| Guess {
            text: tokenizer.token_text(p.token),
            probability: p.probability,
        })
        .collect()
}

/// A prompt tokenized once for every series that runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedPrompt {
    /// Token ids.
    pub ids: Vec<u32>,
    /// The text each token shows (see [`display_texts`]).
    pub texts: Vec<String>,
    /// Tokens in the whole text, before `length` or the cap cut it.
    pub full_len: usize,
    /// When the length asked for was over the model's cap: what the page says (the run
    /// goes on at the cap).
    pub capped: Option<String>,
}

/// Tokenizes `prompt` with `model`'s tokenizer and keeps the first `length` tokens (when
/// `None`: all of them), up to the model's cap ([`token_cap`]); a length over the cap
/// runs to the cap, with a note saying why ([`PreparedPrompt::capped`]). An empty prompt
/// is refused with a message saying what to do.
pub fn prepare_prompt(
    model: &LoadedModel,
    prompt: &str,
    length: Option<usize>,
) -> Result<PreparedPrompt, AppError> {
    if prompt.trim().is_empty() {
        return Err(AppError::Input(
            "The prompt is empty: choose a sample or type some text, then press Run.".into(),
        ));
    }
    let pieces = model.tokenizer.encode(prompt)?;
    if pieces.is_empty() {
        return Err(AppError::Input(
            "The prompt produced no tokens: type some text, then press Run.".into(),
        ));
    }
    let cap = token_cap(model.config());
    let max_tokens = cap.tokens;
    // A model trained with a beginning-of-sequence token sees it first here too; it
    // counts as a token of the prompt (position 0, as in every training window), and
    // the strip shows it, so its attention (often a sink) is visible.
    let bos = model.config().bos_token_id;
    let full_len = pieces.len() + bos.is_some() as usize;
    // Without a length, a long prompt runs its first `max_tokens` (the page says so);
    // a length asked for explicitly must fit.
    let capped = length.filter(|&n| n > max_tokens).map(|n| {
        format!(
            "A length of {n} tokens is over the cap of {max_tokens} for {} ({}): it runs \
             the first {}.",
            model.entry.label,
            cap.reason,
            max_tokens.min(full_len)
        )
    });
    let wanted = match length {
        None => full_len.min(max_tokens),
        Some(n) => n.min(max_tokens).min(full_len),
    };
    let ids: Vec<u32> = pieces.iter().map(|p| p.id).collect();
    // Fall back to the offsets' text if a tokenizer's decoder does not round-trip the
    // prompt (a normalizer, or a decoder that strips spaces).
    let texts = match display_texts(&model.tokenizer, &ids) {
        Ok(texts) if texts.concat() == prompt => texts,
        _ => pieces.iter().map(|p| p.text.clone()).collect(),
    };
    let bos_text = bos.map(|id| model.tokenizer.token_text(id));
    Ok(PreparedPrompt {
        ids: model.config().with_bos(&ids)[..wanted].to_vec(),
        texts: bos_text.into_iter().chain(texts).take(wanted).collect(),
        full_len,
        capped,
    })
}

/// A prompt being run through one model under one scheme, a chunk at a time: the
/// session's KV cache makes each chunk cost its own tokens times the length so far, so
/// the studio can grow a prompt token by token and redraw after every step.
pub struct LiveRun {
    model: Rc<LoadedModel>,
    /// `None` while a [`Pass`] holds it.
    session: Option<Session<StudioBackend>>,
    /// See [`LiveRun::worker`].
    worker: Option<usize>,
    result: RunResult,
    /// The model's guesses after the last token run: the next token's "expected".
    last_guesses: Vec<Guess>,
}

impl LiveRun {
    /// Starts an empty run of `model` under `scheme`, recording every head's attention
    /// (any series can become the focus, or its partner, without running again).
    pub fn start(model: Rc<LoadedModel>, scheme: SchemeSpec) -> Result<LiveRun, AppError> {
        let config = model.config();
        let (layers, heads) = (config.num_hidden_layers, config.num_attention_heads);
        let l = model.training_length();
        let mut options = SessionOptions::new(scheme, l);
        options.max_tokens = model.max_tokens();
        let recorded_rows = attention_rows(config);
        options.attention_rows = recorded_rows;
        options.capture = Capture {
            heads: (0..layers)
                .flat_map(|layer| (0..heads).map(move |head| (layer, head)))
                .collect(),
            span: None,
        };
        let session = Session::new(Arc::clone(&model.backend), options)?;
        let result = RunResult {
            model: model.entry.label.clone(),
            scheme,
            training_length: l,
            vocab_size: config.vocab_size,
            layers,
            heads,
            tokens: Vec::new(),
            next: Vec::new(),
            attention: vec![Vec::new(); layers * heads],
            attention_rows: recorded_rows,
            elapsed_ms: 0.0,
            backend: model.backend.kind(),
        };
        Ok(LiveRun {
            model,
            worker: match session.cache() {
                StudioCache::Worker(cache) => Some(cache.worker_index()),
                StudioCache::Gpu(_) => None,
            },
            session: Some(session),
            result,
            last_guesses: Vec::new(),
        })
    }

    /// Which CPU worker holds the run's session (`None` on WebGPU). A session that
    /// moves after its worker failed to start still reports where it was placed.
    pub fn worker(&self) -> Option<usize> {
        self.worker
    }

    /// The model this run uses.
    pub fn model(&self) -> &Rc<LoadedModel> {
        &self.model
    }

    /// Tokens run so far.
    pub fn len(&self) -> usize {
        self.result.tokens.len()
    }

    /// Whether no token has run yet.
    pub fn is_empty(&self) -> bool {
        self.result.tokens.is_empty()
    }

    /// What the run has produced so far.
    pub fn result(&self) -> &RunResult {
        &self.result
    }

    /// Runs the prompt's tokens from where the run stands up to `upto` (exclusive).
    pub async fn advance(&mut self, prompt: &PreparedPrompt, upto: usize) -> Result<(), AppError> {
        match self.begin(prompt, upto) {
            Some(pass) => {
                let ran = pass.run().await;
                self.finish(prompt, ran)
            }
            None => Ok(()),
        }
    }

    /// Takes the session out for a pass over the prompt's tokens from where the run
    /// stands up to `upto`, so that several runs can compute at once (each in its own
    /// worker) while the page draws the ones that landed; `None` when there is nothing
    /// to run (or a pass is already out).
    pub fn begin(&mut self, prompt: &PreparedPrompt, upto: usize) -> Option<Pass> {
        let (from, upto) = (self.len(), upto.min(prompt.ids.len()));
        if from >= upto {
            return None;
        }
        Some(Pass {
            session: self.session.take()?,
            tokens: prompt.ids[from..upto].to_vec(),
            from,
        })
    }

    /// Puts a pass' session back and records what it computed.
    pub fn finish(&mut self, prompt: &PreparedPrompt, ran: Ran) -> Result<(), AppError> {
        let Ran {
            pass: Pass { session, from, .. },
            outcome,
            elapsed_ms,
        } = ran;
        self.session = Some(session);
        let trace = match outcome {
            Ok(trace) => trace,
            Err(e) => {
                // The session starts over after a failure: so does the run.
                self.result.tokens.clear();
                self.result.attention.iter_mut().for_each(Vec::clear);
                self.last_guesses.clear();
                return Err(e.into());
            }
        };
        self.result.elapsed_ms += elapsed_ms;
        let upto = from + trace.positions.len();
        let tokenizer = &self.model.tokenizer;
        for (p, text) in trace.positions.iter().zip(&prompt.texts[from..upto]) {
            let guesses = guesses(tokenizer, &p.predictions);
            self.result.tokens.push(TokenStat {
                position: p.position,
                id: p.token,
                text: text.clone(),
                nll: p.nll,
                rank: p.rank,
                expected: std::mem::replace(&mut self.last_guesses, guesses),
            });
            // Each row by the (layer, head) it carries, not by its place in the capture.
            let heads = self.result.heads;
            for row in &p.attention {
                if let Some(rows) = self.result.attention.get_mut(row.layer * heads + row.head) {
                    rows.push(Arc::from(&row.probs[..]));
                }
            }
        }
        self.result.next = self.last_guesses.clone();
        Ok(())
    }
}

/// One run's forward pass in flight ([`LiveRun::begin`]): it owns the run's session
/// while it computes, and goes back, run, as a [`Ran`] to [`LiveRun::finish`].
pub struct Pass {
    session: Session<StudioBackend>,
    tokens: Vec<u32>,
    from: usize,
}

/// A [`Pass`] that has run: what it computed (or why not) and how long it took.
pub struct Ran {
    pass: Pass,
    outcome: Result<Trace, EngineError>,
    elapsed_ms: f64,
}

impl Pass {
    /// Runs the pass.
    pub async fn run(mut self) -> Ran {
        let started = js_sys::Date::now();
        let outcome = self.session.extend(&self.tokens).await;
        Ran {
            elapsed_ms: js_sys::Date::now() - started,
            pass: self,
            outcome,
        }
    }
}

/// Tokenizes `prompt`, runs all of it through `model` under `scheme` in one pass
/// (recording every head's attention, so switching the layer/head view needs no rerun),
/// and collects the result. Async because a backend's forward pass is (a GPU answers
/// later, and the page stays responsive meanwhile); on the CPU backend the future
/// completes without yielding.
pub async fn analyse(
    model: &Rc<LoadedModel>,
    prompt: &str,
    scheme: SchemeSpec,
) -> Result<RunResult, AppError> {
    let prepared = prepare_prompt(model, prompt, None)?;
    let mut run = LiveRun::start(Rc::clone(model), scheme)?;
    run.advance(&prepared, prepared.ids.len()).await?;
    Ok(run.result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_map_from_causal_rows() {
        let rows: Vec<Vec<f32>> = vec![vec![1.0], vec![0.25, 0.75], vec![0.1, 0.2, 0.7]];
        let map = AttentionMap::from_rows(rows.iter().map(|r| &r[..]));
        assert_eq!(map.len, 3);
        assert_eq!(map.weight(1, 1), 0.75);
        assert_eq!(map.weight(0, 2), 0.0);
        assert_eq!(map.weight(9, 0), 0.0);
        assert_eq!(&map.weights[6..9], &[0.1, 0.2, 0.7]);
    }

    #[test]
    fn the_attention_note_says_how_far_rows_were_recorded() {
        let token = |position| TokenStat {
            position,
            id: 0,
            text: String::new(),
            nll: None,
            rank: None,
            expected: Vec::new(),
        };
        let mut result = RunResult {
            model: "smol".into(),
            scheme: "rope".parse().unwrap(),
            training_length: 2048,
            vocab_size: 49152,
            layers: 30,
            heads: 9,
            tokens: (0..700).map(token).collect(),
            next: Vec::new(),
            attention: Vec::new(),
            attention_rows: 700,
            elapsed_ms: 0.0,
            backend: DeviceKind::Cpu,
        };
        assert_eq!(result.attention_note(), None);
        result.tokens.push(token(700));
        let note = result.attention_note().unwrap();
        assert!(
            note.starts_with("Attention is recorded for the first 700 of the 701 tokens"),
            "{note}"
        );
        assert!(note.contains("(30 layers x 9 heads)"), "{note}");
        assert!(note.contains("over 256 MB"), "{note}");
    }

    /// A byte-level BPE tokenizer with the 256 byte symbols of GPT-2 and no merges, so
    /// every UTF-8 byte is one token.
    fn byte_tokenizer() -> TextTokenizer {
        let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
            .chain(0xA1..=0xAC)
            .chain(0xAE..=0xFF)
            .collect();
        let mut symbols: Vec<u32> = printable.clone();
        let mut extra = 0;
        for b in 0..256u32 {
            if !printable.contains(&b) {
                printable.push(b);
                symbols.push(256 + extra);
                extra += 1;
            }
        }
        let vocab: serde_json::Map<String, serde_json::Value> = printable
            .iter()
            .zip(&symbols)
            .map(|(&byte, &symbol)| (char::from_u32(symbol).unwrap().to_string(), byte.into()))
            .collect();
        let byte_level = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false,
            "trim_offsets": true, "use_regex": true});
        let json = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": byte_level, "post_processor": null,
            "decoder": byte_level,
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                "continuing_subword_prefix": null, "end_of_word_suffix": null,
                "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": []}
        });
        TextTokenizer::from_json(json.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn heads_past_the_model_go_back_to_zero() {
        assert_eq!(head_in_shape((3, 5), (4, 6)), None);
        assert_eq!(head_in_shape((9, 99), (0, 0)), None, "shape not known yet");
        let (fixed, why) = head_in_shape((3, 5), (2, 6)).unwrap();
        assert_eq!(fixed, (0, 5));
        assert_eq!(why, "layer 3 (the model has layers 0-1; showing 0)");
        let (fixed, why) = head_in_shape((9, 99), (4, 6)).unwrap();
        assert_eq!(fixed, (0, 0));
        assert!(why.contains("layer 9") && why.contains("head 99 (the model has heads 0-5;"));
    }

    /// A U+FFFD typed in the prompt never completes: the decoding must not wait for it
    /// forever (each token would decode every token since the first).
    #[test]
    fn replacement_characters_in_the_text_do_not_wait_forever() {
        let tokenizer = byte_tokenizer();
        let prompt = "\u{FFFD}".repeat(50);
        let ids: Vec<u32> = tokenizer
            .encode(&prompt)
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids.len(), 150);
        let texts = display_texts(&tokenizer, &ids).unwrap();
        assert_eq!(texts.len(), ids.len());
        for (i, window) in texts.windows(MAX_PENDING_TOKENS).enumerate() {
            assert!(
                window.iter().any(|t| !t.is_empty()),
                "tokens {i}.. all wait: {window:?}"
            );
        }
    }

    #[test]
    fn multi_byte_characters_show_once() {
        let tokenizer = byte_tokenizer();
        let prompt = "a\u{1F600} \u{5E9}\u{5DC}b";
        let ids: Vec<u32> = tokenizer
            .encode(prompt)
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids.len(), 1 + 4 + 1 + 2 + 2 + 1);
        let texts = display_texts(&tokenizer, &ids).unwrap();
        assert_eq!(texts.concat(), prompt);
        assert_eq!(texts[..6], ["a", "", "", "", "\u{1F600}", " "]);
        assert_eq!(texts[6..], ["", "\u{5E9}", "", "\u{5DC}", "b"]);
    }

    #[test]
    fn mean_nll_skips_the_first_token() {
        let tokens: Vec<TokenStat> = [None, Some(2.0), Some(4.0)]
            .into_iter()
            .enumerate()
            .map(|(position, nll)| TokenStat {
                position,
                id: 0,
                text: "a".into(),
                nll,
                rank: None,
                expected: vec![],
            })
            .collect();
        assert_eq!(mean_nll(&tokens, 0..3), Some((3.0, 2)));
        assert_eq!(mean_nll(&tokens, 0..1), None);
        assert!((uniform_nll(256) - 5.545).abs() < 1e-3);
    }
}
