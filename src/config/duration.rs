//! Durations as operators write them for ASP.NET (`TimeSpan`: `HH:MM:SS`, `d.HH:MM:SS`,
//! fractional seconds) or as plain seconds (`300`), plus the common `500ms`/`10s`/`5m`/`1h`.

use std::time::Duration;

/// Parses a duration setting; the error says which forms are accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let invalid = || {
        format!(
            "'{text}' is not a duration (use seconds such as 300, HH:MM:SS such as 00:05:00, or 500ms/10s/5m/1h)"
        )
    };
    if text.is_empty() {
        return Err(invalid());
    }
    if text.contains(':') {
        return parse_timespan(text).ok_or_else(invalid);
    }
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number.trim().parse().map_err(|_| invalid())?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(invalid()),
    };
    seconds(value * scale).ok_or_else(invalid)
}

fn seconds(value: f64) -> Option<Duration> {
    (value.is_finite() && (0.0..1e12).contains(&value)).then(|| Duration::from_secs_f64(value))
}

/// `[d.]HH:MM[:SS[.fff]]`, as .NET's `TimeSpan.Parse` reads it.
fn parse_timespan(text: &str) -> Option<Duration> {
    let mut parts = text.split(':');
    let first = parts.next()?;
    let (days, hours) = match first.split_once('.') {
        Some((d, h)) => (d.parse::<u64>().ok()?, h.parse::<u64>().ok()?),
        None => (0, first.parse::<u64>().ok()?),
    };
    let minutes: u64 = parts.next()?.parse().ok()?;
    let secs: f64 = match parts.next() {
        Some(s) => s.parse().ok()?,
        None => 0.0,
    };
    if parts.next().is_some() || hours > 23 || minutes > 59 || !(0.0..60.0).contains(&secs) {
        return None;
    }
    seconds((days * 86_400 + hours * 3600 + minutes * 60) as f64 + secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_seconds_timespans_and_units() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("00:05:00"), Ok(Duration::from_secs(300)));
        assert_eq!(
            parse_duration("1.02:00:00"),
            Ok(Duration::from_secs(93_600))
        );
        assert_eq!(
            parse_duration("00:00:01.5"),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn rejects_nonsense_with_a_hint() {
        for bad in ["", "five", "-3", "00:61:00", "1:2:3:4", "10 parsecs", "NaN"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("HH:MM:SS"), "{err}");
        }
    }
}
