//! The studio's shareable state, kept in the page URL's query string: the view, the
//! model/scheme series compared, the prompt (a sample id or the text itself) and the
//! prompt length. Any figure can be shared by its URL, and an embed uses the same
//! parameters:
//!
//! ```text
//! ?view=perplexity&models=rope,rope:yarn:dyn,drope:none:dyn%2Bbeta&sample=austen-12&length=1024
//! ```
//!
//! Parsing never fails as a whole: a bad value is reported and that field keeps its
//! default, so a mistyped link still opens the studio and says what was wrong.

use std::fmt;

use engine::SchemeSpec;

/// The longest prompt text kept in the URL; longer prompts are not shareable by link
/// (browsers and servers cut URLs of a few tens of kilobytes).
pub const MAX_URL_PROMPT_CHARS: usize = 4000;

/// The prompt length the studio opens with: 4L of the shipped models, far enough past
/// L to show the break, short enough to run in a few seconds on a CPU.
pub const DEFAULT_LENGTH: usize = 512;

/// The most series one page compares (each is a model run per prompt).
pub const MAX_SERIES: usize = 8;

/// Where the models run, when the visitor (or the link) chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// WebGPU, even on a software adapter.
    WebGpu,
    /// The CPU path.
    Cpu,
}

impl BackendChoice {
    /// The URL value.
    pub fn key(self) -> &'static str {
        match self {
            BackendChoice::WebGpu => "webgpu",
            BackendChoice::Cpu => "cpu",
        }
    }

    fn parse(text: &str) -> Result<BackendChoice, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "webgpu" | "gpu" => Ok(BackendChoice::WebGpu),
            "cpu" => Ok(BackendChoice::Cpu),
            _ => Err(format!("backend `{text}` is not webgpu or cpu")),
        }
    }
}

/// Length multiples of L the live needle runner offers, and the ones ticked at first
/// (8x L takes seconds per trial on the CPU path).
pub const NEEDLE_MULTIPLES: [usize; 4] = [1, 2, 4, 8];
const FIRST_NEEDLE_MULTIPLES: [usize; 3] = [1, 2, 4];
/// Most trials per depth a live needle run may ask for.
pub const MAX_NEEDLE_TRIALS: usize = 20;

/// The live needle runner's settings, kept in the URL (`needle-lengths=1,8&needle-trials=5`)
/// when they differ from the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedleSettings {
    /// The ticked length multiples, ascending.
    pub lengths: Vec<usize>,
    /// Trials per depth.
    pub trials: usize,
}

impl Default for NeedleSettings {
    /// 1x, 2x and 4x L, one trial per depth.
    fn default() -> Self {
        NeedleSettings {
            lengths: FIRST_NEEDLE_MULTIPLES.to_vec(),
            trials: 1,
        }
    }
}

/// Parses a trials-per-depth count: a whole number from 1 to [`MAX_NEEDLE_TRIALS`].
pub fn parse_needle_trials(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_NEEDLE_TRIALS).contains(&n) => Ok(n),
        _ => Err(format!(
            "Trials per depth must be a whole number from 1 to {MAX_NEEDLE_TRIALS} (got {:?}).",
            text.trim()
        )),
    }
}

fn parse_needle_lengths(text: &str) -> Result<Vec<usize>, String> {
    let mut lengths = Vec::new();
    for item in text.split(',').filter(|s| !s.trim().is_empty()) {
        match item.trim().parse::<usize>() {
            Ok(m) if NEEDLE_MULTIPLES.contains(&m) => lengths.push(m),
            _ => {
                return Err(format!(
                    "needle length `{}` is not one of 1, 2, 4, 8 (multiples of L)",
                    item.trim()
                ))
            }
        }
    }
    lengths.sort_unstable();
    lengths.dedup();
    if lengths.is_empty() {
        return Err("`needle-lengths` names no length".to_string());
    }
    Ok(lengths)
}

