//! Typed instructions: the logical line of each instruction node parsed
//! into its keyword, flags and arguments, validated as BuildKit's
//! `frontend/dockerfile/instructions` package validates them, with the
//! same error messages.

use std::time::Duration;

use serde::Serialize;

use crate::duration::parse_go_duration;
use crate::error::Diagnostic;
use crate::span::{LineIndex, Span};
use crate::syntax::{Heredoc, LogicalLine};
use crate::words::{self, extract_flags, parse_json_array, parse_words, split_whitespace};

/// A word of an instruction with its place in the source. `text` is as
/// written (quotes and variables intact) unless a field's docs say otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Word {
    /// The text.
    pub text: String,
    /// Where it is in the source.
    pub span: Span,
}

/// A flag as written (`--from=build`), after quote removal in its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// The name without `--`.
    pub name: String,
    /// The value after `=`, or `None` for a bare `--link`.
    pub value: Option<String>,
    /// Where it is in the source.
    pub span: Span,
}

/// One parsed instruction: common data plus the typed [`InstructionKind`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// The instruction keyword as written (`run`, `RUN`).
    pub keyword: String,
    /// The typed instruction.
    pub kind: InstructionKind,
    /// The whole instruction in the source: its lines, continuations,
    /// embedded comments and heredoc bodies.
    pub span: Span,
    /// The keyword in the source.
    pub keyword_span: Span,
    /// First line (1-based).
    pub start_line: u32,
    /// Last line (1-based), heredoc terminators included.
    pub end_line: u32,
    /// The flags as written, in order.
    pub flags: Vec<Flag>,
    /// Byte offset in `original` where the arguments start (after flags).
    pub args_offset: usize,
    /// The logical line: keyword, flags and arguments (BuildKit's `Original`).
    pub original: String,
    /// Heredocs that follow the instruction.
    pub heredocs: Vec<Heredoc>,
    /// Comment lines right before the instruction.
    pub comments: Vec<String>,
}

impl Instruction {
    /// The instruction name in upper case (`RUN`), whatever the casing.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// The argument text after the flags, as written (continuations joined).
    pub fn args(&self) -> &str {
        self.original.get(self.args_offset..).unwrap_or("")
    }
}

/// Shell form (`RUN make`) or exec form (`RUN ["make"]`) of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", content = "value", rename_all = "lowercase")]
pub enum CommandLine {
    /// Shell form: run with the stage's `SHELL` (default `/bin/sh -c`).
    /// The text is as written; Docker does not expand variables in it.
    Shell(String),
    /// Exec form: the JSON array, decoded.
    Exec(Vec<String>),
}

impl CommandLine {
    /// True for the shell form (BuildKit's `PrependShell`).
    pub fn is_shell(&self) -> bool {
        matches!(self, CommandLine::Shell(_))
    }

    /// The command as BuildKit's `handleJSONArgs` gives it: the exec
    /// array, or the shell text as a single element (empty if blank).
    pub fn args(&self) -> Vec<String> {
        match self {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) if s.is_empty() => Vec::new(),
            CommandLine::Shell(s) => vec![s.clone()],
        }
    }
}

/// A `KEY=value` pair of `ENV` or `LABEL`, as written: quotes and variables
/// intact; expand both with [`crate::expand_word`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// The pair in the source.
    pub span: Span,
}

/// The typed instructions. Each holds its arguments and parsed flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "instruction", rename_all = "UPPERCASE")]
pub enum InstructionKind {
    /// `FROM [--platform=p] image [AS name]`
    From(FromInstruction),
    /// `RUN [--mount ...] [--network ...] [--security ...] [--device ...] command`
    Run(RunInstruction),
    /// `CMD command`
    Cmd(CmdInstruction),
    /// `LABEL k=v ...`
    Label(LabelInstruction),
    /// `MAINTAINER name` (deprecated)
    Maintainer(MaintainerInstruction),
    /// `EXPOSE port[/proto] ...`
    Expose(ExposeInstruction),
    /// `ENV k=v ...` or `ENV k v`
    Env(EnvInstruction),
    /// `ADD [flags] src... dest`
    Add(AddInstruction),
    /// `COPY [flags] src... dest`
    Copy(CopyInstruction),
    /// `ENTRYPOINT command`
    Entrypoint(EntrypointInstruction),
    /// `VOLUME path...` or `VOLUME ["path"]`
    Volume(VolumeInstruction),
    /// `USER user[:group]`
    User(UserInstruction),
    /// `WORKDIR path`
    Workdir(WorkdirInstruction),
    /// `ARG name[=default] ...`
    Arg(ArgInstruction),
    /// `ONBUILD instruction`
    Onbuild(OnbuildInstruction),
    /// `STOPSIGNAL signal`
    Stopsignal(StopSignalInstruction),
    /// `HEALTHCHECK NONE` or `HEALTHCHECK [flags] CMD command`
    Healthcheck(HealthcheckInstruction),
    /// `SHELL ["executable", "parameters"]`
    Shell(ShellInstruction),
}

