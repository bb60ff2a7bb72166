//! Lints: BuildKit's build checks (same names and messages, see
//! `frontend/dockerfile/linter/ruleset.go`) and best-practice rules users
//! know from hadolint. Configured by the `# check=` directive:
//! `# check=skip=JSONArgsRecommended,StageNameCasing;error=true`,
//! `# check=skip=all`, `# check=experimental=all`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::Diagnostic;
use crate::instruction::{CommandLine, Instruction, InstructionKind};
use crate::shell::Expander;
use crate::span::{Position, Span};
use crate::{Dockerfile, instruction};

/// How serious a lint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A suggestion.
    Info,
    /// Likely a mistake (BuildKit's checks are warnings by default).
    Warning,
    /// Fails the lint run (`# check=error=true` promotes all to this).
    Error,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A lint rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Stable name (BuildKit's for its checks).
    pub name: &'static str,
    /// What the rule checks.
    pub description: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// True for BuildKit checks, false for kiln's best-practice rules.
    pub buildkit: bool,
    /// Experimental rules run only when enabled with `# check=experimental=`.
    pub experimental: bool,
}

const fn bk(name: &'static str, description: &'static str) -> Rule {
    Rule {
        name,
        description,
        severity: Severity::Warning,
        buildkit: true,
        experimental: false,
    }
}

const fn bp(name: &'static str, description: &'static str, severity: Severity) -> Rule {
    Rule {
        name,
        description,
        severity,
        buildkit: false,
        experimental: false,
    }
}

/// Every rule this crate implements.
pub const RULES: &[Rule] = &[
    bk("StageNameCasing", "Stage names should be lowercase"),
    bk(
        "FromAsCasing",
        "The 'as' keyword should match the case of the 'from' keyword",
    ),
    bk(
        "NoEmptyContinuation",
        "Empty continuation lines will become errors in a future release",
    ),
    bk(
        "ConsistentInstructionCasing",
        "All commands within the Dockerfile should use the same casing (either upper or lower)",
    ),
    bk("DuplicateStageName", "Stage names should be unique"),
    bk(
        "ReservedStageName",
        "Reserved words should not be used as stage names",
    ),
    bk(
        "JSONArgsRecommended",
        "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
    ),
    bk(
        "MaintainerDeprecated",
        "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
    ),
    bk("UndefinedArgInFrom", "FROM command must use declared ARGs"),
    bk(
        "WorkdirRelativePath",
        "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes",
    ),
    bk(
        "UndefinedVar",
        "Variables should be defined before their use",
    ),
    bk(
        "MultipleInstructionsDisallowed",
        "Multiple instructions of the same type should not be used in the same stage",
    ),
    bk(
        "LegacyKeyValueFormat",
        "Legacy key/value format with whitespace separator should not be used",
    ),
    bk(
        "RedundantTargetPlatform",
        "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
    ),
    bk(
        "SecretsUsedInArgOrEnv",
        "Sensitive data should not be used in the ARG or ENV commands",
    ),
    bk(
        "InvalidDefaultArgInFrom",
        "Default value for global ARG results in an empty or invalid base image name",
    ),
    bk(
        "FromPlatformFlagConstDisallowed",
        "FROM --platform flag should not use a constant value",
    ),
    bk(
        "CopyIgnoredFile",
        "Attempting to Copy file that is excluded by .dockerignore",
    ),
    Rule {
        experimental: true,
        ..bk(
            "InvalidDefinitionDescription",
            "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.",
        )
    },
    bk(
        "ExposeProtoCasing",
        "Protocol in EXPOSE instruction should be lowercase",
    ),
    bk(
        "ExposeInvalidFormat",
        "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release",
    ),
    bp(
        "BaseImageLatestTag",
        "Base images should be pinned to a tag other than latest",
        Severity::Warning,
    ),
    bp(
        "PreferCopyOverAdd",
        "Use COPY for local files; ADD is for URLs, archives and git sources",
        Severity::Warning,
    ),
    bp(
        "AptGetUpdateAlone",
        "apt-get update should be combined with apt-get install in the same RUN",
        Severity::Warning,
    ),
    bp(
        "ConsecutiveRunInstructions",
        "Consecutive RUN instructions can be merged to reduce layers",
        Severity::Info,
    ),
    bp(
        "UnsortedPackageList",
        "Multi-line package lists should be sorted alphabetically",
        Severity::Info,
    ),
    bp(
        "NoUserInstruction",
        "The final stage should switch to a non-root USER",
        Severity::Warning,
    ),
    bp(
        "CdInRun",
        "Use WORKDIR instead of cd in RUN",
        Severity::Warning,
    ),
];

