//! Timestamps written as Go writes them: RFC 3339 in UTC with nanoseconds and trailing
//! zeros trimmed.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, SecondsFormat, Timelike, Utc};

/// A timestamp as Go's `time.Time` marshals it in UTC (`2023-07-04T16:32:22.223912519Z`,
/// `2019-11-10T23:00:00Z`), written into a stack buffer without allocating.
///
/// It is the encoder's hot path: chrono's own formatting costs about twice as much per
/// short line (BENCHMARKS.md). Years outside 0-9999, which Go refuses, are written as
/// chrono writes them.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use faas_logs::codec::Rfc3339;
///
/// let t = Utc.with_ymd_and_hms(2019, 11, 10, 23, 0, 0).unwrap();
/// assert_eq!(Rfc3339::new(&t).as_str(), "2019-11-10T23:00:00Z");
/// ```
#[derive(Clone, Copy)]
pub struct Rfc3339 {
    buf: [u8; 40],
    len: usize,
}

impl Rfc3339 {
    /// Writes `ts`.
    #[must_use]
    pub fn new(ts: &DateTime<Utc>) -> Self {
        let mut out = Rfc3339 {
            buf: [0; 40],
            len: 0,
        };
        let date = ts.date_naive();
        let year = date.year();
        if !(0..=9999).contains(&year) {
            // Go refuses these years; chrono's text is the sensible answer.
            let text = ts.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            let n = text.len().min(out.buf.len());
            out.buf[..n].copy_from_slice(&text.as_bytes()[..n]);
            out.len = n;
            return out;
        }
        let time = ts.time();
        let mut nanos = time.nanosecond();
        let mut second = time.second();
        if nanos >= 1_000_000_000 {
            // chrono's leap second: write it as second 60, as RFC 3339 allows.
            nanos -= 1_000_000_000;
            second = 60;
        }
        let b = &mut out.buf;
        put4(b, 0, year as u32);
        b[4] = b'-';
        put2(b, 5, date.month());
        b[7] = b'-';
        put2(b, 8, date.day());
        b[10] = b'T';
        put2(b, 11, time.hour());
        b[13] = b':';
        put2(b, 14, time.minute());
        b[16] = b':';
        out.len = put_second_on(b, second, nanos);
        out
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation, or chrono's own (valid UTF-8) text, are written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// Writes the second, the fraction with its trailing zeros trimmed (none when zero) and
/// the `Z` after `b`'s first 17 bytes (`YYYY-MM-DDTHH:MM:`); returns the length of the
/// whole. `b` holds at least 30 bytes.
pub(crate) fn put_second_on(b: &mut [u8], second: u32, mut nanos: u32) -> usize {
    put2(b, 17, second);
    let mut len = 19;
    if nanos != 0 {
        b[19] = b'.';
        let mut digits = 9;
        while nanos % 10 == 0 {
            nanos /= 10;
            digits -= 1;
        }
        for i in (0..digits).rev() {
            b[20 + i] = b'0' + (nanos % 10) as u8;
            nanos /= 10;
        }
        len = 20 + digits;
    }
    b[len] = b'Z';
    len + 1
}

fn put2(b: &mut [u8], at: usize, v: u32) {
    b[at] = b'0' + (v / 10 % 10) as u8;
    b[at + 1] = b'0' + (v % 10) as u8;
}

fn put4(b: &mut [u8], at: usize, v: u32) {
    put2(b, at, v / 100);
    put2(b, at + 2, v % 100);
}

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Parses an RFC 3339 timestamp into UTC: the form providers write
/// (`2024-03-01T12:00:00.123456789Z`) at a glance, any other form (an offset, a leap
/// second, lower-case letters) with chrono's full parser. Both give the same answers.
pub(crate) fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    match parse_utc_fast(text.as_bytes()) {
        Some(at) => Ok(at),
        None => DateTime::parse_from_rfc3339(text).map(|t| t.to_utc()),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.F{1,9}]Z` with every field in range, else `None`.
fn parse_utc_fast(b: &[u8]) -> Option<DateTime<Utc>> {
    let digits = |from: usize, len: usize| -> Option<i64> {
        let mut v = 0i64;
        for &d in b.get(from..from + len)? {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(d - b'0');
        }
        Some(v)
    };
    let punctuation = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if punctuation.iter().any(|&(at, c)| b.get(at) != Some(&c)) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut nanos = 0u32;
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        nanos = u32::try_from(digits(20, len)?).ok()? * 10u32.pow(9 - len as u32);
        rest = &fraction[len..];
    }
    if rest != b"Z" {
        return None;
    }
    // Consecutive lines nearly always fall on one day: its date is kept, not rebuilt.
    thread_local! {
        static LAST_DAY: std::cell::Cell<Option<([u8; 10], NaiveDate)>> =
            const { std::cell::Cell::new(None) };
    }
    let day_text: [u8; 10] = b[..10].try_into().ok()?;
    let date = match LAST_DAY.get() {
        Some((text, date)) if text == day_text => date,
        _ => {
            let date = NaiveDate::from_ymd_opt(
                i32::try_from(year).ok()?,
                u32::try_from(month).ok()?,
                u32::try_from(day).ok()?,
            )?;
            LAST_DAY.set(Some((day_text, date)));
            date
        }
    };
    let time = NaiveTime::from_hms_nano_opt(hour as u32, minute as u32, second as u32, nanos)?;
    Some(date.and_time(time).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};

    #[test]
    fn a_leap_second_is_second_60() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .unwrap()
            .and_utc();
        assert_eq!(stamp(leap), "2016-12-31T23:59:60.5Z");
    }

    fn stamp(ts: DateTime<Utc>) -> String {
        Rfc3339::new(&ts).as_str().to_owned()
    }

    #[test]
    fn timestamp_trims_trailing_zeros_like_go() {
        let base = Utc.with_ymd_and_hms(2023, 7, 4, 16, 32, 22).unwrap();
        let cases = [
            (0, "2023-07-04T16:32:22Z"),
            (223_912_519, "2023-07-04T16:32:22.223912519Z"),
            (120_000_000, "2023-07-04T16:32:22.12Z"),
            (1, "2023-07-04T16:32:22.000000001Z"),
            (100_000, "2023-07-04T16:32:22.0001Z"),
        ];
        for (nanos, want) in cases {
            let ts = base + chrono::Duration::nanoseconds(nanos);
            assert_eq!(stamp(ts), want);
        }
    }

    #[test]
    fn timestamp_matches_chrono_over_many_instants() {
        // Compare with chrono's parser: our text must parse back to the same instant.
        let mut t = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        let step = chrono::Duration::seconds(86_400 * 37 + 3_661)
            + chrono::Duration::nanoseconds(7_654_321);
        while t.year() < 9999 {
            let text = stamp(t);
            let back = DateTime::parse_from_rfc3339(&text)
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(back, t, "{text}");
            t += step;
        }
    }

    #[test]
    fn out_of_range_years_do_not_panic() {
        let far = DateTime::<Utc>::MAX_UTC;
        assert!(stamp(far).ends_with('Z'));
        assert!(stamp(DateTime::<Utc>::MIN_UTC).len() > 10);
    }

    #[test]
    fn the_fast_parse_agrees_with_chronos_for_every_form() {
        let mut texts: Vec<String> = vec![
            "2024-02-29T23:59:59.999999999Z".into(),
            "2023-02-29T00:00:00Z".into(),
            "2100-02-29T00:00:00Z".into(),
            "2000-02-29T00:00:00Z".into(),
            "0001-01-01T00:00:00Z".into(),
            "1969-12-31T23:59:59.5Z".into(),
            "2024-04-31T00:00:00Z".into(),
            "2024-13-01T00:00:00Z".into(),
            "2024-00-01T00:00:00Z".into(),
            "2024-01-01T24:00:00Z".into(),
            "2024-06-30T23:59:60Z".into(),
            "2024-01-01T00:00:00.Z".into(),
            "2024-01-01T00:00:00.1234567891Z".into(),
            "2024-01-01T00:00:00z".into(),
            "2024-01-01t00:00:00Z".into(),
            "2024-01-01T00:00:00+02:00".into(),
            "2024-01-01T00:00:00".into(),
            "2024-1-01T00:00:00Z".into(),
            "+024-01-01T00:00:00Z".into(),
            "".into(),
        ];
        // Every day of four years, at changing times and fractions.
        let mut at = DateTime::parse_from_rfc3339("1999-11-30T01:02:03Z")
            .unwrap()
            .to_utc();
        for i in 0..1_500i64 {
            at += chrono::Duration::seconds(86_400 + 3_607)
                + chrono::Duration::nanoseconds(i * 7_919);
            texts.push(Rfc3339::new(&at).as_str().to_owned());
        }
        for text in &texts {
            let chrono = DateTime::parse_from_rfc3339(text).map(|t| t.to_utc()).ok();
            assert_eq!(parse_rfc3339(text).ok(), chrono, "{text}");
            if let Some(fast) = parse_utc_fast(text.as_bytes()) {
                assert_eq!(Some(fast), chrono, "{text}");
            }
        }
    }
}
