//! Durations and sizes as people write them in flags and config files:
//! `30s`, `10m`, `4h`, `5d`; `25M`, `25MiB`, `64K`. Pure; shared by the
//! server's options, the retry schedule and the load generator.

use std::time::Duration;

/// A duration: a number with `ms`, `s`, `m`, `h` or `d`; a bare number is seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| "expected a duration such as 30s, 10m, 4h or 5d".to_string())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("unknown unit {other:?}; use s, m, h or d")),
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| "too long".to_string())
}

/// A size: bytes, or a number with `K`/`M`/`G` or `KiB`/`MiB`/`GiB`
/// (powers of 1024) or `KB`/`MB`/`GB` (powers of 1000).
pub fn parse_size(value: &str) -> Result<usize, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| "expected a size such as 25M, 25MiB or 1048576".to_string())?;
    let multiplier: usize = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?}; use K, M, G, KiB, MiB or GiB"
            ))
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| "too large".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, want) in [
            ("30s", Some(30_000)),
            ("10m", Some(600_000)),
            ("4h", Some(14_400_000)),
            ("5d", Some(432_000_000)),
            ("45", Some(45_000)),
            ("0", Some(0)),
            ("250ms", Some(250)),
            ("", None),
            ("m", None),
            ("5y", None),
            ("-5s", None),
        ] {
            assert_eq!(
                parse_duration(text).ok(),
                want.map(Duration::from_millis),
                "{text:?}"
            );
        }
    }

    #[test]
    fn sizes() {
        for (text, want) in [
            ("25M", Some(25 << 20)),
            ("25MiB", Some(25 << 20)),
            ("25mb", Some(25_000_000)),
            ("1024", Some(1024)),
            ("4K", Some(4096)),
            ("1G", Some(1 << 30)),
            ("", None),
            ("12X", None),
        ] {
            assert_eq!(parse_size(text).ok(), want, "{text:?}");
        }
    }
}