/// Which view the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Perplexity against position, one line per series.
    Perplexity,
    /// Attention maps of the focused series.
    Attention,
    /// The prompt's tokens coloured by surprise.
    Tokens,
    /// Needle-in-a-haystack accuracy.
    Needle,
    /// Per-pair frequency scaling of PI, NTK and YaRN.
    Frequencies,
    /// Loss curves of the three training runs.
    Training,
}

impl View {
    /// Every view, in tab order.
    pub const ALL: [View; 6] = [
        View::Perplexity,
        View::Attention,
        View::Tokens,
        View::Needle,
        View::Frequencies,
        View::Training,
    ];

    /// The name in URLs.
    pub fn key(self) -> &'static str {
        match self {
            View::Perplexity => "perplexity",
            View::Attention => "attention",
            View::Tokens => "tokens",
            View::Needle => "needle",
            View::Frequencies => "frequencies",
            View::Training => "training",
        }
    }

    /// The tab's label.
    pub fn title(self) -> &'static str {
        match self {
            View::Perplexity => "Perplexity vs position",
            View::Attention => "Attention maps",
            View::Tokens => "Token surprise",
            View::Needle => "Needle in a haystack",
            View::Frequencies => "Frequency explorer",
            View::Training => "Training story",
        }
    }

    /// Whether the view draws model runs of the prompt (the others draw published data).
    pub fn runs_models(self) -> bool {
        matches!(self, View::Perplexity | View::Attention | View::Tokens)
    }

    fn parse(text: &str) -> Result<View, String> {
        View::ALL
            .into_iter()
            .find(|v| v.key() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = View::ALL.iter().map(|v| v.key()).collect();
                format!("unknown view `{text}` (views: {})", names.join(", "))
            })
    }
}

/// One line of the comparison: a model run under an inference-time position scheme.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSpec {
    /// Model id from `models/manifest.json`.
    pub model: String,
    /// The scheme; `None`: the one the model was trained with.
    pub scheme: Option<SchemeSpec>,
}

impl SeriesSpec {
    /// A series with the model's own scheme.
    pub fn model(id: &str) -> SeriesSpec {
        SeriesSpec {
            model: id.to_string(),
            scheme: None,
        }
    }

    /// A series with an explicit scheme.
    pub fn with_scheme(id: &str, scheme: SchemeSpec) -> SeriesSpec {
        SeriesSpec {
            model: id.to_string(),
            scheme: Some(scheme),
        }
    }

    /// Parses `model` or `model:scheme` (`rope:yarn:dyn`, `drope:none:dyn+beta`). A `+`
    /// that a hand-typed URL turned into a space is read back as `+`.
    pub fn parse(text: &str) -> Result<SeriesSpec, String> {
        let text = text.trim();
        let (model, scheme) = match text.split_once(':') {
            Some((model, scheme)) => (model, Some(scheme.replace(' ', "+"))),
            None => (text, None),
        };
        let valid_id = |id: &str| {
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !valid_id(model) {
            return Err(format!(
                "`{text}` is not a series: expected a model id (rope, drope, nope...), \
                 optionally with a scheme as in rope:yarn:dyn"
            ));
        }
        let scheme = scheme
            .map(|s| s.parse::<SchemeSpec>())
            .transpose()
            .map_err(|e| format!("series `{text}`: {e}"))?;
        Ok(SeriesSpec {
            model: model.to_string(),
            scheme,
        })
    }
}

impl fmt::Display for SeriesSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scheme {
            Some(scheme) => write!(f, "{}:{scheme}", self.model),
            None => write!(f, "{}", self.model),
        }
    }
}

/// Where the prompt comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptSource {
    /// A test-split sample from `samples.json`, by id.
    Sample(String),
    /// Text the user typed or pasted.
    Text(String),
}

impl PromptSource {
    /// Own text longer than [`MAX_URL_PROMPT_CHARS`]: links leave it out.
    pub fn too_long_for_url(&self) -> bool {
        matches!(self, PromptSource::Text(text) if text.chars().count() > MAX_URL_PROMPT_CHARS)
    }
}

/// A prompt length as the URL and the length box take it: a whole number of at least
/// 2 tokens.
pub fn parse_token_count(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(n) if n >= 2 => Ok(n),
        _ => Err(format!(
            "length `{value}` is not a token count (a whole number of at least 2)"
        )),
    }
}

