//! A run's pictures and numbers gathered in one HTML page, `RUN_DIR/report/index.html`.
//!
//! The page and every picture it shows sit in the `report` folder and the page links only to
//! files in it, with no script, style sheet or font from elsewhere, so the folder opens offline
//! and can be copied as a whole.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::data::Dataset;
use crate::eval::{self, LoadedModel};
use crate::train::checkpoint;
use crate::train::record::{assignment_path, read_assignments, read_records, write_atomically};
use crate::train::run::CONFIG_FILE;
use crate::train::{EpochRecord, TrainError};
use crate::viz::clusters::{draw_cluster_samples, draw_size_histogram};
use crate::viz::curves::{Curve, draw_curve};
use crate::viz::filters::draw_filters;
use crate::viz::top_images::{draw_top_images, find_top_images};
use crate::viz::{VizError, layer_channels, save_png};

/// Folder of the report inside a run folder.
pub const REPORT_DIR: &str = "report";
/// Folder in which a new report is built before it replaces [`REPORT_DIR`].
const REPORT_STAGING_DIR: &str = "report.partial";
/// Name the previous report takes while the new one is moved into place.
const REPORT_PREVIOUS_DIR: &str = "report.previous";

/// What the report shows beyond the curves and the table.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// Layer whose top images are shown [default: the last convolution].
    pub layer: Option<String>,
    /// Number of filters of that layer shown, from filter 0.
    pub n_filters: usize,
    /// Top images per filter.
    pub n_top: usize,
    /// Largest clusters shown.
    pub n_clusters: usize,
    /// Images shown per cluster.
    pub per_cluster: usize,
    /// Images per batch for the forward passes.
    pub batch_size: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            layer: None,
            n_filters: 4,
            n_top: 9,
            n_clusters: 10,
            per_cluster: 10,
            batch_size: 256,
        }
    }
}

/// One picture of the page.
struct Figure {
    file: String,
    caption: String,
}

/// Writes `RUN_DIR/report/index.html` and its pictures for the run folder `run_dir`, whose
/// images are `dataset`, and returns the page's path. Pictures of the network need a
/// checkpoint and are left out without one.
pub fn write_report(
    run_dir: &Path,
    dataset: &Dataset,
    options: &ReportOptions,
    device: &Device,
) -> Result<PathBuf, VizError> {
    let records = read_records(run_dir)?;
    let Some(last) = records.last() else {
        return Err(VizError::NoRecords {
            path: run_dir.to_owned(),
        });
    };
    // The page is built in a staging folder that replaces `report/` only once complete, so a
    // failure leaves the previous report as it was and no partial one.
    let staging = run_dir.join(REPORT_STAGING_DIR);
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| TrainError::Write { path, source }
    };
    remove_if_present(&staging).map_err(write_error(&staging))?;
    fs::create_dir_all(&staging).map_err(write_error(&staging))?;
    let pages = Pages {
        run_dir,
        records: &records,
        last,
        dataset,
        options,
        device,
    };
    if let Err(error) = pages.write(&staging) {
        // Best effort: the error that stopped the report is the one to show.
        let _ = fs::remove_dir_all(&staging);
        return Err(error);
    }

    let out_dir = run_dir.join(REPORT_DIR);
    let previous = run_dir.join(REPORT_PREVIOUS_DIR);
    remove_if_present(&previous).map_err(write_error(&previous))?;
    if out_dir.symlink_metadata().is_ok() {
        fs::rename(&out_dir, &previous).map_err(write_error(&out_dir))?;
    }
    fs::rename(&staging, &out_dir).map_err(write_error(&out_dir))?;
    remove_if_present(&previous).map_err(write_error(&previous))?;
    Ok(out_dir.join("index.html"))
}

/// Removes the file or folder at `path`, if there is one.
fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match path.symlink_metadata() {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
        Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    }
}

