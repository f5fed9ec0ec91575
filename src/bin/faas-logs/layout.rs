//! Timestamps written with Go's reference-time layouts (`2006-01-02T15:04:05Z07:00`,
//! `15:04:05.000`, ...), as faas-cli's `--time-format` takes them, and Go's named layouts.

use chrono::{DateTime, Datelike, FixedOffset, Offset, Timelike, Utc};

/// The zone timestamps are written in (`--timezone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zone {
    /// UTC, as faas-cli writes them.
    Utc,
    /// The machine's own zone, at each timestamp (summer time included).
    Local,
    /// A fixed offset from UTC.
    Fixed(FixedOffset),
}

impl Zone {
    /// `UTC`, `Local` (any case) or an offset such as `+02:00`, `-0530`, `+09`.
    pub(crate) fn parse(value: &str) -> Result<Zone, String> {
        match value.to_ascii_lowercase().as_str() {
            "utc" | "z" => return Ok(Zone::Utc),
            "local" => return Ok(Zone::Local),
            _ => {}
        }
        let invalid =
            || format!("invalid time zone {value:?} (use UTC, Local or an offset such as +02:00)");
        let (sign, digits) = match value.as_bytes().first() {
            Some(b'+') => (1, &value[1..]),
            Some(b'-') => (-1, &value[1..]),
            _ => return Err(invalid()),
        };
        let digits: String = digits.chars().filter(|c| *c != ':').collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
            return Err(invalid());
        }
        let hours: i32 = digits[..2].parse().map_err(|_| invalid())?;
        let minutes: i32 = digits
            .get(2..)
            .filter(|m| !m.is_empty())
            .map_or(Ok(0), str::parse)
            .map_err(|_| invalid())?;
        if hours > 23 || minutes > 59 {
            return Err(invalid());
        }
        FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
            .map(Zone::Fixed)
            .ok_or_else(invalid)
    }

    /// The offset from UTC at `at`.
    fn offset_at(self, at: &DateTime<Utc>) -> FixedOffset {
        match self {
            Zone::Utc => FixedOffset::east_opt(0).expect("zero is an offset"),
            Zone::Local => at.with_timezone(&chrono::Local).offset().fix(),
            Zone::Fixed(offset) => offset,
        }
    }
}

/// A `--time-format` value as the layout it names: Go's layout names in any case
/// (`rfc3339`, `ANSIC`, `kitchen`, ...), any other text as a layout itself.
pub(crate) fn named(value: &str) -> String {
    let layout = match value.to_ascii_lowercase().as_str() {
        "ansic" => "Mon Jan _2 15:04:05 2006",
        "unixdate" => "Mon Jan _2 15:04:05 MST 2006",
        "rubydate" => "Mon Jan 02 15:04:05 -0700 2006",
        "rfc822" => "02 Jan 06 15:04 MST",
        "rfc822z" => "02 Jan 06 15:04 -0700",
        "rfc850" => "Monday, 02-Jan-06 15:04:05 MST",
        "rfc1123" => "Mon, 02 Jan 2006 15:04:05 MST",
        "rfc1123z" => "Mon, 02 Jan 2006 15:04:05 -0700",
        "rfc3339" => "2006-01-02T15:04:05Z07:00",
        "rfc3339nano" => "2006-01-02T15:04:05.999999999Z07:00",
        "kitchen" => "3:04PM",
        "stamp" => "Jan _2 15:04:05",
        "stampmilli" => "Jan _2 15:04:05.000",
        "stampmicro" => "Jan _2 15:04:05.000000",
        "stampnano" => "Jan _2 15:04:05.000000000",
        "datetime" => "2006-01-02 15:04:05",
        "dateonly" => "2006-01-02",
        "timeonly" => "15:04:05",
        _ => value,
    };
    layout.to_owned()
}

/// One element of a layout, as Go's `nextStdChunk` finds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    Pm,
    LowerPm,
    ZoneName,
    /// A numeric zone: with `Z` for UTC when `z`, with colons, with seconds, hours only.
    Zone {
        z: bool,
        colons: bool,
        seconds: bool,
        hours_only: bool,
    },
    /// Fractional seconds: so many digits, trailing zeros trimmed when `trim`.
    Fraction {
        digits: usize,
        trim: bool,
        separator: u8,
    },
}