/// Everything the URL holds.
#[derive(Debug, Clone, PartialEq)]
pub struct StudioState {
    /// The view shown.
    pub view: View,
    /// The series compared; the first is the focus (token strip, attention maps).
    pub series: Vec<SeriesSpec>,
    /// The prompt.
    pub prompt: PromptSource,
    /// Run only the first `length` tokens of the prompt; `None`: all of it.
    pub length: Option<usize>,
    /// The backend chosen; `None` lets the page decide (WebGPU, unless the browser's
    /// adapter is a software one, slower than the CPU path).
    pub backend: Option<BackendChoice>,
    /// The live needle runner's lengths and trials.
    pub needle: NeedleSettings,
}

impl Default for StudioState {
    /// RoPE as trained, RoPE with YaRN, DroPE with its logit scale, on the first
    /// [`DEFAULT_LENGTH`] tokens of the first sample.
    fn default() -> Self {
        StudioState {
            view: View::Perplexity,
            series: vec![
                SeriesSpec::model("rope"),
                SeriesSpec::with_scheme("rope", SchemeSpec::YARN_DYNAMIC),
                SeriesSpec::with_scheme("drope", SchemeSpec::DROPE_DYNAMIC),
            ],
            prompt: PromptSource::Sample(String::new()),
            length: Some(DEFAULT_LENGTH),
            backend: None,
            needle: NeedleSettings::default(),
        }
    }
}

/// The query string's parameters, in order.
pub type QueryPairs = Vec<(String, String)>;

impl StudioState {
    /// Reads the state from decoded query parameters. Unknown parameters are ignored (a
    /// host page may add its own); every bad value comes back as a message and leaves
    /// that field at its default.
    pub fn from_pairs(pairs: &[(String, String)]) -> (StudioState, Vec<String>) {
        let mut state = StudioState::default();
        let mut problems = Vec::new();
        for (key, value) in pairs {
            match key.as_str() {
                "view" => match View::parse(value) {
                    Ok(view) => state.view = view,
                    Err(e) => problems.push(e),
                },
                "models" => {
                    let mut series = Vec::new();
                    if value.split(',').all(|s| s.trim().is_empty()) {
                        problems
                            .push("`models` names no series, so the default ones are shown".into());
                    }
                    for item in value.split(',').filter(|s| !s.trim().is_empty()) {
                        match SeriesSpec::parse(item) {
                            Ok(s) if !series.contains(&s) => series.push(s),
                            Ok(_) => {}
                            Err(e) => problems.push(e),
                        }
                    }
                    if series.len() > MAX_SERIES {
                        problems.push(format!(
                            "{} series asked for; the studio compares at most {MAX_SERIES}, \
                             so the rest are left out",
                            series.len()
                        ));
                        series.truncate(MAX_SERIES);
                    }
                    if !series.is_empty() {
                        state.series = series;
                    }
                }
                "sample" => state.prompt = PromptSource::Sample(value.trim().to_string()),
                "prompt" => {
                    if value.trim().is_empty() {
                        problems.push("the prompt in the URL is empty".to_string());
                    } else {
                        state.prompt = PromptSource::Text(value.clone());
                    }
                }
                "length" => match parse_token_count(value) {
                    Ok(n) => state.length = Some(n),
                    Err(e) => problems.push(e),
                },
                "backend" => match BackendChoice::parse(value) {
                    Ok(choice) => state.backend = Some(choice),
                    Err(e) => problems.push(e),
                },
                "needle-lengths" => match parse_needle_lengths(value) {
                    Ok(lengths) => state.needle.lengths = lengths,
                    Err(e) => problems.push(e),
                },
                "needle-trials" => match parse_needle_trials(value) {
                    Ok(n) => state.needle.trials = n,
                    Err(e) => problems.push(e),
                },
                _ => {}
            }
        }
        (state, problems)
    }

