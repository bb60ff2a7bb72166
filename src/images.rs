//! The local image commands: `kiln images`, `tag`, `rmi`, `history`,
//! `inspect`, `save`, `load`, `import` and `kiln image ...` (Docker's
//! `docker image` group, with `ls`/`rm`/`prune`). The work is done by
//! `kiln_build_engine::images`; this module parses flags and prints what
//! Docker prints (columns, sizes, "2 hours ago", `--format` templates).

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use kiln_build_engine::images::{
    self, HistoryEntry, ImageFilter, ImageSummary, ImportRequest, RemoveEvent,
};
use kiln_build_engine::{Error, Root};
use serde_json::{Value, json};

use crate::format::template::Template;
use crate::format::{ellipsis, go_time, human_size, now, pretty, print_rows, since};

/// `kiln image ...`: Docker's `docker image` command group.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images.
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Remove one or more images.
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Display detailed information on one or more images.
    Inspect(InspectArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default).
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN.
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(ImportArgs),
    /// Remove unused images.
    Prune(PruneArgs),
}

/// Runs a `kiln image` subcommand.
pub fn run_image(cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ImageCommand::Ls(a) => run_images(a),
        ImageCommand::Rm(a) => run_rmi(a),
        ImageCommand::Tag(a) => run_tag(a),
        ImageCommand::History(a) => run_history(a),
        ImageCommand::Inspect(a) => run_inspect(a, "image"),
        ImageCommand::Save(a) => run_save(a),
        ImageCommand::Load(a) => run_load(a),
        ImageCommand::Import(a) => run_import(a),
        ImageCommand::Prune(a) => run_prune(a),
    }
}

fn open_root() -> anyhow::Result<Root> {
    Root::open_configured().context("open the state directory")
}

/// Errors Docker reports per argument with exit status 1 (a missing image,
/// a conflict); anything else is kiln's own failure (125, in main).
fn user_error(e: &Error) -> bool {
    matches!(
        e,
        Error::NoSuchImage { .. } | Error::Conflict { .. } | Error::Filter { .. }
    )
}

fn fail_or_bail(e: Error) -> anyhow::Result<ExitCode> {
    if user_error(&e) {
        eprintln!("Error: {e}");
        Ok(ExitCode::from(1))
    } else {
        Err(e.into())
    }
}

// ---- images -------------------------------------------------------------------

/// `kiln images` arguments (docker images).
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kiln images
  kiln images --filter dangling=true -q
  kiln images --format '{{.Repository}}:{{.Tag}}\\t{{.Size}}' busybox")]
pub struct ImagesArgs {
    /// Show all images (kiln keeps no intermediate images, so this is the
    /// same list).
    #[arg(short = 'a', long)]
    all: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// Filter output based on conditions provided (dangling=true|false,
    /// reference=PATTERN, label=KEY[=VALUE], before=IMAGE, since=IMAGE).
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a Go template, `json`, or `table TEMPLATE`.
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Only images of this repository (and tag).
    reference: Option<String>,
}

const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "VIRTUAL SIZE"),
];

/// The rows `docker images` shows for one image: one per tag, or one
/// `<none>` row for a dangling image.
fn image_rows(img: &ImageSummary, no_trunc: bool) -> Vec<Value> {
    let id = if no_trunc {
        img.id.clone()
    } else {
        img.short_id().to_owned()
    };
    let names: Vec<(String, String)> = if img.repo_tags.is_empty() {
        vec![("<none>".into(), "<none>".into())]
    } else {
        img.repo_tags
            .iter()
            .map(|t| {
                let short = images::familiar_name(t);
                let (repo, tag) = images::split_name(&short);
                (repo.to_owned(), tag.unwrap_or("<none>").to_owned())
            })
            .collect()
    };
    let size = human_size(img.size, 3);
    names
        .into_iter()
        .map(|(repo, tag)| {
            json!({
                "Containers": "N/A",
                "CreatedAt": go_time(img.created.as_deref()),
                "CreatedSince": since(img.created_unix),
                "Digest": img.manifest_digest,
                "ID": id,
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": size,
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": size,
            })
        })
        .collect()
}

