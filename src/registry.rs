//! Registry commands: `kiln pull`, `kiln push`, `kiln login`,
//! `kiln logout`, `kiln search`, and the push after `kiln build --push`.
//! Output follows Docker's: one line per layer when stdout is not a
//! terminal, a live bar per layer when it is.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_build_engine::{
    LayerStatus, PullEvent, PullOptions, PushEvent, PushStatus, RegistryClient, Root, SearchResult,
};

/// `kiln pull` arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  kiln pull busybox\n  kiln pull localhost:5000/app:1.2\n  \
kiln pull localhost:5000/app@sha256:<digest>\n  kiln pull --platform linux/arm64 -q alpine"
)]
pub struct PullArgs {
    /// Platform to select from a multi-platform image (`os/arch[/variant]`).
    #[arg(long)]
    platform: Option<String>,
    /// Print only the image name.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// `NAME[:TAG|@DIGEST]`.
    name: String,
}

/// `kiln push` arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  kiln tag app localhost:5000/team/app:1.0\n  \
kiln push localhost:5000/team/app:1.0"
)]
pub struct PushArgs {
    /// Push every tag of the repository in the local store.
    #[arg(short = 'a', long)]
    all_tags: bool,
    /// Print only the pushed name.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// `NAME[:TAG]`.
    name: String,
}

/// `kiln login` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kiln login -u me localhost:5000\n  \
echo \"$TOKEN\" | kiln login -u me --password-stdin registry.example.com")]
pub struct LoginArgs {
    /// User name.
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password (visible to other users of this machine: prefer --password-stdin).
    #[arg(short = 'p', long)]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// The registry (default: Docker Hub).
    server: Option<String>,
}

/// `kiln logout` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kiln logout localhost:5000\n  kiln logout")]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub).
    server: Option<String>,
}

/// `kiln search` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kiln search busy localhost:5000\n  \
kiln search localhost:5000/busy\n  kiln search --format '{{.Name}}' app localhost:5000")]
pub struct SearchArgs {
    /// At most this many results.
    #[arg(long, default_value_t = 25)]
    limit: usize,
    /// Do not truncate descriptions.
    #[arg(long)]
    no_trunc: bool,
    /// Filter: `stars=N` (at least N stars), `is-official=true|false`.
    #[arg(short = 'f', long = "filter")]
    filters: Vec<String>,
    /// Go-template-like format: `{{.Name}}`, `{{.Description}}`,
    /// `{{.StarCount}}`, `{{.IsOfficial}}`; a `table ` prefix adds a header.
    #[arg(long)]
    format: Option<String>,
    /// The term (`REGISTRY/TERM` searches that registry).
    term: String,
    /// The registry to search (default: from TERM, else Docker Hub).
    registry: Option<String>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

fn short_id(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

fn human(n: u64) -> String {
    // Docker's units: decimal (kB, MB, GB).
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.3}GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1}MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1}kB", f / 1e3)
    } else {
        format!("{n}B")
    }
}

/// Per-layer progress: live bars on a terminal, final lines otherwise.
struct LayerView {
    live: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    quiet: bool,
    to_stderr: bool,
}

impl LayerView {
    fn new(quiet: bool, to_stderr: bool) -> LayerView {
        let tty = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let live = (tty && !quiet).then(|| {
            let target = if to_stderr {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::stdout()
            };
            (MultiProgress::with_draw_target(target), HashMap::new())
        });
        LayerView {
            live,
            quiet,
            to_stderr,
        }
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        if let Some((mp, _)) = &self.live {
            let _ = mp.println(text);
        } else if self.to_stderr {
            eprintln!("{text}");
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
        }
    }

    /// Adds bars for `layers` (shown top-most first, as Docker does).
    fn add(&mut self, layers: &[String]) {
        let Some((mp, bars)) = &mut self.live else {
            return;
        };
        let style = ProgressStyle::with_template("{prefix}: {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        for d in layers {
            if bars.contains_key(d) {
                continue;
            }
            let bar = mp.add(ProgressBar::new(0).with_style(style.clone()));
            bar.set_prefix(short_id(d));
            bar.set_message("Waiting");
            bars.insert(d.clone(), bar);
        }
    }