    /// The parameters that give back this state. A prompt text longer than
    /// [`MAX_URL_PROMPT_CHARS`] is left out (`false` in the second place).
    pub fn to_pairs(&self) -> (QueryPairs, bool) {
        let mut pairs = vec![("view".to_string(), self.view.key().to_string())];
        // No series (the user removed them all) is no parameter: `models=` is an error.
        if !self.series.is_empty() {
            let series: Vec<String> = self.series.iter().map(ToString::to_string).collect();
            pairs.push(("models".into(), series.join(",")));
        }
        let mut complete = true;
        match &self.prompt {
            PromptSource::Sample(id) if !id.is_empty() => pairs.push(("sample".into(), id.clone())),
            PromptSource::Sample(_) => {}
            PromptSource::Text(_) if self.prompt.too_long_for_url() => complete = false,
            PromptSource::Text(text) => pairs.push(("prompt".into(), text.clone())),
        }
        if let Some(length) = self.length {
            pairs.push(("length".into(), length.to_string()));
        }
        if let Some(backend) = self.backend {
            pairs.push(("backend".into(), backend.key().to_string()));
        }
        // The runner's settings only when changed: most links never open it.
        let needle = NeedleSettings::default();
        if self.needle.lengths != needle.lengths {
            let lengths: Vec<String> = self.needle.lengths.iter().map(usize::to_string).collect();
            pairs.push(("needle-lengths".into(), lengths.join(",")));
        }
        if self.needle.trials != needle.trials {
            pairs.push(("needle-trials".into(), self.needle.trials.to_string()));
        }
        (pairs, complete)
    }

    /// Reads the state from a query string (`?a=b&...`, with or without the `?`).
    pub fn from_query(query: &str) -> (StudioState, Vec<String>) {
        StudioState::from_pairs(&decode_query(query))
    }

    /// The query string (with its `?`) for this state, and whether it is complete.
    pub fn to_query(&self) -> (String, bool) {
        let (pairs, complete) = self.to_pairs();
        (encode_query(&pairs), complete)
    }
}

