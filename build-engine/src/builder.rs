//! The builder: Dockerfile -> stages -> executed steps -> an image in the
//! store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_dockerfile_parser::instructions::{
    CopyInstruction, HealthcheckInstruction, Mount as MountSpec, MountType,
    NetworkMode as RunNetwork,
};
use kiln_dockerfile_parser::{
    CommandLine, Dockerfile, Instruction, InstructionKind, PROXY_ARGS, expand_word, expand_words,
};
use kiln_image_layers::{ChangeSet, Digest, SourceEntry, SourceKind, WriteOptions, chain_id};
use serde_json::{Value, json};

use crate::cache::{CacheInputs, CacheRecord, LayerRecord};
use crate::config::{ConfigChange, ImageConfig, expand_ports, resolve_workdir};
use crate::context::{BuildContext, DigestCache, EntryKind};
use crate::copy::{CopyAttrs, copy_node, copy_tree, mkdir_all};
use crate::dockerignore::DockerIgnore;
use crate::error::{Error, Result};
use crate::exec::{ExecJob, ExecMount, Executor, LinuxExecutor, NetworkMode};
use crate::image::{self, ImageRef};
use crate::progress::{EventKind, Progress, StepId, Stream};
use crate::root::Root;
use crate::snapshot::MergedView;

/// Where the Dockerfile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerfileSource {
    /// A file (`-f path`); `None` means `<context>/Dockerfile`.
    Path(Option<PathBuf>),
    /// Text given directly (`-f -`).
    Text(String),
}

/// Choices for a build. Everything has a default.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BuildOptions {
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build (default: the last one).
    pub target: Option<String>,
    /// `--no-cache`: run every step.
    pub no_cache: bool,
    /// `--no-cache-filter`: run every step of these stages (by name or
    /// index); the others may use the cache.
    pub no_cache_filter: Vec<String>,
    /// `--label K=V`, added to the final image.
    pub labels: BTreeMap<String, String>,
    /// Default network for RUN steps.
    pub network: NetworkMode,
    /// `SOURCE_DATE_EPOCH`: timestamps in configs and layers are clamped
    /// to it, so equal inputs give equal image digests.
    pub source_date_epoch: Option<i64>,
    /// `--secret id=..,src=..`: secret id -> file on the host.
    pub secrets: BTreeMap<String, PathBuf>,
    /// `--platform`; only the host platform (linux/amd64) is supported.
    pub platform: Option<String>,
    /// `--pull`: pull base images even when the store has them.
    pub pull: bool,
    /// `--cache-from`: registry references of caches to import first.
    pub cache_from: Vec<String>,
    /// `--cache-to`: registry reference to push this build's cache to.
    pub cache_to: Vec<String>,
    /// gzip level of the layers written (default 1: fast; 9: smallest).
    pub compression_level: Option<i32>,
    /// `-o`: outputs besides the store.
    pub outputs: Vec<crate::output::Output>,
}

/// A build to run.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile.
    pub dockerfile: DockerfileSource,
    /// Tags for the result (`-t`), e.g. `app:1`.
    pub tags: Vec<String>,
    /// Options.
    pub options: BuildOptions,
}

impl BuildRequest {
    /// Builds `<context>/Dockerfile` with default options and no tag.
    pub fn new(context: impl Into<PathBuf>) -> Self {
        BuildRequest {
            context: context.into(),
            dockerfile: DockerfileSource::Path(None),
            tags: Vec::new(),
            options: BuildOptions::default(),
        }
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// Digest of the image manifest (the image id kiln prints).
    pub manifest_digest: String,
    /// Digest of the image config.
    pub config_digest: String,
    /// The config document.
    pub config: Value,
    /// The tags that now point at the image (normalised).
    pub tags: Vec<String>,
    /// Steps that produced or could produce a layer.
    pub steps: usize,
    /// Of those, how many came from the cache.
    pub cached: usize,
}

/// The Dockerfile builder.
#[derive(Debug, Clone)]
pub struct Builder {
    root: Root,
    progress: Progress,
    executor: Arc<dyn Executor>,
}

/// The host platform: the only one kiln builds for.
pub const HOST_OS: &str = "linux";
/// The host architecture in OCI terms.
pub const HOST_ARCH: &str = if cfg!(target_arch = "aarch64") {
    "arm64"
} else {
    "amd64"
};

impl Builder {
    /// A builder on the state directory `root`, running RUN steps with
    /// [`LinuxExecutor`] and sending no progress.
    pub fn new(root: Root) -> Self {
        Builder {
            root,
            progress: Progress::none(),
            executor: Arc::new(LinuxExecutor),
        }
    }

    /// Sends progress events to `progress`.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    /// Runs RUN steps with `executor`.
    pub fn with_executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.executor = executor;
        self
    }

    /// The state directory.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Runs the build on a blocking thread pool (steps are file-system and
    /// process work) and returns the tagged image.
    pub async fn build(&self, request: BuildRequest) -> Result<BuildResult> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.build_blocking(&request))
            .await
            .map_err(|e| Error::step("build task", e))?
    }

    /// Makes sure every image the needed stages read (FROM, COPY --from,
    /// RUN --mount from=) is in the store, pulling what is missing (or
    /// everything with [`BuildOptions::pull`]).
    fn ensure_images(&self, df: &Dockerfile, plan: &Plan, pull: bool) -> Result<()> {
        let mut refs: BTreeSet<String> = BTreeSet::new();
        let stages = df.stages();
        for &s in &plan.needed {
            if let Base::Image(r) = &plan.bases[s] {
                refs.insert(r.clone());
            }
            for ins in stages[s].instructions {
                let froms: Vec<String> = match &ins.kind {
                    InstructionKind::Copy(c) => c.from.clone().into_iter().collect(),
                    InstructionKind::Run(r) => {
                        r.mounts.iter().filter_map(|m| m.from.clone()).collect()
                    }
                    _ => Vec::new(),
                };
                for f in froms {
                    let is_stage = plan
                        .names
                        .iter()
                        .any(|n| n.as_deref() == Some(f.to_ascii_lowercase().as_str()))
                        || f.parse::<usize>().is_ok();
                    if !is_stage && !f.contains('$') {
                        refs.insert(f);
                    }
                }
            }
        }
        for r in refs {
            if pull || image::resolve_local(&self.root, &r).is_err() {
                self.progress.send(
                    None,
                    EventKind::Info {
                        message: format!("pulling {r}"),
                    },
                );
                crate::pull::block_on(crate::pull::pull_image(&self.root, &r, None))??;
            }
        }
        Ok(())
    }

    /// The synchronous form of [`Builder::build`]. Call it from a blocking
    /// thread, not from async code (it may block on the tokio runtime to
    /// pull base images).
    pub fn build_blocking(&self, req: &BuildRequest) -> Result<BuildResult> {
        // Garbage collection leaves scratch space, snapshots and cache
        // records alone while any build holds this.
        let _gc_guard = crate::gc::BuildLock::shared(&self.root)?;
        let opts = &req.options;
        if let Some(p) = &opts.platform
            && p != &format!("{HOST_OS}/{HOST_ARCH}")
        {
            return Err(Error::Unsupported {
                line: 0,
                feature: format!("--platform {p} (kiln builds for {HOST_OS}/{HOST_ARCH} only)"),
            });
        }
        let (text, df_path) = match &req.dockerfile {
            DockerfileSource::Text(t) => (t.clone(), None),
            DockerfileSource::Path(p) => {
                let path = p.clone().unwrap_or_else(|| req.context.join("Dockerfile"));
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::io("read Dockerfile", &path, e))?;
                (text, Some(path))
            }
        };
        let df = Dockerfile::parse(&text).map_err(|e| Error::Dockerfile {
            path: df_path.clone().unwrap_or_else(|| PathBuf::from("-")),
            message: e.to_string(),
        })?;
        let ignore = DockerIgnore::for_context(&req.context, df_path.as_deref())
            .map_err(|e| Error::io("read .dockerignore in", &req.context, e))?;
        let digest_cache = DigestCache::load(&self.root.dir().join("cache/context-digests.json"));
        let context = BuildContext::open(&req.context, &ignore, Some(digest_cache))?;
        let slot_base = df_path
            .as_ref()
            .and_then(|p| std::fs::canonicalize(p).ok())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "-".into());

        let plan = Plan::new(&df, opts)?;
        self.ensure_images(&df, &plan, opts.pull)?;
        for r in &opts.cache_from {
            let n = crate::pull::block_on(crate::remote_cache::import_cache(&self.root, r))??;
            self.progress.send(
                None,
                EventKind::Info {
                    message: format!("imported {n} cache records from {r}"),
                },
            );
        }
        let shared = Shared {
            df: &df,
            root: &self.root,
            progress: &self.progress,
            executor: self.executor.as_ref(),
            context: &context,
            opts,
            escape: df.escape(),
            plan: &plan,
            slot_base,
            results: Mutex::new(HashMap::new()),
            used_args: Mutex::new(BTreeSet::new()),
            counters: Mutex::new((0, 0)),
            touched: Mutex::new(BTreeMap::new()),
            cancel: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        shared.run_stages()?;
        let _ = context.save_digest_cache();

        let target = plan.target;
        let result = {
            let results = shared.results.lock().map_err(|_| Error::Cancelled)?;
            results.get(&target).cloned().ok_or(Error::Cancelled)?
        };
        // Unused build args: BuildKit's warning.
        let mut used = shared
            .used_args
            .lock()
            .map(|u| u.clone())
            .unwrap_or_default();
        used.extend(plan.global_args.keys().cloned());
        for k in opts.build_args.keys() {
            if !used.contains(k) && !PROXY_ARGS.contains(&k.as_str()) {
                self.progress.warn(format!(
                    "build argument {k:?} was not consumed by any stage"
                ));
            }
        }
        let mut config = result.config;
        if !opts.labels.is_empty() {
            config.apply(ConfigChange::Label(
                opts.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ));
        }
        let created = result
            .last_created
            .clone()
            .unwrap_or_else(|| timestamp(opts.source_date_epoch));
        config.set_created(&created);
        let (manifest, config_desc) =
            image::write_image(self.root.store(), &config, &result.layers)?;
        let mut tags = Vec::new();
        for t in &req.tags {
            let r = ImageRef::parse(t).map_err(|m| Error::Image {
                reference: t.clone(),
                message: m,
                source: None,
            })?;
            let name = r.to_string();
            self.root
                .store()
                .tag(&name, &manifest)
                .map_err(|e| Error::step(format!("tag {name}"), e))?;
            tags.push(name);
        }
        if req.tags.is_empty() {
            self.root
                .store()
                .add_untagged(&manifest)
                .map_err(|e| Error::step("record untagged image", e))?;
        }
        for out in &opts.outputs {
            crate::output::export(
                &self.root,
                &manifest,
                config_desc.digest().as_ref(),
                &result.layers,
                tags.first().map(String::as_str),
                out,
            )?;
        }
        if !opts.cache_to.is_empty() {
            let touched = shared.touched.lock().map(|t| t.clone()).unwrap_or_default();
            for r in &opts.cache_to {
                crate::pull::block_on(crate::remote_cache::export_cache(&self.root, &touched, r))??;
            }
        }
        let (steps, cached) = shared.counters.lock().map(|c| *c).unwrap_or((0, 0));
        Ok(BuildResult {
            manifest_digest: manifest.digest().to_string(),
            config_digest: config_desc.digest().to_string(),
            config: Value::Object(config.as_json().clone()),
            tags,
            steps,
            cached,
        })
    }
}

