//! `kiln info`: the effective configuration and what the store holds, in
//! the spirit of `docker info` (there is no daemon: every line describes
//! this machine and this state directory).

use std::process::ExitCode;

use anyhow::Context;
use kiln_build_engine::Root;
use serde_json::{Value, json};

/// `kiln info` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln info
  KILN_ROOT=/srv/kiln kiln info --format json | jq .RootDir")]
pub struct InfoArgs {
    /// `json` prints one JSON object instead of the text report.
    #[arg(short = 'f', long)]
    format: Option<String>,
}

fn count_dirs(path: &std::path::Path) -> usize {
    std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .count()
        })
        .unwrap_or(0)
}

/// "2" (unified), "1" (legacy only) or "1+2 (hybrid)".
fn cgroup_version() -> &'static str {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let v1 = mounts.lines().any(|l| l.contains(" - cgroup "));
    let v2 = mounts.lines().any(|l| l.contains(" - cgroup2 "));
    match (v1, v2) {
        (true, true) => "1+2 (hybrid)",
        (true, false) => "1",
        (false, true) => "2",
        (false, false) => "none",
    }
}

fn os_release() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn first_line(path: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string))
        .unwrap_or_default()
}

fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Collects the report as JSON (Docker's field names where Docker has one).
fn collect(root: &Root) -> anyhow::Result<Value> {
    let settings = root.settings();
    let entries = root
        .store()
        .list()
        .context("list the images in the store")?;
    let dangling = entries.iter().filter(|e| e.is_dangling()).count();
    let mut mirrors = serde_json::Map::new();
    for (registry, urls) in &settings.mirrors {
        mirrors.insert(registry.clone(), json!(urls));
    }
    let kernel = rustix::system::uname();
    Ok(json!({
        "ClientVersion": env!("CARGO_PKG_VERSION"),
        "RootDir": root.dir(),
        "ConfigFile": settings.file,
        "Images": entries.len(),
        "DanglingImages": dangling,
        "Containers": count_dirs(&root.dir().join("containers")),
        "Snapshots": count_dirs(&root.dir().join("snapshots")),
        "Driver": "overlay",
        "CgroupVersion": cgroup_version(),
        "KernelVersion": kernel.release().to_string_lossy(),
        "OperatingSystem": os_release(),
        "Architecture": kernel.machine().to_string_lossy(),
        "NCPU": std::thread::available_parallelism().map_or(1, usize::from),
        "MemTotal": mem_total(),
        "Parallelism": settings.parallelism,
        "InsecureRegistries": settings.insecure_registries,
        "RegistryMirrors": mirrors,
        "UserNamespaces": first_line("/proc/sys/user/max_user_namespaces").parse::<u64>().is_ok_and(|n| n > 0),
    }))
}

/// Runs `kiln info`.
pub fn run(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    let info = collect(&root)?;
    match args.format.as_deref() {
        Some("json") | Some("{{json .}}") => {
            println!("{}", serde_json::to_string(&info)?);
            return Ok(ExitCode::SUCCESS);
        }
        Some(other) => anyhow::bail!("--format {other:?}: kiln info supports only json"),
        None => {}
    }
    let s = |k: &str| match &info[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    };
    println!("Client: kiln {}", s("ClientVersion"));
    println!(" Daemon: none (kiln works directly on the state directory)");
    println!("Storage:");
    println!(" Root Dir: {}", s("RootDir"));
    match settings_file(&info) {
        Some(f) => println!(" Config File: {f}"),
        None => println!(" Config File: none (defaults)"),
    }
    println!(
        " Images: {} ({} dangling)",
        s("Images"),
        s("DanglingImages")
    );
    println!(" Containers: {}", s("Containers"));
    println!(" Snapshots: {}", s("Snapshots"));
    println!(" Storage Driver: {}", s("Driver"));
    println!("Host:");
    println!(" Cgroup Version: {}", s("CgroupVersion"));
    println!(" Kernel Version: {}", s("KernelVersion"));
    println!(" Operating System: {}", s("OperatingSystem"));
    println!(" Architecture: {}", s("Architecture"));
    println!(" CPUs: {}", s("NCPU"));
    println!(
        " Total Memory: {:.2} GiB",
        info["MemTotal"].as_u64().unwrap_or(0) as f64 / (1u64 << 30) as f64
    );
    println!(" User Namespaces: {}", s("UserNamespaces"));
    println!("Registries:");
    println!(" Parallelism: {}", s("Parallelism"));
    println!(" Insecure Registries:");
    println!("  127.0.0.0/8, ::1, localhost (always)");
    for r in info["InsecureRegistries"].as_array().into_iter().flatten() {
        println!("  {}", r.as_str().unwrap_or_default());
    }
    if let Some(m) = info["RegistryMirrors"]
        .as_object()
        .filter(|m| !m.is_empty())
    {
        println!(" Registry Mirrors:");
        for (registry, urls) in m {
            for u in urls.as_array().into_iter().flatten() {
                println!("  {registry}: {}", u.as_str().unwrap_or_default());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn settings_file(info: &Value) -> Option<String> {
    info["ConfigFile"].as_str().map(str::to_string)
}
