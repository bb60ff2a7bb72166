//! Run a command in a container, the way `kiln run` does, from the shell.
//!
//! ```text
//! cargo run -p kiln-runtime-linux --example run -- overlay LOWER_DIR CMD [ARG...]
//! cargo run -p kiln-runtime-linux --example run -- bundle BUNDLE_DIR
//! cargo run -p kiln-runtime-linux --example run -- write-bundle DIR CMD [ARG...]
//! ```
//!
//! `overlay` runs CMD with Docker's default spec on a fresh overlay (a new
//! upper and work directory in a temporary directory, removed afterwards)
//! over the read-only LOWER_DIR, e.g. a busybox root filesystem. `bundle`
//! runs an OCI bundle in place, as `runc run` does; `write-bundle` writes
//! Docker's default spec for CMD as `DIR/config.json` (fill `DIR/rootfs`). The container's output
//! goes to this process's stdout and stderr; the exit code is the
//! container's (128 + signal when killed).

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use kiln_runtime_linux::{Bundle, Container, RootFs, RunOptions, Stdio, docker_default_spec};

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            let mut msg = e.to_string();
            let mut cur = std::error::Error::source(&*e);
            while let Some(c) = cur {
                msg.push_str(&format!(": {c}"));
                cur = c.source();
            }
            eprintln!("run: {msg}");
            ExitCode::from(125)
        }
    }
}

fn run() -> Result<i32, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut out, mut err) = (io::stdout().lock(), io::stderr().lock());
    let status = match args.first().map(String::as_str) {
        Some("overlay") if args.len() >= 3 => {
            let lower = PathBuf::from(&args[1]);
            let tmp = tempfile::tempdir()?;
            let (upper, work) = (tmp.path().join("upper"), tmp.path().join("work"));
            std::fs::create_dir(&upper)?;
            std::fs::create_dir(&work)?;
            let rootfs = RootFs::Overlay {
                lowers: vec![lower],
                upper,
                work,
            };
            let spec = docker_default_spec(args[2..].to_vec());
            Container::new(spec, rootfs, RunOptions::new()).run(Stdio::new(&mut out, &mut err))?
        }
        Some("bundle") if args.len() == 2 => {
            let bundle = Bundle::load(PathBuf::from(&args[1]).as_path())?;
            bundle
                .container(RunOptions::new())
                .run(Stdio::new(&mut out, &mut err))?
        }
        Some("write-bundle") if args.len() >= 3 => {
            let bundle = Bundle::write(
                PathBuf::from(&args[1]).as_path(),
                &docker_default_spec(args[2..].to_vec()),
            )?;
            println!("{}", bundle.rootfs().display());
            return Ok(0);
        }
        _ => {
            eprintln!(
                "usage: run overlay LOWER_DIR CMD [ARG...] | run bundle BUNDLE_DIR | run write-bundle DIR CMD [ARG...]"
            );
            return Ok(2);
        }
    };
    Ok(status.code())
}