/// The inputs of one report page.
struct Pages<'a> {
    run_dir: &'a Path,
    records: &'a [EpochRecord],
    last: &'a EpochRecord,
    dataset: &'a Dataset,
    options: &'a ReportOptions,
    device: &'a Device,
}

impl Pages<'_> {
    /// Writes the page and its pictures into `out_dir`.
    fn write(&self, out_dir: &Path) -> Result<(), VizError> {
        let &Pages {
            run_dir,
            records,
            last,
            dataset,
            options,
            device,
        } = self;
        let mut html = String::new();
        let title = format!("DeepCluster run {}", run_dir.display());
        write_header(&mut html, &title, last, records.len());
        write_config(&mut html, run_dir);
        write_table(&mut html, records);

        let mut curves = Vec::new();
        for curve in Curve::ALL {
            if let Some(image) = draw_curve(curve, records, 720, 400)? {
                let file = format!("{}.png", curve.name());
                save_png(&image, &out_dir.join(&file))?;
                curves.push(Figure {
                    file,
                    caption: curve.name().replace('-', " "),
                });
            }
        }
        write_section(&mut html, "Curves", &curves);

        let has_checkpoint = !checkpoint::list_checkpoints(run_dir)?.is_empty();
        if has_checkpoint {
            let loaded = eval::load_run(run_dir, device)?;
            let figures = network_figures(&loaded, dataset, options, out_dir, device)?;
            write_section(&mut html, "Network", &figures);
        } else {
            html.push_str("<h2>Network</h2>\n<p>No checkpoint in the run folder yet.</p>\n");
        }

        let figures = cluster_figures(run_dir, last, dataset, options, out_dir)?;
        write_section(
            &mut html,
            &format!("Clusters of epoch {}", last.epoch),
            &figures,
        );
        write_evaluations(&mut html, run_dir);
        html.push_str("</body>\n</html>\n");

        write_atomically(&out_dir.join("index.html"), html.as_bytes())?;
        Ok(())
    }
}

fn network_figures(
    loaded: &LoadedModel,
    dataset: &Dataset,
    options: &ReportOptions,
    out_dir: &Path,
    device: &Device,
) -> Result<Vec<Figure>, VizError> {
    let mut figures = Vec::new();
    save_png(
        &draw_filters(&loaded.model, &loaded.config, 6, 16)?,
        &out_dir.join("filters.png"),
    )?;
    figures.push(Figure {
        file: "filters.png".to_owned(),
        caption: "first convolution's filters".to_owned(),
    });

    let layer = options
        .layer
        .clone()
        .or_else(|| loaded.model.backbone.layer_names().last().cloned())
        .unwrap_or_default();
    let n_channels = layer_channels(
        &loaded.model.backbone,
        &layer,
        dataset.height,
        dataset.width,
        dataset.channels,
    )?;
    let filters: Vec<usize> = (0..options.n_filters.min(n_channels)).collect();
    let tops = find_top_images(
        loaded,
        dataset,
        &layer,
        &filters,
        options.n_top,
        options.batch_size,
        device,
    )?;
    for top in &tops {
        let file = format!("top-{layer}-{}.png", top.filter);
        save_png(
            &draw_top_images(dataset, &layer, top, 3, 3),
            &out_dir.join(&file),
        )?;
        figures.push(Figure {
            file,
            caption: format!(
                "{layer} filter {}: top {} images",
                top.filter,
                top.images.len()
            ),
        });
    }
    Ok(figures)
}