/// The element at the start of `rest`, and its length in the layout.
fn element_at(rest: &str) -> Option<(Element, usize)> {
    use Element::*;
    let starts = |p: &str| rest.starts_with(p);
    let zone = |z, colons, seconds, hours_only| Zone {
        z,
        colons,
        seconds,
        hours_only,
    };
    let found = match rest.as_bytes().first()? {
        b'J' if starts("January") => (LongMonth, 7),
        // As "Mon": "Jan" followed by a lower-case letter is a word ("Janet").
        b'J' if starts("Jan") && !rest[3..].starts_with(|c: char| c.is_ascii_lowercase()) => {
            (Month, 3)
        }
        b'M' if starts("Monday") => (LongWeekDay, 6),
        // "Mon" followed by a lower-case letter is a word ("Month"), not the weekday.
        b'M' if starts("Mon") && !rest[3..].starts_with(|c: char| c.is_ascii_lowercase()) => {
            (WeekDay, 3)
        }
        b'M' if starts("MST") => (ZoneName, 3),
        b'0' if starts("002") => (ZeroYearDay, 3),
        b'0' if starts("01") => (ZeroMonth, 2),
        b'0' if starts("02") => (ZeroDay, 2),
        b'0' if starts("03") => (ZeroHour12, 2),
        b'0' if starts("04") => (ZeroMinute, 2),
        b'0' if starts("05") => (ZeroSecond, 2),
        b'0' if starts("06") => (Year, 2),
        b'1' if starts("15") => (Hour, 2),
        b'1' => (NumMonth, 1),
        b'2' if starts("2006") => (LongYear, 4),
        b'2' => (Day, 1),
        b'_' if starts("__2") => (UnderYearDay, 3),
        // "_2006" is an underscore and then the year.
        b'_' if starts("_2") && !starts("_2006") => (UnderDay, 2),
        b'3' => (Hour12, 1),
        b'4' => (Minute, 1),
        b'5' => (Second, 1),
        b'P' if starts("PM") => (Pm, 2),
        b'p' if starts("pm") => (LowerPm, 2),
        b'-' if starts("-070000") => (zone(false, false, true, false), 7),
        b'-' if starts("-07:00:00") => (zone(false, true, true, false), 9),
        b'-' if starts("-0700") => (zone(false, false, false, false), 5),
        b'-' if starts("-07:00") => (zone(false, true, false, false), 6),
        b'-' if starts("-07") => (zone(false, false, false, true), 3),
        b'Z' if starts("Z070000") => (zone(true, false, true, false), 7),
        b'Z' if starts("Z07:00:00") => (zone(true, true, true, false), 9),
        b'Z' if starts("Z0700") => (zone(true, false, false, false), 5),
        b'Z' if starts("Z07:00") => (zone(true, true, false, false), 6),
        b'Z' if starts("Z07") => (zone(true, false, false, true), 3),
        &separator @ (b'.' | b',') => {
            // A run of 0s or 9s after the separator, not followed by another digit.
            let bytes = rest.as_bytes();
            let digit = *bytes.get(1)?;
            if digit != b'0' && digit != b'9' {
                return None;
            }
            let run = bytes[1..].iter().take_while(|&&b| b == digit).count();
            if bytes.get(1 + run).is_some_and(u8::is_ascii_digit) {
                return None;
            }
            let fraction = Fraction {
                digits: run,
                trim: digit == b'9',
                separator,
            };
            (fraction, 1 + run)
        }
        _ => return None,
    };
    Some(found)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A Go layout read once into its text and elements, to write many timestamps with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Layout(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Element(Element),
}

impl Layout {
    /// The elements of the Go `layout`, as Go's `nextStdChunk` finds them.
    pub(crate) fn parse(layout: &str) -> Layout {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = layout;
        while let Some(c) = rest.chars().next() {
            match element_at(rest) {
                Some((element, len)) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Element(element));
                    rest = &rest[len..];
                }
                None => {
                    text.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Layout(pieces)
    }

    /// Whether it writes nothing (no timestamp is printed).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `at` written with this layout in `zone` (faas-cli writes UTC), appended to `out`.
    pub(crate) fn format(&self, at: &DateTime<Utc>, zone: Zone, out: &mut String) {
        let offset = zone.offset_at(at);
        let local = at.with_timezone(&offset);
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Element(element) => write_element(*element, &local, out),
            }
        }
    }
}

