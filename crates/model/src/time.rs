//! Time as plain values. Pure code never reads a clock: `now` is passed in.
//! A `Timestamp` is Unix time in milliseconds; it prints as RFC 3339 (UTC).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time: milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// From Unix seconds.
    pub fn from_secs(s: i64) -> Self {
        Self(s * 1000)
    }

    /// From fractional Unix seconds (rounded to the millisecond).
    pub fn from_secs_f64(s: f64) -> Self {
        Self((s * 1000.0).round() as i64)
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Fractional seconds since the epoch.
    pub fn secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// This time plus `ms` milliseconds.
    pub fn plus_ms(self, ms: i64) -> Self {
        Self(self.0 + ms)
    }

    /// This time plus `s` seconds.
    pub fn plus_secs(self, s: i64) -> Self {
        Self(self.0 + s * 1000)
    }

    /// Seconds from `earlier` to `self` (negative if `earlier` is later).
    pub fn secs_since(self, earlier: Timestamp) -> f64 {
        (self.0 - earlier.0) as f64 / 1000.0
    }

    /// RFC 3339 text in UTC, with milliseconds only when they are non-zero.
    pub fn rfc3339(self) -> String {
        let secs = self.0.div_euclid(1000);
        let ms = self.0.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let (hh, mm, ss) = (sod / 3600, (sod % 3600) / 60, sod % 60);
        if ms == 0 {
            format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
        } else {
            format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z")
        }
    }

    /// Parses RFC 3339 (`2024-01-15T10:00:00Z`, optional fraction, `Z` or a
    /// `±HH:MM` offset; a space instead of `T` is accepted).
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimeError> {
        let bad = || TimeError(s.to_string());
        let b = s.as_bytes();
        if b.len() < 19 {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64, TimeError> {
            let t = s.get(r).ok_or_else(bad)?;
            if !t.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse::<i64>().map_err(|_| bad())
        };
        if b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') {
            return Err(bad());
        }
        if b[13] != b':' || b[16] != b':' {
            return Err(bad());
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return Err(bad());
        }
        let mut i = 19;
        let mut ms = 0i64;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(bad());
            }
            let frac = &s[start..i.min(start + 3)];
            ms = frac.parse::<i64>().map_err(|_| bad())? * 10i64.pow(3 - frac.len() as u32);
        }
        let offset_s = match &s[i..] {
            "Z" | "z" | "" => 0,
            tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                if &tz[3..4] != ":" {
                    return Err(bad());
                }
                let sign = if tz.starts_with('-') { -1 } else { 1 };
                sign * (oh * 3600 + om * 60)
            }
            _ => return Err(bad()),
        };
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_s;
        Ok(Self(secs * 1000 + ms))
    }
}

/// A time value that could not be parsed; holds the text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid timestamp {0:?}: expected RFC 3339 like 2024-01-15T10:00:00Z")]
pub struct TimeError(pub String);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Secs(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => Timestamp::parse_rfc3339(&t).map_err(serde::de::Error::custom),
            Raw::Secs(s) if s.is_finite() => Ok(Timestamp::from_secs_f64(s)),
            Raw::Secs(s) => Err(serde::de::Error::custom(format!("invalid timestamp {s}"))),
        }
    }
}

impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01; Howard Hinnant's algorithm.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a duration like `90s`, `5m`, `1h30m`, `30d`, `250ms` into
/// milliseconds (Prometheus style units: ms, s, m, h, d, w).
pub fn parse_duration_ms(text: &str) -> Result<i64, DurationError> {
    let bad = || DurationError(text.to_string());
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// A duration that could not be parsed; holds the text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "invalid duration {0:?}: expected a number with a unit (ms, s, m, h, d, w), e.g. 90s, 5m, 30d"
)]
pub struct DurationError(pub String);

/// Formats milliseconds as a short duration (`90s`, `5m`, `1h30m`).
pub fn format_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let mut s = ms / 1000;
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2024-01-15T10:00:00Z",
            "2000-02-29T23:59:59.123Z",
            "2026-11-25T16:17:00Z",
        ] {
            let t = Timestamp::parse_rfc3339(text).expect("parses");
            assert_eq!(t.rfc3339(), text);
        }
        assert_eq!(
            Timestamp::parse_rfc3339("2024-01-15T10:00:00Z").map(|t| t.millis()),
            Ok(1_705_312_800_000)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2024-01-15T12:00:00+02:00"),
            Timestamp::parse_rfc3339("2024-01-15T10:00:00Z")
        );
    }

    #[test]
    fn rfc3339_rejects_garbage_and_quotes_it() {
        for text in [
            "",
            "2024-13-01T00:00:00Z",
            "2024-01-15",
            "2024-01-15T10:00:00Q",
            "yesterday",
        ] {
            let err = Timestamp::parse_rfc3339(text).expect_err(text);
            assert!(err.to_string().contains(&format!("{text:?}")));
        }
    }

    #[test]
    fn durations_parse_prometheus_style() {
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("30d"), Ok(2_592_000_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert!(parse_duration_ms("10").is_err());
        assert!(parse_duration_ms("5 minutes").is_err());
        assert!(parse_duration_ms("-5s").is_err());
        assert_eq!(format_duration_ms(5_400_000), "1h30m");
        assert_eq!(format_duration_ms(600_000), "10m");
    }
}
