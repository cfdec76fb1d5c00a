//! Trains the studio's byte-level BPE tokenizer: digits split one per token (so numbers,
//! like the needles' magic numbers, are spelled digit by digit) and an end-of-text token
//! that separates documents.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, Tokenizer};

use crate::args::Args;

/// The token placed between documents.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// `trainer tokenizer --corpus DIR --out FILE [--vocab N]`
pub fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(argv, &["corpus", "out", "vocab"])?;
    let corpus = Path::new(args.required("corpus")?);
    let out = Path::new(args.required("out")?);
    let vocab: usize = args.get_or("vocab", 4096)?;
    let started = std::time::Instant::now();
    // Training documents only: validation and test text must not shape the vocabulary.
    let documents: Vec<String> = crate::corpus::load(corpus)?
        .into_iter()
        .filter(|d| d.split == crate::corpus::Split::Train)
        .map(|d| d.text)
        .collect();
    let tokenizer = train(&documents, vocab)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    tokenizer.save(out, false).map_err(|e| e.to_string())?;
    println!(
        "tokenizer: {} tokens from {} training documents in {:.1} s -> {}",
        tokenizer.get_vocab_size(true),
        documents.len(),
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// Trains a byte-level BPE with `vocab` entries on `documents`.
pub fn train(documents: &[String], vocab: usize) -> Result<Tokenizer, String> {
    let pre_tokenizer = Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(true)),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
    ]);
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer
        .with_pre_tokenizer(Some(pre_tokenizer))
        .with_decoder(Some(ByteLevelDecoder::default()));
    let mut trainer = TrainerWrapper::BpeTrainer(
        BpeTrainerBuilder::new()
            .vocab_size(vocab)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build(),
    );
    tokenizer
        .train(&mut trainer, documents.iter())
        .map_err(|e| format!("tokenizer training failed: {e}"))?;
    Ok(tokenizer)
}
