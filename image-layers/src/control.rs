//! Progress reporting and cancellation for long operations.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// Progress of a layer write or apply, reported once per tar entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Entries processed so far.
    pub entries: u64,
    /// File content bytes processed so far.
    pub bytes: u64,
}

type Sink = Arc<dyn Fn(Progress) + Send + Sync>;

/// Hooks a caller passes into long operations: a progress sink and a
/// cancellation flag. The default does neither.
///
/// ```
/// use std::sync::{Arc, atomic::AtomicBool};
/// use kiln_image_layers::Control;
/// let cancel = Arc::new(AtomicBool::new(false));
/// let control = Control::default()
///     .with_cancel(Arc::clone(&cancel))
///     .with_progress(|p| eprintln!("{} entries, {} bytes", p.entries, p.bytes));
/// # let _ = control;
/// ```
#[derive(Clone, Default)]
pub struct Control {
    cancel: Option<Arc<AtomicBool>>,
    progress: Option<Sink>,
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Control {
    /// The operation stops with [`Error::Cancelled`] at the next entry
    /// after `flag` becomes true.
    pub fn with_cancel(mut self, flag: Arc<AtomicBool>) -> Control {
        self.cancel = Some(flag);
        self
    }

    /// `sink` is called after every entry (keep it cheap; throttle there).
    pub fn with_progress(mut self, sink: impl Fn(Progress) + Send + Sync + 'static) -> Control {
        self.progress = Some(Arc::new(sink));
        self
    }

    /// Reports progress, then fails if cancellation was requested.
    pub(crate) fn tick(&self, op: &'static str, progress: Progress) -> Result<()> {
        if let Some(p) = &self.progress {
            p(progress);
        }
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(Error::Cancelled { op });
        }
        Ok(())
    }
}
