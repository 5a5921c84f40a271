//! The two small unit parsers of the config: durations ("250ms", "10s", "off")
//! and byte sizes (65536, "64 KiB", "4 MiB").
//!
//! Both take a whole number and one unit, nothing fancier: a config value
//! should read the same to every operator, so "1.5m" or "1m30s" are refused
//! rather than guessed at.

use std::time::Duration;

/// What a bad duration looks like in an error message.
const DURATION_EXAMPLES: &str = "examples: 250ms, 10s, 5m, 1h, off";

/// What a bad size looks like in an error message.
const SIZE_EXAMPLES: &str = "examples: 65536, \"64 KiB\", \"4 MiB\", \"1 GiB\"";

/// Parses a duration: a whole number followed by `ms`, `s`, `m` or `h`
/// (a space between them is allowed), or `off` / `none` for "no limit",
/// which comes back as `None`.
///
/// The error is the problem text, ready to follow a key path.
pub(crate) fn parse_duration(text: &str) -> Result<Option<Duration>, String> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("off") || trimmed.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = || format!("{text:?} is not a duration ({DURATION_EXAMPLES})");
    let (number, unit) = split_number(trimmed).ok_or_else(bad)?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    let millis = number
        .checked_mul(millis_per_unit)
        .ok_or_else(|| format!("{text:?} is too long a duration"))?;
    Ok(Some(Duration::from_millis(millis)))
}

/// Parses a byte size written as a string: a whole number, optionally
/// followed by a unit — `B`, `KiB`, `MiB`, `GiB` (powers of 1024) or `kB`,
/// `KB`, `MB`, `GB` (powers of 1000).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let bad = || format!("{text:?} is not a size ({SIZE_EXAMPLES})");
    let (number, unit) = split_number(trimmed).ok_or_else(bad)?;
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large a size"))
}

/// Splits "10 s" into (10, "s"). `None` when there is no leading number or
/// it overflows.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let number = text[..digits].parse().ok()?;
    let rest = &text[digits..];
    // At most one space between number and unit: "10 s" yes, "10   s" no.
    let unit = rest.strip_prefix(' ').unwrap_or(rest);
    if unit.starts_with(' ') {
        return None;
    }
    Some((number, unit))
}

/// A duration as the config writes it, in its largest whole unit ("30m").
#[cfg(test)]
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    [("h", 3_600_000), ("m", 60_000), ("s", 1_000)]
        .into_iter()
        .find(|(_, n)| ms > 0 && ms.is_multiple_of(*n))
        .map_or(format!("{ms}ms"), |(unit, n)| format!("{}{unit}", ms / n))
}

/// A size as the config writes it, in its largest whole binary unit
/// ("16 MiB").
#[cfg(test)]
pub(crate) fn format_size(bytes: usize) -> String {
    [("GiB", 30), ("MiB", 20), ("KiB", 10)]
        .into_iter()
        .find(|(_, shift)| bytes > 0 && bytes.is_multiple_of(1 << shift))
        .map_or(format!("{bytes} B"), |(unit, shift)| {
            format!("{} {unit}", bytes >> shift)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_read_back() {
        for ms in [1, 50, 999, 1_000, 90_000, 60_000, 1_800_000, 7_200_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(Some(d)), "{ms}");
        }
        assert_eq!(format_duration(Duration::from_secs(1800)), "30m");
        for bytes in [1, 1000, 1024, 65536, 16 << 20, 3 << 30] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes as u64), "{bytes}");
        }
        assert_eq!(format_size(16 << 20), "16 MiB");
    }

    #[test]
    fn durations() {
        let ok = |t: &str| parse_duration(t).unwrap();
        assert_eq!(ok("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(ok("10s"), Some(Duration::from_secs(10)));
        assert_eq!(ok("10 s"), Some(Duration::from_secs(10)));
        assert_eq!(ok("5m"), Some(Duration::from_secs(300)));
        assert_eq!(ok("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(ok("0s"), Some(Duration::ZERO));
        assert_eq!(ok("off"), None);
        assert_eq!(ok("None"), None);
        for bad in [
            "",
            "10",
            "s",
            "1.5s",
            "-1s",
            "10 parsecs",
            "1m30s",
            "10  s",
            "10sec",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains("is not a duration (examples: 250ms"),
                "{bad}: {e}"
            );
        }
        assert!(parse_duration("99999999999999999h").is_err());
    }

    #[test]
    fn sizes() {
        let ok = |t: &str| parse_size(t).unwrap();
        assert_eq!(ok("65536"), 65536);
        assert_eq!(ok("64 KiB"), 65536);
        assert_eq!(ok("4MiB"), 4 << 20);
        assert_eq!(ok("1 GiB"), 1 << 30);
        assert_eq!(ok("16kB"), 16_000);
        assert_eq!(ok("2 MB"), 2_000_000);
        assert_eq!(ok("12 B"), 12);
        for bad in ["", "KiB", "4 megs", "1.5MiB", "-1", "4 mib"] {
            assert!(
                parse_size(bad).unwrap_err().contains("is not a size"),
                "{bad}"
            );
        }
        assert!(
            parse_size("99999999999999 GiB")
                .unwrap_err()
                .contains("too large")
        );
    }
}
