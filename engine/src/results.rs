//! The evaluation's published numbers in `results/` that have one type here, shared by
//! the trainer (`trainer eval` writes them) and the studio (its result tabs read them):
//! `perplexity.json` ([`PerplexityTable`]) and `drope-c.json` ([`DropeFit`]). Tests here
//! round-trip each and read the shipped files.
//!
//! Fields are declared in alphabetical order: the files were first written from JSON
//! maps, which sort their keys, and a regenerated file keeps its layout.

use serde::{Deserialize, Serialize};

/// One row of `perplexity.json`: a model/scheme's NLL per position window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerplexityRow {
    /// Model id.
    pub model: String,
    /// Mean NLL per window (nats).
    pub nll: Vec<f64>,
    /// `exp(nll)` per window.
    pub perplexity: Vec<f64>,
    /// Scheme in text form.
    pub scheme: String,
}

/// `perplexity.json`: perplexity by position window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerplexityTable {
    /// One row per model/scheme.
    pub rows: Vec<PerplexityRow>,
    /// Held-out sequences measured.
    pub sequences: usize,
    /// Training length `L` of the models.
    pub training_length: usize,
    /// Window names (`0-L`, `L-2L`, `2L-4L`, `4L-8L`).
    pub windows: Vec<String>,
}

impl PerplexityTable {
    /// Parses `perplexity.json`; every row must have one value per window. The error is
    /// the reason, for the reader to name the file.
    pub fn parse(bytes: &[u8]) -> Result<PerplexityTable, String> {
        let table: PerplexityTable = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let windows = table.windows.len();
        if let Some(row) = table
            .rows
            .iter()
            .find(|r| r.nll.len() != windows || r.perplexity.len() != windows)
        {
            return Err(format!(
                "{} `{}` does not have one value per window ({windows})",
                row.model, row.scheme
            ));
        }
        Ok(table)
    }
}

/// `drope-c.json`: the fit of DroPE's logit-scale coefficient `c` on validation
/// sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropeFit {
    /// The fitted `c`.
    pub c: f64,
    /// `(c, mean NLL)` for every `c` tried.
    pub grid: Vec<(f64, f64)>,
    /// The objective at the fitted `c`.
    #[serde(default)]
    pub objective_mean_nll: Option<f64>,
    /// The paper's `c` for its from-scratch model, as the file recorded it.
    #[serde(default)]
    pub paper_c_from_scratch: Option<f64>,
    /// The paper's `c` for SmolLM-360M, as the file recorded it.
    #[serde(default)]
    pub paper_c_smollm: Option<f64>,
    /// Validation sequences of the fit.
    #[serde(default)]
    pub validation_sequences: Option<usize>,
}

impl DropeFit {
    /// Parses `drope-c.json`; the error is the reason.
    pub fn parse(bytes: &[u8]) -> Result<DropeFit, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// A results file's text as `trainer eval` writes it: pretty JSON and a final newline.
pub fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).expect("a results file always serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of a JSON text in the order they appear.
    fn keys(text: &str) -> Vec<&str> {
        text.split('"')
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[1].trim_start().starts_with(':'))
            .map(|w| w[0])
            .collect()
    }

    /// What `trainer eval` writes for the shipped file has its keys in the same order,
    /// and reads back to the same values (to the last bit or so: JSON floats).
    fn writes_like_the_shipped<T: Serialize>(
        shipped: &[u8],
        parsed: &T,
        reread: impl Fn(&str) -> T,
        close: impl Fn(&T, &T) -> bool,
    ) {
        let shipped = std::str::from_utf8(shipped).unwrap();
        let written = to_json(parsed);
        assert!(
            keys(&written) == keys(shipped),
            "key order differs from the shipped file"
        );
        assert!(
            close(&reread(&written), parsed),
            "values changed on a round trip"
        );
    }

    fn near(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs().max(1.0))
    }

    #[test]
    fn the_shipped_files_read_and_write_back_alike() {
        let shipped = include_bytes!("../../public/results/perplexity.json");
        let table = PerplexityTable::parse(shipped).unwrap();
        assert_eq!(table.windows.len(), 4);
        assert!(table.rows.iter().any(|r| r.model == "drope"));
        writes_like_the_shipped(
            shipped,
            &table,
            |t| PerplexityTable::parse(t.as_bytes()).unwrap(),
            |a, b| {
                a.rows.len() == b.rows.len()
                    && a.rows.iter().zip(&b.rows).all(|(x, y)| {
                        (&x.model, &x.scheme) == (&y.model, &y.scheme)
                            && near(&x.nll, &y.nll)
                            && near(&x.perplexity, &y.perplexity)
                    })
            },
        );
        let shipped = include_bytes!("../../public/results/drope-c.json");
        let fit = DropeFit::parse(shipped).unwrap();
        assert!(fit.c.is_finite() && !fit.grid.is_empty());
        writes_like_the_shipped(
            shipped,
            &fit,
            |t| DropeFit::parse(t.as_bytes()).unwrap(),
            |a, b| {
                a.c == b.c
                    && a.grid.len() == b.grid.len()
                    && a.validation_sequences == b.validation_sequences
            },
        );
    }

    #[test]
    fn a_row_short_of_a_window_or_a_mistyped_value_is_refused() {
        let table = PerplexityTable {
            rows: vec![PerplexityRow {
                model: "rope".into(),
                scheme: "rope".into(),
                nll: vec![4.0, 4.5],
                perplexity: vec![54.6],
            }],
            sequences: 1,
            training_length: 128,
            windows: vec!["0-L".into(), "L-2L".into()],
        };
        let err = PerplexityTable::parse(to_json(&table).as_bytes()).unwrap_err();
        assert!(err.contains("one value per window"), "{err}");
        assert!(DropeFit::parse(br#"{"c": "x", "grid": []}"#).is_err());
        let minimal = DropeFit::parse(br#"{"c": 0.2, "grid": [[0.1, 4.0]]}"#).unwrap();
        assert_eq!((minimal.c, minimal.validation_sequences), (0.2, None));
    }
}
