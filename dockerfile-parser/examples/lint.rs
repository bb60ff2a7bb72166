//! Lint a Dockerfile, honouring its `# check=` directive:
//! `cargo run --example lint -- Dockerfile [.dockerignore]`.

use kiln_dockerfile_parser::{LintOptions, Severity, lint_source};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: lint DOCKERFILE [DOCKERIGNORE]")?;
    let text = std::fs::read_to_string(&path)?;
    let mut options = LintOptions::default();
    if let Some(ignore) = args.next() {
        options.dockerignore = std::fs::read_to_string(ignore)?
            .lines()
            .map(str::to_owned)
            .collect();
    }
    let (errors, lints) = lint_source(&text, &options);
    for d in &errors {
        println!("{path}:{d}");
    }
    for l in &lints {
        println!(
            "{path}:{}:{}: {} [{}]: {}",
            l.start.line, l.start.column, l.rule, l.severity, l.message
        );
    }
    let failed = !errors.is_empty() || lints.iter().any(|l| l.severity == Severity::Error);
    std::process::exit(i32::from(failed));
}