/// Now, as (seconds, nanoseconds) since the epoch.
fn now_time() -> (i64, u32) {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_secs() as i64, d.subsec_nanos()))
        .unwrap_or((0, 0))
}

/// RFC 3339 time for `epoch`, or now.
pub(crate) fn timestamp(epoch: Option<i64>) -> String {
    let secs = epoch.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The stage graph: names, dependencies, what the target needs.
#[derive(Debug)]
struct Plan {
    /// Per stage: its base (stage index or image reference).
    bases: Vec<Base>,
    /// Per stage: stages it reads from (FROM, COPY --from, --mount from).
    deps: Vec<BTreeSet<usize>>,
    /// Stages the target needs (including itself).
    needed: BTreeSet<usize>,
    target: usize,
    names: Vec<Option<String>>,
    global_args: BTreeMap<String, Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Base {
    Scratch,
    Stage(usize),
    Image(String),
}

fn platform_args() -> Vec<(&'static str, String)> {
    let plat = format!("{HOST_OS}/{HOST_ARCH}");
    vec![
        ("TARGETPLATFORM", plat.clone()),
        ("TARGETOS", HOST_OS.into()),
        ("TARGETARCH", HOST_ARCH.into()),
        ("TARGETVARIANT", String::new()),
        ("BUILDPLATFORM", plat),
        ("BUILDOS", HOST_OS.into()),
        ("BUILDARCH", HOST_ARCH.into()),
        ("BUILDVARIANT", String::new()),
    ]
}

impl Plan {
    fn new(df: &Dockerfile, opts: &BuildOptions) -> Result<Plan> {
        let escape = df.escape();
        // Global scope: automatic platform args, then ARGs before FROM.
        let mut global: BTreeMap<String, Option<String>> = platform_args()
            .into_iter()
            .map(|(k, v)| (k.to_string(), Some(v)))
            .collect();
        for ins in df.global_args() {
            if let InstructionKind::Arg(a) = &ins.kind {
                for decl in &a.args {
                    let value = match opts.build_args.get(&decl.name) {
                        Some(v) => Some(v.clone()),
                        None => match &decl.default {
                            Some(d) => {
                                Some(expand_word(d, &lookup_args(&global), escape).map_err(
                                    |e| Error::instruction(ins.start_line as usize, e.to_string()),
                                )?)
                            }
                            None => None,
                        },
                    };
                    global.insert(decl.name.clone(), value);
                }
            }
        }
        let stages = df.stages();
        if stages.is_empty() {
            return Err(Error::Dockerfile {
                path: PathBuf::from("Dockerfile"),
                message: "no FROM instruction".into(),
            });
        }
        let names: Vec<Option<String>> = stages
            .iter()
            .map(|s| s.name().map(str::to_string))
            .collect();
        let find = |name: &str, before: usize| -> Option<usize> {
            let lower = name.to_ascii_lowercase();
            if let Some(i) = names[..before]
                .iter()
                .position(|n| n.as_deref() == Some(lower.as_str()))
            {
                return Some(i);
            }
            name.parse::<usize>().ok().filter(|i| *i < before)
        };
        let mut bases = Vec::new();
        let mut deps = Vec::new();
        for (i, st) in stages.iter().enumerate() {
            let image =
                expand_word(&st.from.image.text, &lookup_args(&global), escape).map_err(|e| {
                    Error::instruction(st.from_instruction.start_line as usize, e.to_string())
                })?;
            if let Some(p) = &st.from.platform {
                let p = expand_word(p, &lookup_args(&global), escape).unwrap_or_else(|_| p.clone());
                if p != format!("{HOST_OS}/{HOST_ARCH}") {
                    return Err(Error::Unsupported {
                        line: st.from_instruction.start_line as usize,
                        feature: format!("FROM --platform={p}"),
                    });
                }
            }
            let mut d = BTreeSet::new();
            let base = if image.eq_ignore_ascii_case("scratch") {
                Base::Scratch
            } else if let Some(j) = names[..i]
                .iter()
                .position(|n| n.as_deref() == Some(image.to_ascii_lowercase().as_str()))
            {
                d.insert(j);
                Base::Stage(j)
            } else {
                Base::Image(image)
            };
            for ins in st.instructions {
                let from = match &ins.kind {
                    InstructionKind::Copy(c) => c.from.clone().into_iter().collect::<Vec<_>>(),
                    InstructionKind::Run(r) => {
                        r.mounts.iter().filter_map(|m| m.from.clone()).collect()
                    }
                    _ => Vec::new(),
                };
                for f in from {
                    if let Some(j) = find(&f, i) {
                        d.insert(j);
                    }
                }
            }
            bases.push(base);
            deps.push(d);
        }
        let target = match &opts.target {
            Some(t) => names
                .iter()
                .position(|n| n.as_deref() == Some(t.to_ascii_lowercase().as_str()))
                .ok_or_else(|| Error::TargetNotFound(t.clone()))?,
            None => stages.len() - 1,
        };
        let mut needed = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(s) = todo.pop() {
            if needed.insert(s) {
                todo.extend(deps[s].iter().copied());
            }
        }
        Ok(Plan {
            bases,
            deps,
            needed,
            target,
            names,
            global_args: global,
        })
    }
}

fn lookup_args(map: &BTreeMap<String, Option<String>>) -> impl Fn(&str) -> Option<String> + '_ {
    move |k: &str| map.get(k).cloned().flatten()
}

/// A layer of an image being built.
#[derive(Debug, Clone)]
pub(crate) struct LayerRef {
    pub record: LayerRecord,
}

impl LayerRef {
    fn digests(&self) -> Result<(Digest, Digest)> {
        let d = Digest::parse(&self.record.digest).map_err(|e| Error::step("layer digest", e))?;
        let i = Digest::parse(&self.record.diff_id).map_err(|e| Error::step("layer diffID", e))?;
        Ok((d, i))
    }
}

/// A finished stage.
#[derive(Debug, Clone)]
struct StageResult {
    config: ImageConfig,
    layers: Vec<LayerRef>,
    key: String,
    last_created: Option<String>,
}

struct Shared<'a> {
    df: &'a Dockerfile,
    root: &'a Root,
    progress: &'a Progress,
    executor: &'a dyn Executor,
    context: &'a BuildContext,
    opts: &'a BuildOptions,
    escape: char,
    plan: &'a Plan,
    slot_base: String,
    results: Mutex<HashMap<usize, StageResult>>,
    used_args: Mutex<BTreeSet<String>>,
    counters: Mutex<(usize, usize)>,
    touched: Mutex<BTreeMap<String, CacheRecord>>,
    cancel: Arc<std::sync::atomic::AtomicBool>,
}

/// The state of a stage while its steps run.
struct StageState {
    index: usize,
    config: ImageConfig,
    layers: Vec<LayerRef>,
    key: String,
    args: BTreeMap<String, Option<String>>,
    last_created: Option<String>,
    step: usize,
    total: usize,
    /// Whether the current step has already sent its own Started/Cached
    /// events (layer steps do; metadata-only steps get theirs from
    /// [`Shared::run_instruction`]).
    reported: bool,
}

/// What a layer step made: a directory tree (staged files or an overlay
/// upper dir, which also becomes the layer's snapshot) or entries written
/// straight from their sources.
enum Produced {
    Tree(ChangeSet, tempfile::TempDir),
    Entries(Vec<SourceEntry>),
}

impl Produced {
    fn is_empty(&self) -> bool {
        match self {
            Produced::Tree(changes, _) => changes.is_empty(),
            Produced::Entries(entries) => entries.is_empty(),
        }
    }
}

impl StageState {
    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |k: &str| {
            self.config
                .env_var(k)
                .or_else(|| self.args.get(k).cloned().flatten())
        }
    }
}

