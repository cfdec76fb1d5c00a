//! A compact binary form of [`ForwardInput`] and [`ForwardOutput`], for running a
//! backend in another thread (the studio's CPU path runs in a Web Worker, and messages
//! cross as byte buffers). Little-endian numbers, lists prefixed by their length.
//! Attention rows dominate the size (a 1024-token prompt with every head captured is
//! about 12 million floats), so floats are written as raw f32, never as text.

use std::ops::Range;

use crate::analysis::HeadStats;
use crate::backend::{Capture, ForwardInput, ForwardOutput, RowSummary};
use crate::error::{EngineError, Result};
use crate::position::AppliedScheme;

/// A [`ForwardInput`] that owns its parts (what the receiving side decodes).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedInput {
    /// Token ids.
    pub tokens: Vec<u32>,
    /// Rotary position of sequence index 0.
    pub position_offset: usize,
    /// The applied scheme.
    pub scheme: AppliedScheme,
    /// What to record.
    pub capture: Capture,
    /// Predictions per position.
    pub top_k: usize,
    /// Whether to return every logit.
    pub return_logits: bool,
}

impl OwnedInput {
    /// The borrowed form a backend takes.
    pub fn as_input(&self) -> ForwardInput<'_> {
        ForwardInput {
            tokens: &self.tokens,
            position_offset: self.position_offset,
            scheme: &self.scheme,
            capture: &self.capture,
            top_k: self.top_k,
            return_logits: self.return_logits,
        }
    }
}

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(n as u32);
    }
    fn f32(&mut self, v: f32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f32s(&mut self, values: &[f32]) {
        self.len(values.len());
        self.0.reserve(values.len() * 4);
        for v in values {
            self.f32(*v);
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(EngineError::Input(
                "a message between the page and its worker was cut short".into(),
            ));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn len(&mut self) -> Result<usize> {
        let n = self.u32()? as usize;
        // Every element takes at least one byte: a larger count is a corrupt message.
        if n > self.bytes.len() {
            return Err(EngineError::Input(format!(
                "a message between the page and its worker claims {n} items in {} bytes",
                self.bytes.len()
            )));
        }
        Ok(n)
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or([0; 8]),
        ))
    }
    fn f32s(&mut self) -> Result<Vec<f32>> {
        let n = self.len()?;
        let raw = self.take(n * 4)?;
        Ok(raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
    fn done(&self) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Input(format!(
                "a message between the page and its worker has {} bytes too many",
                self.bytes.len()
            )))
        }
    }
}

/// Encodes the input of one forward call.
pub fn encode_input(input: &ForwardInput<'_>) -> Vec<u8> {
    let mut w = Writer::default();
    w.len(input.tokens.len());
    for t in input.tokens {
        w.u32(*t);
    }
    w.len(input.position_offset);
    w.f64(input.scheme.scale);
    w.f64(input.scheme.logit_scale);
    for values in [&input.scheme.frequencies, &input.scheme.head_scales] {
        match values {
            Some(v) => {
                w.u32(1);
                w.len(v.len());
                v.iter().for_each(|x| w.f64(*x));
            }
            None => w.u32(0),
        }
    }
    w.len(input.capture.heads.len());
    for (layer, head) in &input.capture.heads {
        w.len(*layer);
        w.len(*head);
    }
    match &input.capture.span {
        Some(span) => {
            w.u32(1);
            w.len(span.start);
            w.len(span.end);
        }
        None => w.u32(0),
    }
    w.len(input.top_k);
    w.u32(input.return_logits as u32);
    w.0
}

/// Decodes what [`encode_input`] wrote.
pub fn decode_input(bytes: &[u8]) -> Result<OwnedInput> {
    let mut r = Reader { bytes };
    let n = r.len()?;
    let tokens = (0..n).map(|_| r.u32()).collect::<Result<_>>()?;
    let position_offset = r.u32()? as usize;
    let scale = r.f64()?;
    let logit_scale = r.f64()?;
    let mut optional_values = || -> Result<Option<Vec<f64>>> {
        match r.u32()? {
            0 => Ok(None),
            _ => {
                let n = r.len()?;
                Ok(Some((0..n).map(|_| r.f64()).collect::<Result<_>>()?))
            }
        }
    };
    let frequencies = optional_values()?;
    let head_scales = optional_values()?;
    let n = r.len()?;
    let heads = (0..n)
        .map(|_| Ok((r.u32()? as usize, r.u32()? as usize)))
        .collect::<Result<_>>()?;
    let span: Option<Range<usize>> = match r.u32()? {
        0 => None,
        _ => Some(r.u32()? as usize..r.u32()? as usize),
    };
    let top_k = r.u32()? as usize;
    let return_logits = r.u32()? != 0;
    r.done()?;
    Ok(OwnedInput {
        tokens,
        position_offset,
        scheme: AppliedScheme {
            scale,
            frequencies,
            logit_scale,
            head_scales,
        },
        capture: Capture { heads, span },
        top_k,
        return_logits,
    })
}

