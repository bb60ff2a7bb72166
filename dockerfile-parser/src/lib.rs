//! A lossless Dockerfile parser: text → syntax tree → typed instructions,
//! plus Docker's shell-word expansion and BuildKit's build checks (lints).
//!
//! # What it does
//!
//! - [`SyntaxTree::parse`] scans the text into a **lossless tree** whose
//!   pieces cover every byte (comments, continuations, heredoc bodies, a
//!   BOM, CRLF line endings), so `tree.print() == input` always holds. The
//!   tree never fails; syntax problems are collected in
//!   [`SyntaxTree::errors`].
//! - [`Dockerfile::parse`] builds **typed instructions** on top
//!   ([`Instruction`] with an [`InstructionKind`] such as
//!   [`instructions::RunInstruction`]), with flags validated (`RUN --mount`
//!   specs parsed into [`instructions::Mount`]), parser directives
//!   ([`Directives`]), heredocs ([`Heredoc`]) and spans. Errors are
//!   [`Error::Parse`] carrying a [`Diagnostic`]: line, column, offending
//!   text and a "did you mean" hint. [`Dockerfile::stages`] groups the
//!   instructions by `FROM`; [`Dockerfile::global_args`] are the `ARG`s
//!   before the first `FROM`.
//! - [`parse_instruction`] parses one instruction line on its own (ONBUILD
//!   triggers from a base image's config, `commit --change`).
//! - [`expand_word`] and [`expand_words`] do **shell-word expansion**
//!   exactly as BuildKit's `shell` package; [`Expander`] exposes its options
//!   and reports which variables were (not) found.
//!   [`InstructionKind::expands_variables`] says which instructions Docker
//!   expands ("Environment replacement" in the Dockerfile reference).
//! - [`lint`] runs BuildKit's build checks and common best-practice rules,
//!   honouring `# check=skip=...;error=true` ([`CheckConfig`]).
//!
//! # What it does not do
//!
//! No I/O, no async, no build: it never reads files, resolves images or
//! runs commands. Variables are not expanded during parsing (Docker expands
//! them per stage at build time, with the build's arguments); call the
//! expansion functions with the stage's environment. The `# syntax=`
//! directive is recorded, not followed. The lint `CopyIgnoredFile` needs
//! the `.dockerignore` patterns, which the caller passes in
//! [`LintOptions`].
//!
//! # Data flow
//!
//! ```text
//! &str ──SyntaxTree::parse──▶ SyntaxTree (nodes, pieces, LogicalLine, Heredoc)
//!                               │
//!                               ▼
//!                        Dockerfile::parse ──▶ Vec<Instruction> ──stages()──▶ Stage
//!                               │                    │
//!                               ▼                    ▼
//!                          lint() ──▶ Vec<Lint>   expand_word(word, env, escape)
//! ```
//!
//! # Example
//!
//! ```
//! use kiln_dockerfile_parser::{Dockerfile, InstructionKind, expand_word};
//!
//! let src = "ARG BASE=alpine:3.20\nFROM $BASE AS build\nRUN --mount=type=cache,target=/root/.cache make\n";
//! let df = Dockerfile::parse(src)?;
//! assert_eq!(df.print(), src); // lossless
//! let stages = df.stages();
//! assert_eq!(stages[0].name(), Some("build"));
//! let InstructionKind::Run(run) = &stages[0].instructions[0].kind else { unreachable!() };
//! assert_eq!(run.mounts[0].target.as_deref(), Some("/root/.cache"));
//! let image = expand_word(&stages[0].from.image.text, &[("BASE", "alpine:3.20")][..], df.escape())?;
//! assert_eq!(image, "alpine:3.20");
//! # Ok::<(), kiln_dockerfile_parser::Error>(())
//! ```

mod duration;
mod error;
mod instruction;
mod lint;
mod shell;
mod span;
mod syntax;
mod words;

pub use error::{Diagnostic, Error, ExpandErrorKind};
pub use instruction::{
    CommandLine, Flag, Instruction, InstructionKind, KeyValue, Word, parse_mount,
};
pub use lint::{
    CheckConfig, Lint, LintOptions, PROXY_ARGS, RULES, Rule, Severity, lint, lint_source, rule,
};
pub use shell::{Expander, Expansion, NoEnv, Variables, expand_word, expand_words};
pub use span::{LineIndex, Position, Span};
pub use syntax::{
    Directive, Directives, Heredoc, LogicalLine, Node, NodeKind, Piece, PieceKind, SyntaxTree,
};

/// The typed instruction structs, one per Dockerfile instruction.
pub mod instructions {
    pub use crate::instruction::{
        AddInstruction, ArgDecl, ArgInstruction, CacheSharing, CmdInstruction, CommandLine,
        CopyInstruction, EntrypointInstruction, EnvInstruction, ExposeInstruction, FromInstruction,
        HealthcheckInstruction, KeyValue, LabelInstruction, MaintainerInstruction, Mount,
        MountType, NetworkMode, OnbuildInstruction, RunInstruction, SecurityMode, ShellInstruction,
        StopSignalInstruction, UserInstruction, VolumeInstruction, WorkdirInstruction,
    };
}

use instruction::{Ctx, FromInstruction, parse_logical};

/// A parsed Dockerfile: the lossless tree and the typed instructions.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    tree: SyntaxTree,
    /// All instructions in order, global `ARG`s and `FROM`s included.
    pub instructions: Vec<Instruction>,
}