/// `kiln images` / `kiln image ls`.
pub fn run_images(args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let _ = args.all;
    let root = open_root()?;
    let mut filters = Vec::new();
    for f in &args.filter {
        match ImageFilter::parse(f) {
            Ok(f) => filters.push(f),
            Err(e) => return fail_or_bail(e),
        }
    }
    if let Some(r) = &args.reference {
        filters.push(ImageFilter::Reference(images::familiar_name(r)));
    }
    let list = images::list_images(&root)?;
    let list = match images::filter_images(list, &filters) {
        Ok(l) => l,
        Err(e) => return fail_or_bail(e),
    };
    let rows: Vec<Value> = list
        .iter()
        .flat_map(|i| image_rows(i, args.no_trunc))
        .collect();
    let default = if args.digests {
        "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let format = if args.quiet {
        "{{.ID}}".to_owned()
    } else {
        args.format.clone().unwrap_or_else(|| "table".into())
    };
    print_rows(&format, default, &rows, IMAGE_HEADERS)?;
    Ok(ExitCode::SUCCESS)
}

// ---- tag ----------------------------------------------------------------------

/// `kiln tag` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kiln tag busybox localhost:5000/tools/busybox:1.36
  kiln tag 3f57d9401f8d myapp:stable")]
pub struct TagArgs {
    /// The image (name, digest or ID prefix).
    source: String,
    /// The new name, `[REGISTRY/]REPOSITORY[:TAG]`.
    target: String,
}

/// `kiln tag`.
pub fn run_tag(args: TagArgs) -> anyhow::Result<ExitCode> {
    let root = open_root()?;
    match images::tag_image(&root, &args.source, &args.target) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => fail_or_bail(e),
    }
}

// ---- rmi ----------------------------------------------------------------------

/// `kiln rmi` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kiln rmi busybox:old
  kiln rmi -f 3f57d9401f8d
  kiln rmi $(kiln images -q --filter dangling=true)")]
pub struct RmiArgs {
    /// Remove an image referenced by several tags (by ID), untag an image
    /// a stopped container uses.
    #[arg(short = 'f', long)]
    force: bool,
    /// Images (names, digests or ID prefixes).
    #[arg(required = true)]
    images: Vec<String>,
}

fn print_events(events: &[RemoveEvent], lower: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for e in events {
        let (u, d) = if lower {
            ("untagged", "deleted")
        } else {
            ("Untagged", "Deleted")
        };
        match e {
            RemoveEvent::Untagged(n) => writeln!(out, "{u}: {n}")?,
            RemoveEvent::Deleted(n) => writeln!(out, "{d}: {n}")?,
            _ => {}
        }
    }
    Ok(())
}