/// The rule named `name` (case-insensitive).
pub fn rule(name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.name.eq_ignore_ascii_case(name))
}

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lint {
    /// The rule's name.
    pub rule: &'static str,
    /// The severity, after `# check=error=true`.
    pub severity: Severity,
    /// What was found, in BuildKit's words for its checks.
    pub message: String,
    /// The offending bytes.
    pub span: Span,
    /// Line and column of the start.
    pub start: Position,
    /// Line and column of the end.
    pub end: Position,
}

/// The `# check=` directive: which rules to skip, whether findings are errors.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct CheckConfig {
    /// Skip every rule.
    pub skip_all: bool,
    /// Rules to skip.
    pub skip: Vec<String>,
    /// Report findings as errors.
    pub error: bool,
    /// Enable every experimental rule.
    pub experimental_all: bool,
    /// Experimental rules to enable.
    pub experimental: Vec<String>,
}

impl CheckConfig {
    /// Parses the directive's value (`skip=A,B;error=true`). The error is
    /// BuildKit's message for a malformed value.
    pub fn parse(value: &str) -> Result<CheckConfig, String> {
        let mut c = CheckConfig::default();
        for part in value.split(';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!("invalid check directive format: {part:?}"));
            };
            let list = || {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "skip" => {
                    for s in list() {
                        if s.eq_ignore_ascii_case("all") {
                            c.skip_all = true;
                        } else {
                            c.skip.push(s);
                        }
                    }
                }
                "error" => {
                    c.error = match v.trim().to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(format!("invalid check directive value for error: {v:?}")),
                    }
                }
                "experimental" => {
                    for s in list() {
                        if s.eq_ignore_ascii_case("all") {
                            c.experimental_all = true;
                        } else {
                            c.experimental.push(s);
                        }
                    }
                }
                other => return Err(format!("invalid check directive key: {other:?}")),
            }
        }
        Ok(c)
    }

    /// Whether `rule` runs under this configuration.
    pub fn enabled(&self, rule: &Rule) -> bool {
        if self.skip_all || self.skip.iter().any(|s| s.eq_ignore_ascii_case(rule.name)) {
            return false;
        }
        !rule.experimental
            || self.experimental_all
            || self
                .experimental
                .iter()
                .any(|s| s.eq_ignore_ascii_case(rule.name))
    }
}

/// Choices for a lint run.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LintOptions {
    /// Overrides the file's `# check=` directive when set.
    pub check: Option<CheckConfig>,
    /// `.dockerignore` patterns, for `CopyIgnoredFile`.
    pub dockerignore: Vec<String>,
    /// Build arguments given on the command line (`--build-arg NAME`).
    pub build_args: Vec<String>,
}

/// The proxy build args Docker predefines: usable in every stage without an
/// `ARG`, passed to RUN steps, and kept out of the image history and the
/// cache key (Dockerfile reference, "Predefined ARGs").
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Args BuildKit defines for every build (usable in FROM and in stages),
/// besides [`PROXY_ARGS`].
const PREDEFINED_ARGS: &[&str] = &[
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "TARGETSTAGE",
    "BUILDKIT_SYNTAX",
    "SOURCE_DATE_EPOCH",
];

/// Every predefined arg: [`PREDEFINED_ARGS`] and [`PROXY_ARGS`].
fn predefined_args() -> impl Iterator<Item = &'static str> {
    PREDEFINED_ARGS.iter().copied().chain(PROXY_ARGS)
}

/// Variables a base image usually sets; kiln cannot see the image, so
/// `UndefinedVar` does not report these.
const COMMON_IMAGE_ENV: &[&str] = &[
    "PATH", "HOME", "HOSTNAME", "TERM", "USER", "PWD", "SHELL", "LANG",
];

struct Ctx<'a> {
    df: &'a Dockerfile,
    config: CheckConfig,
    out: Vec<Lint>,
}

impl Ctx<'_> {
    fn report(&mut self, name: &'static str, span: Span, message: String) {
        let Some(rule) = rule(name) else { return };
        if !self.config.enabled(rule) {
            return;
        }
        let src = self.df.source();
        let index = self.df.tree().line_index();
        self.out.push(Lint {
            rule: rule.name,
            severity: if self.config.error {
                Severity::Error
            } else {
                rule.severity
            },
            message,
            span,
            start: index.position(src, span.start),
            end: index.position(src, span.end),
        });
    }
}

