//! `kiln dockerfile parse|lint`: print the typed instructions of a
//! Dockerfile, or run the lints on it.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use kiln_dockerfile_parser::{
    Diagnostic, Dockerfile, Instruction, InstructionKind, LintOptions, Severity, lint_source,
};
use serde_json::json;

/// `kiln dockerfile` subcommands.
#[derive(Debug, Subcommand)]
pub enum DockerfileCommand {
    /// Print the typed instructions of a Dockerfile.
    #[command(after_help = "Examples:
  kiln dockerfile parse Dockerfile
  kiln dockerfile parse --json - < Dockerfile | jq '.[0]'")]
    Parse {
        /// Print JSON (one object per instruction).
        #[arg(long)]
        json: bool,
        /// The Dockerfile, or `-` for standard input.
        file: String,
    },
    /// Check a Dockerfile against BuildKit's build checks and best practices.
    #[command(after_help = "Examples:
  kiln dockerfile lint Dockerfile
  kiln dockerfile lint --format json app/Dockerfile")]
    Lint {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// The Dockerfile, or `-` for standard input.
        file: String,
    },
}

/// Output format of `kiln dockerfile lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `FILE:LINE:COL: RuleName: message`, one per line.
    Text,
    /// A JSON array of findings.
    Json,
}

/// Runs a `kiln dockerfile` subcommand.
pub fn run(cmd: DockerfileCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DockerfileCommand::Parse { json, file } => parse(&file, json),
        DockerfileCommand::Lint { format, file } => lint(&file, format),
    }
}

/// Reads FILE, or standard input for `-`. Returns the name to print too.
fn read(file: &str) -> anyhow::Result<(String, String)> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the Dockerfile from standard input")?;
        Ok(("<stdin>".to_owned(), s))
    } else {
        let s = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        Ok((file.to_owned(), s))
    }
}

fn print_diagnostic(name: &str, d: &Diagnostic) {
    match &d.hint {
        Some(h) => eprintln!(
            "{name}:{}:{}: {} ({h})",
            d.start.line, d.start.column, d.message
        ),
        None => eprintln!("{name}:{}:{}: {}", d.start.line, d.start.column, d.message),
    }
}

fn parse(file: &str, as_json: bool) -> anyhow::Result<ExitCode> {
    let (name, src) = read(file)?;
    let df = match Dockerfile::parse(&src) {
        Ok(df) => df,
        Err(e) => {
            match e.diagnostic() {
                Some(d) => print_diagnostic(&name, d),
                None => eprintln!("{name}: {e}"),
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut stage: Option<usize> = None;
    let mut objects = Vec::with_capacity(df.instructions.len());
    let mut out = String::new();
    for inst in &df.instructions {
        if let InstructionKind::From(from) = &inst.kind {
            let next = stage.map_or(0, |s| s + 1);
            stage = Some(next);
            if !as_json {
                let name = from
                    .stage_name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                out.push_str(&format!("# stage {next}{name}\n"));
            }
        }
        if as_json {
            objects.push(instruction_json(inst, stage)?);
        } else {
            out.push_str(&instruction_text(inst, stage.is_some()));
        }
    }
    if as_json {
        let doc = json!({
            "escape": df.escape().to_string(),
            "syntax": df.directives().syntax.as_ref().map(|d| d.value.clone()),
            "instructions": objects,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}

fn instruction_json(inst: &Instruction, stage: Option<usize>) -> anyhow::Result<serde_json::Value> {
    let mut arguments = serde_json::to_value(&inst.kind)?;
    if let Some(obj) = arguments.as_object_mut() {
        obj.remove("instruction");
    }
    Ok(json!({
        "keyword": inst.name(),
        "stage": stage,
        "lines": { "start": inst.start_line, "end": inst.end_line },
        "flags": inst.flags.iter().map(|f| json!({ "name": f.name, "value": f.value })).collect::<Vec<_>>(),
        "arguments": arguments,
        "heredocs": inst.heredocs.iter().map(|h| json!({ "name": h.name, "content": h.body(), "expand": h.expand })).collect::<Vec<_>>(),
        "original": inst.original,
    }))
}

fn instruction_text(inst: &Instruction, in_stage: bool) -> String {
    let indent = if in_stage && !matches!(inst.kind, InstructionKind::From(_)) {
        "  "
    } else {
        ""
    };
    let lines = if inst.start_line == inst.end_line {
        format!("{}", inst.start_line)
    } else {
        format!("{}-{}", inst.start_line, inst.end_line)
    };
    let flags: String = inst
        .flags
        .iter()
        .map(|f| match &f.value {
            Some(v) => format!(" --{}={v}", f.name),
            None => format!(" --{}", f.name),
        })
        .collect();
    let mut s = format!("{indent}{lines}: {}{flags} {}\n", inst.name(), inst.args());
    for h in &inst.heredocs {
        s.push_str(&format!(
            "{indent}    <<{} ({} bytes)\n",
            h.name,
            h.content.len()
        ));
    }
    s
}

fn lint(file: &str, format: Format) -> anyhow::Result<ExitCode> {
    let (name, src) = read(file)?;
    let (errors, lints) = lint_source(&src, &LintOptions::default());
    let failed = !errors.is_empty() || lints.iter().any(|l| l.severity == Severity::Error);
    match format {
        Format::Text => {
            for d in &errors {
                print_diagnostic(&name, d);
            }
            for l in &lints {
                println!(
                    "{name}:{}:{}: {}: {}",
                    l.start.line, l.start.column, l.rule, l.message
                );
            }
        }
        Format::Json => {
            let items: Vec<serde_json::Value> = errors
                .iter()
                .map(|d| {
                    json!({
                        "file": name, "line": d.start.line, "column": d.start.column,
                        "rule": serde_json::Value::Null, "severity": "error",
                        "message": d.message, "hint": d.hint,
                    })
                })
                .chain(lints.iter().map(|l| {
                    json!({
                        "file": name, "line": l.start.line, "column": l.start.column,
                        "end_line": l.end.line, "end_column": l.end.column,
                        "rule": l.rule, "severity": l.severity, "message": l.message,
                    })
                }))
                .collect();
            println!("{}", serde_json::to_string_pretty(&items)?);
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
