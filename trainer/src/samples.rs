//! Sample texts for the studio's prompt box, cut from test-split documents only (never
//! from text a model was fitted on), so what a reader grows past `L` in the page is held
//! out. One sample per corpus file, each long enough for a prompt of 8L tokens, and
//! first (the studio's default) one passage of about 2L tokens repeated to 8L: the
//! paper's story in one prompt. Past L, a model that can copy from its context predicts
//! every repeat almost perfectly; RoPE, which never saw distances over L, cannot.

use std::path::Path;

use engine::samples::{Sample, SampleSet};
use engine::TextTokenizer;

use crate::args::Args;
use crate::corpus::{self, Split};

/// Human names of the corpus files (see the corpus README); others show their file name.
fn title_of(file: &str) -> &str {
    match file {
        "austen.txt" => "Jane Austen",
        "kjv.txt" => "King James Bible",
        "shakespeare.txt" => "Shakespeare",
        "brown.txt" => "Brown corpus (1961 American English)",
        other => other,
    }
}

/// The shortest run of whole paragraphs from the start of `text` with at least
/// `min_tokens` tokens (all of `text` if it has fewer).
fn leading_paragraphs(
    text: &str,
    tokenizer: &TextTokenizer,
    min_tokens: usize,
) -> Result<(String, usize), String> {
    let mut taken = String::new();
    for paragraph in text.split("\n\n") {
        if !taken.is_empty() {
            taken.push_str("\n\n");
        }
        taken.push_str(paragraph);
        // Cheap bound first: a token is at most a few dozen bytes, never fewer than one.
        if taken.len() >= min_tokens {
            let count = tokenizer.encode(&taken).map_err(|e| e.to_string())?.len();
            if count >= min_tokens {
                return Ok((taken, count));
            }
        }
    }
    let count = tokenizer.encode(&taken).map_err(|e| e.to_string())?.len();
    Ok((taken, count))
}

/// The first test document of each corpus file that reaches `min_tokens`, cut to whole
/// paragraphs just past that length.
pub fn pick_samples(
    documents: &[corpus::Document],
    tokenizer: &TextTokenizer,
    min_tokens: usize,
) -> Result<Vec<Sample>, String> {
    let mut samples: Vec<Sample> = Vec::new();
    for doc in documents.iter().filter(|d| d.split == Split::Test) {
        let (file, index) = doc.id.split_once('#').unwrap_or((&doc.id, "0"));
        let stem = file.trim_end_matches(".txt");
        if samples
            .iter()
            .any(|s| s.source.starts_with(&format!("{file}#")))
        {
            continue;
        }
        let (text, tokens) = leading_paragraphs(&doc.text, tokenizer, min_tokens)?;
        if tokens < min_tokens {
            continue;
        }
        samples.push(Sample {
            id: format!("{stem}-{index}"),
            title: format!("{} (test document {index})", title_of(file)),
            source: doc.id.clone(),
            text,
            tokens,
        });
    }
    Ok(samples)
}

/// A sample that repeats the leading paragraphs (at least `passage_tokens` tokens) of
/// `from` until the whole reaches `min_tokens`; `None` when whole paragraphs make the
/// passage longer than half of `min_tokens` (too few repeats would fit in the prompt).
pub fn repeated_passage(
    from: &Sample,
    tokenizer: &TextTokenizer,
    passage_tokens: usize,
    min_tokens: usize,
) -> Result<Option<Sample>, String> {
    let (passage, tokens) = leading_paragraphs(&from.text, tokenizer, passage_tokens)?;
    if 2 * tokens > min_tokens {
        return Ok(None);
    }
    let copies = min_tokens.div_ceil(tokens.max(1)).max(2);
    let text = vec![passage.as_str(); copies].join("\n\n");
    let total = tokenizer.encode(&text).map_err(|e| e.to_string())?.len();
    Ok(Some(Sample {
        id: "repeated".into(),
        title: format!(
            "A passage of {tokens} tokens, {copies} times ({})",
            from.title
        ),
        source: from.source.clone(),
        text,
        tokens: total,
    }))
}