/// Lints a parsed Dockerfile. Findings are sorted by position.
pub fn lint(df: &Dockerfile, options: &LintOptions) -> Vec<Lint> {
    let config = match &options.check {
        Some(c) => c.clone(),
        None => df
            .directives()
            .check
            .as_ref()
            .and_then(|d| CheckConfig::parse(&d.value).ok())
            .unwrap_or_default(),
    };
    let mut cx = Ctx {
        df,
        config,
        out: Vec::new(),
    };
    check_casing(&mut cx);
    check_empty_continuations(&mut cx);
    check_stages(&mut cx, options);
    check_instructions(&mut cx, options);
    let mut out = cx.out;
    out.sort_by(|a, b| (a.span.start, a.rule).cmp(&(b.span.start, b.rule)));
    out
}

/// Parses and lints `source`. Returns the parse errors (empty when the
/// file parses) and the lints of everything that parsed.
pub fn lint_source(source: &str, options: &LintOptions) -> (Vec<Diagnostic>, Vec<Lint>) {
    let (df, errors) = Dockerfile::parse_partial(source);
    let lints = lint(&df, options);
    (errors, lints)
}

fn check_casing(cx: &mut Ctx<'_>) {
    // ConsistentInstructionCasing: compare with the majority.
    let insts = &cx.df.instructions;
    let upper = insts
        .iter()
        .filter(|i| i.keyword == i.keyword.to_uppercase())
        .count();
    let lower = insts
        .iter()
        .filter(|i| i.keyword == i.keyword.to_lowercase())
        .count();
    let majority_upper = upper >= lower;
    let mut found = Vec::new();
    for i in insts {
        let ok = if majority_upper {
            i.keyword == i.keyword.to_uppercase()
        } else {
            i.keyword == i.keyword.to_lowercase()
        };
        if !ok {
            found.push((
                i.keyword_span,
                format!(
                    "Command '{}' should match the case of the command majority ({})",
                    i.keyword,
                    if majority_upper {
                        "uppercase"
                    } else {
                        "lowercase"
                    }
                ),
            ));
        }
    }
    for (s, m) in found {
        cx.report("ConsistentInstructionCasing", s, m);
    }
}

fn check_empty_continuations(cx: &mut Ctx<'_>) {
    let spans: Vec<Span> = cx
        .df
        .tree()
        .instructions()
        .filter_map(|n| n.logical.as_ref())
        .flat_map(|l| l.empty_continuation_lines.iter().copied())
        .collect();
    for s in spans {
        cx.report("NoEmptyContinuation", s, "Empty continuation line".into());
    }
}

fn has_var_ref(s: &str) -> bool {
    s.contains('$')
}

/// Names referenced in `word` (via expansion against an empty env).
fn referenced_vars(word: &str, escape: char) -> BTreeSet<String> {
    Expander::new(escape)
        .process(word, &crate::shell::NoEnv)
        .map(|e| e.unmatched)
        .unwrap_or_default()
}

