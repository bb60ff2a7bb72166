//! Print the stages of a Dockerfile and, for each, the instructions with
//! their line ranges and flags: `cargo run --example stages -- Dockerfile`.

use kiln_dockerfile_parser::{Dockerfile, Error};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: stages DOCKERFILE")?;
    let text = std::fs::read_to_string(&path)?;
    let df = match Dockerfile::parse(&text) {
        Ok(df) => df,
        Err(Error::Parse(d)) => {
            eprintln!("{path}:{d}");
            std::process::exit(1);
        }
        Err(e) => return Err(e.into()),
    };
    for arg in df.global_args() {
        println!("global: {}", arg.original);
    }
    for stage in df.stages() {
        let platform = stage.from.platform.as_deref().unwrap_or("(target)");
        println!(
            "stage {} {:?}: FROM {} on {platform}",
            stage.index,
            stage.name(),
            stage.from.image.text
        );
        for inst in stage.instructions {
            let flags: Vec<String> = inst.flags.iter().map(|f| format!("--{}", f.name)).collect();
            println!(
                "  {:>3}-{:<3} {} {}",
                inst.start_line,
                inst.end_line,
                inst.name(),
                flags.join(" ")
            );
        }
    }
    Ok(())
}