impl Shared<'_> {
    /// Runs the needed stages, independent ones in parallel (waves of
    /// stages whose dependencies are done, each on its own thread).
    fn run_stages(&self) -> Result<()> {
        let df_stages = self.plan.bases.len();
        let mut done: BTreeSet<usize> = BTreeSet::new();
        let needed = &self.plan.needed;
        // `parallelism` (settings) caps how many stages run at once.
        let cap = self.root.settings().parallelism.max(1);
        while done.len() < needed.len() {
            let mut ready: Vec<usize> = needed
                .iter()
                .copied()
                .filter(|s| {
                    !done.contains(s) && self.plan.deps[*s].iter().all(|d| done.contains(d))
                })
                .collect();
            if ready.is_empty() {
                return Err(Error::instruction(
                    0,
                    format!("stage dependency cycle among {df_stages} stages"),
                ));
            }
            ready.truncate(cap);
            let outcomes: Vec<Result<()>> = std::thread::scope(|scope| {
                let handles: Vec<_> = ready
                    .iter()
                    .map(|&s| {
                        scope.spawn(move || {
                            let r = self.run_stage(s);
                            if r.is_err() {
                                // Stop the other stages of this wave.
                                self.cancel
                                    .store(true, std::sync::atomic::Ordering::Relaxed);
                            }
                            r
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(Err(Error::Cancelled)))
                    .collect()
            });
            // Report the first real failure, not the cancellations it caused.
            if let Some(e) = outcomes
                .iter()
                .position(|o| matches!(o, Err(e) if !matches!(e, Error::Cancelled)))
                .or_else(|| outcomes.iter().position(Result::is_err))
                .and_then(|i| outcomes.into_iter().nth(i))
                .and_then(Result::err)
            {
                return Err(e);
            }
            done.extend(ready);
        }
        Ok(())
    }

    fn run_stage(&self, index: usize) -> Result<()> {
        let stages = self.df.stages();
        let st = stages[index];
        let label_name = match &self.plan.names[index] {
            Some(n) => n.clone(),
            None => format!("stage-{index}"),
        };
        let from_line = st.from_instruction.start_line as usize;
        let total = st.instructions.len() + 1;
        let from_step = StepId {
            stage: index,
            index: 0,
            label: format!("[{label_name} 1/{total}] FROM {}", st.from.image.text),
            line: from_line,
        };
        self.progress.send(Some(&from_step), EventKind::Started);
        let started = Instant::now();
        let (config, layers, key, triggers) = match &self.plan.bases[index] {
            Base::Scratch => (
                ImageConfig::scratch(HOST_OS, HOST_ARCH),
                Vec::new(),
                "scratch".to_string(),
                Vec::new(),
            ),
            Base::Stage(j) => {
                let r = self.stage_result(*j)?;
                (
                    r.config.clone(),
                    r.layers.clone(),
                    r.key.clone(),
                    Vec::new(),
                )
            }
            Base::Image(reference) => {
                let img = image::resolve_local(self.root, reference)
                    .map_err(|e| self.fail(&from_step, e))?;
                let (config, triggers) =
                    ImageConfig::from_base(&img.config_bytes).map_err(|e| Error::Json {
                        what: format!("config of {reference}"),
                        source: e,
                    })?;
                (
                    config,
                    img.layers,
                    format!("image:{}", img.manifest_digest),
                    triggers,
                )
            }
        };
        // Stage-scoped args start empty; global ones are re-declared.
        let mut state = StageState {
            index,
            config,
            layers,
            key,
            args: BTreeMap::new(),
            last_created: None,
            step: 1,
            total,
            reported: false,
        };
        self.progress.send(
            Some(&from_step),
            EventKind::Finished {
                duration: started.elapsed(),
            },
        );
        // ONBUILD triggers of the base image run first, in order.
        for trig in &triggers {
            let ins =
                kiln_dockerfile_parser::parse_instruction(trig, self.escape).map_err(|e| {
                    Error::instruction(
                        from_line,
                        format!("ONBUILD trigger {trig:?} of the base image: {e}"),
                    )
                })?;
            self.run_instruction(&mut state, &label_name, &ins)?;
        }
        for ins in st.instructions {
            if self.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            state.step += 1;
            self.run_instruction(&mut state, &label_name, ins)?;
        }
        let result = StageResult {
            config: state.config,
            layers: state.layers,
            key: state.key,
            last_created: state.last_created,
        };
        self.results
            .lock()
            .map_err(|_| Error::Cancelled)?
            .insert(index, result);
        Ok(())
    }

    fn stage_result(&self, index: usize) -> Result<StageResult> {
        self.results
            .lock()
            .map_err(|_| Error::Cancelled)?
            .get(&index)
            .cloned()
            .ok_or(Error::Cancelled)
    }

    fn fail(&self, step: &StepId, e: Error) -> Error {
        self.progress.send(
            Some(step),
            EventKind::Failed {
                message: e.to_string(),
            },
        );
        e
    }

    fn expand(&self, state: &StageState, word: &str, line: usize) -> Result<String> {
        expand_word(word, &state.lookup(), self.escape)
            .map_err(|e| Error::instruction(line, e.to_string()))
    }

    /// Expands the keys and values of ENV or LABEL pairs against the
    /// environment as it was before the instruction, and renders them as
    /// `k=v k=v` for the history entry.
    fn expand_pairs(
        &self,
        state: &StageState,
        pairs: &[kiln_dockerfile_parser::KeyValue],
        line: usize,
    ) -> Result<(Vec<(String, String)>, String)> {
        let mut out = Vec::with_capacity(pairs.len());
        for kv in pairs {
            out.push((
                self.expand(state, &kv.key, line)?,
                self.expand(state, &kv.value, line)?,
            ));
        }
        let text = out
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        Ok((out, text))
    }

    fn run_instruction(
        &self,
        state: &mut StageState,
        stage_label: &str,
        ins: &Instruction,
    ) -> Result<()> {
        let line = ins.start_line as usize;
        let step = StepId {
            stage: state.index,
            index: state.step,
            label: format!(
                "[{stage_label} {}/{}] {}",
                state.step,
                state.total,
                one_line(&ins.original)
            ),
            line,
        };
        let created_default = timestamp(self.opts.source_date_epoch);
        state.reported = false;
        let started = Instant::now();
        let r = self.dispatch(state, &step, ins, &created_default);
        // Metadata-only steps (ENV, LABEL, ARG, CMD, an existing WORKDIR,
        // ...) change only the config; they report like every other step
        // so that a renderer or embedder sees each instruction start and
        // finish, with its duration.
        if !state.reported {
            self.progress.send(Some(&step), EventKind::Started);
        }
        match r {
            Ok(()) => {
                if !state.reported {
                    self.progress.send(
                        Some(&step),
                        EventKind::Finished {
                            duration: started.elapsed(),
                        },
                    );
                }
                Ok(())
            }
            Err(e) => Err(self.fail(&step, e)),
        }
    }

    fn dispatch(
        &self,
        state: &mut StageState,
        step: &StepId,
        ins: &Instruction,
        now: &str,
    ) -> Result<()> {
        let line = step.line;
        let unsupported = |feature: &str| Error::Unsupported {
            line,
            feature: feature.to_string(),
        };
        let meta = |state: &mut StageState, change: Option<ConfigChange>, created_by: String| {
            if let Some(c) = change {
                state.config.apply(c);
            }
            // Metadata steps chain into the key: later steps see them.
            let mut inputs = CacheInputs::new(&state.key);
            inputs.push("instruction", created_by.clone());
            state.key = inputs.key();
            let created = state
                .last_created
                .clone()
                .unwrap_or_else(|| now.to_string());
            state.config.push_history(&created, &created_by, true);
        };
        match &ins.kind {
            InstructionKind::From(_) => Err(Error::instruction(line, "FROM inside a stage")),
            InstructionKind::Arg(a) => {
                for decl in &a.args {
                    let value = if let Some(v) = self.opts.build_args.get(&decl.name) {
                        if let Ok(mut u) = self.used_args.lock() {
                            u.insert(decl.name.clone());
                        }
                        Some(v.clone())
                    } else if let Some(d) = &decl.default {
                        Some(self.expand(state, d, line)?)
                    } else {
                        self.plan.global_args.get(&decl.name).cloned().flatten()
                    };
                    state.args.insert(decl.name.clone(), value.clone());
                    // An ARG's value is an input of every later step.
                    let mut inputs = CacheInputs::new(&state.key);
                    inputs.push(format!("arg:{}", decl.name), value.unwrap_or_default());
                    state.key = inputs.key();
                }
                Ok(())
            }
            InstructionKind::Env(e) => {
                // Every pair is expanded against the environment as it was
                // before the instruction (Dockerfile reference: `ENV
                // abc=bye def=$abc` gives def the previous abc).
                let (pairs, text) = self.expand_pairs(state, &e.pairs, line)?;
                meta(state, Some(ConfigChange::Env(pairs)), format!("ENV {text}"));
                Ok(())
            }
            InstructionKind::Label(l) => {
                let (pairs, text) = self.expand_pairs(state, &l.pairs, line)?;
                meta(
                    state,
                    Some(ConfigChange::Label(pairs)),
                    format!("LABEL {text}"),
                );
                Ok(())
            }
            InstructionKind::Maintainer(m) => {
                meta(state, None, format!("MAINTAINER {}", m.name));
                Ok(())
            }
            InstructionKind::Expose(e) => {
                let mut ports = Vec::new();
                for w in &e.ports {
                    for word in expand_words(&w.text, &state.lookup(), self.escape)
                        .map_err(|err| Error::instruction(line, err.to_string()))?
                    {
                        ports.extend(expand_ports(&word).map_err(|m| Error::instruction(line, m))?);
                    }
                }
                let text = format!("EXPOSE {}", ports.join(" "));
                meta(state, Some(ConfigChange::Expose(ports)), text);
                Ok(())
            }
            InstructionKind::Volume(v) => {
                let mut paths = Vec::new();
                for p in &v.paths {
                    paths.push(self.expand(state, p, line)?);
                }
                let text = format!("VOLUME {paths:?}");
                meta(state, Some(ConfigChange::Volume(paths)), text);
                Ok(())
            }
            InstructionKind::User(u) => {
                let user = self.expand(state, &u.user, line)?;
                meta(
                    state,
                    Some(ConfigChange::User(user.clone())),
                    format!("USER {user}"),
                );
                Ok(())
            }
            InstructionKind::Stopsignal(s) => {
                let sig = self.expand(state, &s.signal, line)?;
                meta(
                    state,
                    Some(ConfigChange::StopSignal(sig.clone())),
                    format!("STOPSIGNAL {sig}"),
                );
                Ok(())
            }
            InstructionKind::Shell(s) => {
                meta(
                    state,
                    Some(ConfigChange::Shell(s.shell.clone())),
                    format!("SHELL {:?}", s.shell),
                );
                Ok(())
            }
            InstructionKind::Onbuild(o) => {
                meta(
                    state,
                    Some(ConfigChange::OnBuild(o.expression.clone())),
                    format!("ONBUILD {}", o.expression),
                );
                Ok(())
            }
            InstructionKind::Cmd(c) => {
                let cmd = self.command_args(state, &c.command);
                let text = format!("CMD {}", serde_json::to_string(&cmd).unwrap_or_default());
                meta(state, Some(ConfigChange::Cmd(cmd)), text);
                Ok(())
            }
            InstructionKind::Entrypoint(c) => {
                let ep = self.command_args(state, &c.command);
                let text = format!(
                    "ENTRYPOINT {}",
                    serde_json::to_string(&ep).unwrap_or_default()
                );
                meta(state, Some(ConfigChange::Entrypoint(ep)), text);
                Ok(())
            }
            InstructionKind::Healthcheck(h) => {
                let v = match h {
                    HealthcheckInstruction::None => json!({"Test": ["NONE"]}),
                    HealthcheckInstruction::Cmd {
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                        ..
                    } => {
                        let mut m = serde_json::Map::new();
                        m.insert("Test".into(), json!(h.test()));
                        let ns = |d: &Option<Duration>| {
                            d.map(|d| d.as_nanos() as u64).filter(|n| *n > 0)
                        };
                        for (k, d) in [
                            ("Interval", interval),
                            ("Timeout", timeout),
                            ("StartPeriod", start_period),
                            ("StartInterval", start_interval),
                        ] {
                            if let Some(n) = ns(d) {
                                m.insert(k.into(), json!(n));
                            }
                        }
                        if let Some(r) = retries.filter(|r| *r > 0) {
                            m.insert("Retries".into(), json!(r));
                        }
                        Value::Object(m)
                    }
                };
                let text = format!("HEALTHCHECK {}", one_line(ins.args()));
                meta(state, Some(ConfigChange::Healthcheck(v)), text);
                Ok(())
            }
            InstructionKind::Workdir(w) => {
                let arg = self.expand(state, &w.path, line)?;
                let dir = resolve_workdir(&state.config.working_dir(), &arg);
                state.config.apply(ConfigChange::WorkingDir(dir.clone()));
                let created_by = format!("WORKDIR {dir}");
                let view = self.view(&state.layers)?;
                if view.exists(dir.trim_start_matches('/')) {
                    meta(state, None, created_by);
                    return Ok(());
                }
                let mut inputs = CacheInputs::new(&state.key);
                inputs.push("instruction", created_by.clone());
                self.layer_step(
                    state,
                    step,
                    inputs,
                    &created_by,
                    false,
                    &mut |staging: &Path| mkdir_all(staging, &dir, 0, 0),
                )
            }
            InstructionKind::Run(r) => self.run_step(state, step, ins, r),
            InstructionKind::Copy(c) => self.copy_step(state, step, ins, c, false, None),
            InstructionKind::Add(a) => {
                if a.keep_git_dir || a.unpack == Some(false) {
                    return Err(unsupported("ADD --keep-git-dir/--unpack"));
                }
                let checksum = match &a.checksum {
                    Some(c) => Some(self.expand(state, c, step.line)?),
                    None => None,
                };
                let as_copy = CopyInstruction {
                    sources: a.sources.clone(),
                    dest: a.dest.clone(),
                    from: None,
                    chown: a.chown.clone(),
                    chmod: a.chmod.clone(),
                    link: a.link,
                    parents: a.parents,
                    exclude: a.exclude.clone(),
                    json: a.json,
                };
                self.copy_step(state, step, ins, &as_copy, true, checksum)
            }
        }
    }

    /// Exec form as is; shell form prefixed with the stage's shell.
    fn command_args(&self, state: &StageState, cmd: &CommandLine) -> Vec<String> {
        match cmd {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) => {
                let mut v = state.config.shell();
                v.push(s.clone());
                v
            }
        }
    }

    fn view(&self, layers: &[LayerRef]) -> Result<MergedView> {
        let pairs = layers
            .iter()
            .map(LayerRef::digests)
            .collect::<Result<Vec<_>>>()?;
        Ok(MergedView::new(
            self.root.snapshots().ensure(self.root.store(), &pairs)?,
        ))
    }

    /// Looks up the cache, or runs `make` to fill a staging directory that
    /// becomes the step's layer (pure additions).
    fn layer_step(
        &self,
        state: &mut StageState,
        step: &StepId,
        inputs: CacheInputs,
        created_by: &str,
        link: bool,
        make: &mut dyn FnMut(&Path) -> Result<()>,
    ) -> Result<()> {
        self.cached_or(
            state,
            step,
            inputs,
            created_by,
            link,
            &mut |this: &Self, _state: &StageState| {
                let staging = this.root.tempdir("copy-")?;
                make(staging.path())?;
                let changes = ChangeSet::added_tree(staging.path())
                    .map_err(|e| Error::step("scan staged files", e))?;
                Ok(Produced::Tree(changes, staging))
            },
        )
    }

    /// The cache protocol shared by every layer-producing step. `produce`
    /// makes the step's change set; the directory holding it becomes the
    /// layer's snapshot.
    ///
    /// `link` marks a layer built independently of the layers below it
    /// (`COPY --link`): its `inputs` do not start from the parent's key, so
    /// the record is found again whatever the base is, and the layer is
    /// rebased onto the new parent as it is. The steps after it are still
    /// keyed by the parent *and* the layer (see [`Shared::finish_step`]).
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    fn cached_or(
        &self,
        state: &mut StageState,
        step: &StepId,
        inputs: CacheInputs,
        created_by: &str,
        link: bool,
        produce: &mut dyn FnMut(&Self, &StageState) -> Result<Produced>,
    ) -> Result<()> {
        let key = inputs.key();
        let slot = format!("{}|{}|{}", self.slot_base, state.index, step.index);
        state.reported = true;
        if let Ok(mut c) = self.counters.lock() {
            c.0 += 1;
        }
        let stage_name = self.plan.names[state.index].clone();
        let no_cache = self.opts.no_cache
            || self.opts.no_cache_filter.iter().any(|f| {
                Some(f.to_ascii_lowercase()) == stage_name
                    || f.parse::<usize>().ok() == Some(state.index)
            });
        let hit = if no_cache {
            None
        } else {
            self.root.cache().get(&key)
        };
        let hit = hit.filter(|rec| match &rec.layer {
            Some(l) => Digest::parse(&l.digest).is_ok_and(|d| self.root.store().has_blob(&d)),
            None => true,
        });
        if let Some(rec) = hit {
            if let Ok(mut c) = self.counters.lock() {
                c.1 += 1;
            }
            self.progress.send(Some(step), EventKind::Cached);
            self.finish_step(state, &key, &rec, created_by, link);
            let _ = self.root.cache().set_last_inputs(&slot, &inputs);
            return Ok(());
        }
        let reasons = match self.root.cache().last_inputs(&slot) {
            Some(old) if !no_cache => inputs.explain_against(&old),
            _ if no_cache => vec!["--no-cache".into()],
            _ => Vec::new(),
        };
        self.progress
            .send(Some(step), EventKind::CacheMiss { reasons });
        self.progress.send(Some(step), EventKind::Started);
        let started = Instant::now();
        let produced = produce(self, state)?;
        let record = if produced.is_empty() {
            CacheRecord {
                layer: None,
                created: timestamp(self.opts.source_date_epoch),
            }
        } else {
            let mut wopts = WriteOptions::default();
            wopts.source_date_epoch = self.opts.source_date_epoch;
            // gzip (every registry and `docker load` reads it) at level 1:
            // build layers are written far more often than pulled, and
            // level 6 costs ~3x the CPU for a few percent of size.
            wopts.level = Some(self.opts.compression_level.unwrap_or(1));
            let store = self.root.store();
            let layer = match &produced {
                Produced::Tree(changes, _) => store.put_layer(changes, &wopts),
                Produced::Entries(entries) => store.put_entries(entries, &wopts),
            }
            .map_err(|e| Error::step(format!("write layer of {}", step.label), e))?;
            let record = LayerRecord {
                digest: layer.descriptor.digest().to_string(),
                diff_id: layer.diff_id.to_string(),
                size: layer.descriptor.size(),
                media_type: layer.descriptor.media_type().to_string(),
            };
            // A staged/upper dir is already in lower-dir form: keep it as
            // the snapshot instead of unpacking the layer again. Entries
            // written straight from the context have no such directory;
            // their snapshot is unpacked from the layer if a later step
            // needs it (most often none does: COPY is usually last).
            if let Produced::Tree(_, dir) = produced {
                let mut ids = Vec::new();
                for l in &state.layers {
                    ids.push(l.digests()?.1);
                }
                ids.push(layer.diff_id.clone());
                if let Some(chain) = chain_id(&ids) {
                    self.root.snapshots().adopt(&chain, dir.keep())?;
                }
            }
            CacheRecord {
                layer: Some(record),
                created: timestamp(self.opts.source_date_epoch),
            }
        };
        self.root.cache().put(&key, &record)?;
        let _ = self.root.cache().set_last_inputs(&slot, &inputs);
        self.finish_step(state, &key, &record, created_by, link);
        self.progress.send(
            Some(step),
            EventKind::Finished {
                duration: started.elapsed(),
            },
        );
        Ok(())
    }

    fn finish_step(
        &self,
        state: &mut StageState,
        key: &str,
        rec: &CacheRecord,
        created_by: &str,
        link: bool,
    ) {
        if let Ok(mut t) = self.touched.lock() {
            t.insert(key.to_string(), rec.clone());
        }
        // Later steps are keyed by what this step produced, not only by
        // its inputs: a forced re-run (--no-cache-filter) that yields a
        // different layer invalidates everything built on top of it. A
        // linked layer's own key ignores the parent, so the parent's key
        // is chained back in here: what follows still depends on the base.
        let mut k = if link {
            let mut k = CacheInputs::new(&state.key);
            k.push("link", key);
            k
        } else {
            CacheInputs::new(key)
        };
        state.key = match &rec.layer {
            Some(l) => {
                k.push("layer", l.diff_id.clone());
                k.key()
            }
            None if link => k.key(),
            None => key.to_string(),
        };
        state.last_created = Some(rec.created.clone());
        match &rec.layer {
            Some(l) => {
                state.config.push_diff_id(&l.diff_id);
                state.layers.push(LayerRef { record: l.clone() });
                state.config.push_history(&rec.created, created_by, false);
            }
            None => state.config.push_history(&rec.created, created_by, true),
        }
    }

    fn run_step(
        &self,
        state: &mut StageState,
        step: &StepId,
        ins: &Instruction,
        run: &kiln_dockerfile_parser::instructions::RunInstruction,
    ) -> Result<()> {
        let line = step.line;
        if run.security.is_some() {
            return Err(Error::Unsupported {
                line,
                feature: "RUN --security".into(),
            });
        }
        if !run.devices.is_empty() {
            return Err(Error::Unsupported {
                line,
                feature: "RUN --device".into(),
            });
        }
        let network = match run.network {
            None | Some(RunNetwork::Default) => self.opts.network,
            Some(RunNetwork::None) => NetworkMode::None,
            Some(RunNetwork::Host) => NetworkMode::Host,
        };
        // The command; heredocs are handed to the shell with the text.
        let mut args = match (&run.command, ins.heredocs.as_slice()) {
            (CommandLine::Shell(s), [h])
                if s.trim()
                    .trim_start_matches("<<")
                    .trim_start_matches('-')
                    .trim_matches(['"', '\''])
                    == h.name =>
            {
                let mut v = state.config.shell();
                v.push(h.body());
                v
            }
            (CommandLine::Shell(s), hs) if !hs.is_empty() => {
                let mut text = s.clone();
                for h in hs {
                    text.push('\n');
                    text.push_str(&h.content);
                    if !text.ends_with('\n') {
                        text.push('\n');
                    }
                    text.push_str(&h.name);
                }
                let mut v = state.config.shell();
                v.push(text);
                v
            }
            (c, _) => self.command_args(state, c),
        };
        if args.is_empty() {
            return Err(Error::instruction(line, "RUN with an empty command"));
        }
        // Env: the image's, then declared args not shadowed, then proxies.
        let mut env: Vec<(String, String)> = state.config.env();
        let mut arg_pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in &state.args {
            if let Some(v) = v
                && !env.iter().any(|(ek, _)| ek == k)
            {
                arg_pairs.push((k.clone(), v.clone()));
            }
        }
        let mut proxies = Vec::new();
        for p in PROXY_ARGS {
            if let Some(v) = self.opts.build_args.get(p)
                && !state.args.contains_key(p)
            {
                proxies.push((p.to_string(), v.clone()));
            }
        }
        let history_args: Vec<String> = arg_pairs
            .iter()
            .filter(|(k, _)| !PROXY_ARGS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let created_by = if history_args.is_empty() {
            format!("RUN {}", args.join(" "))
        } else {
            format!(
                "RUN |{} {} {}",
                history_args.len(),
                history_args.join(" "),
                args.join(" ")
            )
        };
        env.extend(arg_pairs.iter().cloned());
        env.extend(proxies.iter().cloned());
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.insert(0, ("PATH".into(), kiln_runtime_linux::DEFAULT_PATH.into()));
        }
        let env_list: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();

        let mut inputs = CacheInputs::new(&state.key);
        inputs.push("instruction", created_by.clone());
        inputs.push(
            "env",
            env_list
                .iter()
                .filter(|e| !PROXY_ARGS.iter().any(|p| e.starts_with(&format!("{p}="))))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
        );
        inputs.push("user", state.config.user());
        inputs.push("workdir", state.config.working_dir());
        inputs.push("network", format!("{network:?}"));
        let mut mount_specs: Vec<MountSpec> = Vec::new();
        for m in &run.mounts {
            let mut m = m.clone();
            for f in [&mut m.target, &mut m.source, &mut m.from, &mut m.id] {
                if let Some(v) = f.as_mut() {
                    *v = self.expand(state, v, line)?;
                }
            }
            // BuildKit: a secret with `env=` and no `target=` is only an
            // environment variable; otherwise it is a file, by default
            // /run/secrets/<id>.
            if m.kind == MountType::Secret
                && m.target.is_none()
                && m.env.is_none()
                && let Some(id) = &m.id
            {
                m.target = Some(format!("/run/secrets/{id}"));
            }
            inputs.push(
                "mount",
                format!(
                    "{:?}",
                    (
                        m.kind,
                        &m.target,
                        &m.source,
                        &m.from,
                        &m.id,
                        m.read_only,
                        &m.env
                    )
                ),
            );
            if m.kind == MountType::Bind && m.from.is_none() {
                let src = m.source.clone().unwrap_or_default();
                let rel = crate::dockerignore::clean(src.trim_start_matches('/'));
                let rel = if rel == "." { String::new() } else { rel };
                inputs.push(format!("file:{rel}"), self.context.digest(&rel)?);
            }
            if let Some(f) = &m.from {
                inputs.push(format!("from:{f}"), self.source_key(state.index, f)?);
            }
            mount_specs.push(m);
        }
        let cwd = state.config.working_dir();
        let user = state.config.user();
        let lines_tail: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let tail = lines_tail.clone();
        let exit_line = line;
        let label = step.label.clone();
        let mut result_err: Option<Error> = None;
        let r = self.cached_or(
            state,
            step,
            inputs,
            &created_by.clone(),
            false,
            &mut |this: &Self, state: &StageState| {
                let view = this.view(&state.layers)?;
                let upper = this.root.tempdir("run-")?;
                let work = this.root.tempdir("work-")?;
                let mut keep: Vec<tempfile::TempDir> = Vec::new();
                let mut mounts = Vec::new();
                let mut env = env_list.clone();
                for m in &mount_specs {
                    if m.kind == MountType::Secret
                        && let Some(var) = &m.env
                    {
                        let (k, v) = this.secret_env(m, var, line)?;
                        env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
                        env.push(format!("{k}={v}"));
                        if m.target.is_none() {
                            continue;
                        }
                    }
                    mounts.push(this.exec_mount(state.index, m, line, &mut keep)?);
                }
                let job = ExecJob {
                    args: std::mem::take(&mut args),
                    env,
                    cwd: cwd.clone(),
                    user: user.clone(),
                    lowers: view.lowers().to_vec(),
                    upper: upper.path().to_path_buf(),
                    work: work.path().to_path_buf(),
                    network,
                    mounts,
                    cancel: this.cancel.clone(),
                };
                let mut lines = LineSplitter::new(this.progress, step, tail.clone());
                let code = this.executor.run(&job, &mut |s, b| lines.push(s, b))?;
                lines.flush();
                args = job.args;
                if code != 0 {
                    result_err = Some(Error::StepFailed {
                        step: label.clone(),
                        line: exit_line,
                        exit_code: code,
                        tail: tail.lock().map(|t| t.clone()).unwrap_or_default(),
                    });
                    return Err(Error::Cancelled);
                }
                cleanup_mountpoints(upper.path(), &view, &mount_specs);
                let changes = ChangeSet::from_overlay_upper(upper.path())
                    .map_err(|e| Error::step(format!("scan changes of {label}"), e))?;
                Ok(Produced::Tree(changes, upper))
            },
        );
        match (r, result_err) {
            (Err(_), Some(e)) => Err(e),
            (r, _) => r,
        }
    }

    /// The cache key of what `from` (a stage name/index or an image) holds.
    fn source_key(&self, stage: usize, from: &str) -> Result<String> {
        match self.find_stage(stage, from) {
            Some(j) => Ok(self.stage_result(j)?.key),
            None => {
                let img = image::resolve_local(self.root, from)?;
                Ok(format!("image:{}", img.manifest_digest))
            }
        }
    }

    fn find_stage(&self, before: usize, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(i) = self.plan.names[..before]
            .iter()
            .position(|n| n.as_deref() == Some(lower.as_str()))
        {
            return Some(i);
        }
        name.parse::<usize>().ok().filter(|i| *i < before)
    }

    /// The merged file system of a stage or image named by `--from`.
    fn source_view(&self, stage: usize, from: &str) -> Result<MergedView> {
        match self.find_stage(stage, from) {
            Some(j) => {
                let r = self.stage_result(j)?;
                self.view(&r.layers)
            }
            None => {
                let img = image::resolve_local(self.root, from)?;
                self.view(&img.layers)
            }
        }
    }

    /// `RUN --mount=type=secret,id=ID,env=VAR`: `VAR=<the secret>` for
    /// this step's process only (never in the image config, the history or
    /// the cache key).
    fn secret_env(&self, m: &MountSpec, var: &str, line: usize) -> Result<(String, String)> {
        if var.is_empty() || var.contains('=') {
            return Err(Error::instruction(
                line,
                format!("RUN --mount=type=secret,env={var:?}: not a variable name"),
            ));
        }
        let id = m.id.clone().unwrap_or_else(|| var.to_string());
        let src = self.opts.secrets.get(&id).ok_or_else(|| {
            Error::instruction(
                line,
                format!(
                    "secret {id:?} was not given to the build (--secret id={id},src=... or env=...)"
                ),
            )
        })?;
        let bytes = std::fs::read(src).map_err(|e| Error::io("read secret", src, e))?;
        let value = String::from_utf8(bytes)
            .ok()
            .filter(|v| !v.contains('\0'))
            .ok_or_else(|| {
                Error::instruction(
                    line,
                    format!("secret {id:?} cannot be an environment variable: it is not text without NUL bytes"),
                )
            })?;
        Ok((var.to_string(), value))
    }

    fn exec_mount(
        &self,
        stage: usize,
        m: &MountSpec,
        line: usize,
        keep: &mut Vec<tempfile::TempDir>,
    ) -> Result<ExecMount> {
        if m.kind == MountType::Ssh {
            return Err(Error::Unsupported {
                line,
                feature: "RUN --mount=type=ssh".into(),
            });
        }
        if m.kind == MountType::Secret && m.target.is_none() {
            let id = m.id.clone().unwrap_or_default();
            if id.is_empty() {
                return Err(Error::instruction(
                    line,
                    "RUN --mount=type=secret needs id= or target=",
                ));
            }
            return self.exec_mount(
                stage,
                &MountSpec {
                    target: Some(format!("/run/secrets/{id}")),
                    ..m.clone()
                },
                line,
                keep,
            );
        }
        let target = m
            .target
            .clone()
            .ok_or_else(|| Error::instruction(line, "RUN --mount needs target="))?;
        match m.kind {
            MountType::Tmpfs => Ok(ExecMount::Tmpfs {
                target,
                size: m.size,
            }),
            MountType::Cache => {
                let id = m.id.clone().unwrap_or_else(|| target.clone());
                let name = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(id.as_bytes()));
                let dir = self.root.dir().join("cache-mounts").join(name);
                if !dir.exists() {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| Error::io("create cache mount", &dir, e))?;
                    use std::os::unix::fs::PermissionsExt;
                    let mode = m.mode.unwrap_or(0o755);
                    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode));
                    let _ = std::os::unix::fs::chown(
                        &dir,
                        Some(m.uid.unwrap_or(0)),
                        Some(m.gid.unwrap_or(0)),
                    );
                }
                Ok(ExecMount::Bind {
                    source: dir,
                    target,
                    read_only: m.read_only,
                })
            }
            MountType::Secret => {
                let id = m.id.clone().unwrap_or_else(|| {
                    Path::new(&target)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
                match self.opts.secrets.get(&id) {
                    Some(src) => Ok(ExecMount::Bind {
                        source: src.clone(),
                        target,
                        read_only: true,
                    }),
                    None => Err(Error::instruction(
                        line,
                        format!(
                            "secret {id:?} was not given to the build (--secret id={id},src=...)"
                        ),
                    )),
                }
            }
            MountType::Bind => {
                // BuildKit: a bind mount is read-only unless `rw` is given,
                // and what a step writes to an `rw` one is thrown away.
                // Read-only sources are bound as they are (the context's
                // directory, or a snapshot's file) or, where several layers
                // or `.dockerignore` decide what is visible, as a tree of
                // hard links to them; an `rw` source is a scratch copy.
                let src = m.source.clone().unwrap_or_default();
                let rel = crate::dockerignore::clean(src.trim_start_matches('/'));
                let rel = if rel == "." { String::new() } else { rel };
                let not_found = |f: &str| {
                    Error::instruction(line, format!("bind source {src:?} not found in {f}"))
                };
                let direct = |source: PathBuf| ExecMount::Bind {
                    source,
                    target: target.clone(),
                    read_only: true,
                };
                match &m.from {
                    Some(f) => {
                        let view = self.source_view(stage, f)?;
                        if m.read_only {
                            let real = view.lookup(&rel).ok_or_else(|| not_found(f))?;
                            let md = std::fs::symlink_metadata(&real)
                                .map_err(|e| Error::io("stat", &real, e))?;
                            if md.is_file() {
                                return Ok(direct(real));
                            }
                        }
                        let tmp = self.root.tempdir("bind-")?;
                        let dest = tmp.path().join("src");
                        let found = if m.read_only {
                            view.link_out(&rel, &dest)?
                        } else {
                            view.copy_out(&rel, &dest)?
                        };
                        if !found {
                            return Err(not_found(f));
                        }
                        keep.push(tmp);
                        Ok(ExecMount::Bind {
                            source: dest,
                            target,
                            read_only: m.read_only,
                        })
                    }
                    None => {
                        if !rel.is_empty() && self.context.get(&rel).is_none() {
                            return Err(not_found("the build context"));
                        }
                        if m.read_only && self.context.is_whole(&rel) {
                            return Ok(direct(self.context.root().join(&rel)));
                        }
                        // Only what the context (after .dockerignore) holds.
                        let tmp = self.root.tempdir("bind-")?;
                        let dest = tmp.path().join("src");
                        self.copy_context_tree(&rel, &dest, None, m.read_only)?;
                        keep.push(tmp);
                        Ok(ExecMount::Bind {
                            source: dest,
                            target,
                            read_only: m.read_only,
                        })
                    }
                }
            }
            MountType::Ssh => Err(Error::Unsupported {
                line,
                feature: "RUN --mount=type=ssh".into(),
            }),
        }
    }

    /// Materialises the context's view of `rel` at `dest`; with `link`,
    /// regular files are hard links to the context's files (for read-only
    /// use only), copies where a link is impossible.
    fn copy_context_tree(
        &self,
        rel: &str,
        dest: &Path,
        attrs: Option<&CopyAttrs>,
        link: bool,
    ) -> Result<()> {
        let put = |src: &Path, dst: &Path| -> Result<()> {
            let linked = link
                && std::fs::symlink_metadata(src).is_ok_and(|m| m.is_file())
                && std::fs::hard_link(src, dst).is_ok();
            if linked {
                Ok(())
            } else {
                copy_node(src, dst, attrs)
            }
        };
        let root = self.context.root();
        let src = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        if rel.is_empty() {
            std::fs::create_dir_all(dest).map_err(|e| Error::io("create directory", dest, e))?;
        } else {
            put(&src, dest)?;
        }
        let entries: Vec<String> = self
            .context
            .subtree(rel)
            .map(|(k, _)| k.clone())
            .filter(|k| k != rel)
            .collect();
        for k in entries {
            let sub = if rel.is_empty() {
                k.as_str()
            } else {
                &k[rel.len() + 1..]
            };
            put(&root.join(&k), &dest.join(sub))?;
        }
        Ok(())
    }

    fn copy_step(
        &self,
        state: &mut StageState,
        step: &StepId,
        ins: &Instruction,
        c: &CopyInstruction,
        is_add: bool,
        checksum: Option<String>,
    ) -> Result<()> {
        let line = step.line;
        let mut downloads: Vec<tempfile::TempDir> = Vec::new();
        let dest_word = self.expand(state, &c.dest, line)?;
        let workdir = state.config.working_dir();
        let dest_abs = if dest_word.starts_with('/') {
            dest_word.clone()
        } else {
            format!("{}/{}", workdir.trim_end_matches('/'), dest_word)
        };
        let dest_is_dir = dest_word.ends_with('/')
            || dest_word.ends_with("/.")
            || dest_word == "."
            || c.sources.len() > 1;
        let dest_clean = crate::dockerignore::clean(&dest_abs);
        let dest_rel = dest_clean.trim_start_matches('/').to_string();
        let dest_is_dir = dest_is_dir || dest_rel.is_empty();
        let chown = match &c.chown {
            Some(s) => Some(self.expand(state, s, line)?),
            None => None,
        };
        let chmod = match &c.chmod {
            Some(s) => Some(
                u32::from_str_radix(&self.expand(state, s, line)?, 8).map_err(|_| {
                    Error::Unsupported {
                        line,
                        feature: format!("--chmod={s} (only octal modes)"),
                    }
                })?,
            ),
            None => None,
        };
        let (uid, gid) = match &chown {
            Some(spec) => self.resolve_owner(state, spec, line)?,
            None => (None, None),
        };
        let from_context = c.from.is_none();
        let attrs = CopyAttrs {
            uid: uid.or(if from_context { Some(0) } else { None }),
            gid: gid.or(if from_context { Some(0) } else { None }),
            mode: chmod,
        };
        let excludes = DockerIgnore::parse(&c.exclude.join("\n"));

        // COPY --link (BuildKit): the layer is made in an empty directory
        // from the sources alone and merged onto whatever the parent is, so
        // its key leaves the parent out. What the parent still decides
        // (the workdir a relative destination is resolved against, the
        // ids `--chown` names resolve to) is part of the inputs below.
        let link = c.link;
        let mut inputs = if link {
            let mut i = CacheInputs::new("link");
            i.push("owner", format!("{:?}:{:?}", attrs.uid, attrs.gid));
            i
        } else {
            CacheInputs::new(&state.key)
        };
        let created_by = format!(
            "{} {}",
            if is_add { "ADD" } else { "COPY" },
            one_line(ins.args())
        );
        inputs.push(
            "instruction",
            format!(
                "{created_by} dest={dest_clean} chown={chown:?} chmod={chmod:?} link={} parents={}",
                c.link, c.parents
            ),
        );
        // Resolve sources now: their fingerprints are cache inputs.
        enum Src {
            Heredoc(String, String),
            Url(String, PathBuf),
            Context(Vec<String>),
            Other(MergedView, Vec<String>),
        }
        let mut sources = Vec::new();
        for s in &c.sources {
            if let Some(name) = s.strip_prefix("<<") {
                let name = name.trim_start_matches('-').trim_matches(['"', '\'']);
                let h = ins
                    .heredocs
                    .iter()
                    .find(|h| h.name == name)
                    .ok_or_else(|| Error::instruction(line, format!("heredoc {name} not found")))?;
                let body = if h.expand {
                    self.expand(state, &h.body(), line)
                        .unwrap_or_else(|_| h.body())
                } else {
                    h.body()
                };
                inputs.push(format!("heredoc:{name}"), body.clone());
                sources.push(Src::Heredoc(name.to_string(), body));
                continue;
            }
            let pat = self.expand(state, s, line)?;
            if is_add && (pat.starts_with("git@") || (pat.ends_with(".git") && pat.contains("://")))
            {
                return Err(Error::Unsupported {
                    line,
                    feature: format!("ADD from git ({pat})"),
                });
            }
            if is_add && (pat.starts_with("http://") || pat.starts_with("https://")) {
                let (dir, path, digest) = self.download(&pat, line)?;
                if let Some(want) = &checksum
                    && want != &digest
                {
                    return Err(Error::instruction(
                        line,
                        format!("ADD {pat}: checksum mismatch: expected {want}, got {digest}"),
                    ));
                }
                inputs.push(format!("url:{pat}"), digest);
                let name = pat
                    .split(['?', '#'])
                    .next()
                    .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
                    .filter(|n| !n.is_empty() && !n.contains(':'))
                    .unwrap_or("download")
                    .to_string();
                downloads.push(dir);
                sources.push(Src::Url(name, path));
                continue;
            }
            if checksum.is_some() {
                return Err(Error::instruction(
                    line,
                    "ADD --checksum applies to URL sources only",
                ));
            }
            match &c.from {
                None => {
                    let matched: Vec<String> = self
                        .context
                        .glob(&pat)
                        .into_iter()
                        .filter(|m| m.is_empty() || !excludes.is_excluded(m))
                        .collect();
                    if matched.is_empty() {
                        return Err(Error::instruction(
                            line,
                            format!("{pat:?}: no such file or directory in the build context"),
                        ));
                    }
                    for m in &matched {
                        inputs.push(
                            format!("file:{}", if m.is_empty() { "." } else { m }),
                            self.context.digest(m)?,
                        );
                    }
                    sources.push(Src::Context(matched));
                }
                Some(f) => {
                    let f = self.expand(state, f, line)?;
                    inputs.push(format!("from:{f}"), self.source_key(state.index, &f)?);
                    let view = self.source_view(state.index, &f)?;
                    let cleaned = crate::dockerignore::clean(pat.trim_start_matches('/'));
                    let cleaned = if cleaned == "." {
                        String::new()
                    } else {
                        cleaned.trim_start_matches('/').to_string()
                    };
                    let matched = glob_view(&view, &cleaned);
                    if matched.is_empty() {
                        return Err(Error::instruction(
                            line,
                            format!("{pat:?}: not found in {f}"),
                        ));
                    }
                    inputs.push(format!("paths:{f}"), matched.join(","));
                    sources.push(Src::Other(view, matched));
                }
            }
        }
        let multi = sources
            .iter()
            .map(|s| match s {
                Src::Context(m) | Src::Other(_, m) => m.len(),
                Src::Heredoc(..) | Src::Url(..) => 1,
            })
            .sum::<usize>()
            > 1;
        let dest_is_dir = dest_is_dir || multi;
        let parents = c.parents;
        let context_root = self.context.root().to_path_buf();
        let context = self.context;
        let base_layers = state.layers.clone();
        // The common case, COPY from the context: the layer is written
        // straight from the context files with the owner and mode COPY
        // gives them, nothing is staged on disk (a 20k-file context costs
        // one read per file instead of a copy, a scan and a read).
        // `COPY --from` a stage or image likewise reads the files from the
        // source's snapshots.
        let direct = !is_add
            && !parents
            && sources
                .iter()
                .all(|s| matches!(s, Src::Context(_) | Src::Other(..)));
        if direct {
            return self.cached_or(
                state,
                step,
                inputs,
                &created_by,
                link,
                &mut |this: &Self, _state: &StageState| {
                    let dest_is_dir = dest_is_dir
                        || (!link
                            && this
                                .view(&base_layers)?
                                .lookup(&dest_rel)
                                .and_then(|p| std::fs::metadata(p).ok())
                                .is_some_and(|m| m.is_dir()));
                    let owner = (attrs.uid.unwrap_or(0), attrs.gid.unwrap_or(0));
                    let mut entries = Vec::new();
                    let dest_parent_rel = if dest_is_dir {
                        dest_rel.clone()
                    } else {
                        Path::new(&dest_rel)
                            .parent()
                            .map(|p| p.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    };
                    // The destination's directories, as mkdir_all makes them.
                    let now = now_time();
                    let mut prefix = PathBuf::new();
                    for part in dest_parent_rel.split('/').filter(|p| !p.is_empty()) {
                        prefix.push(part);
                        entries.push(SourceEntry::new(
                            prefix.clone(),
                            SourceKind::Dir,
                            0o755,
                            owner,
                            now,
                        ));
                    }
                    let entry = |k: &str, path: PathBuf| -> Option<SourceEntry> {
                        let e = context.get(k)?;
                        let mode = attrs.mode.unwrap_or(e.mode & 0o7777);
                        let kind = match &e.kind {
                            EntryKind::File => SourceKind::File(context_root.join(k)),
                            EntryKind::Dir => SourceKind::Dir,
                            EntryKind::Symlink(t) => {
                                return Some(SourceEntry::new(
                                    path,
                                    SourceKind::Symlink(t.clone()),
                                    0o777,
                                    owner,
                                    e.mtime(),
                                ));
                            }
                            // Devices, fifos, sockets: skipped, as copy_node does.
                            EntryKind::Other => return None,
                        };
                        Some(SourceEntry::new(path, kind, mode, owner, e.mtime()))
                    };
                    let target = |m: &str| {
                        let name = Path::new(m)
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        if dest_is_dir {
                            Path::new(&dest_rel).join(name)
                        } else {
                            PathBuf::from(&dest_rel)
                        }
                    };
                    for src in &sources {
                        let matched = match src {
                            Src::Context(m) => m,
                            Src::Other(view, matched) => {
                                for m in matched {
                                    let real = view.lookup(m);
                                    let is_dir = m.is_empty()
                                        || real
                                            .as_ref()
                                            .and_then(|p| std::fs::symlink_metadata(p).ok())
                                            .is_some_and(|md| md.is_dir());
                                    if is_dir {
                                        // The directory's contents, merged.
                                        view_entries(
                                            view,
                                            m,
                                            Path::new(&dest_rel),
                                            "",
                                            &attrs,
                                            &excludes,
                                            &mut entries,
                                        )?;
                                    } else if let Some(real) = real {
                                        entries.extend(view_entry(&real, target(m), &attrs)?);
                                    }
                                }
                                continue;
                            }
                            Src::Heredoc(..) | Src::Url(..) => continue,
                        };
                        for m in matched {
                            let m = m.as_str();
                            let entry_is_dir = m.is_empty()
                                || matches!(context.get(m).map(|e| &e.kind), Some(EntryKind::Dir));
                            if entry_is_dir {
                                // A directory's contents are copied, not the directory.
                                for (k, _) in context.subtree(m) {
                                    if k == m {
                                        continue;
                                    }
                                    let sub = if m.is_empty() {
                                        k.as_str()
                                    } else {
                                        &k[m.len() + 1..]
                                    };
                                    if excludes.is_excluded(k) || excludes.is_excluded(sub) {
                                        continue;
                                    }
                                    entries.extend(entry(k, Path::new(&dest_rel).join(sub)));
                                }
                            } else {
                                entries.extend(entry(m, target(m)));
                            }
                        }
                    }
                    Ok(Produced::Entries(entries))
                },
            );
        }
        self.layer_step(
            state,
            step,
            inputs,
            &created_by,
            link,
            &mut |staging: &Path| {
                // An existing directory is a directory destination even without
                // a trailing slash (BuildKit's copy semantics). Only looked up on
                // a cache miss: a hit needs no unpacked snapshot. A linked copy
                // never reads the layers below it.
                let dest_is_dir = dest_is_dir
                    || (!link
                        && self
                            .view(&base_layers)?
                            .lookup(&dest_rel)
                            .and_then(|p| std::fs::metadata(p).ok())
                            .is_some_and(|m| m.is_dir()));
                let owner_uid = attrs.uid.unwrap_or(0);
                let owner_gid = attrs.gid.unwrap_or(0);
                let dest_parent_rel = if dest_is_dir {
                    dest_rel.clone()
                } else {
                    Path::new(&dest_rel)
                        .parent()
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                mkdir_all(staging, &dest_parent_rel, owner_uid, owner_gid)?;
                let target_for = |name: &str, rel_path: &str| -> PathBuf {
                    if parents {
                        staging.join(&dest_rel).join(rel_path)
                    } else if dest_is_dir {
                        staging.join(&dest_rel).join(name)
                    } else {
                        staging.join(&dest_rel)
                    }
                };
                for s in &sources {
                    match s {
                        Src::Url(name, path) => {
                            // Docker: a downloaded file gets mode 0600 unless
                            // --chmod says otherwise, and is never unpacked.
                            let t = target_for(name, name);
                            let a = CopyAttrs {
                                mode: Some(attrs.mode.unwrap_or(0o600)),
                                ..attrs
                            };
                            copy_node(path, &t, Some(&a))?;
                        }
                        Src::Heredoc(name, body) => {
                            let t = target_for(name, name);
                            std::fs::write(&t, body).map_err(|e| Error::io("write", &t, e))?;
                            use std::os::unix::fs::PermissionsExt;
                            let mode = attrs.mode.unwrap_or(0o644);
                            std::fs::set_permissions(&t, std::fs::Permissions::from_mode(mode))
                                .map_err(|e| Error::io("chmod", &t, e))?;
                            std::os::unix::fs::lchown(&t, Some(owner_uid), Some(owner_gid))
                                .map_err(|e| Error::io("chown", &t, e))?;
                        }
                        Src::Context(matched) => {
                            for m in matched {
                                let entry_is_dir = m.is_empty()
                                    || matches!(
                                        context.get(m).map(|e| &e.kind),
                                        Some(EntryKind::Dir)
                                    );
                                let name = Path::new(m)
                                    .file_name()
                                    .map(|n| n.to_string_lossy().into_owned())
                                    .unwrap_or_default();
                                if entry_is_dir {
                                    // A directory's contents are copied, not the directory.
                                    let t = if parents {
                                        staging.join(&dest_rel).join(m)
                                    } else {
                                        staging.join(&dest_rel)
                                    };
                                    if parents {
                                        mkdir_all(
                                            staging,
                                            &format!("{dest_rel}/{m}"),
                                            owner_uid,
                                            owner_gid,
                                        )?;
                                    }
                                    let kids: Vec<String> = context
                                        .subtree(m)
                                        .map(|(k, _)| k.clone())
                                        .filter(|k| k != m)
                                        .collect();
                                    for k in kids {
                                        let sub = if m.is_empty() {
                                            k.as_str()
                                        } else {
                                            &k[m.len() + 1..]
                                        };
                                        if excludes.is_excluded(&k) || excludes.is_excluded(sub) {
                                            continue;
                                        }
                                        copy_node(
                                            &context_root.join(&k),
                                            &t.join(sub),
                                            Some(&attrs),
                                        )?;
                                    }
                                } else {
                                    let t = target_for(&name, m);
                                    if let Some(p) = t.parent()
                                        && !p.exists()
                                    {
                                        let prel = p
                                            .strip_prefix(staging)
                                            .map(|x| x.to_string_lossy().into_owned())
                                            .unwrap_or_default();
                                        mkdir_all(staging, &prel, owner_uid, owner_gid)?;
                                    }
                                    if is_add && is_archive(&context_root.join(m), line)? {
                                        let dir = if dest_is_dir {
                                            staging.join(&dest_rel)
                                        } else {
                                            t.clone()
                                        };
                                        extract_archive(&context_root.join(m), &dir)?;
                                    } else {
                                        copy_node(&context_root.join(m), &t, Some(&attrs))?;
                                    }
                                }
                            }
                        }
                        Src::Other(view, matched) => {
                            for m in matched {
                                let real = view.lookup(m);
                                let is_dir = m.is_empty()
                                    || real
                                        .as_ref()
                                        .and_then(|p| std::fs::symlink_metadata(p).ok())
                                        .is_some_and(|md| md.is_dir());
                                let name = Path::new(m)
                                    .file_name()
                                    .map(|n| n.to_string_lossy().into_owned())
                                    .unwrap_or_default();
                                let t = if is_dir {
                                    if parents {
                                        staging.join(&dest_rel).join(m)
                                    } else {
                                        staging.join(&dest_rel)
                                    }
                                } else {
                                    target_for(&name, m)
                                };
                                let a = if attrs == CopyAttrs::default() {
                                    None
                                } else {
                                    Some(&attrs)
                                };
                                match (a, is_dir) {
                                    // No overrides: straight from the layers.
                                    (None, true) => {
                                        std::fs::create_dir_all(&t)
                                            .map_err(|e| Error::io("create directory", &t, e))?;
                                        for name in view.read_dir(m).into_keys() {
                                            let child = if m.is_empty() {
                                                name.clone()
                                            } else {
                                                format!("{m}/{name}")
                                            };
                                            view.copy_out(&child, &t.join(&name))?;
                                        }
                                    }
                                    (None, false) => {
                                        view.copy_out(m, &t)?;
                                    }
                                    // --chown/--chmod: merge first, then copy
                                    // with the overrides.
                                    (Some(a), _) => {
                                        let tmp = tempfile::tempdir_in(
                                            staging.parent().unwrap_or(staging),
                                        )
                                        .map_err(|e| Error::io("create temp dir", staging, e))?;
                                        let out = tmp.path().join("x");
                                        view.copy_out(m, &out)?;
                                        if is_dir {
                                            std::fs::create_dir_all(&t).map_err(|e| {
                                                Error::io("create directory", &t, e)
                                            })?;
                                            for ent in std::fs::read_dir(&out)
                                                .map_err(|e| Error::io("read directory", &out, e))?
                                                .flatten()
                                            {
                                                copy_tree(
                                                    &ent.path(),
                                                    &t.join(ent.file_name()),
                                                    Some(a),
                                                )?;
                                            }
                                        } else {
                                            copy_tree(&out, &t, Some(a))?;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                Ok(())
            },
        )
    }

    /// Downloads `url` (ADD) into a scratch dir: (dir, file, sha256 digest).
    fn download(&self, url: &str, line: usize) -> Result<(tempfile::TempDir, PathBuf, String)> {
        let fetch = async {
            let resp = reqwest::get(url).await?.error_for_status()?;
            resp.bytes().await
        };
        let bytes = crate::pull::block_on(fetch)?.map_err(|e| Error::Step {
            context: format!("line {line}: ADD {url}: download"),
            source: Box::new(e),
        })?;
        let dir = self.root.tempdir("add-")?;
        let path = dir.path().join("file");
        std::fs::write(&path, &bytes).map_err(|e| Error::io("write", &path, e))?;
        let digest = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
        );
        Ok((dir, path, digest))
    }

    /// Resolves `--chown=user[:group]` in the stage's /etc/passwd and
    /// /etc/group (numeric ids need no lookup).
    fn resolve_owner(
        &self,
        state: &StageState,
        spec: &str,
        line: usize,
    ) -> Result<(Option<u32>, Option<u32>)> {
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let numeric_u = u.parse::<u32>().ok();
        let numeric_g = g.and_then(|g| g.parse::<u32>().ok());
        if numeric_u.is_some() && (g.is_none() || numeric_g.is_some()) {
            return Ok((numeric_u, numeric_g.or(numeric_u)));
        }
        let view = self.view(&state.layers)?;
        let passwd =
            String::from_utf8_lossy(&view.read("etc/passwd").unwrap_or_default()).into_owned();
        let group =
            String::from_utf8_lossy(&view.read("etc/group").unwrap_or_default()).into_owned();
        let user = kiln_runtime_linux::resolve_user(spec, &passwd, &group)
            .map_err(|e| Error::instruction(line, format!("--chown={spec}: {e}")))?;
        // Docker: `--chown=user` without a group uses the user's primary
        // group from /etc/passwd.
        Ok((Some(user.uid), Some(user.gid)))
    }
}

/// A layer entry for the file, directory or link at `real` (in a
/// snapshot), with its own metadata unless `attrs` overrides it. Devices,
/// fifos and sockets give none (as [`copy_node`] skips them).
fn view_entry(real: &Path, path: PathBuf, attrs: &CopyAttrs) -> Result<Option<SourceEntry>> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(real).map_err(|e| Error::io("stat", real, e))?;
    let owner = (attrs.uid.unwrap_or(md.uid()), attrs.gid.unwrap_or(md.gid()));
    let mtime = (md.mtime(), md.mtime_nsec() as u32);
    let mode = attrs.mode.unwrap_or(md.mode() & 0o7777);
    let ft = md.file_type();
    Ok(Some(if ft.is_symlink() {
        let t = std::fs::read_link(real).map_err(|e| Error::io("read link", real, e))?;
        SourceEntry::new(path, SourceKind::Symlink(t), 0o777, owner, mtime)
    } else if ft.is_dir() {
        SourceEntry::new(path, SourceKind::Dir, mode, owner, mtime)
    } else if ft.is_file() {
        SourceEntry::new(
            path,
            SourceKind::File(real.to_path_buf()),
            mode,
            owner,
            mtime,
        )
    } else {
        return Ok(None);
    }))
}

/// Entries for everything below directory `rel` of a merged view, placed
/// under `dest` (`sub` is the path below the copied directory, for
/// `--exclude`).
fn view_entries(
    view: &MergedView,
    rel: &str,
    dest: &Path,
    sub: &str,
    attrs: &CopyAttrs,
    excludes: &DockerIgnore,
    out: &mut Vec<SourceEntry>,
) -> Result<()> {
    for (name, real) in view.read_dir(rel) {
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{}/{name}", rel.trim_end_matches('/'))
        };
        let child_sub = if sub.is_empty() {
            name.clone()
        } else {
            format!("{sub}/{name}")
        };
        if excludes.is_excluded(&child_sub) {
            continue;
        }
        let Some(e) = view_entry(&real, dest.join(&name), attrs)? else {
            continue;
        };
        let is_dir = e.kind == SourceKind::Dir;
        out.push(e);
        if is_dir {
            view_entries(
                view,
                &child,
                &dest.join(&name),
                &child_sub,
                attrs,
                excludes,
                out,
            )?;
        }
    }
    Ok(())
}

/// Matches a `--from` source path (globs in any component) in a view.
fn glob_view(view: &MergedView, pattern: &str) -> Vec<String> {
    if pattern.is_empty() {
        return vec![String::new()];
    }
    let mut current = vec![String::new()];
    for part in pattern.split('/') {
        let mut next = Vec::new();
        for base in &current {
            if part.contains(['*', '?', '[']) {
                for name in view.read_dir(base).keys() {
                    if crate::context::fnmatch(part, name) {
                        next.push(if base.is_empty() {
                            name.clone()
                        } else {
                            format!("{base}/{name}")
                        });
                    }
                }
            } else {
                let p = if base.is_empty() {
                    part.to_string()
                } else {
                    format!("{base}/{part}")
                };
                if view.exists(&p) {
                    next.push(p);
                }
            }
        }
        current = next;
    }
    current
}

/// Whether a file is a tar archive (plain, gzip or zstd), by content, as
/// ADD decides whether to unpack: the decompressed start must be a tar
/// header. bzip2 and xz archives, which Docker would unpack, are an error
/// rather than a silently different result.
fn is_archive(path: &Path, line: usize) -> Result<bool> {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return Ok(false);
    };
    let mut magic = [0u8; 6];
    let n = f.read(&mut magic).unwrap_or(0);
    if magic[..n].starts_with(b"BZh") || magic[..n].starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
    {
        return Err(Error::Unsupported {
            line,
            feature: format!("ADD of a bzip2/xz archive ({})", path.display()),
        });
    }
    let Ok(f) = std::fs::File::open(path) else {
        return Ok(false);
    };
    let Ok((_, mut reader)) = kiln_image_layers::Compression::auto_decoder(f) else {
        return Ok(false);
    };
    let mut head = vec![0u8; 512];
    let mut got = 0;
    while got < head.len() {
        match reader.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => got += k,
        }
    }
    Ok(got >= 262 && &head[257..262] == b"ustar")
}

fn extract_archive(path: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io("create directory", dest, e))?;
    let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    kiln_image_layers::apply_layer(f, dest, &kiln_image_layers::ApplyOptions::default())
        .map_err(|e| Error::step(format!("extract {}", path.display()), e))?;
    Ok(())
}

/// Removes mount points and `/etc` files the runtime created in the upper
/// dir that did not exist in the image (empty, so nothing of the user's).
fn cleanup_mountpoints(upper: &Path, view: &MergedView, mounts: &[MountSpec]) {
    let mut candidates: Vec<String> = vec![
        "etc/hostname".into(),
        "etc/hosts".into(),
        "etc/resolv.conf".into(),
        // Mount points of the standard mounts, made when the image lacks
        // them (e.g. FROM scratch); empty, so nothing of the step's own.
        "dev/pts".into(),
        "dev/shm".into(),
        "dev/mqueue".into(),
        "dev".into(),
        "proc".into(),
        "sys".into(),
    ];
    for m in mounts {
        if let Some(t) = &m.target {
            candidates.push(t.trim_start_matches('/').to_string());
        }
    }
    for c in candidates {
        if view.exists(&c) {
            continue;
        }
        let p = upper.join(&c);
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_file() && md.len() == 0 {
            let _ = std::fs::remove_file(&p);
        } else if md.is_dir() {
            let _ = std::fs::remove_dir(&p);
        }
        // Remove now-empty parents that were created for it.
        let mut parent = Path::new(&c).parent();
        while let Some(par) = parent {
            if par.as_os_str().is_empty() || view.exists(&par.to_string_lossy()) {
                break;
            }
            if std::fs::remove_dir(upper.join(par)).is_err() {
                break;
            }
            parent = par.parent();
        }
    }
}

fn one_line(s: &str) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 200 {
        let cut: String = flat.chars().take(200).collect();
        format!("{cut}...")
    } else {
        flat
    }
}

/// Splits output chunks into lines and sends them as progress events,
/// keeping the last lines for error reports.
struct LineSplitter<'a> {
    progress: &'a Progress,
    step: &'a StepId,
    partial: [Vec<u8>; 2],
    tail: Arc<Mutex<Vec<String>>>,
}

