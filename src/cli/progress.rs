//! Progress bars for the phases of an epoch, drawn on standard error.

use std::sync::Mutex;

use deepcluster::train::{EpochRecord, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Draws one bar per phase, with an ETA, and prints one summary line per epoch.
pub struct Bars {
    current: Mutex<Option<ProgressBar>>,
    hidden: bool,
}

impl Bars {
    /// Bars are hidden with `--quiet` and when standard error is not a terminal.
    pub fn new(quiet: bool) -> Self {
        Self {
            current: Mutex::new(None),
            hidden: quiet,
        }
    }

    fn with_bar(&self, action: impl FnOnce(&mut Option<ProgressBar>)) {
        // A poisoned lock only means a bar was being drawn when a thread panicked: keep going.
        let mut guard = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        action(&mut guard);
    }
}

impl Progress for Bars {
    fn start(&self, phase: &str, total: u64) {
        let bar = if self.hidden {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden())
        } else {
            ProgressBar::new(total)
        };
        let style =
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(phase.to_owned());
        self.with_bar(|current| *current = Some(bar));
    }

    fn advance(&self, n: u64) {
        self.with_bar(|current| {
            if let Some(bar) = current {
                bar.inc(n);
            }
        });
    }

    fn finish(&self) {
        self.with_bar(|current| {
            if let Some(bar) = current.take() {
                bar.finish_and_clear();
            }
        });
    }

    fn epoch_finished(&self, record: &EpochRecord, total_epochs: usize) {
        let labels = record
            .labels
            .as_ref()
            .map(|m| format!(" nmi_labels {:.3} acc {:.3}", m.nmi, m.accuracy))
            .unwrap_or_default();
        let previous = record
            .nmi_previous
            .map(|v| format!(" nmi_prev {v:.3}"))
            .unwrap_or_default();
        let s = &record.seconds;
        tracing::info!(
            "epoch {}/{total_epochs} loss {:.4} kmeans {:.1}{previous}{labels} | {:.0}s (extract {:.0}s, pca {:.1}s, kmeans {:.1}s, train {:.0}s)",
            record.epoch,
            record.loss,
            record.kmeans_objective,
            s.total,
            s.extract,
            s.pca,
            s.kmeans,
            s.train,
        );
    }
}
