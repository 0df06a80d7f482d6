//! Command-line parsing, logging setup and exit codes.

mod eval;
mod eval_linear;
mod eval_voc;
mod evaluate;
mod progress;
mod report;
mod train;
mod viz;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Exit code for invalid input: options, data files, configuration or checkpoints.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code for a run that failed after its input was accepted.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code after Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// DeepCluster: unsupervised training of convolutional networks by clustering their features.
#[derive(Debug, Parser)]
#[command(name = "deepcluster", version, about, long_about = None)]
struct Cli {
    /// Print only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    /// Print more detail (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Number of CPU threads [default: all cores].
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a network with DeepCluster and write a run folder.
    Train(Box<train::TrainArgs>),
    /// Evaluate learned features against the true labels.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Label the training split's clusters by majority vote and score them on the test split.
    Evaluate(evaluate::EvaluateArgs),
    /// Draw pictures of a run as PNG files.
    #[command(subcommand)]
    Viz(viz::VizCommand),
    /// Write RUN_DIR/report/index.html: configuration, epochs, curves, filters, top images,
    /// clusters and evaluation results.
    Report(report::ReportArgs),
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    init_logging(cli.quiet, cli.verbose);
    let result = match set_threads(cli.threads) {
        Err(failure) => Err(failure),
        Ok(()) => run_command(cli.command, cli.quiet),
    };
    match result {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("error: {}", error_chain(&failure.error));
            failure.exit_code
        }
    }
}

/// Largest accepted `--threads`: far above any CPU's cores, and far below the thread count at
/// which creating the pool itself fails.
const MAX_THREADS: usize = 1024;

/// Sizes the thread pool that burn's CPU kernels, k-means and PCA share.
fn set_threads(threads: Option<usize>) -> Result<(), Failure> {
    let Some(threads) = threads else {
        return Ok(());
    };
    if threads == 0 || threads > MAX_THREADS {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "invalid --threads {threads}: use at least 1 and at most {MAX_THREADS}"
        )));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|error| {
            Failure::bad_input(anyhow::anyhow!("cannot configure the thread pool: {error}"))
        })
}

fn run_command(command: Command, quiet: bool) -> Result<(), Failure> {
    match command {
        Command::Train(args) => train::run(*args, quiet),
        Command::Eval(command) => eval::run(command),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Viz(command) => viz::run(command),
        Command::Report(args) => report::run(args),
    }
}

/// An error with the exit code it maps to.
pub struct Failure {
    error: anyhow::Error,
    exit_code: i32,
}

impl Failure {
    /// Invalid input: exit code 2.
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Self {
        Self {
            error: error.into(),
            exit_code: EXIT_BAD_INPUT,
        }
    }
}

impl From<deepcluster::train::TrainError> for Failure {
    fn from(error: deepcluster::train::TrainError) -> Self {
        let exit_code = match &error {
            deepcluster::train::TrainError::Interrupted
            | deepcluster::train::TrainError::InterruptedBeforeCheckpoint => EXIT_INTERRUPTED,
            error if error.is_bad_input() => EXIT_BAD_INPUT,
            _ => EXIT_FAILURE,
        };
        Self {
            error: error.into(),
            exit_code,
        }
    }
}

/// Joins an error and its causes with `: `, leaving out each cause whose text the message
/// already contains (many errors quote their cause).
fn error_chain(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
    }
    message
}

fn init_logging(quiet: bool, verbose: u8) {
    let default_level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    // Only this crate's events at the chosen level; dependencies stay at warnings unless
    // RUST_LOG says otherwise.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,deepcluster={default_level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .init();
}
