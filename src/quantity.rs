//! Kubernetes resource quantities (`1Gi`, `500m`, `1.5G`, `2e3`) as exact numbers, so Oksa can
//! tell a volume that grows from one that shrinks, and `1Gi` from `1024Mi` (the same size).

use std::cmp::Ordering;

/// A quantity in thousandths of its unit, exact for every size Kubernetes accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    milli: i128,
}

impl Quantity {
    /// Parses a quantity, or returns None when it is not one.
    pub fn parse(text: &str) -> Option<Quantity> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let (negative, number) = match number.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, number.strip_prefix('+').unwrap_or(number)),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        if !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
            || fraction.len() > 18
        {
            return None;
        }
        // value = digits / 10^fraction_len, kept as a fraction until the multiplier is applied.
        let digits: i128 = format!("{whole}{fraction}").parse().ok()?;
        let scale = 10i128.pow(fraction.len() as u32);
        let (multiplier, divisor) = multiplier(suffix)?;
        let milli = digits.checked_mul(multiplier)?.checked_mul(1000)? / scale / divisor;
        Some(Quantity {
            milli: if negative { -milli } else { milli },
        })
    }
}

impl Quantity {
    /// The quantity in thousandths of its unit (millicores of CPU, millibytes of memory).
    pub fn milli(self) -> i128 {
        self.milli
    }
}

/// CPU from millicores, as Kubernetes writes it: `250m`, or `2` for whole cores.
pub fn format_cpu(milli: i128) -> String {
    if milli % 1000 == 0 {
        format!("{}", milli / 1000)
    } else {
        format!("{milli}m")
    }
}

/// Memory from millibytes, in the largest binary unit that divides it: `384Mi`, `2Gi`.
pub fn format_memory(milli: i128) -> String {
    let bytes = milli / 1000;
    for (suffix, size) in [("Gi", 1i128 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes != 0 && bytes % size == 0 {
            return format!("{}{suffix}", bytes / size);
        }
    }
    bytes.to_string()
}

/// (multiplier, divisor) of a suffix.
fn multiplier(suffix: &str) -> Option<(i128, i128)> {
    let binary = |power: u32| Some((1i128 << (10 * power), 1));
    let decimal = |power: u32| Some((10i128.pow(3 * power), 1));
    match suffix {
        "" => Some((1, 1)),
        // metrics-server reports CPU in nanocores.
        "n" => Some((1, 1_000_000_000)),
        "u" => Some((1, 1_000_000)),
        "m" => Some((1, 1000)),
        "k" => decimal(1),
        "M" => decimal(2),
        "G" => decimal(3),
        "T" => decimal(4),
        "P" => decimal(5),
        "E" => decimal(6),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        _ => {
            let exponent: u32 = suffix.strip_prefix(['e', 'E'])?.parse().ok()?;
            Some((10i128.checked_pow(exponent)?, 1))
        }
    }
}

/// Compares two quantity strings; None when either is not a quantity.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    Some(Quantity::parse(a)?.cmp(&Quantity::parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_suffixes() {
        assert_eq!(compare("1Gi", "1024Mi"), Some(Ordering::Equal));
        assert_eq!(compare("1G", "1000M"), Some(Ordering::Equal));
        assert_eq!(compare("1Gi", "1G"), Some(Ordering::Greater));
        assert_eq!(compare("1073741824", "1Gi"), Some(Ordering::Equal));
    }

    #[test]
    fn fractions_and_millis() {
        assert_eq!(compare("0.5", "500m"), Some(Ordering::Equal));
        assert_eq!(compare("1.5Gi", "1536Mi"), Some(Ordering::Equal));
        assert_eq!(compare("100m", "0.1"), Some(Ordering::Equal));
        assert_eq!(compare("2e3", "2k"), Some(Ordering::Equal));
    }

    #[test]
    fn growing_and_shrinking() {
        assert_eq!(compare("2Gi", "1Gi"), Some(Ordering::Greater));
        assert_eq!(compare("500Mi", "1Gi"), Some(Ordering::Less));
    }

    #[test]
    fn sums_are_written_as_kubernetes_writes_them() {
        assert_eq!(format_cpu(250), "250m");
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(
            format_memory(Quantity::parse("384Mi").unwrap().milli()),
            "384Mi"
        );
        assert_eq!(
            format_memory(Quantity::parse("2048Mi").unwrap().milli()),
            "2Gi"
        );
        assert_eq!(
            format_memory(Quantity::parse("1000").unwrap().milli()),
            "1000"
        );
        assert_eq!(format_memory(0), "0");
    }

    #[test]
    fn garbage_is_not_a_quantity() {
        for text in ["", "Gi", "1.2.3", "one", "1Xi", "1 Gi x"] {
            assert_eq!(Quantity::parse(text), None, "{text:?}");
        }
    }
}
