//! Lints: each rule fires on a minimal file (with its BuildKit message),
//! and `# check=` works.

use kiln_dockerfile_parser::{CheckConfig, LintOptions, RULES, Severity, lint_source};

fn lints(src: &str) -> Vec<(String, u32, u32, String)> {
    let (errors, lints) = lint_source(src, &LintOptions::default());
    assert!(errors.is_empty(), "{errors:?}");
    lints
        .into_iter()
        .map(|l| (l.rule.to_owned(), l.start.line, l.start.column, l.message))
        .collect()
}

fn has(src: &str, rule: &str, line: u32, message: &str) {
    let l = lints(src);
    assert!(
        l.iter()
            .any(|(r, ln, _, m)| r == rule && *ln == line && m == message),
        "{rule} at line {line} with {message:?} not in {l:#?}"
    );
}

const TAIL: &str = "USER app\n";

#[test]
fn buildkit_checks_with_their_messages() {
    has(
        &format!("FROM a:1 AS Build\n{TAIL}"),
        "StageNameCasing",
        1,
        "Stage name 'Build' should be lowercase",
    );
    has(
        &format!("FROM a:1 as b\n{TAIL}"),
        "FromAsCasing",
        1,
        "'as' and 'FROM' keywords' casing do not match",
    );
    has(
        &format!("FROM a:1\nRUN a \\\n\n b\n{TAIL}"),
        "NoEmptyContinuation",
        3,
        "Empty continuation line",
    );
    has(
        &format!("FROM a:1\nrun x\nRUN y\n{TAIL}"),
        "ConsistentInstructionCasing",
        2,
        "Command 'run' should match the case of the command majority (uppercase)",
    );
    has(
        &format!("FROM a:1 AS x\nFROM b:1 AS x\n{TAIL}"),
        "DuplicateStageName",
        2,
        "Duplicate stage name \"x\", stage names should be unique",
    );
    has(
        &format!("FROM a:1 AS scratch\n{TAIL}"),
        "ReservedStageName",
        1,
        "Stage name should not use the same name as reserved stage \"scratch\"",
    );
    has(
        &format!("FROM a:1\n{TAIL}CMD run me\n"),
        "JSONArgsRecommended",
        3,
        "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals",
    );
    has(
        &format!("FROM a:1\nMAINTAINER me\n{TAIL}"),
        "MaintainerDeprecated",
        2,
        "Maintainer instruction is deprecated in favor of using label",
    );
    has(
        &format!("FROM $BASE\n{TAIL}"),
        "UndefinedArgInFrom",
        1,
        "FROM argument 'BASE' is not declared",
    );
    has(
        &format!("ARG BASE=a\nFROM $BSE\n{TAIL}"),
        "UndefinedArgInFrom",
        2,
        "FROM argument 'BSE' is not declared (did you mean BASE?)",
    );
    has(
        &format!("FROM a:1\nWORKDIR app\n{TAIL}"),
        "WorkdirRelativePath",
        2,
        "Relative workdir \"app\" can have unexpected results if the base image changes",
    );
    has(
        &format!("FROM a:1\nARG FOO\nCOPY $FOOO /x\n{TAIL}"),
        "UndefinedVar",
        3,
        "Usage of undefined variable '$FOOO' (did you mean $FOO?)",
    );
    has(
        &format!("FROM a:1\nCMD [\"a\"]\nCMD [\"b\"]\n{TAIL}"),
        "MultipleInstructionsDisallowed",
        2,
        "Multiple CMD instructions should not be used in the same stage because only the last one will be used",
    );
    has(
        &format!("FROM a:1\nENV A b\n{TAIL}"),
        "LegacyKeyValueFormat",
        2,
        "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format",
    );
    has(
        &format!("FROM --platform=$TARGETPLATFORM a:1\n{TAIL}"),
        "RedundantTargetPlatform",
        1,
        "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
    );
    has(
        &format!("FROM a:1\nARG DB_PASSWORD\n{TAIL}"),
        "SecretsUsedInArgOrEnv",
        2,
        "Do not use ARG or ENV instructions for sensitive data (ARG \"DB_PASSWORD\")",
    );
    has(
        &format!("ARG TAG\nFROM busybox:${{TAG}}\n{TAIL}"),
        "InvalidDefaultArgInFrom",
        2,
        "Default value for ARG busybox:${TAG} results in empty or invalid base image name",
    );
    has(
        &format!("FROM --platform=linux/amd64 a:1\n{TAIL}"),
        "FromPlatformFlagConstDisallowed",
        1,
        "FROM --platform flag should not use constant value \"linux/amd64\"",
    );
    has(
        &format!("FROM a:1\nEXPOSE 80/TCP\n{TAIL}"),
        "ExposeProtoCasing",
        2,
        "Defined protocol '80/TCP' in EXPOSE instruction should be lowercase",
    );
    has(
        &format!("FROM a:1\nEXPOSE 0.0.0.0:80:80\n{TAIL}"),
        "ExposeInvalidFormat",
        2,
        "EXPOSE instruction should not define an IP address or host-port mapping, found '0.0.0.0:80:80'",
    );
    has(
        &format!(
            "# check=experimental=InvalidDefinitionDescription\n# the base\nFROM a:1 AS base\n{TAIL}"
        ),
        "InvalidDefinitionDescription",
        3,
        "Comment for build stage or argument should follow the format: `# base <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.",
    );
    let mut opts = LintOptions::default();
    opts.dockerignore = vec!["*.md".into()];
    let (_, l) = lint_source(
        &format!("FROM a:1\nCOPY README.md notes/x.txt /d/\n{TAIL}"),
        &opts,
    );
    assert_eq!(l.iter().filter(|l| l.rule == "CopyIgnoredFile").count(), 1);
    assert!(
        l.iter().any(|l| l.message
            == "Attempting to Copy file \"README.md\" that is excluded by .dockerignore")
    );
}

