//! The corpus: plain-text files cut into documents, split by document into train,
//! validation and test. The test split is never used to fit anything (tokenizer, weights,
//! DroPE's `c`); the split is a pure function of the file name and document index, so it
//! is the same on every machine.

use std::path::Path;

/// A document never shorter than this many characters (~3,000 tokens), so that an
/// evaluation window of 8L = 2,048 tokens mostly stays inside one document.
pub const MIN_DOCUMENT_CHARS: usize = 12_000;

/// Which part of the corpus a document belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Training data (tokenizer and weights).
    Train,
    /// Validation (curves, the DroPE temperature fit, checkpoint choice).
    Validation,
    /// Held out for the reported numbers.
    Test,
}

/// One document.
#[derive(Debug, Clone)]
pub struct Document {
    /// `file.txt#index`.
    pub id: String,
    /// The text.
    pub text: String,
    /// Its split.
    pub split: Split,
}

/// FNV-1a: a stable hash for the split assignment (std's hasher may change between releases).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// 1 in 20 documents to validation, 1 in 20 to test, the rest to training.
pub fn split_of(id: &str) -> Split {
    match fnv1a(id) % 20 {
        0 => Split::Validation,
        1 => Split::Test,
        _ => Split::Train,
    }
}

/// Cuts one text into documents: blank-line separated paragraphs, grouped in order until
/// a group reaches [`MIN_DOCUMENT_CHARS`]; a short tail joins the last document.
pub fn documents_of(name: &str, text: &str) -> Vec<Document> {
    let mut groups: Vec<String> = Vec::new();
    let mut current = String::new();
    for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        current.push_str(paragraph);
        if current.len() >= MIN_DOCUMENT_CHARS {
            groups.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        match groups.last_mut() {
            Some(last) if current.len() < MIN_DOCUMENT_CHARS / 2 => {
                last.push_str("\n\n");
                last.push_str(&current);
            }
            _ => groups.push(current),
        }
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let id = format!("{name}#{i}");
            Document {
                split: split_of(&id),
                id,
                text,
            }
        })
        .collect()
}

/// Every document of every `.txt` file in `folder`, in file order.
pub fn load(folder: &Path) -> Result<Vec<Document>, String> {
    let mut docs = Vec::new();
    for path in text_files(folder)? {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let name = Path::new(&path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(path.clone());
        docs.extend(documents_of(&name, &text));
    }
    Ok(docs)
}

/// The `.txt` files of a corpus folder, sorted so training is deterministic.
pub fn text_files(corpus: &Path) -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir(corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let mut files: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no .txt files", corpus.display()));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_long_and_cover_the_text() {
        let paragraph = "word ".repeat(500);
        let text = vec![paragraph.as_str(); 60].join("\n\n");
        let docs = documents_of("x.txt", &text);
        assert!(docs.len() >= 2);
        assert!(docs.iter().all(|d| d.text.len() >= MIN_DOCUMENT_CHARS / 2));
        let words: usize = docs.iter().map(|d| d.text.split_whitespace().count()).sum();
        assert_eq!(words, 500 * 60);
    }

    #[test]
    fn the_split_is_stable_and_roughly_90_5_5() {
        assert_eq!(split_of("austen.txt#3"), split_of("austen.txt#3"));
        let ids: Vec<String> = (0..2000).map(|i| format!("f.txt#{i}")).collect();
        let count = |s| ids.iter().filter(|id| split_of(id) == s).count();
        assert!((60..140).contains(&count(Split::Validation)));
        assert!((60..140).contains(&count(Split::Test)));
    }
}
