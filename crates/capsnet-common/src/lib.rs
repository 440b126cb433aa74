//! Helpers shared by the burn crates and `xtask`, which must build in seconds and so never
//! depends on burn. Its only dependencies are `toml` and `serde`.
//!
//! Every JSON file the `capsnet` binary writes and xtask reads has its one type here
//! ([`summary::Summary`], [`bench::BenchResult`], [`info::InfoReport`], [`sweep::SweepPlan`],
//! with [`machine::MachineInfo`] and [`device::DeviceSelector`] inside them), so a renamed
//! field is a compile error on both sides.

pub mod bench;
pub mod cpu;
pub mod device;
pub mod info;
pub mod machine;
pub mod summary;
pub mod sweep;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// A TOML value as `dotted.key → value`: tables are flattened, anything else (arrays
/// included) is a value. A value that is not a table is one entry under the empty key.
pub fn flatten_toml(value: &toml::Value) -> BTreeMap<String, toml::Value> {
    fn walk(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

/// Calendar fields of a UTC instant: `(year, month, day, hour, minute, second)`.
pub type CivilTime = (i64, u32, u32, u64, u64, u64);

/// UTC calendar date and time of `secs` seconds after the Unix epoch (Howard Hinnant's
/// civil-from-days algorithm, exact for the proleptic Gregorian calendar).
pub fn civil_utc(secs: u64) -> CivilTime {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), for logs and reports.
pub fn format_utc(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil_utc(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC), for machine-read records.
pub fn format_utc_rfc3339(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil_utc(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `1234567` → `1,234,567`: thousands separated by commas, as tables and plots print counts.
pub fn group_thousands(n: u64) -> String {
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

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_flattens_to_dotted_keys() {
        let v: toml::Value = toml::from_str(
            "name = \"q\"\n[model]\nconv1_channels = 64\nrouting.iterations = 3\n[train]\nlr = [1, 2]\n",
        )
        .unwrap();
        let flat = flatten_toml(&v);
        let keys: Vec<_> = flat.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "model.conv1_channels",
                "model.routing.iterations",
                "name",
                "train.lr"
            ]
        );
        assert_eq!(flat["model.routing.iterations"], toml::Value::Integer(3));
        assert!(flat["train.lr"].is_array());
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(35_445_522), "35,445,522");
    }

    #[test]
    fn known_instants() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_796_030_850), "2026-11-30 09:27:30");
        assert_eq!(format_utc(1_795_829_461), "2026-11-28 01:31:01");
        assert_eq!(format_utc_rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(
            civil_utc(4_107_542_400),
            (2100, 3, 1, 0, 0, 0),
            "2100 is no leap year"
        );
    }
}