fn check_stages(cx: &mut Ctx<'_>, options: &LintOptions) {
    let df = cx.df;
    let escape = df.escape();
    // Global ARGs and their defaults.
    let mut global: BTreeMap<String, Option<String>> = BTreeMap::new();
    for i in df.global_args() {
        if let InstructionKind::Arg(a) = &i.kind {
            for d in &a.args {
                global.insert(d.name.clone(), d.default.clone());
            }
        }
    }
    let mut names: BTreeMap<String, Span> = BTreeMap::new();
    let stages = df.stages();
    for stage in &stages {
        let fi = stage.from_instruction;
        let from = stage.from;
        if let (Some(name), Some(w)) = (&from.stage_name, &from.stage_name_word) {
            if w.text != w.text.to_lowercase() {
                cx.report(
                    "StageNameCasing",
                    w.span,
                    format!("Stage name '{}' should be lowercase", w.text),
                );
            }
            if names.contains_key(name) {
                cx.report(
                    "DuplicateStageName",
                    w.span,
                    format!("Duplicate stage name {name:?}, stage names should be unique"),
                );
            }
            names.insert(name.clone(), w.span);
            if name == "scratch" || name == "context" {
                cx.report(
                    "ReservedStageName",
                    w.span,
                    format!("Stage name should not use the same name as reserved stage {name:?}"),
                );
            }
        }
        if let Some(asw) = &from.as_word {
            let kw_upper = fi.keyword == fi.keyword.to_uppercase();
            let kw_lower = fi.keyword == fi.keyword.to_lowercase();
            let as_upper = asw.text == asw.text.to_uppercase();
            let as_lower = asw.text == asw.text.to_lowercase();
            if (kw_upper && !as_upper) || (kw_lower && !as_lower) {
                cx.report(
                    "FromAsCasing",
                    asw.span,
                    format!(
                        "'{}' and '{}' keywords' casing do not match",
                        asw.text, fi.keyword
                    ),
                );
            }
        }
        // Variables in FROM.
        let mut from_words = vec![from.image.text.clone()];
        from_words.extend(from.platform.clone());
        for w in &from_words {
            for v in referenced_vars(w, escape) {
                if !global.contains_key(&v)
                    && !predefined_args().any(|p| p == v)
                    && !options.build_args.contains(&v)
                {
                    let mut known: Vec<&str> = global.keys().map(String::as_str).collect();
                    for p in predefined_args() {
                        known.push(p);
                    }
                    let hint = instruction::suggest(&v, &known)
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                    cx.report(
                        "UndefinedArgInFrom",
                        from.image.span,
                        format!("FROM argument '{v}' is not declared{hint}"),
                    );
                }
            }
        }
        if has_var_ref(&from.image.text) {
            let env: Vec<(String, String)> = global
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
                .chain(predefined_args().map(|k| (k.to_owned(), "linux/amd64".to_owned())))
                .collect();
            let expanded = crate::expand_word(&from.image.text, &env, escape).unwrap_or_default();
            let only_declared = referenced_vars(&from.image.text, escape)
                .iter()
                .all(|v| global.contains_key(v));
            if only_declared && !valid_image_ref(&expanded) {
                cx.report(
                    "InvalidDefaultArgInFrom",
                    from.image.span,
                    format!(
                        "Default value for ARG {} results in empty or invalid base image name",
                        from.image.text
                    ),
                );
            }
        }
        if let Some(p) = &from.platform {
            let span = fi
                .flags
                .iter()
                .find(|f| f.name == "platform")
                .map(|f| f.span)
                .unwrap_or(fi.keyword_span);
            if p == "$TARGETPLATFORM" || p == "${TARGETPLATFORM}" {
                cx.report(
                    "RedundantTargetPlatform",
                    span,
                    format!("Setting platform to predefined {p} in FROM is redundant as this is the default behavior"),
                );
            } else if !has_var_ref(p) {
                // BuildKit allows a constant when the stage name says which
                // platform it is for (`AS build-arm64`).
                let name = from.stage_name.as_deref().unwrap_or("");
                let mentions = p
                    .split('/')
                    .any(|part| !part.is_empty() && name.contains(&part.to_lowercase()));
                if !mentions {
                    cx.report(
                        "FromPlatformFlagConstDisallowed",
                        span,
                        format!("FROM --platform flag should not use constant value {p:?}"),
                    );
                }
            }
        }
        if let Some(name) = &from.stage_name
            && let Some(c) = fi.comments.last()
            && !c.starts_with(&format!("{name} "))
        {
            cx.report(
                "InvalidDefinitionDescription",
                fi.keyword_span,
                format!("Comment for build stage or argument should follow the format: `# {name} <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment."),
            );
        }
        // BaseImageLatestTag.
        let img = &from.image.text;
        let is_stage = names.contains_key(&img.to_lowercase())
            && from.stage_name.as_deref() != Some(&img.to_lowercase());
        if !has_var_ref(img) && img != "scratch" && !is_stage && !img.contains('@') {
            let last = img.rsplit('/').next().unwrap_or(img);
            match last.split_once(':') {
                None => cx.report(
                    "BaseImageLatestTag",
                    from.image.span,
                    format!("Base image {img:?} has no tag; pin a version (it means \"latest\")"),
                ),
                Some((_, "latest")) => cx.report(
                    "BaseImageLatestTag",
                    from.image.span,
                    format!("Base image {img:?} uses the \"latest\" tag; pin a version"),
                ),
                _ => {}
            }
        }
    }
    // NoUserInstruction: the final stage.
    if let Some(last) = stages.last() {
        let user = last.instructions.iter().rev().find_map(|i| match &i.kind {
            InstructionKind::User(u) => Some((u.user.clone(), i.keyword_span)),
            _ => None,
        });
        match user {
            None if last.from.image.text != "scratch" => cx.report(
                "NoUserInstruction",
                last.from_instruction.keyword_span,
                "The final stage has no USER instruction, so the container runs as root".into(),
            ),
            Some((u, span))
                if u == "root" || u == "0" || u.starts_with("root:") || u.starts_with("0:") =>
            {
                cx.report(
                    "NoUserInstruction",
                    span,
                    format!("The final stage runs as root (USER {u})"),
                )
            }
            _ => {}
        }
    }
}

