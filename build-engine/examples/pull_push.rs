//! Pulls an image into a state directory (ready to run: every layer
//! unpacked), printing Docker-like per-layer lines, then pushes it under
//! another name.
//!
//! ```text
//! cargo run -p kiln-build-engine --example pull_push -- /tmp/kiln-root \
//!     localhost:5000/library/busybox:latest localhost:5000/copies/busybox:1
//! ```

use std::sync::Arc;

use kiln_build_engine::{
    LayerStatus, PullEvent, PullOptions, PushEvent, PushStatus, Root, pull, push,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, from, to] = args.as_slice() else {
        return Err("usage: pull_push STATE_DIR FROM TO".into());
    };
    let root = Root::open(std::path::Path::new(dir))?;
    let client = root.registry_client()?;
    let pulled = pull(
        &root,
        from,
        &PullOptions::default(),
        &client,
        &(Arc::new(|ev: PullEvent| {
            if let PullEvent::Layer { digest, status } = ev {
                match status {
                    LayerStatus::PullComplete => println!("{digest}: Pull complete"),
                    LayerStatus::AlreadyExists => println!("{digest}: Already exists"),
                    _ => {}
                }
            }
        }) as kiln_build_engine::PullProgress),
    )
    .await?;
    println!("pulled {} ({})", pulled.name, pulled.digest);

    let store = root.store();
    let desc = store.resolve(&pulled.name)?;
    store.tag(to, &desc)?;
    let pushed = push(
        &root,
        to,
        &client,
        &(Arc::new(|ev: PushEvent| {
            if let PushEvent::Layer { digest, status } = ev {
                match status {
                    PushStatus::Pushed => println!("{digest}: Pushed"),
                    PushStatus::AlreadyExists => println!("{digest}: Layer already exists"),
                    PushStatus::MountedFrom(r) => println!("{digest}: Mounted from {r}"),
                    _ => {}
                }
            }
        }) as kiln_build_engine::PushProgress),
    )
    .await?;
    println!(
        "{}: digest: {} size: {}",
        pushed.tag, pushed.digest, pushed.size
    );
    Ok(())
}