/// One element of a layout, for `at`, appended to `out`.
fn write_element(element: Element, at: &DateTime<FixedOffset>, out: &mut String) {
    use std::fmt::Write;
    let offset = at.offset().local_minus_utc();
    let (sign, offset_abs) = if offset < 0 {
        ('-', -offset)
    } else {
        ('+', offset)
    };
    let (zone_hours, zone_minutes, zone_seconds) =
        (offset_abs / 3600, offset_abs / 60 % 60, offset_abs % 60);
    let month = at.month0() as usize;
    let weekday = at.weekday().num_days_from_sunday() as usize;
    let hour12 = match at.hour() % 12 {
        0 => 12,
        h => h,
    };
    // Writing to a String cannot fail.
    let _ = match element {
        Element::LongMonth => write!(out, "{}", MONTHS[month]),
        Element::Month => write!(out, "{}", &MONTHS[month][..3]),
        Element::NumMonth => write!(out, "{}", month + 1),
        Element::ZeroMonth => write!(out, "{:02}", month + 1),
        Element::LongWeekDay => write!(out, "{}", DAYS[weekday]),
        Element::WeekDay => write!(out, "{}", &DAYS[weekday][..3]),
        Element::Day => write!(out, "{}", at.day()),
        Element::UnderDay => write!(out, "{:>2}", at.day()),
        Element::ZeroDay => write!(out, "{:02}", at.day()),
        Element::UnderYearDay => write!(out, "{:>3}", at.ordinal()),
        Element::ZeroYearDay => write!(out, "{:03}", at.ordinal()),
        Element::Hour => write!(out, "{:02}", at.hour()),
        Element::Hour12 => write!(out, "{hour12}"),
        Element::ZeroHour12 => write!(out, "{hour12:02}"),
        Element::Minute => write!(out, "{}", at.minute()),
        Element::ZeroMinute => write!(out, "{:02}", at.minute()),
        Element::Second => write!(out, "{}", at.second()),
        Element::ZeroSecond => write!(out, "{:02}", at.second()),
        Element::LongYear => write!(out, "{:04}", at.year()),
        Element::Year => write!(out, "{:02}", at.year().rem_euclid(100)),
        Element::Pm => write!(out, "{}", if at.hour() >= 12 { "PM" } else { "AM" }),
        Element::LowerPm => write!(out, "{}", if at.hour() >= 12 { "pm" } else { "am" }),
        // Go writes UTC by name, and a zone it has no name for as -0700.
        Element::ZoneName if offset == 0 => write!(out, "UTC"),
        Element::ZoneName => write!(out, "{sign}{zone_hours:02}{zone_minutes:02}"),
        Element::Zone {
            z,
            colons,
            seconds,
            hours_only,
        } => {
            if z && offset == 0 {
                out.push('Z');
            } else {
                let colon = if colons { ":" } else { "" };
                let _ = write!(out, "{sign}{zone_hours:02}");
                if !hours_only {
                    let _ = write!(out, "{colon}{zone_minutes:02}");
                }
                if seconds {
                    let _ = write!(out, "{colon}{zone_seconds:02}");
                }
            }
            Ok(())
        }
        Element::Fraction {
            digits,
            trim,
            separator,
        } => {
            let nanos = format!("{:09}", at.nanosecond() % 1_000_000_000);
            let mut shown = &nanos[..digits.min(9)];
            if trim {
                shown = shown.trim_end_matches('0');
            }
            if !shown.is_empty() {
                out.push(char::from(separator));
                out.push_str(shown);
            }
            Ok(())
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 2, 7, 15, 4, 5).unwrap()
            + chrono::Duration::nanoseconds(120_000_000)
    }

    fn formatted(value: &str) -> String {
        let mut out = String::new();
        Layout::parse(&named(value)).format(&at(), Zone::Utc, &mut out);
        out
    }

    #[test]
    fn zones_write_the_time_and_offset_as_go_does() {
        let written = |layout: &str, zone: &str| {
            let mut out = String::new();
            Layout::parse(&named(layout)).format(&at(), Zone::parse(zone).unwrap(), &mut out);
            out
        };
        assert_eq!(
            written("rfc3339nano", "+02:00"),
            "2024-02-07T17:04:05.12+02:00"
        );
        assert_eq!(
            written("rfc1123z", "-0530"),
            "Wed, 07 Feb 2024 09:34:05 -0530"
        );
        assert_eq!(written("unixdate", "+09"), "Thu Feb  8 00:04:05 +0900 2024");
        assert_eq!(written("rfc3339", "utc"), "2024-02-07T15:04:05Z");
        assert_eq!(written("2006-01-02 Z07", "+02:00"), "2024-02-07 +02");
        for bad in ["Mars", "+2", "+24:00", "+02:60", "0200", "+02:0"] {
            assert!(Zone::parse(bad).is_err(), "{bad}");
        }
    }

    // Each expected value is what Go's time.Format prints for 2024-02-07T15:04:05.12Z.
    #[test]
    fn layouts_print_as_go_prints_them() {
        for (layout, expected) in [
            ("rfc3339", "2024-02-07T15:04:05Z"),
            ("RFC3339Nano", "2024-02-07T15:04:05.12Z"),
            ("ansic", "Wed Feb  7 15:04:05 2024"),
            ("UnixDate", "Wed Feb  7 15:04:05 UTC 2024"),
            ("rubydate", "Wed Feb 07 15:04:05 +0000 2024"),
            ("rfc822", "07 Feb 24 15:04 UTC"),
            ("rfc850", "Wednesday, 07-Feb-24 15:04:05 UTC"),
            ("rfc1123z", "Wed, 07 Feb 2024 15:04:05 +0000"),
            ("kitchen", "3:04PM"),
            ("15:04:05.000", "15:04:05.120"),
            ("15:04:05,999999", "15:04:05,12"),
            (
                "2006-01-02 3:4:5 pm -07:00 -07 Z07",
                "2024-02-07 3:4:5 pm +00:00 +00 Z",
            ),
            (
                "January Monday 002 __2 _2006",
                "February Wednesday 038  38 _2024",
            ),
            ("Month: Jan Janet", "Month: Feb Janet"),
            (".0000009 1.5", ".0000009 2.5"),
            ("", ""),
        ] {
            assert_eq!(formatted(layout), expected, "layout {layout:?}");
        }
    }
}
