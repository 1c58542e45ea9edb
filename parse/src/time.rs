//! The time formats found in the inputs, all read as UTC.

use auditq_model::Timestamp;
use chrono::{DateTime, NaiveDateTime, Utc};

/// RFC 3339 (`2026-10-05T09:12:03Z`, with or without fractions or an offset).
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A CloudTrail `eventTime`: RFC 3339 as CloudTrail writes it, or `YYYY-MM-DD HH:MM:SS[.f]`
/// (or with a `T`) without a zone, as Athena, CloudTrail Lake exports and SIEM fixtures
/// re-export it, read as UTC (CloudTrail's times are UTC).
pub fn parse_event_time(text: &str) -> Option<Timestamp> {
    parse_rfc3339(text).or_else(|| {
        let text = text.trim();
        ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
            .map(|t| t.and_utc())
    })
}

/// The date of util-linux `script` headers: `2026-10-06 11:00:06+00:00`, `2020-05-27
/// 23:00:48+0000`, or older `Wed 27 May 2020 11:00:48 PM UTC` (read as UTC).
pub fn parse_script_date(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    for format in ["%Y-%m-%d %H:%M:%S%:z", "%Y-%m-%d %H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let without_zone = text.trim_end_matches(" UTC");
    for format in [
        "%a %d %b %Y %I:%M:%S %p",
        "%a %b %e %H:%M:%S %Y",
        "%a %d %b %Y %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(without_zone, format) {
            return Some(t.and_utc());
        }
    }
    None
}

/// Epoch milliseconds (CloudWatch Logs timestamps).
pub fn from_epoch_millis(millis: i64) -> Option<Timestamp> {
    DateTime::from_timestamp_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let want = parse_rfc3339("2026-10-06T11:00:06Z");
        assert!(want.is_some());
        assert_eq!(parse_script_date("2026-10-06 11:00:06+00:00"), want);
        assert_eq!(parse_script_date("2026-10-06 13:00:06+0200"), want);
        assert_eq!(parse_script_date("Tue 06 Oct 2026 11:00:06 AM UTC"), want);
        assert_eq!(
            from_epoch_millis(1_791_284_406_000).map(|t| t.to_rfc3339()),
            want.map(|t| t.to_rfc3339())
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn event_times_as_cloudtrail_and_its_re_exports_write_them() {
        let want = parse_rfc3339("2024-01-01T08:30:05.250Z");
        assert!(want.is_some());
        for text in [
            "2024-01-01T08:30:05.250Z",
            "2024-01-01T10:30:05.250+02:00",
            "2024-01-01 08:30:05.250",
            "2024-01-01T08:30:05.25",
            " 2024-01-01 08:30:05.250000 ",
        ] {
            assert_eq!(parse_event_time(text), want, "{text}");
        }
        assert_eq!(
            parse_event_time("2024-01-01 08:30:05"),
            parse_rfc3339("2024-01-01T08:30:05Z")
        );
        for bad in [
            "2024-01-01",
            "01/01/2024 08:30:05",
            "2024-13-01 08:30:05",
            "",
        ] {
            assert_eq!(parse_event_time(bad), None, "{bad}");
        }
    }
}