/// `kiln rmi` / `kiln image rm`.
pub fn run_rmi(args: RmiArgs) -> anyhow::Result<ExitCode> {
    let root = open_root()?;
    let mut code = ExitCode::SUCCESS;
    for image in &args.images {
        match images::remove_image(&root, image, args.force) {
            Ok(events) => print_events(&events, false)?,
            Err(e) if user_error(&e) => {
                eprintln!("Error: {e}");
                code = ExitCode::from(1);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(code)
}

// ---- prune --------------------------------------------------------------------

/// `kiln image prune` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kiln image prune
  kiln image prune -a -f --filter until=24h
  kiln image prune -a --filter label=stage=build")]
pub struct PruneArgs {
    /// Remove all images no container uses, not just dangling ones.
    #[arg(short = 'a', long)]
    all: bool,
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (`until=24h`, `until=2024-01-01T00:00:00Z`,
    /// `label=KEY[=VALUE]`, `label!=KEY[=VALUE]`).
    #[arg(long = "filter")]
    filter: Vec<String>,
}

/// `kiln image prune`.
pub fn run_prune(args: PruneArgs) -> anyhow::Result<ExitCode> {
    let mut filters = Vec::new();
    for f in &args.filter {
        match images::PruneFilter::parse(f, now()) {
            Ok(f) => filters.push(f),
            Err(e) => return fail_or_bail(e),
        }
    }
    if !args.force {
        let warning = if args.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        print!("{warning}\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            println!("Total reclaimed space: 0B");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let root = open_root()?;
    let report = images::prune_images(&root, args.all, &filters)?;
    if !report.events.is_empty() {
        println!("Deleted Images:");
        print_events(&report.events, true)?;
        println!();
    }
    println!("Total reclaimed space: {}", human_size(report.reclaimed, 4));
    Ok(ExitCode::SUCCESS)
}

// ---- history ------------------------------------------------------------------

/// `kiln history` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kiln history busybox
  kiln history --no-trunc --format '{{.CreatedBy}}' myapp")]
pub struct HistoryArgs {
    /// Format output using a Go template, `json`, or `table TEMPLATE`.
    #[arg(long)]
    format: Option<String>,
    /// Print sizes and dates in human readable format.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// The image.
    image: String,
}

fn history_row(h: &HistoryEntry, args: &HistoryArgs) -> Value {
    let id = match &h.id {
        Some(id) if args.no_trunc => id.clone(),
        Some(id) => images::short_id(id).to_owned(),
        None => "<missing>".into(),
    };
    let created_by = h.created_by.replace('\t', " ");
    let created_by = if args.no_trunc {
        created_by
    } else {
        ellipsis(&created_by, 45)
    };
    let created_since = if args.human {
        since(h.created_unix)
    } else {
        h.created.clone().unwrap_or_default()
    };
    let size = if args.human {
        human_size(h.size, 3)
    } else {
        h.size.to_string()
    };
    json!({
        "Comment": h.comment,
        "CreatedAt": h.created.clone().unwrap_or_default(),
        "CreatedBy": created_by,
        "CreatedSince": created_since,
        "ID": id,
        "Size": size,
    })
}

/// `kiln history` / `kiln image history`.
pub fn run_history(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let root = open_root()?;
    let entries = match images::history(&root, &args.image) {
        Ok(e) => e,
        Err(e) => return fail_or_bail(e),
    };
    let rows: Vec<Value> = entries.iter().map(|h| history_row(h, &args)).collect();
    let format = if args.quiet {
        "{{.ID}}".to_owned()
    } else {
        args.format.clone().unwrap_or_else(|| "table".into())
    };
    print_rows(
        &format,
        "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
        &rows,
        &[
            ("ID", "IMAGE"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("CreatedBy", "CREATED BY"),
            ("Size", "SIZE"),
            ("Comment", "COMMENT"),
        ],
    )?;
    Ok(ExitCode::SUCCESS)
}

// ---- inspect ------------------------------------------------------------------

/// `kiln inspect` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kiln inspect busybox
  kiln inspect --format '{{.State.Status}}' web
  kiln inspect --format '{{.Id}} {{json .Config.Env}}' busybox myapp")]
pub struct InspectArgs {
    /// Format output using a Go template (`{{.Id}}`, `{{json .Config}}`).
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Containers (`kiln inspect` only) or images (names, digests or ID
    /// prefixes).
    #[arg(required = true)]
    images: Vec<String>,
}

/// What `kiln inspect` found for one argument.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Inspected {
    Container(Box<kiln_build_engine::containers::ContainerInspect>),
    Image(Box<images::ImageInspect>),
}

/// `kiln inspect` (`what` = "object": a container, else an image, as
/// Docker tries them) and `kiln image inspect` ("image": images only).
pub fn run_inspect(args: InspectArgs, what: &str) -> anyhow::Result<ExitCode> {
    let root = open_root()?;
    let any_object = what != "image";
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &args.images {
        if any_object {
            match kiln_build_engine::containers::inspect(&root, name) {
                Ok(c) => {
                    found.push(Inspected::Container(Box::new(c)));
                    continue;
                }
                Err(Error::NoSuchContainer(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match images::inspect(&root, name) {
            Ok(i) => found.push(Inspected::Image(Box::new(i))),
            Err(Error::NoSuchImage { reference }) => {
                errors.push(format!(
                    "Error: No such {}: {reference}",
                    if any_object { "object" } else { "image" }
                ));
            }
            Err(e) if user_error(&e) => errors.push(format!("Error: {e}")),
            Err(e) => return Err(e.into()),
        }
    }
    match &args.format {
        Some(f) => {
            let t = Template::parse(f)?;
            for i in &found {
                println!("{}", t.render(&serde_json::to_value(i)?)?);
            }
        }
        // Serialised from the typed records, so the keys keep Docker's order.
        None => println!("{}", pretty(&found)?),
    }
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

// ---- save / load ----------------------------------------------------------------

/// `kiln save` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kiln save -o busybox.tar busybox
  kiln save myapp:1 myapp:2 | gzip > myapp.tar.gz")]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short = 'o', long)]
    output: Option<std::path::PathBuf>,
    /// Images (names, digests or ID prefixes).
    #[arg(required = true)]
    images: Vec<String>,
}

/// `kiln save` / `kiln image save`.
pub fn run_save(args: SaveArgs) -> anyhow::Result<ExitCode> {
    let root = open_root()?;
    let refs: Vec<&str> = args.images.iter().map(String::as_str).collect();
    let result = match &args.output {
        Some(path) => {
            // Written beside the target and renamed, so a failed save never
            // leaves half an archive under the requested name.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".kiln-save-")
                .tempfile_in(dir)
                .with_context(|| format!("create a file in {}", dir.display()))?;
            let mut w = std::io::BufWriter::new(tmp);
            let r = images::save_images(&root, &refs, &mut w);
            if r.is_ok() {
                let tmp = w
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("write {}", path.display()))?;
                tmp.persist(path)
                    .with_context(|| format!("write {}", path.display()))?;
            }
            r
        }
        None => {
            if std::io::stdout().is_terminal() {
                eprintln!(
                    "Error: cowardly refusing to save to a terminal. Use the -o flag or redirect"
                );
                return Ok(ExitCode::from(1));
            }
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let r = images::save_images(&root, &refs, &mut out);
            out.flush()?;
            r
        }
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => fail_or_bail(e),
    }
}

/// `kiln load` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kiln load -i busybox.tar
  gunzip -c myapp.tar.gz | kiln load")]
pub struct LoadArgs {
    /// Read from a tar archive file (plain, gzip or zstd), instead of STDIN.
    #[arg(short = 'i', long)]
    input: Option<std::path::PathBuf>,
    /// Suppress the load output (kiln prints no progress; the `Loaded
    /// image` lines stay, as with Docker).
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// `kiln load` / `kiln image load`.
pub fn run_load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let _ = args.quiet;
    let root = open_root()?;
    let reader: Box<dyn Read> = match &args.input {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("open {}", p.display()))?,
        )),
        None => {
            if std::io::stdin().is_terminal() {
                eprintln!("Error: requested load from stdin, but stdin is empty");
                return Ok(ExitCode::from(1));
            }
            Box::new(std::io::stdin().lock())
        }
    };
    let loaded = images::load_images(&root, reader)?;
    for l in loaded {
        if l.names.is_empty() {
            println!("Loaded image ID: {}", l.id);
        }
        for n in &l.names {
            println!("Loaded image: {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---- import ---------------------------------------------------------------------

/// `kiln import` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kiln import rootfs.tar.gz mybase:1
  tar -C rootfs -c . | kiln import -c 'CMD [\"/bin/sh\"]' -m 'from rootfs' - mybase
  kiln import http://127.0.0.1:8000/rootfs.tar")]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV,
    /// EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR).
    #[arg(short = 'c', long = "change")]
    changes: Vec<String>,
    /// Set the commit message for the imported image.
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Set the platform (`os/arch[/variant]`).
    #[arg(long)]
    platform: Option<String>,
    /// A tarball (plain, gzip or zstd): a file, an http(s) URL, or `-` for
    /// STDIN.
    source: String,
    /// `REPOSITORY[:TAG]` for the new image.
    reference: Option<String>,
}

/// `kiln import` / `kiln image import`.
pub fn run_import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let root = open_root()?;
    let is_url = args.source.starts_with("http://") || args.source.starts_with("https://");
    // Docker names the source `-` unless it is a URL (the CLI streams
    // files as standard input).
    let mut req = ImportRequest::new(if is_url { args.source.as_str() } else { "-" });
    req.tag = args.reference.clone();
    req.changes = args.changes.clone();
    req.message = args.message.clone();
    req.platform = args.platform.clone();
    let result = if is_url {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("start the async runtime")?;
        rt.block_on(images::import_url(&root, &args.source, &req))
    } else if args.source == "-" {
        images::import_image(&root, std::io::stdin().lock(), &req)
    } else {
        let f =
            std::fs::File::open(&args.source).with_context(|| format!("open {}", args.source))?;
        images::import_image(&root, std::io::BufReader::new(f), &req)
    };
    match result {
        Ok(img) => {
            println!("{}", img.id);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => fail_or_bail(e),
    }
}