impl InstructionKind {
    /// The instruction name in upper case.
    pub fn name(&self) -> &'static str {
        match self {
            InstructionKind::From(_) => "FROM",
            InstructionKind::Run(_) => "RUN",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Maintainer(_) => "MAINTAINER",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::User(_) => "USER",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Onbuild(_) => "ONBUILD",
            InstructionKind::Stopsignal(_) => "STOPSIGNAL",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
            InstructionKind::Shell(_) => "SHELL",
        }
    }

    /// Whether Docker replaces variables in this instruction's arguments
    /// (Dockerfile reference, "Environment replacement"): `ADD COPY ENV
    /// EXPOSE FROM LABEL STOPSIGNAL USER VOLUME WORKDIR ONBUILD` (the last
    /// when its trigger is one of these), plus `ARG` defaults and the flag
    /// values BuildKit expands (`--mount`, `--chown`, `--chmod`, `--from`,
    /// `--platform`, `--checksum`). `RUN`, `CMD`, `ENTRYPOINT`, `SHELL`,
    /// `HEALTHCHECK` and `MAINTAINER` are passed on as written.
    pub fn expands_variables(&self) -> bool {
        match self {
            InstructionKind::Add(_)
            | InstructionKind::Copy(_)
            | InstructionKind::Env(_)
            | InstructionKind::Expose(_)
            | InstructionKind::From(_)
            | InstructionKind::Label(_)
            | InstructionKind::Stopsignal(_)
            | InstructionKind::User(_)
            | InstructionKind::Volume(_)
            | InstructionKind::Workdir(_)
            | InstructionKind::Arg(_) => true,
            InstructionKind::Onbuild(o) => o.trigger.kind.expands_variables(),
            InstructionKind::Run(_)
            | InstructionKind::Cmd(_)
            | InstructionKind::Entrypoint(_)
            | InstructionKind::Shell(_)
            | InstructionKind::Healthcheck(_)
            | InstructionKind::Maintainer(_) => false,
        }
    }

    /// Whether the expanded arguments are split into several words
    /// ([`crate::expand_words`]) rather than kept as one
    /// ([`crate::expand_word`]): only `EXPOSE`, as in BuildKit.
    pub fn splits_words(&self) -> bool {
        matches!(self, InstructionKind::Expose(_))
    }
}

/// `FROM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FromInstruction {
    /// The base image (or stage name) as written; expand with global ARGs.
    pub image: Word,
    /// The stage name, lower-cased as BuildKit does (`AS Build` -> `build`).
    pub stage_name: Option<String>,
    /// The stage name as written.
    pub stage_name_word: Option<Word>,
    /// The `AS` keyword as written (for the `FromAsCasing` check).
    pub as_word: Option<Word>,
    /// `--platform`, as written.
    pub platform: Option<String>,
}

/// The type of a `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// Bind a directory of the context or another stage (read-only by default).
    Bind,
    /// A persistent cache directory.
    Cache,
    /// A tmpfs.
    Tmpfs,
    /// A secret file (or environment variable with `env=`).
    Secret,
    /// An SSH agent socket.
    Ssh,
}

impl MountType {
    /// The name as written in a mount spec.
    pub fn as_str(&self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CacheSharing {
    /// Concurrent writers share the directory (default).
    #[default]
    Shared,
    /// Each writer gets its own copy when the cache is busy.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// One `RUN --mount=...` spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// `type=` (default `bind`).
    pub kind: MountType,
    /// `target=` / `dst=` / `destination=`. Secret mounts default to
    /// `/run/secrets/<id>` and ssh mounts to a socket path when unset.
    pub target: Option<String>,
    /// `source=` / `src=`.
    pub source: Option<String>,
    /// `from=`: a stage or image to take the source from.
    pub from: Option<String>,
    /// Read-only: `ro`, `readonly`, `rw=false`; defaults to true for bind
    /// mounts and false for the others.
    pub read_only: bool,
    /// `id=`: cache id, secret id or ssh id.
    pub id: Option<String>,
    /// `sharing=` (cache mounts).
    pub sharing: Option<CacheSharing>,
    /// `mode=` (octal).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
    /// `required` (secret and ssh mounts).
    pub required: bool,
    /// `size=` of a tmpfs, in bytes.
    pub size: Option<u64>,
    /// `env=`: expose a secret as an environment variable.
    pub env: Option<String>,
}

/// `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The default network.
    Default,
    /// No network.
    None,
    /// The host's network.
    Host,
}

/// `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    /// The default sandbox.
    Sandbox,
    /// Privileged (needs the builder's permission).
    Insecure,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunInstruction {
    /// The command. With heredocs, the shell text names them (`<<EOF`).
    pub command: CommandLine,
    /// `--mount` specs (parsed from the text as written).
    pub mounts: Vec<Mount>,
    /// `--network`.
    pub network: Option<NetworkMode>,
    /// `--security`.
    pub security: Option<SecurityMode>,
    /// `--device` values, as written.
    pub devices: Vec<String>,
}

/// `CMD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CmdInstruction {
    /// The command (may be empty: `CMD []`).
    pub command: CommandLine,
}

/// `ENTRYPOINT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntrypointInstruction {
    /// The command (an empty one resets the entrypoint).
    pub command: CommandLine,
}

/// `SHELL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShellInstruction {
    /// The shell and its arguments.
    pub shell: Vec<String>,
}

/// `LABEL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelInstruction {
    /// The pairs, as written.
    pub pairs: Vec<KeyValue>,
    /// True for the legacy `LABEL key value` form.
    pub legacy: bool,
}

/// `ENV`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvInstruction {
    /// The pairs, as written.
    pub pairs: Vec<KeyValue>,
    /// True for the legacy `ENV key value` form.
    pub legacy: bool,
}

/// `MAINTAINER`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaintainerInstruction {
    /// The maintainer, as written.
    pub name: String,
}

/// `EXPOSE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExposeInstruction {
    /// The ports as written (`80`, `80/udp`, `8000-8010`, `$PORT`).
    pub ports: Vec<Word>,
}

