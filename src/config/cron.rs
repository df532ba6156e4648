//! Cron expressions as crontab users know them, checked field by field with messages that
//! name the field and its range, then handed to the `cron` crate (which only computes fire
//! times).
//!
//! - 5 fields are a crontab line (`minute hour day-of-month month day-of-week`) and fire at
//!   second 0; 6 fields put seconds first; 7 add a year (1970–2099) last. `@hourly`,
//!   `@daily` (`@midnight`), `@weekly`, `@monthly` and `@yearly` (`@annually`) work too.
//! - Day-of-week numbers mean what they mean in crontab: 0 and 7 are Sunday, 1 is Monday,
//!   6 Saturday; `SUN`–`SAT` work as well. (The `cron` crate numbers Sunday 1: values are
//!   translated, never passed through.)
//! - As in crontab, when both day-of-month and day-of-week are restricted (neither starts
//!   with `*`), a day matches if *either* matches (`0 12 13 * 5`: the 13th, and Fridays).
//! - An expression that never fires (`0 0 30 2 *`: February has no 30th) is an error.

use chrono::{DateTime, TimeZone};
use std::collections::BTreeSet;
use std::ops::Range;
use std::str::FromStr;

/// A checked cron expression: one `cron` schedule, or two whose fire times are merged
/// (day-of-month or day-of-week, as crontab does).
#[derive(Debug, Clone)]
pub struct CronExpr {
    schedules: Vec<cron::Schedule>,
}

/// Why an expression was refused: a message, the byte span in the expression it is about,
/// and a likely fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    pub message: String,
    pub span: Range<usize>,
    pub help: Option<String>,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The first name's value.
    names_from: u32,
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
    names_from: 0,
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    names_from: 0,
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    names_from: 0,
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    names_from: 0,
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    names_from: 1,
};
/// 7 is Sunday too; it is folded into 0.
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    names_from: 0,
};
const YEAR: Field = Field {
    name: "year",
    min: 1970,
    max: 2099,
    names: &[],
    names_from: 0,
};

const MONTH_NAMES: [&str; 12] = [
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
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTH_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// A field's values, and whether it was written starting with `*` (or `?`).
struct Values {
    set: BTreeSet<u32>,
    star: bool,
}

fn err(message: impl Into<String>, span: Range<usize>) -> CronError {
    CronError {
        message: message.into(),
        span,
        help: None,
    }
}

fn value(field: &Field, text: &str, at: usize) -> Result<u32, CronError> {
    let span = at..at + text.len();
    if let Ok(n) = text.parse::<u32>() {
        if n < field.min || n > field.max {
            let mut e = err(
                format!(
                    "{} {n} is out of range: a {} is {} to {}",
                    field.name, field.name, field.min, field.max
                ),
                span,
            );
            if field.name == "day-of-week" {
                e.help = Some("0 and 7 are Sunday, 1 is Monday, 6 is Saturday".into());
            }
            return Err(e);
        }
        return Ok(n);
    }
    let upper = text.to_ascii_uppercase();
    if let Some(i) = field.names.iter().position(|n| *n == upper) {
        return Ok(field.names_from + i as u32);
    }
    let mut e = err(format!("\"{text}\" is not a {} value", field.name), span);
    e.help = Some(match super::diag::closest(&upper, field.names.iter().copied()) {
        Some(n) => format!("did you mean `{n}`?"),
        None if field.names.is_empty() => format!("a {} is a number from {} to {}", field.name, field.min, field.max),
        None => format!(
            "a {} is a number from {} to {} or one of {}",
            field.name,
            field.min,
            field.max,
            field.names.join(", ")
        ),
    });
    if ["L", "W", "#"].iter().any(|c| upper.contains(c)) {
        e.help = Some("`L`, `W` and `#` (last, weekday, nth) are not supported".into());
    }
    Err(e)
}

fn parse_field(field: &Field, text: &str, at: usize) -> Result<Values, CronError> {
    let mut set = BTreeSet::new();
    let star = text.starts_with('*') || text.starts_with('?');
    let mut offset = at;
    for item in text.split(',') {
        let item_span = offset..offset + item.len();
        offset += item.len() + 1;
        if item.is_empty() {
            return Err(err(format!("an empty item in the {} field", field.name), item_span));
        }
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => {
                let s_at = item_span.start + b.len() + 1;
                match s.parse::<u32>() {
                    Ok(n) if n > 0 => (b, Some(n)),
                    _ => {
                        return Err(err(
                            format!("step \"{s}\" in the {} field is not a whole number from 1", field.name),
                            s_at..s_at + s.len(),
                        ));
                    }
                }
            }
            None => (item, None),
        };
        let (lo, hi) = if base == "*" || base == "?" {
            if base == "?" && field.name != "day-of-month" && field.name != "day-of-week" {
                return Err(err(
                    format!(
                        "`?` is only for day-of-month and day-of-week, not the {} field",
                        field.name
                    ),
                    item_span,
                ));
            }
            (field.min, if field.name == "day-of-week" { 6 } else { field.max })
        } else if let Some((a, b)) = base.split_once('-') {
            let a_at = item_span.start;
            let lo = value(field, a, a_at)?;
            let hi = value(field, b, a_at + a.len() + 1)?;
            if lo > hi {
                return Err(CronError {
                    message: format!("the {} range {base} goes backwards", field.name),
                    span: a_at..a_at + base.len(),
                    help: Some(format!(
                        "write it from low to high, as two ranges if it wraps: `{lo}-{},{}-{hi}`",
                        field.max, field.min
                    )),
                });
            }
            (lo, hi)
        } else {
            let v = value(field, base, item_span.start)?;
            (v, if step.is_some() { field.max } else { v })
        };
        let mut v = lo;
        while v <= hi {
            set.insert(v);
            v += step.unwrap_or(1);
        }
    }
    if field.name == "day-of-week" && set.remove(&7) {
        set.insert(0);
    }
    Ok(Values { set, star })
}