/// A loose check of an image reference after expansion.
fn valid_image_ref(s: &str) -> bool {
    if s.is_empty()
        || s.starts_with(':')
        || s.starts_with('/')
        || s.ends_with(':')
        || s.ends_with('/')
        || s.contains("//")
    {
        return false;
    }
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:@+".contains(c))
        && s.chars().any(|c| c.is_ascii_alphanumeric())
}

fn is_secret_name(name: &str) -> bool {
    // BuildKit's pattern: a secret word as a whole `_`-separated token.
    const WORDS: &[&str] = &[
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    let lower = name.to_ascii_lowercase();
    // BuildKit's allow pattern: a `public` token makes it not a secret.
    lower.split('_').any(|part| WORDS.contains(&part)) && !lower.split('_').any(|p| p == "public")
}

fn run_text(c: &CommandLine) -> String {
    match c {
        CommandLine::Shell(s) => s.clone(),
        CommandLine::Exec(v) => v.join(" "),
    }
}

fn check_instructions(cx: &mut Ctx<'_>, options: &LintOptions) {
    let df = cx.df;
    let escape = df.escape();
    let mut global_args: BTreeSet<String> = BTreeSet::new();
    for i in df.global_args() {
        check_one(cx, i, options);
        if let InstructionKind::Arg(a) = &i.kind {
            global_args.extend(a.args.iter().map(|d| d.name.clone()));
        }
    }
    let stages = df.stages();
    // Variables defined per stage name, for inheritance (FROM stage).
    let mut stage_vars: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for stage in &stages {
        let mut defined: BTreeSet<String> =
            COMMON_IMAGE_ENV.iter().map(|s| (*s).to_owned()).collect();
        defined.extend(predefined_args().map(str::to_owned));
        defined.extend(options.build_args.iter().cloned());
        if let Some(parent) = stage_vars.get(&stage.from.image.text.to_lowercase()) {
            defined.extend(parent.iter().cloned());
        }
        let mut counts: BTreeMap<&'static str, Vec<Span>> = BTreeMap::new();
        let mut abs_workdir = false;
        let mut prev_run: Option<&Instruction> = None;
        for i in stage.instructions {
            check_one(cx, i, options);
            // UndefinedVar, for the instructions Docker expands.
            if i.kind.expands_variables() {
                for w in expandable_words(i) {
                    for v in referenced_vars(&w, escape) {
                        if !defined.contains(&v) {
                            let known: Vec<&str> = defined.iter().map(String::as_str).collect();
                            let hint = instruction::suggest(&v, &known)
                                .map(|s| format!(" (did you mean ${s}?)"))
                                .unwrap_or_default();
                            cx.report(
                                "UndefinedVar",
                                i.keyword_span,
                                format!("Usage of undefined variable '${v}'{hint}"),
                            );
                        }
                    }
                }
            }
            match &i.kind {
                InstructionKind::Arg(a) => defined.extend(a.args.iter().map(|d| d.name.clone())),
                InstructionKind::Env(e) => defined.extend(e.pairs.iter().map(|p| p.key.clone())),
                InstructionKind::Cmd(_) => counts.entry("CMD").or_default().push(i.keyword_span),
                InstructionKind::Entrypoint(_) => {
                    counts.entry("ENTRYPOINT").or_default().push(i.keyword_span)
                }
                InstructionKind::Healthcheck(_) => counts
                    .entry("HEALTHCHECK")
                    .or_default()
                    .push(i.keyword_span),
                InstructionKind::Workdir(w) => {
                    let p = w.path.trim_matches('"');
                    // A Windows drive path (`C:\app`) is absolute too.
                    let b = p.as_bytes();
                    let drive = b.len() >= 3
                        && b[0].is_ascii_alphabetic()
                        && b[1] == b':'
                        && (b[2] == b'\\' || b[2] == b'/');
                    if p.starts_with('/') || p.starts_with('$') || drive {
                        abs_workdir = true;
                    } else if !abs_workdir {
                        cx.report(
                            "WorkdirRelativePath",
                            i.keyword_span,
                            format!("Relative workdir {:?} can have unexpected results if the base image changes", w.path),
                        );
                    }
                }
                _ => {}
            }
            // ConsecutiveRunInstructions.
            if let InstructionKind::Run(r) = &i.kind {
                if let Some(InstructionKind::Run(pr)) = prev_run.map(|p| &p.kind)
                    && r.command.is_shell()
                    && pr.command.is_shell()
                    && i.flags.is_empty()
                    && prev_run.is_some_and(|p| p.flags.is_empty())
                    && i.heredocs.is_empty()
                {
                    cx.report(
                        "ConsecutiveRunInstructions",
                        i.keyword_span,
                        "Consecutive RUN instructions can be combined into one to reduce the number of layers".into(),
                    );
                }
                prev_run = Some(i);
            } else {
                prev_run = None;
            }
        }
        for (name, spans) in counts {
            if spans.len() > 1 {
                for s in &spans[..spans.len() - 1] {
                    cx.report(
                        "MultipleInstructionsDisallowed",
                        *s,
                        format!("Multiple {name} instructions should not be used in the same stage because only the last one will be used"),
                    );
                }
            }
        }
        if let Some(n) = &stage.from.stage_name {
            stage_vars.insert(n.clone(), defined);
        }
    }
}

/// The words of an instruction that Docker expands.
fn expandable_words(i: &Instruction) -> Vec<String> {
    let mut out = Vec::new();
    match &i.kind {
        InstructionKind::Add(a) => {
            out.extend(a.sources.iter().filter(|s| !s.starts_with("<<")).cloned());
            out.push(a.dest.clone());
            out.extend(a.chown.clone());
            out.extend(a.chmod.clone());
        }
        InstructionKind::Copy(c) => {
            out.extend(c.sources.iter().filter(|s| !s.starts_with("<<")).cloned());
            out.push(c.dest.clone());
            out.extend(c.chown.clone());
            out.extend(c.chmod.clone());
            out.extend(c.from.clone());
        }
        InstructionKind::Env(e) => out.extend(e.pairs.iter().map(|p| p.value.clone())),
        InstructionKind::Label(l) => out.extend(
            l.pairs
                .iter()
                .flat_map(|p| [p.key.clone(), p.value.clone()]),
        ),
        InstructionKind::Expose(e) => out.extend(e.ports.iter().map(|p| p.text.clone())),
        InstructionKind::Stopsignal(s) => out.push(s.signal.clone()),
        InstructionKind::User(u) => out.push(u.user.clone()),
        InstructionKind::Volume(v) => out.extend(v.paths.iter().cloned()),
        InstructionKind::Workdir(w) => out.push(w.path.clone()),
        InstructionKind::Arg(a) => out.extend(a.args.iter().filter_map(|d| d.default.clone())),
        _ => {}
    }
    out
}

fn check_one(cx: &mut Ctx<'_>, i: &Instruction, options: &LintOptions) {
    match &i.kind {
        InstructionKind::Cmd(c) if c.command.is_shell() && !run_text(&c.command).is_empty() => {
            cx.report(
                "JSONArgsRecommended",
                i.keyword_span,
                "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals".into(),
            );
        }
        InstructionKind::Entrypoint(c)
            if c.command.is_shell() && !run_text(&c.command).is_empty() =>
        {
            cx.report(
                "JSONArgsRecommended",
                i.keyword_span,
                "JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals".into(),
            );
        }
        InstructionKind::Maintainer(_) => {
            cx.report(
                "MaintainerDeprecated",
                i.keyword_span,
                "Maintainer instruction is deprecated in favor of using label".into(),
            );
        }
        InstructionKind::Env(_) | InstructionKind::Label(_)
            if matches!(&i.kind, InstructionKind::Env(e) if e.legacy)
                || matches!(&i.kind, InstructionKind::Label(l) if l.legacy) =>
        {
            let name = i.name();
            cx.report(
                "LegacyKeyValueFormat",
                i.keyword_span,
                format!("\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"),
            );
            if let InstructionKind::Env(e) = &i.kind {
                secrets(cx, "ENV", e.pairs.iter().map(|p| (p.key.as_str(), p.span)));
            }
        }
        InstructionKind::Env(e) => {
            secrets(cx, "ENV", e.pairs.iter().map(|p| (p.key.as_str(), p.span)))
        }
        InstructionKind::Arg(a) => {
            secrets(cx, "ARG", a.args.iter().map(|d| (d.name.as_str(), d.span)));
            if let Some(c) = i.comments.last() {
                for d in &a.args {
                    if !c.starts_with(&format!("{} ", d.name)) {
                        cx.report(
                            "InvalidDefinitionDescription",
                            d.span,
                            format!("Comment for build stage or argument should follow the format: `# {} <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.", d.name),
                        );
                    }
                }
            }
        }
        InstructionKind::Expose(e) => {
            for p in &e.ports {
                if p.text.contains(':') {
                    cx.report(
                        "ExposeInvalidFormat",
                        p.span,
                        format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{}'", p.text),
                    );
                }
                if let Some((_, proto)) = p.text.rsplit_once('/')
                    && proto != proto.to_lowercase()
                {
                    cx.report(
                        "ExposeProtoCasing",
                        p.span,
                        format!(
                            "Defined protocol '{}' in EXPOSE instruction should be lowercase",
                            p.text
                        ),
                    );
                }
            }
        }
        InstructionKind::Add(a) => {
            let remote = |s: &str| {
                s.contains("://") || s.starts_with("git@") || s.starts_with("<<") || is_archive(s)
            };
            if !a.sources.iter().any(|s| remote(s)) {
                cx.report(
                    "PreferCopyOverAdd",
                    i.keyword_span,
                    "Use COPY instead of ADD for local files and folders".into(),
                );
            }
            ignored(cx, "Add", &a.sources, i, options);
        }
        InstructionKind::Copy(c) if c.from.is_none() => ignored(cx, "Copy", &c.sources, i, options),
        InstructionKind::Run(r) => {
            let text = run_text(&r.command);
            let segments: Vec<&str> = text.split(['&', ';', '|']).map(str::trim).collect();
            let has_update = segments
                .iter()
                .any(|s| s.starts_with("apt-get update") || s.starts_with("apt update"));
            let has_install = text.contains("apt-get install")
                || text.contains("apt install")
                || text.contains("apt-get upgrade");
            if has_update && !has_install {
                cx.report(
                    "AptGetUpdateAlone",
                    i.keyword_span,
                    "apt-get update without apt-get install in the same RUN leaves a stale package index cached; combine them".into(),
                );
            }
            if segments.iter().any(|s| s.starts_with("cd ") || *s == "cd") {
                cx.report(
                    "CdInRun",
                    i.keyword_span,
                    "Use WORKDIR to change directories instead of 'cd' in RUN".into(),
                );
            }
            unsorted_packages(cx, i);
        }
        InstructionKind::Onbuild(o) => check_one(cx, &o.trigger, options),
        _ => {}
    }
}

fn is_archive(s: &str) -> bool {
    [
        ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".gz",
        ".bz2", ".xz",
    ]
    .iter()
    .any(|e| s.ends_with(e))
}

fn secrets<'a>(cx: &mut Ctx<'_>, kw: &str, names: impl Iterator<Item = (&'a str, Span)>) {
    for (n, s) in names {
        if is_secret_name(n) {
            cx.report(
                "SecretsUsedInArgOrEnv",
                s,
                format!("Do not use ARG or ENV instructions for sensitive data ({kw} {n:?})"),
            );
        }
    }
}

/// `.dockerignore` matching (a subset: `*`, `?`, `**`, `!` exceptions,
/// leading `/` ignored), enough to warn about COPY sources.
fn ignored(
    cx: &mut Ctx<'_>,
    verb: &str,
    sources: &[String],
    i: &Instruction,
    options: &LintOptions,
) {
    if options.dockerignore.is_empty() {
        return;
    }
    for s in sources {
        if s.contains('$') || s.starts_with("<<") || s.contains("://") {
            continue;
        }
        let path = s.trim_start_matches("./").trim_start_matches('/');
        let mut excluded = false;
        for p in &options.dockerignore {
            let p = p.trim();
            if p.is_empty() || p.starts_with('#') {
                continue;
            }
            let (neg, pat) = match p.strip_prefix('!') {
                Some(r) => (true, r),
                None => (false, p),
            };
            let pat = pat.trim_start_matches("./").trim_start_matches('/');
            if glob_path(pat, path) {
                excluded = !neg;
            }
        }
        if excluded {
            cx.report(
                "CopyIgnoredFile",
                i.keyword_span,
                format!("Attempting to {verb} file {s:?} that is excluded by .dockerignore"),
            );
        }
    }
}

fn glob_path(pat: &str, path: &str) -> bool {
    let p: Vec<&str> = pat.split('/').filter(|s| !s.is_empty()).collect();
    let s: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    fn seg(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).any(|k| seg(rest, &s[k..])),
            Some(('?', rest)) => !s.is_empty() && seg(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && seg(rest, &s[1..]),
        }
    }
    fn go(p: &[&str], s: &[&str]) -> bool {
        match p.split_first() {
            // A directory pattern also excludes what is inside.
            None => true,
            Some((&"**", rest)) => (0..=s.len()).any(|k| go(rest, &s[k..])),
            Some((first, rest)) => match s.split_first() {
                None => false,
                Some((h, t)) => {
                    let pc: Vec<char> = first.chars().collect();
                    let sc: Vec<char> = h.chars().collect();
                    seg(&pc, &sc) && go(rest, t)
                }
            },
        }
    }
    !s.is_empty() && go(&p, &s)
}

