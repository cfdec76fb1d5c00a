//! Sample texts for the studio's prompt box, cut from test-split documents only (never
//! from text a model was fitted on), so what a reader grows past `L` in the page is held
//! out. One sample per corpus file, each long enough for a prompt of 8L tokens.

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

/// `trainer samples --corpus DIR --tokenizer FILE --out public/samples.json [--length 256]`:
/// writes one sample per corpus file, each at least 8 x `--length` tokens.
pub fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(argv, &["corpus", "tokenizer", "out", "length"])?;
    let tokenizer_path = args.required("tokenizer")?;
    let bytes = std::fs::read(tokenizer_path).map_err(|e| format!("{tokenizer_path}: {e}"))?;
    let tokenizer = TextTokenizer::from_json(&bytes).map_err(|e| e.to_string())?;
    let length: usize = args.get_or("length", 256)?;
    let documents = corpus::load(Path::new(args.required("corpus")?))?;
    let samples = pick_samples(&documents, &tokenizer, 8 * length)?;
    if samples.is_empty() {
        return Err(format!(
            "no test-split document reaches {} tokens",
            8 * length
        ));
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
}
