//! Layer compression: detection by magic bytes, decoders and encoders.

use std::io::{self, BufRead, BufReader, Read, Write};

use oci_spec::image::MediaType;

/// The compression of a layer blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (RFC 1952), the format every registry and runtime reads.
    #[default]
    Gzip,
    /// Zstandard (RFC 8878): faster and smaller; needs containerd >= 1.5 /
    /// Docker >= 23 on the pulling side.
    Zstd,
}

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// Detects the compression from the first bytes of a blob. Anything
    /// that is neither gzip nor zstd is taken to be a plain tar (the tar
    /// reader then rejects what is not a tar either).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The compression a layer media type names, if it is a layer type
    /// (OCI and Docker schema 2 layer types, including non-distributable).
    pub fn from_media_type(media_type: &MediaType) -> Option<Compression> {
        let s = media_type.to_string();
        match s.as_str() {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> MediaType {
        match self {
            Compression::None => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }

    /// A decoder over `reader` after sniffing its magic bytes.
    pub fn auto_decoder<'a, R: Read + 'a>(
        reader: R,
    ) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
        let mut buf = BufReader::with_capacity(256 * 1024, reader);
        let head = buf.fill_buf()?;
        let c = Compression::detect(head);
        Ok((c, c.decoder(buf)?))
    }

    /// A decoder for this compression over `reader`.
    pub fn decoder<'a, R: BufRead + 'a>(self, reader: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(reader),
            // MultiGzDecoder: concatenated gzip members are one stream
            // (pigz and some registries produce them).
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
        })
    }
}

/// How hard and with how many threads to compress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EncoderSettings {
    pub compression: Compression,
    pub level: Option<i32>,
    pub threads: u32,
}

