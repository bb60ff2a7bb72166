//! Go's `time.ParseDuration`, which BuildKit uses for the `HEALTHCHECK`
//! intervals: a sequence of decimal numbers with units (`1h30m`, `1.5s`,
//! `300ms`), an optional sign, or a bare `0`.

use std::time::Duration;

use nom::branch::alt;
use nom::bytes::complete::tag;
use nom::character::complete::digit0;
use nom::combinator::opt;
use nom::sequence::pair;
use nom::{IResult, Parser};

/// A signed duration as Go represents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoDuration {
    pub negative: bool,
    pub value: Duration,
}

fn number(i: &str) -> IResult<&str, &str> {
    let (rest, (int, frac)) = pair(digit0, opt(pair(tag("."), digit0))).parse(i)?;
    let has_digit = !int.is_empty() || frac.is_some_and(|(_, f): (&str, &str)| !f.is_empty());
    if !has_digit {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Digit,
        )));
    }
    Ok((rest, &i[..i.len() - rest.len()]))
}

fn unit(i: &str) -> IResult<&str, u64> {
    alt((
        tag("ns").map(|_| 1u64),
        tag("us").map(|_| 1_000),
        tag("µs").map(|_| 1_000),
        tag("μs").map(|_| 1_000),
        tag("ms").map(|_| 1_000_000),
        tag("s").map(|_| 1_000_000_000),
        tag("m").map(|_| 60_000_000_000),
        tag("h").map(|_| 3_600_000_000_000),
    ))
    .parse(i)
}

/// Parses a Go duration string; the error is Go's message.
pub(crate) fn parse_go_duration(s: &str) -> Result<GoDuration, String> {
    let invalid = || format!("time: invalid duration \"{s}\"");
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body == "0" {
        return Ok(GoDuration {
            negative,
            value: Duration::ZERO,
        });
    }
    if body.is_empty() {
        return Err(invalid());
    }
    let mut parts: Vec<(&str, Option<u64>)> = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let Ok((r, part)) = pair(number, opt(unit)).parse(rest) else {
            break;
        };
        parts.push(part);
        rest = r;
        if part.1.is_none() {
            break;
        }
    }
    if parts.is_empty() {
        return Err(invalid());
    }
    if !rest.is_empty() {
        return Err(if rest.chars().next().is_some_and(|c| c.is_alphabetic()) {
            format!(
                "time: unknown unit \"{}\" in duration \"{s}\"",
                rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
            )
        } else {
            invalid()
        });
    }
    let mut nanos: u128 = 0;
    for (num, unit) in parts {
        let Some(unit) = unit else {
            return Err(format!("time: missing unit in duration \"{s}\""));
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| invalid())?
        };
        let mut v = int.checked_mul(u128::from(unit)).ok_or_else(invalid)?;
        let mut scale = u128::from(unit);
        for d in frac.bytes().take(20) {
            scale /= 10;
            v += u128::from(d - b'0') * scale;
        }
        nanos = nanos.checked_add(v).ok_or_else(invalid)?;
    }
    if nanos > i64::MAX as u128 {
        return Err(invalid());
    }
    Ok(GoDuration {
        negative,
        value: Duration::from_nanos(u64::try_from(nanos).map_err(|_| invalid())?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = |s: &str| parse_go_duration(s).map(|d| d.value);
        assert_eq!(d("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(d("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(d("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_go_duration("10"),
            Err("time: missing unit in duration \"10\"".to_owned())
        );
        assert!(d("1x").is_err());
        assert!(d("").is_err());
        assert!(parse_go_duration("-1s").is_ok_and(|d| d.negative));
    }
}