#[test]
fn no_false_positives_on_a_clean_file() {
    let src = "# syntax=docker/dockerfile:1\nARG GO=1.22\nFROM golang:${GO} AS build\nWORKDIR /src\nCOPY . .\nRUN go build -o /out/app\n\nFROM gcr.io/distroless/static:nonroot\nCOPY --from=build /out/app /app\nUSER nonroot\nENTRYPOINT [\"/app\"]\n";
    assert_eq!(lints(src), Vec::new());
}

#[test]
fn best_practice_rules() {
    has(
        "FROM ubuntu\nUSER app\n",
        "BaseImageLatestTag",
        1,
        "Base image \"ubuntu\" has no tag; pin a version (it means \"latest\")",
    );
    has(
        "FROM ubuntu:latest\nUSER app\n",
        "BaseImageLatestTag",
        1,
        "Base image \"ubuntu:latest\" uses the \"latest\" tag; pin a version",
    );
    has(
        "FROM a:1\nADD src /src\nUSER app\n",
        "PreferCopyOverAdd",
        2,
        "Use COPY instead of ADD for local files and folders",
    );
    has(
        "FROM a:1\nRUN apt-get update\nUSER app\n",
        "AptGetUpdateAlone",
        2,
        "apt-get update without apt-get install in the same RUN leaves a stale package index cached; combine them",
    );
    has(
        "FROM a:1\nRUN a\nRUN b\nUSER app\n",
        "ConsecutiveRunInstructions",
        3,
        "Consecutive RUN instructions can be combined into one to reduce the number of layers",
    );
    has(
        "FROM a:1\nRUN apt-get install -y \\\n  zlib \\\n  curl\nUSER app\n",
        "UnsortedPackageList",
        2,
        "Package list is not sorted alphabetically: \"zlib\" comes before \"curl\"",
    );
    has(
        "FROM a:1\n",
        "NoUserInstruction",
        1,
        "The final stage has no USER instruction, so the container runs as root",
    );
    has(
        "FROM a:1\nUSER root\n",
        "NoUserInstruction",
        2,
        "The final stage runs as root (USER root)",
    );
    has(
        "FROM a:1\nRUN cd /src && make\nUSER app\n",
        "CdInRun",
        2,
        "Use WORKDIR to change directories instead of 'cd' in RUN",
    );
    // ADD of a URL or an archive is what ADD is for.
    let l = lints("FROM a:1\nADD https://x/y.txt /y\nADD app.tar.gz /\nUSER app\n");
    assert!(!l.iter().any(|(r, ..)| r == "PreferCopyOverAdd"), "{l:?}");
}

#[test]
fn check_directive_skip_and_error() {
    let src = "# check=skip=JSONArgsRecommended,MaintainerDeprecated\nFROM a:1\nMAINTAINER x\nUSER app\nCMD x\n";
    assert_eq!(lints(src), Vec::new());
    let src = "# check=error=true\nFROM a:1\nUSER app\nCMD x\n";
    let (_, l) = lint_source(src, &LintOptions::default());
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].severity, Severity::Error);
    let src = "# check=skip=all;error=true\nFROM a\nCMD x\n";
    assert_eq!(lints(src), Vec::new());
    // An explicit configuration overrides the directive.
    let mut opts = LintOptions::default();
    opts.check = Some(CheckConfig::default());
    let (_, l) = lint_source("# check=skip=all\nFROM a:1\nUSER app\nCMD x\n", &opts);
    assert_eq!(l.len(), 1);
}

#[test]
fn rule_names_are_unique_and_documented() {
    let mut names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    assert_eq!(n, names.len());
    assert!(RULES.iter().all(|r| !r.description.is_empty()));
    assert!(RULES.iter().filter(|r| r.buildkit).count() >= 21);
}