/// The field as the `cron` crate reads it.
fn emit(field: &Field, v: &Values) -> String {
    let full = (field.min..=field.max)
        .filter(|n| !(field.name == "day-of-week" && *n == 7))
        .all(|n| v.set.contains(&n));
    if full && field.name != "year" {
        return "*".into();
    }
    let items: Vec<String> = if field.name == "day-of-week" {
        v.set.iter().map(|d| DAYS[*d as usize].to_string()).collect()
    } else {
        v.set.iter().map(u32::to_string).collect()
    };
    items.join(",")
}

const SHAPES: &str =
    "5 fields (minute hour day-of-month month day-of-week, as crontab), 6 (seconds first) or 7 (a year last)";

impl CronExpr {
    /// The fire times strictly after `after`, in its time zone.
    pub fn after<'a, Z: TimeZone + 'a>(&'a self, after: &DateTime<Z>) -> Box<dyn Iterator<Item = DateTime<Z>> + 'a> {
        match self.schedules.as_slice() {
            [one] => Box::new(one.after(after)),
            [a, b] => {
                let (mut a, mut b) = (a.after(after).peekable(), b.after(after).peekable());
                Box::new(std::iter::from_fn(move || match (a.peek(), b.peek()) {
                    (Some(x), Some(y)) if x == y => {
                        b.next();
                        a.next()
                    }
                    (Some(x), Some(y)) if x < y => a.next(),
                    (Some(_), Some(_)) => b.next(),
                    (Some(_), None) => a.next(),
                    (None, _) => b.next(),
                }))
            }
            _ => Box::new(std::iter::empty()),
        }
    }
}

impl FromStr for CronExpr {
    type Err = CronError;

