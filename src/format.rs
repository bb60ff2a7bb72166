//! Docker's output conventions, shared by the CLI's listing commands
//! (`images`, `history`, `inspect`, `ps`, ...): go-units sizes and
//! durations ("4.26MB", "2 hours ago"), Go's time printing, tabwriter
//! tables, `--format` (`table ...`, `json`, Go templates; see
//! [`template`]) and inspect's indented JSON.

pub(crate) mod template;

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use template::Template;

// ---- human units ------------------------------------------------------------

/// Go's `%.{prec}g`.
pub(crate) fn go_g(v: f64, prec: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let sci = format!("{:.*e}", prec.saturating_sub(1), v);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if exp < -4 || exp >= prec as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mant), exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        strip(&format!("{v:.decimals$}"))
    }
}

/// docker/go-units `HumanSizeWithPrecision`: decimal units (kB, MB, ...).
pub(crate) fn human_size(bytes: u64, prec: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(size, prec), UNITS[i])
}

/// docker/go-units `HumanDuration`.
pub(crate) fn human_duration(secs: i64) -> String {
    let hours = ((secs as f64) / 3600.0).round() as i64;
    let minutes = secs / 60;
    if secs < 1 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", secs / 3600 / 24 / 365)
    }
}

/// Seconds since the epoch, now.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Docker's CREATED column: `2 hours ago`, or `N/A` without a time.
pub(crate) fn since(created: Option<i64>) -> String {
    match created {
        Some(c) if c > 0 => format!("{} ago", human_duration(now() - c)),
        _ => "N/A".into(),
    }
}

/// Go's `time.Time.String()` in UTC: `2024-01-02 03:04:05 +0000 UTC`.
pub(crate) fn go_time(created: Option<&str>) -> String {
    match created {
        Some(c) if c.len() >= 19 => format!("{} {} +0000 UTC", &c[..10], &c[11..19]),
        _ => String::new(),
    }
}

// ---- tables -------------------------------------------------------------------

/// Go's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)` as Docker's tables use
/// it: tab-separated cells padded to the column's widest cell plus three,
/// at least ten; the last cell of a line is not padded.
pub(crate) fn tabwrite(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            widths[i] = widths[i].max((c.chars().count() + 3).max(10));
        }
    }
    let mut out = String::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                let pad = widths[i] - c.chars().count();
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    }
    out
}

/// Prints rows with `format`: `table ...` (header + aligned columns), `json`
/// (`{{json .}}` per row), or a plain template per row; a bare `table` is
/// `default_table`. `headers` maps field names to column titles.
pub(crate) fn print_rows(
    format: &str,
    default_table: &str,
    rows: &[Value],
    headers: &[(&str, &str)],
) -> anyhow::Result<()> {
    let (table, body) = match format.strip_prefix("table") {
        // A bare `table` is the command's default table, as in Docker.
        Some(rest) if rest.trim().is_empty() => (true, default_table),
        Some(rest) if rest.starts_with(char::is_whitespace) => (true, rest.trim_start()),
        _ => (false, format),
    };
    let body = if body == "json" { "{{json .}}" } else { body };
    let t = Template::parse(body)?;
    let mut lines = Vec::new();
    if table {
        let mut h = serde_json::Map::new();
        for f in t.fields() {
            let title = headers
                .iter()
                .find(|(k, _)| *k == f)
                .map(|(_, v)| v.to_string())
                .unwrap_or_else(|| f.to_uppercase());
            h.insert(f, Value::String(title));
        }
        lines.push(t.render(&Value::Object(h))?);
    }
    for r in rows {
        lines.push(t.render(r)?);
    }
    let mut out = std::io::stdout().lock();
    if table {
        out.write_all(tabwrite(&lines).as_bytes())?;
    } else {
        for l in lines {
            writeln!(out, "{l}")?;
        }
    }
    Ok(())
}

/// Docker's `stringutils.Ellipsis`.
pub(crate) fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// Writes JSON with four-space indentation, as Docker's inspect does.
pub(crate) fn pretty(v: &impl serde::Serialize) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(v, &mut ser)?;
    Ok(String::from_utf8(buf)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_go_units_prints_them() {
        assert_eq!(human_size(0, 3), "0B");
        assert_eq!(human_size(999, 3), "999B");
        assert_eq!(human_size(1000, 3), "1kB");
        assert_eq!(human_size(4_263_552, 3), "4.26MB");
        assert_eq!(human_size(1_500, 3), "1.5kB");
        assert_eq!(human_size(123_456, 3), "123kB");
        assert_eq!(human_size(4_263_552, 4), "4.264MB");
        assert_eq!(human_size(999_600, 3), "1e+03kB");
    }

    #[test]
    fn durations_as_go_units_prints_them() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(30), "30 seconds");
        assert_eq!(human_duration(61), "About a minute");
        assert_eq!(human_duration(7200), "2 hours");
        assert_eq!(human_duration(3 * 86_400), "3 days");
        assert_eq!(human_duration(20 * 86_400), "2 weeks");
        assert_eq!(human_duration(90 * 86_400), "3 months");
        assert_eq!(human_duration(800 * 86_400), "2 years");
    }

    #[test]
    fn tables_align_like_tabwriter() {
        let t = tabwrite(&["A\tBB\tC".into(), "long-value-here\tx\ty".into()]);
        let want = format!(
            "A{}BB{}C\nlong-value-here{}x{}y\n",
            " ".repeat(17),
            " ".repeat(8),
            " ".repeat(3),
            " ".repeat(9)
        );
        assert_eq!(t, want);
    }

    #[test]
    fn ellipsis_truncates_to_45() {
        let s = "x".repeat(50);
        assert_eq!(ellipsis(&s, 45).chars().count(), 45);
        assert!(ellipsis(&s, 45).ends_with('…'));
        assert_eq!(ellipsis("short", 45), "short");
    }
}