/// `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddInstruction {
    /// Sources (paths, URLs, git refs, or `<<NAME` heredoc references).
    pub sources: Vec<String>,
    /// Destination.
    pub dest: String,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// `--checksum`.
    pub checksum: Option<String>,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--unpack` (`None` when not given: unpack local archives only).
    pub unpack: Option<bool>,
    /// `--parents`.
    pub parents: bool,
    /// True when written in JSON form.
    pub json: bool,
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyInstruction {
    /// Sources (paths or `<<NAME` heredoc references).
    pub sources: Vec<String>,
    /// Destination.
    pub dest: String,
    /// `--from`: a stage name, index or image.
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// True when written in JSON form.
    pub json: bool,
}

/// `VOLUME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeInstruction {
    /// The paths.
    pub paths: Vec<String>,
    /// True when written in JSON form.
    pub json: bool,
}

/// `USER`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInstruction {
    /// `user[:group]`, as written.
    pub user: String,
}

impl UserInstruction {
    /// The user part and the optional group part.
    pub fn user_and_group(&self) -> (&str, Option<&str>) {
        match self.user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (&self.user, None),
        }
    }
}

/// `WORKDIR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkdirInstruction {
    /// The path, as written.
    pub path: String,
}

/// One declaration of an `ARG`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    /// The name.
    pub name: String,
    /// The default value, as written (expand it), if any.
    pub default: Option<String>,
    /// The declaration in the source.
    pub span: Span,
}

/// `ARG`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgInstruction {
    /// The declarations.
    pub args: Vec<ArgDecl>,
}

/// `ONBUILD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnbuildInstruction {
    /// The trigger, parsed.
    pub trigger: Box<Instruction>,
    /// The trigger's text as stored in the image config (BuildKit's
    /// `Expression`: the line after `ONBUILD`, plus any heredocs).
    pub expression: String,
}

/// `STOPSIGNAL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopSignalInstruction {
    /// The signal, as written (`SIGTERM`, `9`).
    pub signal: String,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum HealthcheckInstruction {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    /// `HEALTHCHECK [flags] CMD ...`.
    Cmd {
        /// The test command.
        command: CommandLine,
        /// `--interval` (zero means the default).
        interval: Option<Duration>,
        /// `--timeout`.
        timeout: Option<Duration>,
        /// `--start-period`.
        start_period: Option<Duration>,
        /// `--start-interval`.
        start_interval: Option<Duration>,
        /// `--retries`.
        retries: Option<u32>,
    },
}

impl HealthcheckInstruction {
    /// The image config `Healthcheck.Test` array: `["NONE"]`,
    /// `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub fn test(&self) -> Vec<String> {
        match self {
            HealthcheckInstruction::None => vec!["NONE".into()],
            HealthcheckInstruction::Cmd { command, .. } => {
                let first = if command.is_shell() {
                    "CMD-SHELL"
                } else {
                    "CMD"
                };
                std::iter::once(first.to_owned())
                    .chain(command.args())
                    .collect()
            }
        }
    }
}

/// All instruction names, lower case (for hints).
pub(crate) const INSTRUCTIONS: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// The closest known word to `input`, for "did you mean" hints (BuildKit's
/// `suggest` package: Levenshtein distance, case-insensitive, at most a
/// third of the word's length but at least 2, and fewer edits than letters).
pub(crate) fn suggest<'a>(input: &str, options: &[&'a str]) -> Option<&'a str> {
    let lower = input.to_lowercase();
    let len = lower.chars().count();
    let max = (len / 3).max(2);
    options
        .iter()
        .map(|o| (strsim::levenshtein(&lower, &o.to_lowercase()), *o))
        .filter(|(d, _)| *d <= max && *d < len && *d > 0)
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

/// Everything needed to report errors about one logical line.
pub(crate) struct Ctx<'a> {
    pub source: &'a str,
    pub index: &'a LineIndex,
    pub logical: &'a LogicalLine,
    pub escape: char,
}

impl Ctx<'_> {
    fn span(&self, start: usize, end: usize) -> Span {
        self.logical.source_span(start, end)
    }

    fn err(&self, start: usize, end: usize, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::new(self.source, self.index, self.span(start, end), msg)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FlagType {
    Bool,
    String,
    Strings,
}

/// The flags an instruction accepts.
fn flag_specs(kw: &str) -> &'static [(&'static str, FlagType)] {
    use FlagType::*;
    match kw {
        "from" => &[("platform", String)],
        "run" => &[
            ("mount", Strings),
            ("network", String),
            ("security", String),
            ("device", Strings),
        ],
        "copy" => &[
            ("from", String),
            ("chown", String),
            ("chmod", String),
            ("link", Bool),
            ("parents", Bool),
            ("exclude", Strings),
        ],
        "add" => &[
            ("chown", String),
            ("chmod", String),
            ("link", Bool),
            ("keep-git-dir", Bool),
            ("checksum", String),
            ("exclude", Strings),
            ("unpack", Bool),
            ("parents", Bool),
        ],
        "healthcheck" => &[
            ("interval", String),
            ("timeout", String),
            ("start-period", String),
            ("start-interval", String),
            ("retries", String),
        ],
        _ => &[],
    }
}

/// Parsed flag values, by name.
struct Flags(Vec<Flag>);

impl Flags {
    fn string(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|f| f.name == name)
            .and_then(|f| f.value.clone())
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|f| f.name == name)
            .filter_map(|f| f.value.clone())
            .collect()
    }

    fn boolean(&self, name: &str) -> Option<bool> {
        self.0.iter().rev().find(|f| f.name == name).map(|f| {
            f.value
                .as_deref()
                .is_none_or(|v| v.eq_ignore_ascii_case("true"))
        })
    }

    fn find(&self, name: &str) -> Option<&Flag> {
        self.0.iter().rev().find(|f| f.name == name)
    }
}