    fn from_str(text: &str) -> Result<CronExpr, CronError> {
        let macro_ = match text.trim() {
            "@yearly" | "@annually" => Some("0 0 1 1 *"),
            "@monthly" => Some("0 0 1 * *"),
            "@weekly" => Some("0 0 * * 0"),
            "@daily" | "@midnight" => Some("0 0 * * *"),
            "@hourly" => Some("0 * * * *"),
            t if t.starts_with('@') => {
                let mut e = err(format!("unknown cron macro \"{t}\""), 0..text.len());
                e.help = Some("the macros are @yearly, @monthly, @weekly, @daily and @hourly".into());
                return Err(e);
            }
            _ => None,
        };
        if let Some(m) = macro_ {
            return m.parse();
        }
        let mut fields: Vec<(&str, usize)> = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
            let len = rest[start..].find(char::is_whitespace).unwrap_or(rest.len() - start);
            fields.push((&rest[start..start + len], offset + start));
            offset += start + len;
            rest = &rest[start + len..];
        }
        let shape: &[&Field] = match fields.len() {
            5 => &[&MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK],
            6 => &[&SECOND, &MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK],
            7 => &[&SECOND, &MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK, &YEAR],
            n => {
                let mut e = err(
                    format!("a cron expression has {SHAPES}; this one has {n}"),
                    0..text.len(),
                );
                e.help = Some("for 09:00 on weekdays write \"0 9 * * 1-5\" (or \"0 0 9 * * 1-5\" with seconds)".into());
                return Err(e);
            }
        };
        let mut values = Vec::new();
        for (field, (t, at)) in shape.iter().zip(&fields) {
            values.push(parse_field(field, t, *at)?);
        }
        if fields.len() == 5 {
            values.insert(
                0,
                Values {
                    set: BTreeSet::from([0]),
                    star: false,
                },
            );
        }
        let shape: Vec<&Field> = [&SECOND, &MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK, &YEAR]
            .into_iter()
            .take(values.len())
            .collect();
        let line = |dom_star: bool, dow_star: bool| {
            let parts: Vec<String> = shape
                .iter()
                .zip(&values)
                .enumerate()
                .map(|(i, (f, v))| match i {
                    3 if dom_star => "*".to_string(),
                    5 if dow_star => "*".to_string(),
                    _ => emit(f, v),
                })
                .collect();
            parts.join(" ")
        };
        let (dom, dow) = (&values[3], &values[5]);
        let lines = if !dom.star && !dow.star {
            vec![line(false, true), line(true, false)]
        } else {
            vec![line(false, false)]
        };
        let schedules = lines
            .iter()
            .map(|l| {
                cron::Schedule::from_str(l).map_err(|e| err(format!("cannot schedule \"{l}\": {e}"), 0..text.len()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let expr = CronExpr { schedules };
        if expr.after(&chrono::Utc::now()).next().is_none() {
            let months: Vec<&str> = values[4].set.iter().map(|m| MONTH_NAMES[*m as usize - 1]).collect();
            let days: Vec<String> = dom.set.iter().map(u32::to_string).collect();
            let fits = values[4]
                .set
                .iter()
                .any(|m| dom.set.iter().any(|d| *d <= MONTH_DAYS[*m as usize - 1]));
            let message = if fits {
                "this schedule never fires again: every year it names is past".to_string()
            } else {
                format!(
                    "this schedule never fires: {} {} no day {}",
                    months.join(", "),
                    if months.len() == 1 { "has" } else { "have" },
                    days.join(", ")
                )
            };
            return Err(err(message, 0..text.len()));
        }
        Ok(expr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike, Utc};

    fn fires(expr: &str, from: &str, n: usize) -> Vec<String> {
        let e: CronExpr = expr.parse().unwrap();
        let from = DateTime::parse_from_rfc3339(from).unwrap().with_timezone(&Utc);
        e.after(&from)
            .take(n)
            .map(|t| format!("{} {:02}:{:02}:{:02}", t.weekday(), t.hour(), t.minute(), t.second()))
            .collect()
    }

    #[test]
    fn weekday_numbers_mean_what_crontab_means() {
        // 2026-12-05 is a Saturday.
        let weekdays = [
            "Mon 09:00:00",
            "Tue 09:00:00",
            "Wed 09:00:00",
            "Thu 09:00:00",
            "Fri 09:00:00",
            "Mon 09:00:00",
        ];
        assert_eq!(fires("0 0 9 * * 1-5", "2026-12-05T12:00:00Z", 6), weekdays);
        assert_eq!(fires("0 9 * * 1-5", "2026-12-05T12:00:00Z", 6), weekdays);
        assert_eq!(fires("0 9 * * MON-FRI", "2026-12-05T12:00:00Z", 6), weekdays);
        assert_eq!(
            fires("0 9 * * 0", "2026-12-05T12:00:00Z", 2),
            ["Sun 09:00:00", "Sun 09:00:00"]
        );
        assert_eq!(fires("0 9 * * 7", "2026-12-05T12:00:00Z", 1), ["Sun 09:00:00"]);
        assert_eq!(
            fires("0 9 * * 5-7", "2026-12-05T08:00:00Z", 3),
            ["Sat 09:00:00", "Sun 09:00:00", "Fri 09:00:00"]
        );
        assert_eq!(
            fires("0 9 * * */2", "2026-12-05T12:00:00Z", 3),
            ["Sun 09:00:00", "Tue 09:00:00", "Thu 09:00:00"]
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_as_crontab() {
        let e: CronExpr = "0 12 13 * 5".parse().unwrap();
        let from = DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let days: Vec<u32> = e.after(&from).take(4).map(|t| t.day()).collect();
        // Fridays 6, 13 (also the 13th: once), 20, 27.
        assert_eq!(days, [6, 13, 20, 27]);
    }

    #[test]
    fn refusals_name_the_field_and_its_range() {
        let e = "0 61 * * * *".parse::<CronExpr>().unwrap_err();
        assert_eq!(e.message, "minute 61 is out of range: a minute is 0 to 59");
        assert_eq!(e.span, 2..4);
        let e = "0 0 30 2 *".parse::<CronExpr>().unwrap_err();
        assert_eq!(e.message, "this schedule never fires: February has no day 30");
        let e = "every monday".parse::<CronExpr>().unwrap_err();
        assert!(e.message.contains("this one has 2"), "{}", e.message);
        let e = "0 9 * * 8".parse::<CronExpr>().unwrap_err();
        assert_eq!(e.message, "day-of-week 8 is out of range: a day-of-week is 0 to 7");
        let e = "0 9 * * MON-FIR".parse::<CronExpr>().unwrap_err();
        assert_eq!(e.help.as_deref(), Some("did you mean `FRI`?"));
        assert_eq!(e.span, 12..15);
    }
}
