//! Builds a directory with a Dockerfile and prints progress events.
//!
//! Usage: `cargo run -p kiln-build-engine --example build -- CONTEXT [TAG]`
//! (as root; the state directory is `$KILN_ROOT` or the per-user default).

use kiln_build_engine::{BuildRequest, Builder, EventKind, Progress, Root};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let context = args.next().ok_or("usage: build CONTEXT [TAG]")?;
    let tag = args.next();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let root = Root::open_configured()?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<kiln_build_engine::Event>();
        let printer = tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                let label = ev.step.map(|s| s.label).unwrap_or_default();
                match ev.kind {
                    EventKind::Started => println!("{label}"),
                    EventKind::Cached => println!("{label}: cached"),
                    EventKind::Log { line, .. } => println!("  {line}"),
                    EventKind::Warning { message } => println!("warning: {message}"),
                    _ => {}
                }
            }
        });
        let mut request = BuildRequest::new(context);
        request.tags.extend(tag);
        let builder = Builder::new(root).with_progress(Progress::new(tx));
        let result = builder.build(request).await;
        drop(builder);
        let _ = printer.await;
        let result = result?;
        println!("image {}", result.manifest_digest);
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