    /// Leaves every bar in its last state on screen (as Docker does) and
    /// stops redrawing.
    fn finish(&self) {
        if let Some((_, bars)) = &self.live {
            for b in bars.values().filter(|b| !b.is_finished()) {
                b.abandon();
            }
            // indicatif leaves the cursor at the end of the last bar.
            if !bars.is_empty() {
                if self.to_stderr {
                    eprintln!();
                } else {
                    println!();
                }
            }
        }
    }

    /// Shows a transient status (terminal only).
    fn status(&self, digest: &str, text: String) {
        if let Some((_, bars)) = &self.live
            && let Some(b) = bars.get(digest)
        {
            b.set_message(text);
        }
    }

    /// Shows a final status: the bar's last state, or a plain line.
    fn done(&self, digest: &str, text: &str) {
        match &self.live {
            Some((_, bars)) => {
                if let Some(b) = bars.get(digest) {
                    b.finish_with_message(text.to_string());
                }
            }
            None => self.line(&format!("{}: {text}", short_id(digest))),
        }
    }

    fn bar(done: u64, total: u64) -> String {
        const W: u64 = 50;
        let filled = (done.min(total) * W).checked_div(total).unwrap_or(W);
        let mut s = String::from("[");
        for i in 0..W {
            s.push(if i < filled.saturating_sub(1) {
                '='
            } else if i + 1 == filled {
                '>'
            } else {
                ' '
            });
        }
        s.push(']');
        format!("{s}  {}/{}", human(done), human(total))
    }
}

/// Runs `kiln pull`.
pub fn pull(args: PullArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    let client = root.registry_client()?;
    let has_tag_or_digest = {
        let last = args.name.rsplit('/').next().unwrap_or(&args.name);
        last.contains(':') || args.name.contains('@')
    };
    if !has_tag_or_digest && !args.quiet {
        println!("Using default tag: latest");
    }
    let view = Arc::new(Mutex::new(LayerView::new(args.quiet, false)));
    let progress: kiln_build_engine::PullProgress = {
        let view = Arc::clone(&view);
        Arc::new(move |ev: PullEvent| {
            let mut v = view.lock().unwrap_or_else(|p| p.into_inner());
            match ev {
                PullEvent::Resolved {
                    reference,
                    repository,
                    mut layers,
                } => {
                    v.line(&format!("{reference}: Pulling from {repository}"));
                    layers.dedup();
                    v.add(&layers);
                }
                PullEvent::Layer { digest, status } => match status {
                    LayerStatus::Waiting => v.status(&digest, "Waiting".into()),
                    LayerStatus::Downloading { done, total } => v.status(
                        &digest,
                        format!("Downloading {}", LayerView::bar(done, total)),
                    ),
                    LayerStatus::Extracting => v.status(&digest, "Extracting".into()),
                    LayerStatus::PullComplete => v.done(&digest, "Pull complete"),
                    LayerStatus::AlreadyExists => v.done(&digest, "Already exists"),
                    _ => {}
                },
                _ => {}
            }
        })
    };
    let mut options = PullOptions::default();
    options.platform = args.platform.clone();
    let rt = runtime()?;
    let result = rt.block_on(kiln_build_engine::pull(
        &root, &args.name, &options, &client, &progress,
    ));
    view.lock().unwrap_or_else(|p| p.into_inner()).finish();
    let result = result?;
    if !args.quiet {
        println!("Digest: {}", result.digest);
        if result.up_to_date {
            println!("Status: Image is up to date for {}", result.familiar);
        } else {
            println!("Status: Downloaded newer image for {}", result.familiar);
        }
    }
    println!("{}", result.name);
    Ok(ExitCode::SUCCESS)
}

