//! A minimal `--flag value` parser: the trainer has few options, not worth a dependency.

use std::collections::HashMap;
use std::str::FromStr;

/// Parsed `--name value` pairs.
pub struct Args(HashMap<String, String>);

impl Args {
    /// Parses `--name value` pairs; anything else is an error.
    pub fn parse(argv: &[String], known: &[&str]) -> Result<Self, String> {
        let mut map = HashMap::new();
        let mut it = argv.iter();
        while let Some(flag) = it.next() {
            let name = flag
                .strip_prefix("--")
                .filter(|n| known.contains(n))
                .ok_or_else(|| {
                    format!(
                        "unknown argument `{flag}`; expected one of --{}",
                        known.join(", --")
                    )
                })?;
            let value = it.next().ok_or_else(|| format!("`{flag}` needs a value"))?;
            map.insert(name.to_string(), value.clone());
        }
        Ok(Args(map))
    }

    /// A required value.
    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("missing --{name}"))
    }

    /// An optional value parsed as `T`, or `default`.
    pub fn get_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: cannot parse `{v}`")),
        }
    }
}
