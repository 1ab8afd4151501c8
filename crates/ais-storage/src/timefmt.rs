//! Formats unix times the way Go's `time.RFC822` does (`02 Jan 06 15:04 UTC`),
//! which is what AIStore puts in list entries' `atime`.

pub fn go_rfc822(unix_ns: i64) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{:02} {} {:02} {:02}:{:02} UTC",
        d,
        MON[(m - 1) as usize],
        y.rem_euclid(100),
        sod / 3600,
        (sod % 3600) / 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 3339 UTC (`2026-11-26T08:07:15.123456789Z`), as Go marshals `time.Time`;
/// 0 is Go's zero time.
pub fn rfc3339(unix_ns: i64) -> String {
    if unix_ns == 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::go_rfc822(0), "01 Jan 70 00:00 UTC");
        assert_eq!(
            super::go_rfc822(1_764_140_100 * 1_000_000_000),
            "26 Nov 25 06:55 UTC"
        );
    }
}