/// One build stage: a `FROM` and the instructions up to the next one.
#[derive(Debug, Clone, Copy)]
pub struct Stage<'a> {
    /// Position among the stages, from 0 (usable as `COPY --from=0`).
    pub index: usize,
    /// The `FROM` instruction.
    pub from_instruction: &'a Instruction,
    /// Its typed data.
    pub from: &'a FromInstruction,
    /// The instructions of the stage, after the `FROM`.
    pub instructions: &'a [Instruction],
}

impl Stage<'_> {
    /// The stage name (`AS name`, lower-cased), if any.
    pub fn name(&self) -> Option<&str> {
        self.from.stage_name.as_deref()
    }
}

impl Dockerfile {
    /// Parses a Dockerfile. Fails on the first problem, as BuildKit does:
    /// an invalid directive, an unterminated heredoc, an unknown
    /// instruction or flag, a wrong argument count, or an instruction
    /// other than `ARG` before the first `FROM`.
    pub fn parse(source: &str) -> Result<Dockerfile, Error> {
        let (df, mut errors) = Dockerfile::parse_partial(source);
        if errors.is_empty() {
            Ok(df)
        } else {
            errors.sort_by_key(|d| d.span.start);
            Err(Error::Parse(Box::new(errors.swap_remove(0))))
        }
    }

    /// Parses as much as possible: instructions that fail are left out and
    /// their diagnostics returned, sorted by position. Linters use this.
    pub fn parse_partial(source: &str) -> (Dockerfile, Vec<Diagnostic>) {
        let tree = SyntaxTree::parse(source);
        let mut errors = tree.errors.clone();
        let instructions = build_instructions(&tree, &mut errors);
        errors.sort_by_key(|d| d.span.start);
        (Dockerfile { tree, instructions }, errors)
    }

    /// The lossless syntax tree.
    pub fn tree(&self) -> &SyntaxTree {
        &self.tree
    }

    /// The source text.
    pub fn source(&self) -> &str {
        self.tree.source()
    }

    /// The parser directives.
    pub fn directives(&self) -> &Directives {
        &self.tree.directives
    }

    /// The escape character in effect (`\` or `` ` ``).
    pub fn escape(&self) -> char {
        self.tree.directives.escape_char
    }

    /// Prints the file back from the tree (equal to the input).
    pub fn print(&self) -> String {
        self.tree.print()
    }

    /// The `ARG` instructions before the first `FROM` (global scope).
    pub fn global_args(&self) -> &[Instruction] {
        let first_from = self
            .instructions
            .iter()
            .position(|i| matches!(i.kind, InstructionKind::From(_)))
            .unwrap_or(self.instructions.len());
        &self.instructions[..first_from]
    }

    /// The build stages, in order.
    pub fn stages(&self) -> Vec<Stage<'_>> {
        let mut out = Vec::new();
        let froms: Vec<usize> = self
            .instructions
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i.kind, InstructionKind::From(_)))
            .map(|(n, _)| n)
            .collect();
        for (k, &at) in froms.iter().enumerate() {
            let end = froms.get(k + 1).copied().unwrap_or(self.instructions.len());
            let fi = &self.instructions[at];
            if let InstructionKind::From(from) = &fi.kind {
                out.push(Stage {
                    index: k,
                    from_instruction: fi,
                    from,
                    instructions: &self.instructions[at + 1..end],
                });
            }
        }
        out
    }
}

fn build_instructions(tree: &SyntaxTree, errors: &mut Vec<Diagnostic>) -> Vec<Instruction> {
    let mut out = Vec::with_capacity(tree.nodes.len());
    let mut seen_from = false;
    for node in tree.instructions() {
        let Some(logical) = &node.logical else {
            continue;
        };
        let ctx = Ctx {
            source: tree.source(),
            index: tree.line_index(),
            logical,
            escape: tree.directives.escape_char,
        };
        match parse_logical(&ctx, node.span) {
            Ok(inst) => {
                match inst.kind {
                    InstructionKind::From(_) => seen_from = true,
                    InstructionKind::Arg(_) => {}
                    _ if !seen_from => {
                        errors.push(Diagnostic::new(
                            tree.source(),
                            tree.line_index(),
                            inst.keyword_span,
                            "no build stage in current context",
                        ));
                    }
                    _ => {}
                }
                out.push(inst);
            }
            Err(d) => errors.push(d),
        }
    }
    out
}

/// Parses one instruction given as text, such as an ONBUILD trigger stored
/// in a base image's config (`RUN echo hi`) or a `--change` argument.
/// Heredoc bodies may follow on the next lines. `escape` is the escape
/// character to use (directives are not read).
pub fn parse_instruction(text: &str, escape: char) -> Result<Instruction, Error> {
    let tree = SyntaxTree::parse_with(text, Some(escape));
    if let Some(e) = tree.errors.first() {
        return Err(Error::Parse(Box::new(e.clone())));
    }
    let mut nodes = tree.instructions();
    let (Some(node), None) = (nodes.next(), nodes.next()) else {
        let span = Span::new(0, text.len());
        return Err(Diagnostic::new(
            text,
            tree.line_index(),
            span,
            "expected exactly one instruction",
        )
        .into());
    };
    let Some(logical) = &node.logical else {
        return Err(Diagnostic::new(
            text,
            tree.line_index(),
            node.span,
            "expected an instruction",
        )
        .into());
    };
    let ctx = Ctx {
        source: tree.source(),
        index: tree.line_index(),
        logical,
        escape,
    };
    parse_logical(&ctx, node.span).map_err(Error::from)
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
