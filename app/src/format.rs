//! Number and text formatting for display.

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "x of y KB" (or MB once the total passes 10 MB) for a download in progress.
pub fn bytes_of(received: u64, total: u64) -> String {
    const KB: f64 = 1024.0;
    const MB: f64 = 1024.0 * 1024.0;
    if total as f64 >= 10.0 * MB {
        format!("{:.1} of {:.1} MB", received as f64 / MB, total as f64 / MB)
    } else {
        format!(
            "{} of {} KB",
            (received as f64 / KB).round(),
            (total as f64 / KB).round()
        )
    }
}

/// A token's text for tooltips: quoted, with whitespace and control characters
/// escaped so `" the"` and `"\n"` are told apart.
pub fn quoted(text: &str) -> String {
    format!("{text:?}")
}

/// A probability as a percentage with sensible precision.
pub fn percent(p: f32) -> String {
    let pct = p * 100.0;
    if pct >= 10.0 {
        format!("{pct:.0}%")
    } else if pct >= 1.0 {
        format!("{pct:.1}%")
    } else if pct >= 0.001 {
        format!("{pct:.3}%")
    } else {
        "<0.001%".into()
    }
}

/// A size in megabytes with one decimal: `10.2 MB`.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// `123.4 MB`-style sizes (decimal units, as file managers show them).
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} bytes")
    }
}

/// `134.5M`-style counts.
pub fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(123), "123");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(123456789), "123,456,789");
        assert_eq!(bytes_of(312 * 1024, 560 * 1024), "312 of 560 KB");
        assert_eq!(bytes_of(5 << 20, 20 << 20), "5.0 of 20.0 MB");
        assert_eq!(quoted(" the\n"), "\" the\\n\"");
        assert_eq!(percent(0.5), "50%");
        assert_eq!(percent(0.0123), "1.2%");
        assert_eq!(percent(0.000647), "0.065%");
        assert_eq!(percent(1e-9), "<0.001%");
        assert_eq!(human_bytes(269_060_096), "269.1 MB");
        assert_eq!(human_bytes(3_221_225_472), "3.22 GB");
        assert_eq!(human_bytes(12), "12 bytes");
        assert_eq!(human_count(134_515_008), "134.5M");
    }
}