fn cluster_figures(
    run_dir: &Path,
    last: &EpochRecord,
    dataset: &Dataset,
    options: &ReportOptions,
    out_dir: &Path,
) -> Result<Vec<Figure>, VizError> {
    let path = assignment_path(run_dir, last.epoch);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let assignments = read_assignments(&path)?;
    let samples = draw_cluster_samples(
        dataset,
        &assignments,
        options.n_clusters,
        options.per_cluster,
        2,
        last.epoch as u64,
    )?;
    save_png(&samples, &out_dir.join("clusters.png"))?;
    let n_clusters = last.cluster_sizes.mean.recip() * assignments.len() as f64;
    let histogram = draw_size_histogram(&assignments, n_clusters.round() as usize, 20, (720, 400))?;
    save_png(&histogram, &out_dir.join("cluster-sizes.png"))?;
    Ok(vec![
        Figure {
            file: "clusters.png".to_owned(),
            caption: "sample images of the largest clusters".to_owned(),
        },
        Figure {
            file: "cluster-sizes.png".to_owned(),
            caption: "histogram of cluster sizes".to_owned(),
        },
    ])
}

fn write_header(html: &mut String, title: &str, last: &EpochRecord, n_epochs: usize) {
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n\
         <style>\nbody {{ font-family: sans-serif; margin: 2em; color: #222; }}\n\
         table {{ border-collapse: collapse; }}\n\
         td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }}\n\
         figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }}\n\
         img {{ max-width: 100%; image-rendering: pixelated; }}\n\
         pre {{ background: #f4f4f4; padding: 0.6em; overflow-x: auto; }}\n</style>\n</head>\n<body>\n\
         <h1>{}</h1>\n<p>{} epochs; last epoch {}: loss {:.4}, k-means objective {:.1}.</p>\n",
        escape(title),
        escape(title),
        n_epochs,
        last.epoch,
        last.loss,
        last.kmeans_objective,
    );
}

fn write_config(html: &mut String, run_dir: &Path) {
    html.push_str("<h2>Configuration</h2>\n");
    match fs::read_to_string(run_dir.join(CONFIG_FILE)) {
        Ok(text) => {
            let _ = writeln!(html, "<pre>{}</pre>", escape(&text));
        }
        Err(error) => {
            let _ = writeln!(
                html,
                "<p>Cannot read {CONFIG_FILE}: {}</p>",
                escape(&error.to_string())
            );
        }
    }
}

fn write_table(html: &mut String, records: &[EpochRecord]) {
    html.push_str(
        "<h2>Epochs</h2>\n<table>\n<tr><th>epoch</th><th>loss</th><th>k-means objective</th>\
         <th>splits</th><th>NMI t-1</th><th>NMI labels</th><th>ARI</th><th>accuracy</th>\
         <th>empty clusters</th><th>seconds</th></tr>\n",
    );
    let optional = |value: Option<f64>| value.map_or_else(|| "–".to_owned(), |v| format!("{v:.3}"));
    for r in records {
        let labels = r.labels.as_ref();
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{:.4}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td></tr>",
            r.epoch,
            r.loss,
            r.kmeans_objective,
            r.kmeans_splits,
            optional(r.nmi_previous),
            optional(labels.map(|m| m.nmi)),
            optional(labels.map(|m| m.ari)),
            optional(labels.map(|m| m.accuracy)),
            r.cluster_sizes.empty,
            r.seconds.total,
        );
    }
    html.push_str("</table>\n");
}

fn write_section(html: &mut String, heading: &str, figures: &[Figure]) {
    let _ = writeln!(html, "<h2>{}</h2>", escape(heading));
    for figure in figures {
        let _ = writeln!(
            html,
            "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
            escape(&figure.file),
            escape(&figure.caption),
            escape(&figure.caption),
        );
    }
}

/// Shows each JSON file of `RUN_DIR/eval/`, the results of `deepcluster eval`, as it is.
fn write_evaluations(html: &mut String, run_dir: &Path) {
    let Ok(entries) = fs::read_dir(run_dir.join("eval")) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return;
    }
    html.push_str("<h2>Evaluations</h2>\n");
    for path in files {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = writeln!(
            html,
            "<h3>{}</h3>\n<pre>{}</pre>",
            escape(&name),
            escape(&text)
        );
    }
}

/// Escapes the characters that HTML gives a meaning to.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}