/// A streaming compressor that must be finished explicitly.
pub(crate) enum Encoder<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    ParallelGzip(ParallelGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    pub fn new(inner: W, s: EncoderSettings) -> io::Result<Encoder<W>> {
        Ok(match s.compression {
            Compression::None => Encoder::None(inner),
            Compression::Gzip => {
                let level = s.level.map_or(flate2::Compression::default(), |l| {
                    flate2::Compression::new(l.clamp(0, 9) as u32)
                });
                if s.threads > 1 {
                    Encoder::ParallelGzip(ParallelGzip::new(inner, level, s.threads as usize))
                } else {
                    Encoder::Gzip(flate2::write::GzEncoder::new(inner, level))
                }
            }
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(inner, s.level.unwrap_or(3))?;
                if s.threads > 1 {
                    // libzstd's own worker pool (ZSTD_c_nbWorkers): the
                    // calling thread only feeds input, workers compress
                    // jobs in parallel; output is identical for a given
                    // worker count > 0.
                    e.multithread(s.threads)?;
                }
                Encoder::Zstd(e)
            }
        })
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::ParallelGzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::ParallelGzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::ParallelGzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// Input per parallel gzip job. pigz uses 128 KiB blocks primed with the
/// previous 32 KiB as a dictionary; without priming, 1 MiB blocks keep the
/// ratio within about 0.1% of single-stream gzip.
const GZ_BLOCK: usize = 1 << 20;

type GzJob = (u64, Vec<u8>, bool);
type GzDone = (u64, io::Result<(Vec<u8>, crc32fast::Hasher, usize)>);

/// pigz-style multi-threaded gzip: the input is cut into blocks, each
/// compressed as raw deflate ending in a sync flush (the last one in a
/// final block) on a worker thread; the concatenation is one valid
/// deflate stream, wrapped in a gzip header and a CRC-32/size trailer
/// (RFC 1952). Output depends only on the input and level, not on the
/// number of threads. At most `2 * threads` blocks are in flight.
pub(crate) struct ParallelGzip<W: Write> {
    inner: W,
    block: Vec<u8>,
    next_seq: u64,
    next_out: u64,
    in_flight: usize,
    max_in_flight: usize,
    done: std::collections::BTreeMap<u64, (Vec<u8>, crc32fast::Hasher, usize)>,
    jobs: Option<std::sync::mpsc::SyncSender<GzJob>>,
    results: std::sync::mpsc::Receiver<GzDone>,
    workers: Vec<std::thread::JoinHandle<()>>,
    crc: crc32fast::Hasher,
    total: u64,
    header_written: bool,
}

fn deflate_block(data: &[u8], level: flate2::Compression, last: bool) -> io::Result<Vec<u8>> {
    let mut c = flate2::Compress::new(level, false);
    let flush = if last {
        flate2::FlushCompress::Finish
    } else {
        flate2::FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 32 * 1024 {
            out.reserve(data.len() / 4 + 64 * 1024);
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == data.len();
        if last {
            if status == flate2::Status::StreamEnd {
                return Ok(out);
            }
        } else if all_in && out.len() < out.capacity() {
            // zlib's rule: a flush is complete when it left output space.
            return Ok(out);
        }
    }
}

impl<W: Write> ParallelGzip<W> {
    fn new(inner: W, level: flate2::Compression, threads: usize) -> Self {
        let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<GzJob>(threads * 2);
        let (res_tx, results) = std::sync::mpsc::channel::<GzDone>();
        let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = std::sync::Arc::clone(&job_rx);
                let tx = res_tx.clone();
                std::thread::spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok((seq, data, last)) = job else { return };
                        let mut crc = crc32fast::Hasher::new();
                        crc.update(&data);
                        let r = deflate_block(&data, level, last).map(|out| (out, crc, data.len()));
                        if tx.send((seq, r)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        ParallelGzip {
            inner,
            block: Vec::with_capacity(GZ_BLOCK),
            next_seq: 0,
            next_out: 0,
            in_flight: 0,
            max_in_flight: threads * 2,
            done: Default::default(),
            jobs: Some(job_tx),
            results,
            workers,
            crc: crc32fast::Hasher::new(),
            total: 0,
            header_written: false,
        }
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        while self.in_flight >= self.max_in_flight {
            self.collect_one()?;
        }
        let data = std::mem::replace(
            &mut self.block,
            Vec::with_capacity(if last { 0 } else { GZ_BLOCK }),
        );
        let job = (self.next_seq, data, last);
        self.next_seq += 1;
        self.in_flight += 1;
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip encoder already finished"))?
            .send(job)
            .map_err(|_| io::Error::other("gzip worker thread exited"))
    }

    fn collect_one(&mut self) -> io::Result<()> {
        let (seq, r) = self
            .results
            .recv()
            .map_err(|_| io::Error::other("gzip worker thread exited"))?;
        self.in_flight -= 1;
        self.done.insert(seq, r?);
        self.write_ready()
    }

    fn write_ready(&mut self) -> io::Result<()> {
        if !self.header_written {
            // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown):
            // fixed, so output is reproducible.
            self.inner
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])?;
            self.header_written = true;
        }
        while let Some((out, crc, len)) = self.done.remove(&self.next_out) {
            self.inner.write_all(&out)?;
            self.crc.combine(&crc);
            self.total += len as u64;
            self.next_out += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let crc = std::mem::take(&mut self.crc).finalize();
        self.inner.write_all(&crc.to_le_bytes())?;
        self.inner.write_all(&(self.total as u32).to_le_bytes())?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = GZ_BLOCK - self.block.len();
        let n = room.min(buf.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == GZ_BLOCK {
            self.submit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_and_round_trip_each_compression() {
        // Over two parallel-gzip blocks, with an uneven tail.
        let data: Vec<u8> = (0..2_600_000u32)
            .map(|i| (i % 251) as u8 ^ (i >> 13) as u8)
            .collect();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            for threads in [1, 2, 3] {
                let mut e = Encoder::new(
                    Vec::new(),
                    EncoderSettings {
                        compression: c,
                        level: None,
                        threads,
                    },
                )
                .map_err(|e| e.to_string());
                let out = e
                    .as_mut()
                    .map(|e| e.write_all(&data))
                    .map_err(|e| e.clone());
                assert!(out.is_ok());
                let blob = e
                    .and_then(|e| e.finish().map_err(|e| e.to_string()))
                    .unwrap_or_default();
                assert_eq!(Compression::detect(&blob), c, "{c:?}");
                let (got_c, mut r) = Compression::auto_decoder(&blob[..])
                    .map_err(|e| e.to_string())
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(got_c, c);
                let mut back = Vec::new();
                r.read_to_end(&mut back).ok();
                assert_eq!(back, data);
            }
        }
    }

    #[test]
    fn parallel_gzip_is_deterministic_and_gunzip_reads_it() {
        let data: Vec<u8> = (0..3_500_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8 & 0x3f)
            .collect();
        let enc = |threads| {
            let mut e = Encoder::new(
                Vec::new(),
                EncoderSettings {
                    compression: Compression::Gzip,
                    level: None,
                    threads,
                },
            )
            .map_err(|e| e.to_string())?;
            e.write_all(&data).map_err(|e| e.to_string())?;
            e.finish().map_err(|e| e.to_string())
        };
        let (a, b) = (enc(2), enc(4));
        assert_eq!(a, b, "output independent of the thread count");
        let zenc = |threads| {
            let mut e = Encoder::new(
                Vec::new(),
                EncoderSettings {
                    compression: Compression::Zstd,
                    level: None,
                    threads,
                },
            )
            .map_err(|e| e.to_string())?;
            e.write_all(&data).map_err(|e| e.to_string())?;
            e.finish().map_err(|e| e.to_string())
        };
        assert_eq!(
            zenc(2),
            zenc(3),
            "libzstd output independent of the worker count"
        );
        let blob = a.unwrap_or_default();
        let mut child = std::process::Command::new("gzip")
            .args(["-dc"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("gzip (Debian package gzip): {e}"));
        let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
        let writer = std::thread::spawn(move || stdin.write_all(&blob));
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(writer.join().is_ok_and(|r| r.is_ok()));
        assert!(
            out.status.success(),
            "gzip -t rejected the stream (bad CRC or size)"
        );
        assert_eq!(out.stdout, data);
    }

    #[test]
    fn media_types_map() {
        assert_eq!(
            Compression::from_media_type(&MediaType::ImageLayerZstd),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::from_media_type(&MediaType::Other(
                "application/vnd.docker.image.rootfs.diff.tar.gzip".into()
            )),
            Some(Compression::Gzip)
        );
        assert_eq!(Compression::from_media_type(&MediaType::ImageConfig), None);
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            assert_eq!(Compression::from_media_type(&c.oci_media_type()), Some(c));
        }
    }
}
