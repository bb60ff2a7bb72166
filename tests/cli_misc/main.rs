//! End-to-end tests of the CLI's shared parts: the configuration file and
//! its environment overrides (`kiln info`), shell completions, `--help`
//! examples, exit codes for usage errors, and a closed standard output.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn kiln(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(KILN);
    c.args(args)
        .env_remove("KILN_CONFIG")
        .env_remove("KILN_PARALLELISM")
        .env_remove("KILN_INSECURE_REGISTRIES")
        .env_remove("KILN_REGISTRY_MIRRORS");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run kiln")
}

fn text(o: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn info_json(env: &[(&str, &str)]) -> serde_json::Value {
    let out = kiln(&["info", "--format", "json"], env);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("info prints JSON")
}

#[test]
fn the_config_file_sets_root_parallelism_and_registries() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "root = {:?}\nparallelism = 5\n[registries]\ninsecure = [\"reg.lan:5000\"]\n\
             [registries.mirrors]\n\"docker.io\" = [\"http://127.0.0.1:5999\"]\n",
            root.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let info = info_json(&[("KILN_CONFIG", cfg), ("KILN_ROOT", "")]);
    assert_eq!(info["RootDir"], root.to_str().unwrap());
    assert_eq!(info["ConfigFile"], cfg);
    assert_eq!(info["Parallelism"], 5);
    assert_eq!(info["InsecureRegistries"][0], "reg.lan:5000");
    assert_eq!(
        info["RegistryMirrors"]["docker.io"][0],
        "http://127.0.0.1:5999"
    );
    assert!(
        root.join("store").join("index.json").is_file(),
        "the store is created at the configured root"
    );

    // The environment overrides the file.
    let other = dir.path().join("other");
    let info = info_json(&[
        ("KILN_CONFIG", cfg),
        ("KILN_ROOT", other.to_str().unwrap()),
        ("KILN_PARALLELISM", "2"),
        ("KILN_INSECURE_REGISTRIES", "b.lan"),
    ]);
    assert_eq!(info["RootDir"], other.to_str().unwrap());
    assert_eq!(info["Parallelism"], 2);
    let insecure: Vec<&str> = info["InsecureRegistries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(insecure, ["b.lan", "reg.lan:5000"]);

    // The human report shows the same.
    let out = kiln(&["info"], &[("KILN_CONFIG", cfg), ("KILN_ROOT", "")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(" Root Dir: {}", root.display())),
        "{stdout}"
    );
    assert!(stdout.contains(" Parallelism: 5"), "{stdout}");
    assert!(
        stdout.contains("  docker.io: http://127.0.0.1:5999"),
        "{stdout}"
    );
}

#[test]
fn a_bad_config_file_is_one_clear_error_with_exit_125() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "paralelism = 4\n").unwrap();
    let out = kiln(
        &["info"],
        &[
            ("KILN_CONFIG", config.to_str().unwrap()),
            ("KILN_ROOT", dir.path().to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(config.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("paralelism"), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");

    let missing = dir.path().join("nope.toml");
    let out = kiln(&["info"], &[("KILN_CONFIG", missing.to_str().unwrap())]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope.toml"),
        "{}",
        text(&out)
    );

    let out = kiln(
        &["info"],
        &[
            ("KILN_ROOT", dir.path().to_str().unwrap()),
            ("KILN_PARALLELISM", "0"),
        ],
    );
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 1"),
        "{}",
        text(&out)
    );
}

#[test]
fn completion_scripts_cover_every_command_and_parse() {
    let help = kiln(&["--help"], &[]);
    let commands = subcommands(&String::from_utf8_lossy(&help.stdout));
    assert!(
        commands.len() >= 5,
        "commands found in --help: {commands:?}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = kiln(&["completion", shell], &[]);
        assert!(out.status.success(), "{}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        for cmd in &commands {
            assert!(
                script.contains(cmd.as_str()),
                "{shell} completion lacks {cmd}"
            );
        }
        assert!(
            script.contains("build-arg"),
            "{shell} completion lacks build's flags"
        );
    }
    // The bash script is valid bash and registers a completion for kiln.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiln.bash");
    std::fs::write(&path, kiln(&["completion", "bash"], &[]).stdout).unwrap();
    let check = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p kiln", path.display()))
        .output()
        .expect("run bash");
    assert!(check.status.success(), "{}", text(&check));
    assert!(String::from_utf8_lossy(&check.stdout).contains("kiln"));
}

/// Command names listed under "Commands:" in `--help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// Every command (and every subcommand of a command group) documents
/// itself with examples.
#[test]
fn every_command_has_help_with_examples() {
    let help = kiln(&["--help"], &[]);
    assert!(help.status.success(), "{}", text(&help));
    let mut missing = Vec::new();
    for cmd in subcommands(&String::from_utf8_lossy(&help.stdout)) {
        let out = kiln(&[&cmd, "--help"], &[]);
        assert!(out.status.success(), "{cmd} --help: {}", text(&out));
        let body = String::from_utf8_lossy(&out.stdout).to_string();
        let subs = subcommands(&body);
        if subs.is_empty() {
            if !body.contains("Examples:") {
                missing.push(cmd.clone());
            }
            continue;
        }
        for sub in subs {
            let out = kiln(&[&cmd, &sub, "--help"], &[]);
            let body = String::from_utf8_lossy(&out.stdout);
            if !body.contains("Examples:") {
                missing.push(format!("{cmd} {sub}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "commands without examples in --help: {missing:?}"
    );
}

#[test]
fn usage_errors_exit_125_and_help_exits_0() {
    let out = kiln(&["build", "--no-such-flag", "."], &[]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    let out = kiln(&["no-such-command"], &[]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    let out = kiln(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("kiln "));
}

/// `kiln ... | head -1` ends quietly: no panic message on a closed pipe.
#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let df = dir.path().join("Dockerfile");
    let body: String = (0..20_000).map(|i| format!("RUN echo {i}\n")).collect();
    std::fs::write(&df, format!("FROM scratch\n{body}")).unwrap();
    let mut child = Command::new(KILN)
        .args(["dockerfile", "parse", df.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kiln");
    // Read one line, then close the pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 64];
    std::io::Read::read(&mut stdout, &mut buf).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.success() || out.status.code() == Some(141),
        "{}",
        text(&out)
    );
    assert!(Path::new(KILN).exists());
}