/// BuildKit's `BFlags.Parse` for the flags of `kw`.
fn parse_flags(ctx: &Ctx<'_>, kw: &str, raw: &[words::Word]) -> Result<Flags, Diagnostic> {
    let specs = flag_specs(kw);
    let mut out: Vec<Flag> = Vec::with_capacity(raw.len());
    for w in raw {
        let arg = w.text.strip_prefix("--").unwrap_or(&w.text);
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg, None),
        };
        let Some((_, ty)) = specs.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = specs.iter().map(|(n, _)| *n).collect();
            return Err(ctx
                .err(w.start, w.end, format!("unknown flag: {name}"))
                .with_hint(suggest(name, &names).map(|s| format!("did you mean {s}?"))));
        };
        if *ty != FlagType::Strings && out.iter().any(|f| f.name == name) {
            return Err(ctx.err(w.start, w.end, format!("duplicate flag specified: {name}")));
        }
        match ty {
            FlagType::Bool => {
                if let Some(v) = value {
                    if v.is_empty() {
                        return Err(ctx.err(
                            w.start,
                            w.end,
                            format!("missing a value on flag: {name}"),
                        ));
                    }
                    if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                        return Err(ctx.err(
                            w.start,
                            w.end,
                            format!("expecting boolean value for flag {name}, not: {v}"),
                        ));
                    }
                }
            }
            FlagType::String | FlagType::Strings => {
                if value.is_none() {
                    return Err(ctx.err(
                        w.start,
                        w.end,
                        format!("missing a value on flag: {name}"),
                    ));
                }
            }
        }
        out.push(Flag {
            name: name.to_owned(),
            value: value.map(str::to_owned),
            span: ctx.span(w.start, w.end),
        });
    }
    Ok(Flags(out))
}

fn command_line(
    ctx: &Ctx<'_>,
    rest: &str,
    rest_start: usize,
) -> Result<(CommandLine, bool), Diagnostic> {
    match parse_json_array(rest) {
        Ok(Some(v)) => Ok((CommandLine::Exec(v), true)),
        Ok(None) => Ok((CommandLine::Shell(rest.to_owned()), false)),
        Err(_) => Err(ctx.err(
            rest_start,
            rest_start + rest.len(),
            "when using JSON array syntax, arrays must be comprised of strings only",
        )),
    }
}

/// JSON array or whitespace-separated list (BuildKit's `parseMaybeJSONToList`).
fn json_or_list(
    ctx: &Ctx<'_>,
    rest: &str,
    rest_start: usize,
) -> Result<(Vec<words::Word>, bool), Diagnostic> {
    match parse_json_array(rest) {
        Ok(Some(v)) => Ok((
            v.into_iter()
                .map(|text| words::Word {
                    text,
                    start: rest_start,
                    end: rest_start + rest.len(),
                })
                .collect(),
            true,
        )),
        Ok(None) => Ok((split_whitespace(rest, rest_start), false)),
        Err(_) => Err(ctx.err(
            rest_start,
            rest_start + rest.len(),
            "when using JSON array syntax, arrays must be comprised of strings only",
        )),
    }
}

/// BuildKit's `parseNameVal` for ENV and LABEL.
fn name_vals(
    ctx: &Ctx<'_>,
    kw_upper: &str,
    rest: &str,
    rest_start: usize,
) -> Result<(Vec<KeyValue>, bool), Diagnostic> {
    let ws = parse_words(rest, ctx.escape, rest_start);
    let Some(first) = ws.first() else {
        return Err(ctx.err(
            rest_start,
            rest_start + rest.len(),
            format!("{kw_upper} requires at least one argument"),
        ));
    };
    if !first.text.contains('=') {
        // Legacy `KEY value`: the value is the rest of the line, as is.
        let is_ws = |c: char| matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ');
        let Some(k_end) = rest.find(is_ws) else {
            return Err(ctx.err(
                rest_start,
                rest_start + rest.len(),
                format!("{kw_upper} must have two arguments"),
            ));
        };
        let v_start = rest[k_end..]
            .find(|c: char| !is_ws(c))
            .map(|i| k_end + i)
            .unwrap_or(rest.len());
        return Ok((
            vec![KeyValue {
                key: rest[..k_end].to_owned(),
                value: rest[v_start..].to_owned(),
                span: ctx.span(rest_start, rest_start + rest.len()),
            }],
            true,
        ));
    }
    let mut pairs = Vec::with_capacity(ws.len());
    for w in ws {
        let Some((k, v)) = w.text.split_once('=') else {
            return Err(ctx.err(
                w.start,
                w.end,
                format!(
                    "Syntax error - can't find = in {:?}. Must be of the form: name=value",
                    w.text
                ),
            ));
        };
        if k.is_empty() {
            return Err(ctx.err(w.start, w.end, format!("{kw_upper} names can not be blank")));
        }
        pairs.push(KeyValue {
            key: k.to_owned(),
            value: v.to_owned(),
            span: ctx.span(w.start, w.end),
        });
    }
    Ok((pairs, false))
}