/// Decodes `a=b&c=d` (form encoding: `+` is a space, `%XX` a byte; bad escapes are kept
/// as typed, bad UTF-8 becomes U+FFFD).
pub fn decode_query(query: &str) -> QueryPairs {
    let decode = |text: &str| {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => match text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// Encodes pairs as a query string with its `?`. Only unreserved characters and the
/// few that read well in a link (`,` and `:`) stay as they are.
pub fn encode_query(pairs: &[(String, String)]) -> String {
    let encode = |text: &str| {
        let mut out = String::with_capacity(text.len());
        for byte in text.bytes() {
            match byte {
                b'A'..=b'Z'
                | b'a'..=b'z'
                | b'0'..=b'9'
                | b'-'
                | b'_'
                | b'.'
                | b'~'
                | b','
                | b':' => out.push(byte as char),
                b' ' => out.push('+'),
                other => out.push_str(&format!("%{other:02X}")),
            }
        }
        out
    };
    let joined: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("?{}", joined.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz target of the studio's URL: any query parses (bad values become
    /// messages), and the state it gives survives a trip through its own link.
    #[cfg(not(target_arch = "wasm32"))]
    fn url_target(bytes: &[u8]) {
        let query = String::from_utf8_lossy(bytes);
        let (state, _) = StudioState::from_query(&query);
        let (link, complete) = state.to_query();
        if complete {
            let (again, problems) = StudioState::from_query(&link);
            assert_eq!(again, state, "{link}");
            assert!(problems.is_empty(), "{link}: {problems:?}");
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn url_corpus() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/url-state")
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn replay_url_state() {
        assert!(!engine::fuzz::corpus_inputs(&url_corpus()).is_empty());
        let failed = engine::fuzz::replay(&url_corpus(), url_target);
        assert!(failed.is_empty(), "the URL state panics on {failed:?}");
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    #[ignore = "long: run by `cargo xtask fuzz`"]
    fn fuzz_for_a_while() {
        let (budget, seed) = engine::fuzz::budget_from_env();
        let report = engine::fuzz::fuzz(&url_corpus(), &[], budget, seed, url_target).unwrap();
        println!(
            "fuzz url-state: {} inputs in {budget:?}, {} panicked, at {} places: {:?}",
            report.inputs,
            report.panics,
            report.crashes.len(),
            report.crashes
        );
        assert!(report.crashes.is_empty());
    }

    #[test]
    fn a_shared_link_round_trips() {
        let state = StudioState {
            view: View::Attention,
            series: vec![
                SeriesSpec::model("rope"),
                SeriesSpec::with_scheme("drope", SchemeSpec::DROPE_DYNAMIC),
            ],
            prompt: PromptSource::Text(
                "Café & \u{5E9}\u{5DC}\u{5D5}\u{5DD} = 100% \u{1F600}\n+1".into(),
            ),
            length: Some(700),
            backend: Some(BackendChoice::WebGpu),
            needle: NeedleSettings {
                lengths: vec![1, 8],
                trials: 5,
            },
        };
        let (query, complete) = state.to_query();
        assert!(complete);
        assert!(
            query.ends_with("&backend=webgpu&needle-lengths=1,8&needle-trials=5"),
            "{query}"
        );
        assert!(
            query.contains("models=rope,drope:none:dyn%2Bbeta"),
            "{query}"
        );
        assert_eq!(StudioState::from_query(&query), (state, vec![]));
    }

    #[test]
    fn bad_values_are_reported_and_keep_their_defaults() {
        let (state, problems) = StudioState::from_query(
            "?view=graphs&models=rope:warp:9,dr%20ope&length=-3&sample=kjv-2&backend=tpu\
             &needle-lengths=1,3&needle-trials=50",
        );
        assert_eq!(state.view, View::Perplexity);
        assert_eq!(state.series, StudioState::default().series);
        assert_eq!(state.length, Some(DEFAULT_LENGTH));
        assert_eq!(state.prompt, PromptSource::Sample("kjv-2".into()));
        assert_eq!(state.backend, None);
        assert_eq!(state.needle, NeedleSettings::default());
        assert_eq!(problems.len(), 7, "{problems:?}");
        assert!(problems[5].contains("needle length `3`"));
        assert!(problems[6].contains("from 1 to 20"));
        assert!(problems[0].contains("unknown view `graphs`"));
        assert!(problems[1].contains("rope:warp:9"));
        assert!(problems[3].contains("length `-3`"));
        assert!(problems[4].contains("backend `tpu`"));
        let none = StudioState {
            series: Vec::new(),
            ..StudioState::default()
        };
        assert!(
            !none.to_query().0.contains("models"),
            "{}",
            none.to_query().0
        );
        for empty in ["?models=", "?models=,%20,"] {
            let (state, problems) = StudioState::from_query(empty);
            assert_eq!(state.series, StudioState::default().series);
            assert_eq!(problems.len(), 1, "{empty}: {problems:?}");
            assert!(problems[0].contains("names no series"), "{problems:?}");
        }
    }

    #[test]
    fn a_hand_typed_plus_still_means_plus() {
        let (state, problems) = StudioState::from_query("models=drope:none:dyn+beta,nope,nope");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            state.series,
            vec![
                SeriesSpec::with_scheme("drope", SchemeSpec::DROPE_DYNAMIC),
                SeriesSpec::model("nope")
            ]
        );
    }

    #[test]
    fn long_prompts_and_many_series_are_capped() {
        let state = StudioState {
            prompt: PromptSource::Text("a".repeat(MAX_URL_PROMPT_CHARS + 1)),
            ..StudioState::default()
        };
        let (query, complete) = state.to_query();
        assert!(!complete && !query.contains("prompt="));
        let many: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
        let (state, problems) = StudioState::from_query(&format!("models={}", many.join(",")));
        assert_eq!(state.series.len(), MAX_SERIES);
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn broken_escapes_do_not_panic() {
        let pairs = decode_query("prompt=100%&x=%zz%e2%82&=&&y");
        assert_eq!(pairs[0], ("prompt".into(), "100%".into()));
        assert_eq!(pairs[1].1, "%zz\u{FFFD}");
        assert_eq!(pairs[3], ("y".into(), String::new()));
    }
}