const TAIL_LINES: usize = 20;

impl<'a> LineSplitter<'a> {
    fn new(progress: &'a Progress, step: &'a StepId, tail: Arc<Mutex<Vec<String>>>) -> Self {
        LineSplitter {
            progress,
            step,
            partial: [Vec::new(), Vec::new()],
            tail,
        }
    }

    fn push(&mut self, stream: Stream, bytes: &[u8]) {
        let i = usize::from(stream == Stream::Stderr);
        self.partial[i].extend_from_slice(bytes);
        while let Some(pos) = self.partial[i].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial[i].drain(..=pos).collect();
            self.emit(stream, &line[..line.len() - 1]);
        }
    }

    fn emit(&self, stream: Stream, line: &[u8]) {
        let text = String::from_utf8_lossy(line)
            .trim_end_matches('\r')
            .to_string();
        if let Ok(mut t) = self.tail.lock() {
            t.push(text.clone());
            if t.len() > TAIL_LINES {
                t.remove(0);
            }
        }
        self.progress
            .send(Some(self.step), EventKind::Log { stream, line: text });
    }

    fn flush(&mut self) {
        for (i, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            if !self.partial[i].is_empty() {
                let line = std::mem::take(&mut self.partial[i]);
                self.emit(stream, &line);
            }
        }
    }
}
