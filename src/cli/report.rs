//! `deepcluster report` and the report refresh of `deepcluster train --report`.

use std::path::PathBuf;

use clap::Args;
use deepcluster::data::Dataset;
use deepcluster::device::parse_device;
use deepcluster::report::{ReportOptions, write_report};
use deepcluster::train::{EpochRecord, Progress};

use super::Failure;
use super::train::load_dataset;
use super::viz::{run_config, viz_failure};

/// Options of `deepcluster report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run folder written by `deepcluster train`.
    #[arg(value_name = "RUN_DIR")]
    run: PathBuf,

    /// Layer whose top images are shown [default: the last convolution].
    #[arg(long)]
    layer: Option<String>,

    /// Filters of that layer shown, from filter 0.
    #[arg(long, default_value_t = 4)]
    filters: usize,

    /// Device: cpu, or tch, tch-cuda:N, wgpu when built with those features.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Runs `deepcluster report`.
pub fn run(args: ReportArgs) -> Result<(), Failure> {
    let device = parse_device(&args.device).map_err(Failure::bad_input)?;
    let dataset = load_dataset(&run_config(&args.run)?)?;
    let options = ReportOptions {
        layer: args.layer,
        n_filters: args.filters,
        ..ReportOptions::default()
    };
    let page = write_report(&args.run, &dataset, &options, &device).map_err(viz_failure)?;
    println!("{}", page.display());
    Ok(())
}

/// Forwards every event to `inner` and rewrites the run's report after each epoch.
pub struct ReportingProgress<'a, P: Progress> {
    /// The progress display.
    pub inner: P,
    /// The run folder.
    pub run_dir: PathBuf,
    /// The images of the run.
    pub dataset: &'a Dataset,
    /// Device for the report's forward passes.
    pub device: burn::tensor::Device,
}

impl<P: Progress> Progress for ReportingProgress<'_, P> {
    fn start(&self, phase: &str, total: u64) {
        self.inner.start(phase, total);
    }

    fn advance(&self, n: u64) {
        self.inner.advance(n);
    }

    fn finish(&self) {
        self.inner.finish();
    }

    fn epoch_finished(&self, record: &EpochRecord, total_epochs: usize) {
        self.inner.epoch_finished(record, total_epochs);
        let options = ReportOptions::default();
        // A report that fails is logged and training goes on: it is rewritten after the next
        // epoch.
        match write_report(&self.run_dir, self.dataset, &options, &self.device) {
            Ok(page) => tracing::info!("report updated: {}", page.display()),
            Err(error) => tracing::warn!("cannot update the report: {error}"),
        }
    }
}