/// UnsortedPackageList: an install command whose packages span several
/// source lines and are not in alphabetical order.
fn unsorted_packages(cx: &mut Ctx<'_>, i: &Instruction) {
    let InstructionKind::Run(r) = &i.kind else {
        return;
    };
    if !r.command.is_shell() || !(i.original.contains("install") || i.original.contains("add")) {
        return;
    }
    // Only multi-line instructions: the source must have continuations.
    let text = i.span.text(cx.df.source());
    if text.lines().count() < 3 {
        return;
    }
    let cmd = run_text(&r.command);
    for segment in cmd.split("&&").flat_map(|s| s.split(';')) {
        let words: Vec<&str> = segment.split_whitespace().collect();
        let Some(pos) = words.iter().position(|w| *w == "install" || *w == "add") else {
            continue;
        };
        let tool = words[..pos].iter().any(|w| {
            matches!(
                *w,
                "apt-get" | "apt" | "apk" | "yum" | "dnf" | "microdnf" | "zypper"
            )
        });
        if !tool {
            continue;
        }
        let pkgs: Vec<&str> = words[pos + 1..]
            .iter()
            .copied()
            .take_while(|w| !matches!(*w, "|" | ">" | "||"))
            .filter(|w| !w.starts_with('-') && !w.contains('$'))
            .collect();
        for pair in pkgs.windows(2) {
            if pair[0].to_lowercase() > pair[1].to_lowercase() {
                cx.report(
                    "UnsortedPackageList",
                    i.keyword_span,
                    format!(
                        "Package list is not sorted alphabetically: {:?} comes before {:?}",
                        pair[0], pair[1]
                    ),
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(src: &str) -> Vec<&'static str> {
        let (_, lints) = lint_source(src, &LintOptions::default());
        lints.into_iter().map(|l| l.rule).collect()
    }

    #[test]
    fn check_directive() {
        let c = CheckConfig::parse("skip=JSONArgsRecommended, StageNameCasing;error=true");
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        assert!(c.error && c.skip.len() == 2);
        assert!(CheckConfig::parse("bogus").is_err());
        let src = "# check=skip=all\nFROM a:1\nCMD x\n";
        assert!(names(src).is_empty());
        let src = "# check=error=true\nFROM a:1\nUSER app\nCMD x\n";
        let (_, l) = lint_source(src, &LintOptions::default());
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].severity, Severity::Error);
    }

    #[test]
    fn buildkit_checks() {
        let n = names(
            "FROM a:1 as Build\nMAINTAINER me\nENV A b\nCMD x\nCMD [\"y\"]\nWORKDIR rel\nEXPOSE 80/TCP 127.0.0.1:80:80\nUSER app\n",
        );
        for r in [
            "FromAsCasing",
            "StageNameCasing",
            "MaintainerDeprecated",
            "LegacyKeyValueFormat",
            "JSONArgsRecommended",
            "MultipleInstructionsDisallowed",
            "WorkdirRelativePath",
            "ExposeProtoCasing",
            "ExposeInvalidFormat",
        ] {
            assert!(n.contains(&r), "{r} missing in {n:?}");
        }
    }

    #[test]
    fn best_practices() {
        let n = names("FROM ubuntu\nRUN apt-get update\nRUN cd /x && make\nADD a /b\n");
        for r in [
            "BaseImageLatestTag",
            "AptGetUpdateAlone",
            "CdInRun",
            "PreferCopyOverAdd",
            "ConsecutiveRunInstructions",
            "NoUserInstruction",
        ] {
            assert!(n.contains(&r), "{r} missing in {n:?}");
        }
    }

    #[test]
    fn dockerignore_glob() {
        assert!(glob_path("*.md", "README.md"));
        assert!(glob_path("**/*.log", "a/b/c.log"));
        assert!(glob_path("build", "build/x"));
        assert!(!glob_path("*.md", "src/a.rs"));
    }
}