/// Parses the instruction on one logical line. `node_span` is the span of
/// the whole node (with heredocs) and is stored on the result.
pub(crate) fn parse_logical(ctx: &Ctx<'_>, node_span: Span) -> Result<Instruction, Diagnostic> {
    let text = ctx.logical.text.as_str();
    let trimmed_end = text.trim_end_matches(char::is_whitespace).len();
    let text = &text[..trimmed_end];
    let lead = text.len() - text.trim_start_matches(char::is_whitespace).len();
    let is_ws = |c: char| matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ');
    let kw_end = text[lead..]
        .find(is_ws)
        .map(|i| lead + i)
        .unwrap_or(text.len());
    let keyword = &text[lead..kw_end];
    let lower: &'static str = INSTRUCTIONS
        .iter()
        .copied()
        .find(|n| n.eq_ignore_ascii_case(keyword))
        .unwrap_or("");
    let after_kw = text[kw_end..]
        .find(|c: char| !is_ws(c))
        .map(|i| kw_end + i)
        .unwrap_or(text.len());

    if lower.is_empty() {
        let upper = keyword.to_uppercase();
        let hint =
            suggest(keyword, INSTRUCTIONS).map(|s| format!("did you mean {}?", s.to_uppercase()));
        return Err(ctx
            .err(lead, kw_end, format!("unknown instruction: {upper}"))
            .with_hint(hint));
    }

    // ONBUILD's argument is an instruction line of its own; flags belong to it.
    let (raw_flags, rest_start) = if lower == "onbuild" {
        (Vec::new(), after_kw)
    } else {
        extract_flags(&text[after_kw..], after_kw)
    };
    let rest_start = rest_start.min(text.len());
    let rest = &text[rest_start..];
    let flags = parse_flags(ctx, lower, &raw_flags)?;
    let whole = |msg: String| ctx.err(lead, text.len(), msg);
    let upper = Upper(lower);

    let kind = match lower {
        "from" => {
            let args = split_whitespace(rest, rest_start);
            let (stage_name, stage_name_word, as_word) = match args.len() {
                1 => (None, None, None),
                3 if args[1].text.eq_ignore_ascii_case("as") => {
                    let name = args[2].text.to_lowercase();
                    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && name.chars().all(|c| {
                            c.is_ascii_lowercase()
                                || c.is_ascii_digit()
                                || matches!(c, '-' | '_' | '.')
                        });
                    if !valid {
                        return Err(ctx.err(
                            args[2].start,
                            args[2].end,
                            format!(
                                "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                                args[2].text
                            ),
                        ));
                    }
                    let w = |a: &words::Word| Word {
                        text: a.text.clone(),
                        span: ctx.span(a.start, a.end),
                    };
                    (Some(name), Some(w(&args[2])), Some(w(&args[1])))
                }
                _ => return Err(whole("FROM requires either one or three arguments".into())),
            };
            InstructionKind::From(FromInstruction {
                image: Word {
                    text: args[0].text.clone(),
                    span: ctx.span(args[0].start, args[0].end),
                },
                stage_name,
                stage_name_word,
                as_word,
                platform: flags.string("platform"),
            })
        }
        "run" => {
            let (command, _) = command_line(ctx, rest, rest_start)?;
            let mut mounts = Vec::new();
            for f in flags.0.iter().filter(|f| f.name == "mount") {
                let spec = f.value.as_deref().unwrap_or("");
                let m = parse_mount(spec, None)
                    .map_err(|m| Diagnostic::new(ctx.source, ctx.index, f.span, m))?;
                mounts.push(m);
            }
            let network = match flags.find("network") {
                None => None,
                Some(f) => Some(match f.value.as_deref().unwrap_or("") {
                    "default" => NetworkMode::Default,
                    "none" => NetworkMode::None,
                    "host" => NetworkMode::Host,
                    other => {
                        return Err(Diagnostic::new(
                            ctx.source,
                            ctx.index,
                            f.span,
                            format!("unsupported network mode {other:?}"),
                        )
                        .with_hint(
                            suggest(other, &["default", "none", "host"])
                                .map(|s| format!("did you mean {s}?")),
                        ));
                    }
                }),
            };
            let security = match flags.find("security") {
                None => None,
                Some(f) => Some(match f.value.as_deref().unwrap_or("") {
                    "sandbox" => SecurityMode::Sandbox,
                    "insecure" => SecurityMode::Insecure,
                    other => {
                        return Err(Diagnostic::new(
                            ctx.source,
                            ctx.index,
                            f.span,
                            format!("unsupported security mode {other:?}"),
                        ));
                    }
                }),
            };
            InstructionKind::Run(RunInstruction {
                command,
                mounts,
                network,
                security,
                devices: flags.strings("device"),
            })
        }
        "cmd" => InstructionKind::Cmd(CmdInstruction {
            command: command_line(ctx, rest, rest_start)?.0,
        }),
        "entrypoint" => InstructionKind::Entrypoint(EntrypointInstruction {
            command: command_line(ctx, rest, rest_start)?.0,
        }),
        "shell" => {
            let (cmd, json) = command_line(ctx, rest, rest_start)?;
            let args = cmd.args();
            if args.is_empty() {
                return Err(whole("SHELL requires at least one argument".into()));
            }
            if !json {
                return Err(whole(format!(
                    "SHELL requires the arguments to be in JSON form: {}",
                    &text[lead..]
                )));
            }
            InstructionKind::Shell(ShellInstruction { shell: args })
        }
        "env" | "label" => {
            let (pairs, legacy) = name_vals(ctx, &upper.to_string(), rest, rest_start)?;
            if lower == "env" {
                InstructionKind::Env(EnvInstruction { pairs, legacy })
            } else {
                InstructionKind::Label(LabelInstruction { pairs, legacy })
            }
        }
        "maintainer" => {
            if rest.is_empty() {
                return Err(whole("MAINTAINER requires exactly one argument".into()));
            }
            InstructionKind::Maintainer(MaintainerInstruction {
                name: rest.to_owned(),
            })
        }
        "expose" => {
            let ports = split_whitespace(rest, rest_start);
            if ports.is_empty() {
                return Err(whole("EXPOSE requires at least one argument".into()));
            }
            InstructionKind::Expose(ExposeInstruction {
                ports: ports
                    .into_iter()
                    .map(|w| Word {
                        span: ctx.span(w.start, w.end),
                        text: w.text,
                    })
                    .collect(),
            })
        }
        "add" | "copy" => {
            let (mut args, json) = json_or_list(ctx, rest, rest_start)?;
            if args.len() < 2 {
                return Err(whole(format!(
                    "{upper} requires at least two arguments, but only one was provided. Destination could not be determined"
                )));
            }
            let dest = args.pop().map(|w| w.text).unwrap_or_default();
            if is_heredoc_word(&dest) {
                return Err(whole(format!(
                    "{upper} cannot accept a heredoc as a destination"
                )));
            }
            let sources: Vec<String> = args.into_iter().map(|w| w.text).collect();
            if lower == "copy" {
                InstructionKind::Copy(CopyInstruction {
                    sources,
                    dest,
                    from: flags.string("from"),
                    chown: flags.string("chown"),
                    chmod: flags.string("chmod"),
                    link: flags.boolean("link").unwrap_or(false),
                    parents: flags.boolean("parents").unwrap_or(false),
                    exclude: flags.strings("exclude"),
                    json,
                })
            } else {
                InstructionKind::Add(AddInstruction {
                    sources,
                    dest,
                    chown: flags.string("chown"),
                    chmod: flags.string("chmod"),
                    link: flags.boolean("link").unwrap_or(false),
                    keep_git_dir: flags.boolean("keep-git-dir").unwrap_or(false),
                    checksum: flags.string("checksum"),
                    exclude: flags.strings("exclude"),
                    unpack: flags.boolean("unpack"),
                    parents: flags.boolean("parents").unwrap_or(false),
                    json,
                })
            }
        }
        "volume" => {
            let (ws, json) = json_or_list(ctx, rest, rest_start)?;
            if ws.is_empty() {
                return Err(whole("VOLUME requires at least one argument".into()));
            }
            let mut paths = Vec::with_capacity(ws.len());
            for w in ws {
                let t = w.text.trim();
                if t.is_empty() {
                    return Err(ctx.err(
                        w.start,
                        w.end,
                        "VOLUME specified can not be an empty string",
                    ));
                }
                paths.push(t.to_owned());
            }
            InstructionKind::Volume(VolumeInstruction { paths, json })
        }
        "user" | "workdir" | "stopsignal" => {
            // BuildKit's parseString: the rest of the line is one argument.
            if rest.is_empty() {
                return Err(whole(format!("{upper} requires exactly one argument")));
            }
            let v = rest.to_owned();
            match lower {
                "user" => InstructionKind::User(UserInstruction { user: v }),
                "workdir" => InstructionKind::Workdir(WorkdirInstruction { path: v }),
                _ => InstructionKind::Stopsignal(StopSignalInstruction { signal: v }),
            }
        }
        "arg" => {
            let ws = parse_words(rest, ctx.escape, rest_start);
            if ws.is_empty() {
                return Err(whole("ARG requires at least one argument".into()));
            }
            let mut args = Vec::with_capacity(ws.len());
            for w in ws {
                let (name, default) = match w.text.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (w.text.clone(), None),
                };
                if name.is_empty() {
                    return Err(ctx.err(w.start, w.end, "ARG names can not be blank"));
                }
                args.push(ArgDecl {
                    name,
                    default,
                    span: ctx.span(w.start, w.end),
                });
            }
            InstructionKind::Arg(ArgInstruction { args })
        }
        "onbuild" => {
            if rest.is_empty() {
                return Err(whole("ONBUILD requires at least one argument".into()));
            }
            let trig_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let trig = rest[..trig_end].to_uppercase();
            match trig.as_str() {
                "ONBUILD" => {
                    return Err(ctx.err(
                        rest_start,
                        rest_start + trig_end,
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                    ));
                }
                "MAINTAINER" | "FROM" => {
                    return Err(ctx.err(
                        rest_start,
                        rest_start + trig_end,
                        format!("{trig} isn't allowed as an ONBUILD trigger"),
                    ));
                }
                _ => {}
            }
            // Parse the trigger as its own logical line, mapped back.
            let sub = LogicalLine {
                text: rest.to_owned(),
                start: ctx.logical.source_offset(rest_start),
                map: ctx
                    .logical
                    .map
                    .iter()
                    .filter(|(l, _)| *l > rest_start)
                    .map(|(l, s)| (l - rest_start, *s))
                    .collect(),
                heredocs: ctx.logical.heredocs.clone(),
                empty_continuation_lines: Vec::new(),
                comments: Vec::new(),
            };
            let sub_ctx = Ctx {
                source: ctx.source,
                index: ctx.index,
                logical: &sub,
                escape: ctx.escape,
            };
            let trigger = parse_logical(&sub_ctx, node_span)?;
            let mut expression = rest.to_owned();
            for h in &ctx.logical.heredocs {
                expression.push('\n');
                expression.push_str(&h.content);
                expression.push_str(&h.name);
            }
            InstructionKind::Onbuild(OnbuildInstruction {
                trigger: Box::new(trigger),
                expression,
            })
        }
        "healthcheck" => {
            let typ_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            if typ_end == 0 {
                return Err(whole("HEALTHCHECK requires at least one argument".into()));
            }
            let typ = rest[..typ_end].to_uppercase();
            let cmd_start = rest[typ_end..]
                .find(|c: char| !c.is_whitespace())
                .map(|i| typ_end + i)
                .unwrap_or(rest.len());
            let cmd_text = &rest[cmd_start..];
            if typ == "NONE" {
                if !cmd_text.is_empty() {
                    return Err(whole("HEALTHCHECK NONE takes no arguments".into()));
                }
                InstructionKind::Healthcheck(HealthcheckInstruction::None)
            } else if typ == "CMD" {
                let (command, _) = command_line(ctx, cmd_text, rest_start + cmd_start)?;
                if command.args().is_empty() {
                    return Err(whole("Missing command after HEALTHCHECK CMD".into()));
                }
                let dur = |name: &str| -> Result<Option<Duration>, Diagnostic> {
                    let Some(f) = flags.find(name) else {
                        return Ok(None);
                    };
                    let v = f.value.as_deref().unwrap_or("");
                    if v.is_empty() {
                        return Ok(None);
                    }
                    let d = parse_go_duration(v)
                        .map_err(|m| Diagnostic::new(ctx.source, ctx.index, f.span, m))?;
                    if d.value.is_zero() {
                        return Ok(Some(Duration::ZERO));
                    }
                    if d.negative || d.value < Duration::from_millis(1) {
                        return Err(Diagnostic::new(
                            ctx.source,
                            ctx.index,
                            f.span,
                            format!("Interval {name:?} cannot be less than 1ms"),
                        ));
                    }
                    Ok(Some(d.value))
                };
                let retries = match flags.find("retries") {
                    None => None,
                    Some(f) => {
                        let v = f.value.as_deref().unwrap_or("");
                        if v.is_empty() {
                            None
                        } else {
                            let n: i64 = v.parse().map_err(|_| {
                                Diagnostic::new(
                                    ctx.source,
                                    ctx.index,
                                    f.span,
                                    format!("strconv.ParseInt: parsing {v:?}: invalid syntax"),
                                )
                            })?;
                            if n < 0 {
                                return Err(Diagnostic::new(
                                    ctx.source,
                                    ctx.index,
                                    f.span,
                                    format!("--retries cannot be negative ({n})"),
                                ));
                            }
                            Some(u32::try_from(n).map_err(|_| {
                                Diagnostic::new(
                                    ctx.source,
                                    ctx.index,
                                    f.span,
                                    format!("strconv.ParseInt: parsing {v:?}: value out of range"),
                                )
                            })?)
                        }
                    }
                };
                InstructionKind::Healthcheck(HealthcheckInstruction::Cmd {
                    command,
                    interval: dur("interval")?,
                    timeout: dur("timeout")?,
                    start_period: dur("start-period")?,
                    start_interval: dur("start-interval")?,
                    retries,
                })
            } else {
                return Err(ctx.err(
                    rest_start,
                    rest_start + typ_end,
                    format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)"),
                ));
            }
        }
        _ => return Err(ctx.err(lead, kw_end, format!("unknown instruction: {upper}"))),
    };

    let start = ctx.logical.source_offset(lead);
    let keyword_span = ctx.span(lead, kw_end);
    Ok(Instruction {
        keyword: keyword.to_owned(),
        kind,
        span: node_span,
        keyword_span,
        start_line: ctx.index.line(start),
        end_line: ctx.index.line(node_span.end.saturating_sub(1).max(start)),
        flags: flags.0,
        args_offset: rest_start - lead,
        original: text[lead..].to_owned(),
        heredocs: ctx.logical.heredocs.clone(),
        comments: ctx.logical.comments.clone(),
    })
}

