//! Rendering build progress events: plain lines (CI, pipes), a compact
//! live view on a terminal, JSON lines for tools, or nothing.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Instant;

use kiln_build_engine::{Event, EventKind, StepId, Stream};
use tokio::sync::mpsc::UnboundedReceiver;

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// `tty` on a terminal, `plain` otherwise.
    Auto,
    /// One line per event.
    Plain,
    /// Step lines only; RUN output is shown for failing steps.
    Tty,
    /// Only warnings and errors.
    Quiet,
    /// One JSON object per event.
    Json,
}

impl ProgressMode {
    fn resolve(self) -> ProgressMode {
        match self {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            m => m,
        }
    }
}

/// Renders events until the channel closes.
pub async fn render(rx: UnboundedReceiver<Event>, mode: ProgressMode, explain: bool) {
    let mode = mode.resolve();
    if mode == ProgressMode::Tty {
        return render_tty(rx, explain).await;
    }
    render_lines(rx, mode, explain).await
}

/// The live view: a spinner per running step showing its latest output
/// line; finished, cached and failed steps scroll up as plain lines.
async fn render_tty(mut rx: UnboundedReceiver<Event>, explain: bool) {
    use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
    let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{spinner:.cyan} {elapsed:>4} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut bars: HashMap<StepId, (ProgressBar, String)> = HashMap::new();
    let width = 100;
    while let Some(ev) = rx.recv().await {
        let label = ev
            .step
            .as_ref()
            .map(|s| s.label.clone())
            .unwrap_or_default();
        match (&ev.kind, &ev.step) {
            (EventKind::Started, Some(step)) => {
                let pb = mp.add(ProgressBar::new_spinner());
                pb.set_style(style.clone());
                pb.set_message(label.clone());
                pb.enable_steady_tick(std::time::Duration::from_millis(100));
                bars.insert(step.clone(), (pb, label));
            }
            (EventKind::Log { line, .. }, Some(step)) => {
                if let Some((pb, l)) = bars.get(step) {
                    let short: String = line.chars().take(width).collect();
                    pb.set_message(format!("{l}\n      {short}"));
                }
            }
            (EventKind::Cached, _) => {
                let _ = mp.println(format!("  CACHED {label}"));
            }
            (EventKind::Finished { duration }, Some(step)) => {
                if let Some((pb, _)) = bars.remove(step) {
                    pb.finish_and_clear();
                    mp.remove(&pb);
                    let _ =
                        mp.println(format!("  DONE   {label} ({:.1}s)", duration.as_secs_f64()));
                }
            }
            (EventKind::Failed { message }, step) => {
                if let Some((pb, _)) = step.as_ref().and_then(|s| bars.remove(s)) {
                    pb.finish_and_clear();
                    mp.remove(&pb);
                }
                let _ = mp.println(format!("  ERROR  {label}: {message}"));
            }
            (EventKind::CacheMiss { reasons }, _) if explain && !reasons.is_empty() => {
                let _ = mp.println(format!("  MISS   {label}: {}", reasons.join("; ")));
            }
            (EventKind::Warning { message }, _) => {
                let _ = mp.println(format!("WARNING: {message}"));
            }
            (EventKind::Info { message }, _) => {
                let _ = mp.println(message.clone());
            }
            _ => {}
        }
    }
    for (pb, _) in bars.into_values() {
        pb.finish_and_clear();
    }
}

async fn render_lines(mut rx: UnboundedReceiver<Event>, mode: ProgressMode, explain: bool) {
    let start = Instant::now();
    let mut numbers: HashMap<StepId, usize> = HashMap::new();
    let mut err = std::io::stderr();
    while let Some(ev) = rx.recv().await {
        let n = ev.step.as_ref().map(|s| {
            let next = numbers.len() + 1;
            *numbers.entry(s.clone()).or_insert(next)
        });
        let label = ev
            .step
            .as_ref()
            .map(|s| s.label.clone())
            .unwrap_or_default();
        let n = n.unwrap_or(0);
        let t = start.elapsed().as_secs_f64();
        let line = match (&ev.kind, mode) {
            (_, ProgressMode::Json) => Some(json_line(&ev)),
            (EventKind::Warning { message }, _) => Some(format!("WARNING: {message}")),
            (EventKind::Info { message }, ProgressMode::Plain | ProgressMode::Tty) => {
                Some(message.clone())
            }
            (EventKind::Failed { message }, _) => Some(format!("#{n} ERROR: {message}")),
            (_, ProgressMode::Quiet) => None,
            (EventKind::Started, _) => Some(format!("#{n} {label}")),
            (EventKind::Cached, _) => Some(format!("#{n} {label}\n#{n} CACHED")),
            (EventKind::CacheMiss { reasons }, _) if explain => Some(if reasons.is_empty() {
                format!("#{n} cache miss: no earlier build of this step")
            } else {
                format!("#{n} cache miss: {}", reasons.join("; "))
            }),
            (EventKind::CacheMiss { .. }, _) => None,
            (EventKind::Log { line, stream }, ProgressMode::Plain | ProgressMode::Tty) => {
                let tag = if *stream == Stream::Stderr { " !" } else { "" };
                Some(format!("#{n} {t:.3}{tag} {line}"))
            }
            (EventKind::Finished { duration }, _) => {
                Some(format!("#{n} DONE {:.1}s", duration.as_secs_f64()))
            }
            _ => None,
        };
        if let Some(l) = line {
            let _ = writeln!(err, "{l}");
        }
    }
}

fn json_line(ev: &Event) -> String {
    let step = ev.step.as_ref().map(|s| {
        serde_json::json!({"stage": s.stage, "index": s.index, "label": s.label, "line": s.line})
    });
    let (kind, extra) = match &ev.kind {
        EventKind::Started => ("started", serde_json::json!({})),
        EventKind::Cached => ("cached", serde_json::json!({})),
        EventKind::CacheMiss { reasons } => ("cache_miss", serde_json::json!({"reasons": reasons})),
        EventKind::Log { stream, line } => (
            "log",
            serde_json::json!({"stream": if *stream == Stream::Stderr {"stderr"} else {"stdout"}, "line": line}),
        ),
        EventKind::Finished { duration } => (
            "finished",
            serde_json::json!({"seconds": duration.as_secs_f64()}),
        ),
        EventKind::Failed { message } => ("failed", serde_json::json!({"message": message})),
        EventKind::Warning { message } => ("warning", serde_json::json!({"message": message})),
        EventKind::Info { message } => ("info", serde_json::json!({"message": message})),
        _ => ("other", serde_json::json!({})),
    };
    serde_json::json!({"event": kind, "step": step, "data": extra}).to_string()
}