/// Pushes `name` with Docker's output (on stdout, or on stderr after a
/// build so stdout stays the build's).
fn push_one(
    rt: &tokio::runtime::Runtime,
    root: &Root,
    client: &RegistryClient,
    name: &str,
    quiet: bool,
    to_stderr: bool,
) -> anyhow::Result<()> {
    let view = Arc::new(Mutex::new(LayerView::new(quiet, to_stderr)));
    let progress: kiln_build_engine::PushProgress = {
        let view = Arc::clone(&view);
        Arc::new(move |ev: PushEvent| {
            let mut v = view.lock().unwrap_or_else(|p| p.into_inner());
            match ev {
                PushEvent::Started {
                    repository,
                    mut layers,
                } => {
                    v.line(&format!("The push refers to repository [{repository}]"));
                    layers.reverse();
                    layers.dedup();
                    v.add(&layers);
                }
                PushEvent::Layer { digest, status } => match status {
                    PushStatus::Waiting => v.status(&digest, "Waiting".into()),
                    PushStatus::Pushing { done, total } => {
                        v.status(&digest, format!("Pushing {}", LayerView::bar(done, total)))
                    }
                    PushStatus::Pushed => v.done(&digest, "Pushed"),
                    PushStatus::AlreadyExists => v.done(&digest, "Layer already exists"),
                    PushStatus::MountedFrom(repo) => {
                        v.done(&digest, &format!("Mounted from {repo}"))
                    }
                    _ => {}
                },
                _ => {}
            }
        })
    };
    let result = rt.block_on(kiln_build_engine::push(root, name, client, &progress));
    view.lock().unwrap_or_else(|p| p.into_inner()).finish();
    let result = result?;
    let line = format!(
        "{}: digest: {} size: {}",
        result.tag, result.digest, result.size
    );
    if to_stderr {
        if !quiet {
            eprintln!("{line}");
        }
    } else if quiet {
        println!("{name}");
    } else {
        println!("{line}");
    }
    Ok(())
}