/// Displays an instruction name in upper case without allocating.
struct Upper(&'static str);

impl std::fmt::Display for Upper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            std::fmt::Write::write_char(f, c.to_ascii_uppercase())?;
        }
        Ok(())
    }
}

/// Whether a COPY/ADD argument names a heredoc (`<<EOF`, `<<-EOF`).
fn is_heredoc_word(w: &str) -> bool {
    let d = w.bytes().take_while(u8::is_ascii_digit).count();
    w[d..]
        .strip_prefix("<<")
        .map(|r| r.strip_prefix('-').unwrap_or(r))
        .is_some_and(|r| !r.is_empty() && !r.contains('<'))
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// docker/go-units `RAMInBytes`: `64m`, `1g`, `512k`, `1024`, binary units.
fn ram_in_bytes(v: &str) -> Option<u64> {
    let t = v.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let num: f64 = t[..num_end].parse().ok()?;
    let unit = t[num_end..].to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return None,
    };
    let bytes = num * mult;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Go's `encoding/csv` reading of one record, as BuildKit splits a mount spec.
fn csv_fields(v: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = v.chars().peekable();
    let mut field = String::new();
    let mut col = 0usize;
    loop {
        field.clear();
        if chars.peek() == Some(&'"') {
            chars.next();
            col += 1;
            loop {
                match chars.next() {
                    None => {
                        return Err(format!(
                            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            col + 1
                        ));
                    }
                    Some('"') => {
                        col += 1;
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            col += 1;
                            field.push('"');
                        } else {
                            break;
                        }
                    }
                    Some(c) => {
                        col += 1;
                        field.push(c);
                    }
                }
            }
            match chars.next() {
                None => {
                    out.push(field.clone());
                    return Ok(out);
                }
                Some(',') => {
                    col += 1;
                    out.push(field.clone());
                }
                Some(_) => {
                    return Err(format!(
                        "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                        col + 1
                    ));
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field.clone());
                        return Ok(out);
                    }
                    Some(',') => {
                        col += 1;
                        out.push(field.clone());
                        break;
                    }
                    Some('"') => {
                        return Err(format!(
                            "parse error on line 1, column {}: bare \" in non-quoted-field",
                            col + 1
                        ));
                    }
                    Some(c) => {
                        col += 1;
                        field.push(c);
                    }
                }
            }
        }
    }
}