/// Encodes the result of one forward call.
pub fn encode_output(output: &ForwardOutput) -> Vec<u8> {
    let mut w = Writer::default();
    w.len(output.rows.len());
    for row in &output.rows {
        w.f32(row.log_norm);
        w.len(row.top.len());
        for (token, logit) in &row.top {
            w.u32(*token);
            w.f32(*logit);
        }
        match row.next {
            Some((logit, rank)) => {
                w.u32(1);
                w.f32(logit);
                w.u32(rank);
            }
            None => w.u32(0),
        }
    }
    w.f32s(&output.last_logits);
    match &output.logits {
        Some(l) => {
            w.u32(1);
            w.f32s(l);
        }
        None => w.u32(0),
    }
    w.len(output.attention.len());
    for per_token in &output.attention {
        w.len(per_token.len());
        for row in per_token {
            w.f32s(row);
        }
    }
    w.len(output.head_stats.len());
    for per_token in &output.head_stats {
        w.len(per_token.len());
        for s in per_token {
            w.f32(s.entropy);
            w.f32(s.mean_distance);
            w.f32(s.span_mass);
        }
    }
    w.0
}

/// Decodes what [`encode_output`] wrote.
pub fn decode_output(bytes: &[u8]) -> Result<ForwardOutput> {
    let mut r = Reader { bytes };
    let n = r.len()?;
    let mut rows = Vec::with_capacity(n);
    for _ in 0..n {
        let log_norm = r.f32()?;
        let k = r.len()?;
        let top = (0..k)
            .map(|_| Ok((r.u32()?, r.f32()?)))
            .collect::<Result<_>>()?;
        let next = match r.u32()? {
            0 => None,
            _ => Some((r.f32()?, r.u32()?)),
        };
        rows.push(RowSummary {
            log_norm,
            top,
            next,
        });
    }
    let last_logits = r.f32s()?;
    let logits = match r.u32()? {
        0 => None,
        _ => Some(r.f32s()?),
    };
    let n = r.len()?;
    let mut attention = Vec::with_capacity(n);
    for _ in 0..n {
        let c = r.len()?;
        attention.push((0..c).map(|_| r.f32s()).collect::<Result<_>>()?);
    }
    let n = r.len()?;
    let mut head_stats = Vec::with_capacity(n);
    for _ in 0..n {
        let h = r.len()?;
        head_stats.push(
            (0..h)
                .map(|_| {
                    Ok(HeadStats {
                        entropy: r.f32()?,
                        mean_distance: r.f32()?,
                        span_mass: r.f32()?,
                    })
                })
                .collect::<Result<_>>()?,
        );
    }
    r.done()?;
    Ok(ForwardOutput {
        rows,
        last_logits,
        logits,
        attention,
        head_stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_round_trip() {
        let scheme = AppliedScheme {
            scale: 4.0,
            frequencies: Some(vec![1.0, 0.5, 0.25]),
            logit_scale: 1.2,
            head_scales: Some(vec![1.5, 0.75]),
        };
        let capture = Capture {
            heads: vec![(0, 1), (3, 5)],
            span: Some(7..19),
        };
        let input = ForwardInput {
            tokens: &[5, 4095, 0],
            position_offset: 12,
            scheme: &scheme,
            capture: &capture,
            top_k: 5,
            return_logits: true,
        };
        let decoded = decode_input(&encode_input(&input)).unwrap();
        assert_eq!(decoded.tokens, vec![5, 4095, 0]);
        assert_eq!(decoded.position_offset, 12);
        assert_eq!(decoded.scheme, scheme);
        assert_eq!(decoded.capture, capture);
        assert_eq!((decoded.top_k, decoded.return_logits), (5, true));

        let bare = AppliedScheme {
            scale: 1.0,
            frequencies: None,
            logit_scale: 1.0,
            head_scales: None,
        };
        let none = Capture::default();
        let input = ForwardInput {
            tokens: &[],
            position_offset: 0,
            scheme: &bare,
            capture: &none,
            top_k: 0,
            return_logits: false,
        };
        let decoded = decode_input(&encode_input(&input)).unwrap();
        assert_eq!(decoded.as_input().scheme, &bare);
        assert_eq!(decoded.capture, none);
    }

    #[test]
    fn outputs_round_trip_bit_for_bit() {
        let output = ForwardOutput {
            rows: vec![
                RowSummary {
                    log_norm: 8.25,
                    top: vec![(3, 1.5), (9, -0.0)],
                    next: Some((0.75, 12)),
                },
                RowSummary {
                    log_norm: f32::MIN_POSITIVE,
                    top: vec![],
                    next: None,
                },
            ],
            last_logits: vec![0.1, -2.5, f32::MAX],
            logits: Some(vec![1.0; 6]),
            attention: vec![vec![vec![1.0]], vec![vec![0.25, 0.75]]],
            head_stats: vec![vec![HeadStats {
                entropy: 0.5,
                mean_distance: 1.5,
                span_mass: 0.125,
            }]],
        };
        let decoded = decode_output(&encode_output(&output)).unwrap();
        assert_eq!(decoded.rows, output.rows);
        assert_eq!(decoded.last_logits, output.last_logits);
        assert_eq!(decoded.logits, output.logits);
        assert_eq!(decoded.attention, output.attention);
        assert_eq!(decoded.head_stats, output.head_stats);
    }

    #[test]
    fn damaged_messages_are_errors() {
        let bytes = encode_output(&ForwardOutput {
            last_logits: vec![1.0, 2.0],
            ..Default::default()
        });
        for cut in 0..bytes.len() {
            assert!(decode_output(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_output(&longer).is_err());
        // A count far past the message's size fails without allocating it.
        assert!(decode_output(&[0xff, 0xff, 0xff, 0x7f]).is_err());
        assert!(decode_input(&[1, 2, 3]).is_err());
    }
}