/// Runs `kiln push`.
pub fn push(args: PushArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    let client = root.registry_client()?;
    let has_tag = {
        let last = args.name.rsplit('/').next().unwrap_or(&args.name);
        last.contains(':') || args.name.contains('@')
    };
    let rt = runtime()?;
    if args.all_tags {
        for name in kiln_build_engine::repository_tags(&root, &args.name)? {
            push_one(&rt, &root, &client, &name, args.quiet, false)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !has_tag && !args.quiet {
        println!("Using default tag: latest");
    }
    push_one(&rt, &root, &client, &args.name, args.quiet, false)?;
    Ok(ExitCode::SUCCESS)
}

/// Pushes each of `names` after `kiln build --push` (progress on stderr).
pub fn push_after_build(root: &Root, names: &[String], quiet: bool) -> anyhow::Result<()> {
    if names.is_empty() {
        bail!("--push needs a name: add -t NAME[:TAG]");
    }
    let client = root.registry_client()?;
    let rt = runtime()?;
    for n in names {
        push_one(&rt, root, &client, n, quiet, true).with_context(|| format!("push {n}"))?;
    }
    Ok(())
}

/// Whether a `-o` spec is BuildKit's `type=registry` (push the tags).
pub fn is_registry_output(spec: &str) -> bool {
    spec.split(',')
        .any(|p| p == "type=registry" || (p == "type=image" && spec.contains("push=true")))
}

/// Reads a line from the terminal, without echo when `secret`.
fn prompt(label: &str, secret: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "cannot perform an interactive login from a non-TTY device (use -u and --password-stdin)"
        );
    }
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let saved = if secret {
        let fd = std::io::stdin();
        let t = rustix::termios::tcgetattr(&fd).ok();
        if let Some(t) = &t {
            let mut quiet = t.clone();
            quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
            let _ = rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &quiet);
        }
        t
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    if let Some(t) = saved {
        let _ =
            rustix::termios::tcsetattr(std::io::stdin(), rustix::termios::OptionalActions::Now, &t);
        eprintln!();
    }
    read.context("read from the terminal")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Runs `kiln login`.
pub fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let registry = kiln_build_engine::registry_name(args.server.as_deref());
    if args.password.is_some() && args.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    let password = if args.password_stdin {
        if args.username.is_none() {
            bail!("must provide --username with --password-stdin");
        }
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("read the password from standard input")?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else if let Some(p) = args.password.clone() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else {
        String::new()
    };
    let username = match args.username.clone() {
        Some(u) => u,
        None => prompt("Username: ", false)?,
    };
    let password = if password.is_empty() {
        prompt("Password: ", true)?
    } else {
        password
    };
    let client = kiln_build_engine::registry_client(&kiln_build_engine::Settings::load()?)?;
    let rt = runtime()?;
    let path = rt.block_on(kiln_build_engine::login(
        &client, &registry, &username, &password,
    ))?;
    eprintln!(
        "WARNING! Your password will be stored unencrypted in {}.",
        path.display()
    );
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

/// Runs `kiln logout`.
pub fn logout(args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let registry = kiln_build_engine::registry_name(args.server.as_deref());
    if kiln_build_engine::logout(&registry)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `REGISTRY/TERM` -> (registry, term), as `docker search` splits it.
fn split_term(term: &str) -> (Option<String>, String) {
    if let Some((host, rest)) = term.split_once('/')
        && (host.contains(['.', ':']) || host == "localhost")
    {
        return (Some(host.to_string()), rest.to_string());
    }
    (None, term.to_string())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn render_search(results: &[SearchResult], no_trunc: bool, format: Option<&str>) -> String {
    let fields = |r: &SearchResult| {
        let desc = if no_trunc {
            r.description.clone()
        } else {
            truncate(&r.description, 45)
        };
        [
            r.name.clone(),
            desc,
            r.stars.to_string(),
            if r.official {
                "[OK]".into()
            } else {
                String::new()
            },
        ]
    };
    let mut out = String::new();
    if let Some(f) = format {
        let (table, tmpl) = match f.strip_prefix("table") {
            Some(rest) => (true, rest.trim_start()),
            None => (false, f),
        };
        let fill = |t: &str, v: [String; 4]| {
            t.replace("{{.Name}}", &v[0])
                .replace("{{.Description}}", &v[1])
                .replace("{{.StarCount}}", &v[2])
                .replace("{{.IsOfficial}}", &v[3])
                .replace("\\t", "\t")
        };
        if table {
            out.push_str(&fill(
                tmpl,
                [
                    "NAME".into(),
                    "DESCRIPTION".into(),
                    "STARS".into(),
                    "OFFICIAL".into(),
                ],
            ));
            out.push('\n');
        }
        for r in results {
            out.push_str(&fill(tmpl, fields(r)));
            out.push('\n');
        }
        return out;
    }
    let header = ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"].map(String::from);
    let rows: Vec<[String; 4]> = std::iter::once(header)
        .chain(results.iter().map(fields))
        .collect();
    // Docker's tabwriter: cells padded by 3, at least 20 wide (last column
    // unpadded).
    let mut widths = [0usize; 4];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count() + 3).max(20);
        }
    }
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i == 3 {
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(widths[i] - c.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Runs `kiln search`.
pub fn search(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let (from_term, term) = split_term(&args.term);
    let registry =
        kiln_build_engine::registry_name(args.registry.as_deref().or(from_term.as_deref()));
    let client = kiln_build_engine::registry_client(&kiln_build_engine::Settings::load()?)?;
    let rt = runtime()?;
    let mut min_stars = 0u64;
    let mut official = None;
    for f in &args.filters {
        match f.split_once('=') {
            Some(("stars", n)) => {
                min_stars = n
                    .parse()
                    .with_context(|| format!("--filter {f:?}: stars needs a number"))?;
            }
            Some(("is-official", v)) => {
                official =
                    Some(v.parse::<bool>().with_context(|| {
                        format!("--filter {f:?}: is-official needs true or false")
                    })?);
            }
            _ => bail!("--filter {f:?}: supported filters are stars=N and is-official=true|false"),
        }
    }
    let results: Vec<SearchResult> = rt
        .block_on(kiln_build_engine::search(
            &client, &registry, &term, args.limit,
        ))?
        .into_iter()
        .filter(|r| r.stars >= min_stars && official.is_none_or(|o| r.official == o))
        .collect();
    print!(
        "{}",
        render_search(&results, args.no_trunc, args.format.as_deref())
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_sizes_as_docker_shows_them() {
        assert_eq!(short_id("sha256:0123456789abcdef0123"), "0123456789ab");
        assert_eq!(human(1_500_000), "1.5MB");
        assert_eq!(human(999), "999B");
    }

    #[test]
    fn search_terms_may_name_the_registry() {
        assert_eq!(
            split_term("localhost:5000/busy"),
            (Some("localhost:5000".into()), "busy".into())
        );
        assert_eq!(split_term("user/app"), (None, "user/app".into()));
    }
}