/// `trainer samples --corpus DIR --tokenizer FILE --out public/samples.json
/// [--length L | --models DIR]`: writes one sample per corpus file, each at least 8L
/// tokens, after the repeated passage. L is `--length`, else the training length of
/// `DIR/rope` (the shipped models), else 256.
pub fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(argv, &["corpus", "tokenizer", "out", "length", "models"])?;
    let tokenizer_path = args.required("tokenizer")?;
    let bytes = std::fs::read(tokenizer_path).map_err(|e| format!("{tokenizer_path}: {e}"))?;
    let tokenizer = TextTokenizer::from_json(&bytes).map_err(|e| e.to_string())?;
    let models: String = args.get_or("models", String::new())?;
    let shipped_length = if models.is_empty() {
        256
    } else {
        let path = Path::new(&models).join("rope").join("config.json");
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        engine::ModelConfig::from_json(&bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .training_length()
    };
    let length: usize = args.get_or("length", shipped_length)?;
    let documents = corpus::load(Path::new(args.required("corpus")?))?;
    let mut samples = pick_samples(&documents, &tokenizer, 8 * length)?;
    if samples.is_empty() {
        return Err(format!(
            "no test-split document reaches {} tokens",
            8 * length
        ));
    }
    // About 2L tokens a copy (at most 4L): every repeat copies from further back than
    // any distance RoPE was trained on, and at least two copies fit in 8L.
    let mut repeated = None;
    for sample in &samples {
        repeated = repeated_passage(sample, &tokenizer, 2 * length, 8 * length)?;
        if repeated.is_some() {
            break;
        }
    }
    match repeated {
        Some(repeated) => samples.insert(0, repeated),
        None => {
            println!("no sample starts with whole paragraphs of 2L-4L tokens: no repeated sample")
        }
    }
    let out = args.required("out")?;
    let set = SampleSet {
        training_length: length,
        samples,
    };
    std::fs::write(
        out,
        serde_json::to_string_pretty(&set).map_err(|e| e.to_string())? + "\n",
    )
    .map_err(|e| format!("{out}: {e}"))?;
    let samples = set.samples;
    for s in &samples {
        println!("{}: {} tokens from {}", s.id, s.tokens, s.source);
    }
    println!("samples: {} written to {out}", samples.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::documents_of;

    fn tokenizer() -> TextTokenizer {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../public/models/tokenizer.json"
        );
        TextTokenizer::from_json(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn samples_come_from_test_documents_and_reach_the_length() {
        let paragraph = "The quiet river ran past the mill and the old stone bridge. ".repeat(4);
        let text = vec![paragraph.as_str(); 4000].join("\n\n");
        let documents = documents_of("river.txt", &text);
        let tokenizer = tokenizer();
        let samples = pick_samples(&documents, &tokenizer, 500).unwrap();
        assert_eq!(samples.len(), 1, "one sample per file");
        let sample = &samples[0];
        let doc = documents.iter().find(|d| d.id == sample.source).unwrap();
        assert_eq!(doc.split, Split::Test);
        assert!(doc.text.starts_with(&sample.text));
        assert!(sample.tokens >= 500);
        assert_eq!(tokenizer.encode(&sample.text).unwrap().len(), sample.tokens);
        // Whole paragraphs, and no more than needed: dropping the last one falls short.
        let shorter = sample.text.rsplit_once("\n\n").unwrap().0;
        assert!(tokenizer.encode(shorter).unwrap().len() < 500);
        assert!(sample.id.starts_with("river-"));
    }

    #[test]
    fn the_repeated_sample_repeats_whole_leading_paragraphs_to_the_length() {
        let tokenizer = tokenizer();
        let paragraphs: Vec<String> = (0..40)
            .map(|i| format!("Paragraph {i} tells of the mill, the bridge and field number {i}."))
            .collect();
        let from = Sample {
            id: "river-3".into(),
            title: "River (test document 3)".into(),
            source: "river.txt#3".into(),
            text: paragraphs.join("\n\n"),
            tokens: 0,
        };
        let repeated = repeated_passage(&from, &tokenizer, 100, 500)
            .unwrap()
            .unwrap();
        assert_eq!(repeated.id, "repeated");
        assert_eq!(repeated.source, "river.txt#3");
        assert!(repeated.tokens >= 500);
        assert_eq!(
            tokenizer.encode(&repeated.text).unwrap().len(),
            repeated.tokens
        );
        // The passage is the first k paragraphs; the text is it again and again.
        let k = repeated
            .text
            .split("\n\n")
            .position(|p| p == paragraphs[0])
            .and_then(|_| {
                repeated
                    .text
                    .split("\n\n")
                    .skip(1)
                    .position(|p| p == paragraphs[0])
            })
            .unwrap()
            + 1;
        let passage = paragraphs[..k].join("\n\n");
        assert!(tokenizer.encode(&passage).unwrap().len() >= 100);
        assert!(
            tokenizer
                .encode(&paragraphs[..k - 1].join("\n\n"))
                .unwrap()
                .len()
                < 100
        );
        let copies = repeated.text.split("\n\n").count() / k;
        assert!(copies >= 2);
        assert_eq!(repeated.text, vec![passage.as_str(); copies].join("\n\n"));
        // A first paragraph longer than half the prompt leaves no room to repeat it.
        let long = Sample {
            text: format!("{}\n\n{}", paragraphs.join(" "), paragraphs[0]),
            ..from
        };
        assert_eq!(repeated_passage(&long, &tokenizer, 100, 500).unwrap(), None);
    }
}