/// A function applied to every mount value before parsing (variable
/// expansion); its error is a message.
pub type MountExpander<'a> = dyn Fn(&str) -> Result<String, String> + 'a;

/// Parses one `RUN --mount` spec (`type=cache,target=/root/.cache,id=x`)
/// as BuildKit's `parseMount` does. `expand`, when given, is applied to
/// every value first (BuildKit expands mount values with the stage's
/// variables). The error is BuildKit's message.
pub fn parse_mount(spec: &str, expand: Option<&MountExpander<'_>>) -> Result<Mount, String> {
    let fields = csv_fields(spec)?;
    let mut m = Mount {
        kind: MountType::Bind,
        target: None,
        source: None,
        from: None,
        read_only: false,
        id: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        size: None,
        env: None,
    };
    let types = ["bind", "cache", "tmpfs", "secret", "ssh"];
    // The type decides which keys are valid, so read it first.
    for f in &fields {
        if let Some((k, v)) = f.split_once('=')
            && k.eq_ignore_ascii_case("type")
        {
            let v = match expand {
                Some(e) => e(v)?,
                None => v.to_owned(),
            };
            m.kind = match v.to_ascii_lowercase().as_str() {
                "bind" => MountType::Bind,
                "cache" => MountType::Cache,
                "tmpfs" => MountType::Tmpfs,
                "secret" => MountType::Secret,
                "ssh" => MountType::Ssh,
                _ => {
                    let hint = suggest(&v, &types)
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                    return Err(format!("unsupported mount type {v:?}{hint}"));
                }
            };
        }
    }
    let secretish = matches!(m.kind, MountType::Secret | MountType::Ssh);
    let mut ro_auto = true;
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    ro_auto = false;
                }
                "required" if secretish => m.required = true,
                "required" => {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.as_str()
                    ));
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let value = match expand {
            Some(e) => e(value)?,
            None => value.to_owned(),
        };
        let bad = |what: &str| format!("invalid value for {what}: {value}");
        match key.as_str() {
            "type" => {}
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.read_only = parse_go_bool(&value).ok_or_else(|| bad(&key))?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.read_only = !parse_go_bool(&value).ok_or_else(|| bad(&key))?;
                ro_auto = false;
            }
            "required" if secretish => {
                m.required = parse_go_bool(&value).ok_or_else(|| bad(&key))?
            }
            "required" => {
                return Err(format!(
                    "unexpected key '{key}' for mount type '{}'",
                    m.kind.as_str()
                ));
            }
            "size" if m.kind == MountType::Tmpfs => {
                m.size = Some(ram_in_bytes(&value).ok_or_else(|| bad(&key))?)
            }
            "size" => {
                return Err(format!(
                    "unexpected key '{key}' for mount type '{}'",
                    m.kind.as_str()
                ));
            }
            "id" => m.id = Some(value),
            "sharing" => {
                if m.kind != MountType::Cache {
                    return Err(format!(
                        "invalid cache sharing set for {} mount",
                        m.kind.as_str()
                    ));
                }
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => return Err(format!("unsupported sharing value {value:?}")),
                });
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| format!("invalid value {value} for mode"))?,
                )
            }
            "uid" => {
                m.uid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for uid"))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for gid"))?,
                )
            }
            "env" => m.env = Some(value),
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if ro_auto {
        m.read_only = m.kind == MountType::Bind;
    }
    match m.kind {
        MountType::Secret => {
            if m.from.is_some() {
                return Err("secret mount should not have a from".into());
            }
            if m.source.is_some() && m.id.is_some() {
                return Err("both source and id can't be set".into());
            }
        }
        MountType::Ssh => {
            if m.from.is_some() {
                return Err("ssh mount should not have a from".into());
            }
        }
        MountType::Bind | MountType::Cache | MountType::Tmpfs => {
            if m.target.is_none() {
                return Err(format!("mount type {} requires a target", m.kind.as_str()));
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts() {
        let m = parse_mount(
            "type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1",
            None,
        );
        let m = m.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.sharing, Some(CacheSharing::Locked));
        assert_eq!(m.mode, Some(0o755));
        assert!(!m.read_only);
        let b = parse_mount("target=/src,from=build,source=/out", None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(b.read_only && b.kind == MountType::Bind);
        let t = parse_mount("type=tmpfs,dst=/t,size=64m", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.size, Some(64 << 20));
        let s = parse_mount("type=secret,id=tok,env=TOKEN,required", None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.required && s.env.as_deref() == Some("TOKEN"));
        assert!(
            parse_mount("type=cahce,target=/x", None)
                .is_err_and(|e| e.contains("did you mean cache?"))
        );
        assert!(parse_mount("type=bind,target=/x,size=1", None).is_err());
        assert!(parse_mount("\"type=bind,x\",target=/x", None).is_err());
        assert!(parse_mount("type=cache", None).is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("FORM", INSTRUCTIONS), Some("from"));
        assert_eq!(suggest("RUNN", INSTRUCTIONS), Some("run"));
        assert_eq!(suggest("XYZZY", INSTRUCTIONS), None);
    }

    #[test]
    fn ram_units() {
        assert_eq!(ram_in_bytes("1g"), Some(1 << 30));
        assert_eq!(ram_in_bytes("512KiB"), Some(512 << 10));
        assert_eq!(ram_in_bytes("x"), None);
    }
}
