//! The `docker commit` workflow as a library: run a container from an
//! image (kept, not `--rm`), commit its changes as a new image, run that.
//!
//! Usage: `cargo run -p kiln-build-engine --example commit -- IMAGE NEW_TAG`
//! (as root; the state directory is `$KILN_ROOT` or the per-user default;
//! IMAGE must be in the store and have `sh`, e.g. the quickstart's busybox).

use kiln_build_engine::containers::{self, CommitOptions};
use kiln_build_engine::{Root, RunRequest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let image = args.next().ok_or("usage: commit IMAGE NEW_TAG")?;
    let new_tag = args.next().ok_or("usage: commit IMAGE NEW_TAG")?;
    let root = Root::open_configured()?;

    let mut req = RunRequest::default();
    req.image = image;
    req.cmd = vec!["sh".into(), "-c".into(), "echo hello > /greeting".into()];
    let container = containers::create(&root, &req)?;
    let code = containers::run_attached(
        &root,
        &container.id,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        None,
    )?;
    println!("container {} exited with {code}", container.name);

    let mut opts = CommitOptions::default();
    opts.reference = Some(new_tag.clone());
    opts.changes = vec!["CMD [\"cat\", \"/greeting\"]".into()];
    let image = containers::commit(&root, &container.id, &opts)?;
    println!("committed {} as {new_tag}", image.image_id);
    containers::remove(&root, &container.id, false)?;

    let mut req = RunRequest::default();
    req.image = new_tag;
    req.remove = true;
    let code = kiln_build_engine::run_image(&root, &req)?;
    std::process::exit(code);
}
