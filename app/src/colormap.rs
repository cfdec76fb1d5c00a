//! Colour maps as small lookup tables of evenly spaced stops, linearly interpolated.
//!
//! Our own tables rather than a plotting crate: the studio needs two maps and a CSS
//! gradient for their legends, nothing more.

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb`, for CSS and SVG attributes.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// Relative luminance (WCAG 2.1 formula) in `[0, 1]`; decides whether text on this
    /// background should be dark or light.
    pub fn luminance(self) -> f32 {
        let linear = |c: u8| {
            let c = c as f32 / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * linear(self.0) + 0.7152 * linear(self.1) + 0.0722 * linear(self.2)
    }

    /// Black or white, whichever reads better on this colour.
    pub fn text_colour(self) -> Rgb {
        // 0.179 is where the contrast ratios against black and white are equal.
        if self.luminance() > 0.179 {
            Rgb(0, 0, 0)
        } else {
            Rgb(255, 255, 255)
        }
    }
}

/// A sequential colour map given by evenly spaced stops from `t = 0` to `t = 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colormap {
    stops: &'static [Rgb],
}

/// Matplotlib's viridis (perceptually uniform), sampled at 17 evenly spaced points of
/// its 256-entry table (van der Walt & Smith, 2015). Used for attention weights.
pub const VIRIDIS: Colormap = Colormap {
    stops: &[
        Rgb(0x44, 0x01, 0x54),
        Rgb(0x48, 0x18, 0x6a),
        Rgb(0x47, 0x2d, 0x7b),
        Rgb(0x42, 0x40, 0x86),
        Rgb(0x3b, 0x52, 0x8b),
        Rgb(0x33, 0x63, 0x8d),
        Rgb(0x2c, 0x72, 0x8e),
        Rgb(0x26, 0x82, 0x8e),
        Rgb(0x21, 0x91, 0x8c),
        Rgb(0x1f, 0xa0, 0x88),
        Rgb(0x28, 0xae, 0x80),
        Rgb(0x3f, 0xbc, 0x73),
        Rgb(0x5e, 0xc9, 0x62),
        Rgb(0x84, 0xd4, 0x4b),
        Rgb(0xad, 0xdc, 0x30),
        Rgb(0xd8, 0xe2, 0x19),
        Rgb(0xfd, 0xe7, 0x25),
    ],
};

/// ColorBrewer's YlOrRd (Brewer 2002), 9 classes. Used for surprise (NLL): a
/// predictable token stays near-white so the surprising ones stand out in running text.
pub const YL_OR_RD: Colormap = Colormap {
    stops: &[
        Rgb(0xff, 0xff, 0xcc),
        Rgb(0xff, 0xed, 0xa0),
        Rgb(0xfe, 0xd9, 0x76),
        Rgb(0xfe, 0xb2, 0x4c),
        Rgb(0xfd, 0x8d, 0x3c),
        Rgb(0xfc, 0x4e, 0x2a),
        Rgb(0xe3, 0x1a, 0x1c),
        Rgb(0xbd, 0x00, 0x26),
        Rgb(0x80, 0x00, 0x26),
    ],
};

impl Colormap {
    /// The colour at `t`, clamped to `[0, 1]` (NaN maps to 0).
    pub fn at(&self, t: f32) -> Rgb {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let last = self.stops.len() - 1;
        let x = t * last as f32;
        let i = (x.floor() as usize).min(last - 1);
        let f = x - i as f32;
        let (a, b) = (self.stops[i], self.stops[i + 1]);
        let mix = |a: u8, b: u8| (a as f32 + (b as f32 - a as f32) * f).round() as u8;
        Rgb(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    /// A left-to-right CSS `linear-gradient` through every stop, for legends.
    pub fn css_gradient(&self) -> String {
        let stops: Vec<String> = self.stops.iter().map(|c| c.hex()).collect();
        format!("linear-gradient(to right, {})", stops.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_midpoint_are_the_table_entries() {
        assert_eq!(VIRIDIS.at(0.0), Rgb(0x44, 0x01, 0x54));
        assert_eq!(VIRIDIS.at(1.0), Rgb(0xfd, 0xe7, 0x25));
        assert_eq!(VIRIDIS.at(0.5), Rgb(0x21, 0x91, 0x8c));
        assert_eq!(VIRIDIS.at(-3.0), VIRIDIS.at(0.0));
        assert_eq!(VIRIDIS.at(f32::NAN), VIRIDIS.at(0.0));
        assert_eq!(VIRIDIS.at(7.0), VIRIDIS.at(1.0));
    }

    #[test]
    fn viridis_gets_lighter_monotonically() {
        let lum: Vec<f32> = (0..=64)
            .map(|i| VIRIDIS.at(i as f32 / 64.0).luminance())
            .collect();
        assert!(lum.windows(2).all(|w| w[1] >= w[0]), "{lum:?}");
    }

    #[test]
    fn text_colour_contrasts() {
        assert_eq!(YL_OR_RD.at(0.0).text_colour(), Rgb(0, 0, 0));
        assert_eq!(YL_OR_RD.at(1.0).text_colour(), Rgb(255, 255, 255));
        assert_eq!(Rgb(0x44, 0x01, 0x54).hex(), "#440154");
    }
}
