//! Lists the images in the store with their history, and saves one of them
//! as a `docker save` archive: what `kiln images`, `kiln history` and
//! `kiln save` print, as typed data.
//!
//! Usage: `cargo run -p kiln-build-engine --example images -- [IMAGE ARCHIVE]`
//! (the state directory is `$KILN_ROOT` or the per-user default).

use kiln_build_engine::{Root, images};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Root::open_configured()?;
    for image in images::list_images(&root)? {
        let names = if image.is_dangling() {
            vec!["<none>".to_string()]
        } else {
            image.familiar_tags()
        };
        println!(
            "{} {} {} bytes",
            image.short_id(),
            names.join(","),
            image.size
        );
        for entry in images::history(&root, &image.id)? {
            println!("    {:>10}  {}", entry.size, entry.created_by);
        }
    }
    let mut args = std::env::args().skip(1);
    if let (Some(image), Some(archive)) = (args.next(), args.next()) {
        let out = std::io::BufWriter::new(std::fs::File::create(&archive)?);
        images::save_images(&root, &[image.as_str()], out)?;
        println!("saved {image} to {archive}");
    }
    Ok(())
}
