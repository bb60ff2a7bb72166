//! Turn a directory into a one-layer OCI image in an image layout.
//!
//! ```text
//! cargo run -p kiln-image-layers --example layer_from_dir -- ./rootfs ./store myimage:latest
//! skopeo inspect oci:./store:myimage:latest
//! ```

use kiln_image_layers::oci_spec::image::{
    ConfigBuilder, ImageConfigurationBuilder, ImageManifestBuilder, MediaType, RootFsBuilder,
};
use kiln_image_layers::{ChangeSet, Compression, Store, WriteOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, store_dir, tag] = args.as_slice() else {
        eprintln!("usage: layer_from_dir <dir> <oci-layout-dir> <tag>");
        std::process::exit(2);
    };
    let store = Store::open(store_dir)?;
    let options = WriteOptions::with_compression(Compression::Zstd);
    let layer = store.put_layer(&ChangeSet::added_tree(dir)?, &options)?;
    let config = ImageConfigurationBuilder::default()
        .architecture("amd64")
        .os("linux")
        .config(
            ConfigBuilder::default()
                .cmd(vec!["/bin/sh".to_string()])
                .build()?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![layer.diff_id.to_string()])
                .build()?,
        )
        .build()?;
    let config = store.put_config(&config)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(vec![layer.descriptor.clone()])
        .build()?;
    let manifest = store.put_manifest(&manifest)?;
    store.tag(tag, &manifest)?;
    println!(
        "{tag} -> {} (layer {}, diffID {})",
        manifest.digest(),
        layer.descriptor.digest(),
        layer.diff_id
    );
    Ok(())
}
