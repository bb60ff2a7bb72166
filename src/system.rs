//! `kiln system prune|df` and `kiln builder prune` (alias `buildx`):
//! Docker's disk-space commands over kiln's state directory. The work is
//! `kiln_build_engine::gc`; this module asks, prints and sets exit codes.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use kiln_build_engine::Root;
use kiln_build_engine::gc::{self, PruneOptions, PruneReport, human_size};

/// `kiln system ...`.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Remove unused data: dangling images and unused build cache.
    #[command(after_help = "Examples:
  kiln system prune
  kiln system prune -a -f")]
    Prune(PruneArgs),
    /// Show disk usage.
    #[command(after_help = "Examples:
  kiln system df")]
    Df,
}

/// `kiln builder ...`.
#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache.
    #[command(after_help = "Examples:
  kiln builder prune -f
  kiln builder prune -a -f")]
    Prune(PruneArgs),
}

/// Flags of both prune commands.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images (system prune) and all build cache, not
    /// just dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
}

/// Runs `kiln system ...`.
pub fn run_system(cmd: SystemCommand) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    match cmd {
        SystemCommand::Prune(args) => {
            // Docker's wording, less what kiln does not have (networks,
            // volumes).
            let mut warning =
                String::from("WARNING! This will remove:\n  - all stopped containers\n");
            if args.all {
                warning
                    .push_str("  - all images without at least one container associated to them\n");
                warning.push_str("  - all build cache\n");
            } else {
                warning.push_str("  - all dangling images\n");
                warning.push_str("  - unused build cache\n");
            }
            if !args.force && !confirm(&format!("{warning}\nAre you sure you want to continue?"))? {
                return Ok(ExitCode::SUCCESS);
            }
            let report =
                gc::prune(&root, &PruneOptions::system().with_all(args.all)).context("prune")?;
            print_report(&report, true);
            Ok(ExitCode::SUCCESS)
        }
        SystemCommand::Df => {
            let u = gc::disk_usage(&root).context("measure disk usage")?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<16}{:<10}{:<10}{:<10}RECLAIMABLE",
                "TYPE", "TOTAL", "ACTIVE", "SIZE"
            )?;
            let row = |name: &str, r: &gc::UsageRow| {
                let pct = (r.reclaimable * 100)
                    .checked_div(r.size)
                    .map(|p| format!(" ({p}%)"))
                    .unwrap_or_default();
                format!(
                    "{:<16}{:<10}{:<10}{:<10}{}{}",
                    name,
                    r.total,
                    r.active,
                    human_size(r.size),
                    human_size(r.reclaimable),
                    pct
                )
            };
            writeln!(out, "{}", row("Images", &u.images))?;
            writeln!(out, "{}", row("Containers", &u.containers))?;
            // kiln has no volumes; Docker always prints the row.
            writeln!(
                out,
                "{:<16}{:<10}{:<10}{:<10}0B",
                "Local Volumes", 0, 0, "0B"
            )?;
            // Docker prints no percentage for the build cache.
            writeln!(
                out,
                "{:<16}{:<10}{:<10}{:<10}{}",
                "Build Cache",
                u.build_cache.total,
                u.build_cache.active,
                human_size(u.build_cache.size),
                human_size(u.build_cache.reclaimable)
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `kiln builder ...`.
pub fn run_builder(cmd: BuilderCommand) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    match cmd {
        BuilderCommand::Prune(args) => {
            let what = if args.all {
                "all build cache"
            } else {
                "all dangling build cache"
            };
            if !args.force
                && !confirm(&format!(
                    "WARNING! This will remove {what}. Are you sure you want to continue?"
                ))?
            {
                return Ok(ExitCode::SUCCESS);
            }
            let report = gc::prune(&root, &PruneOptions::build_cache().with_all(args.all))
                .context("prune build cache")?;
            print_report(&report, false);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Docker's `[y/N]` prompt: written to stdout, one line read from stdin
/// (EOF or anything but y/yes means no).
fn confirm(question: &str) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    write!(out, "{question} [y/N] ")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let answer = line.trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes")
}

fn print_report(report: &PruneReport, images: bool) {
    if report.limited {
        eprintln!(
            "WARNING: a build is running: its scratch space, snapshots and the build cache were left alone"
        );
    }
    if !report.unknown_containers.is_empty() {
        eprintln!(
            "WARNING: cannot tell which layers container(s) {} use: all snapshots were kept",
            report.unknown_containers.join(", ")
        );
    }
    if !report.deleted_containers.is_empty() {
        println!("Deleted Containers:");
        for c in &report.deleted_containers {
            println!("{c}");
        }
        println!();
    }
    if images && (!report.untagged.is_empty() || !report.deleted_images.is_empty()) {
        println!("Deleted Images:");
        for t in &report.untagged {
            println!("untagged: {t}");
        }
        for d in &report.deleted_images {
            println!("deleted: {d}");
        }
        println!();
    }
    if !report.cache_objects.is_empty() {
        println!("Deleted build cache objects:");
        for o in &report.cache_objects {
            println!("{o}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        human_size(report.reclaimed_bytes)
    );
}
