//! The prompt samples' file, `samples.json`: written by `trainer samples` from held-out
//! (test-split) documents, read by the studio's prompt box. One definition for both.

use serde::{Deserialize, Serialize};

/// One prompt sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Short stable id for URLs (`austen-12`): file stem and document index.
    pub id: String,
    /// What the reader sees in the sample box.
    pub title: String,
    /// The corpus document it comes from (`austen.txt#12`).
    pub source: String,
    /// The text: whole paragraphs from the start of the document.
    pub text: String,
    /// Its length in tokens of the shipped tokenizer.
    pub tokens: usize,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleSet {
    /// The training length the samples were cut for (each has at least 8x as many tokens).
    pub training_length: usize,
    /// The samples, in corpus file order.
    pub samples: Vec<Sample>,
}

impl SampleSet {
    /// The sample with this id.
    pub fn get(&self, id: &str) -> Option<&Sample> {
        self.samples.iter().find(|s| s.id == id)
    }
}
