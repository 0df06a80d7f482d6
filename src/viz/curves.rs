//! Per-epoch curves from a run's `metrics.jsonl`, one chart each.

use image::RgbImage;

use super::VizError;
use super::charts::{Line, draw_epoch_chart};
use crate::train::EpochRecord;

/// The curves that can be drawn, in the order a report shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Curve {
    /// Mean training cross-entropy.
    Loss,
    /// Final k-means objective.
    Kmeans,
    /// NMI between the assignments of consecutive epochs.
    NmiPrevious,
    /// NMI, ARI and accuracy of the clusters against the labels.
    Labels,
    /// Seconds spent in each phase.
    Seconds,
}

impl Curve {
    /// Every curve.
    pub const ALL: [Curve; 5] = [
        Curve::Loss,
        Curve::Kmeans,
        Curve::NmiPrevious,
        Curve::Labels,
        Curve::Seconds,
    ];

    /// File name stem, e.g. `nmi-previous`.
    pub fn name(self) -> &'static str {
        match self {
            Curve::Loss => "loss",
            Curve::Kmeans => "kmeans-objective",
            Curve::NmiPrevious => "nmi-previous",
            Curve::Labels => "labels",
            Curve::Seconds => "seconds",
        }
    }
}

/// A curve's title, vertical axis label and `(epoch, value)` series.
pub struct CurveChart {
    /// Title above the plot.
    pub title: &'static str,
    /// Label of the vertical axis.
    pub y_label: &'static str,
    /// One line per quantity.
    pub series: Vec<Line>,
}

/// Builds the chart of `curve`, or `None` when the records have no value for it (no labels, or
/// a single epoch for the NMI between epochs).
pub fn curve_chart(curve: Curve, records: &[EpochRecord]) -> Option<CurveChart> {
    let series = |name: &str, value: &dyn Fn(&EpochRecord) -> Option<f64>| Line {
        name: name.to_owned(),
        points: records
            .iter()
            .filter_map(|r| value(r).map(|v| (r.epoch as f64, v)))
            .collect(),
    };
    let (title, y_label, series) = match curve {
        Curve::Loss => (
            "Training loss",
            "cross-entropy",
            vec![series("loss", &|r| Some(r.loss))],
        ),
        Curve::Kmeans => (
            "k-means objective",
            "sum of squared distances",
            vec![series("objective", &|r| Some(r.kmeans_objective))],
        ),
        Curve::NmiPrevious => (
            "NMI between consecutive epochs",
            "NMI",
            vec![series("NMI(t-1, t)", &|r| r.nmi_previous)],
        ),
        Curve::Labels => (
            "Clusters against the labels",
            "score",
            vec![
                series("NMI", &|r| r.labels.as_ref().map(|m| m.nmi)),
                series("ARI", &|r| r.labels.as_ref().map(|m| m.ari)),
                series("accuracy", &|r| r.labels.as_ref().map(|m| m.accuracy)),
            ],
        ),
        Curve::Seconds => (
            "Seconds per phase",
            "seconds",
            vec![
                series("extract", &|r| Some(r.seconds.extract)),
                series("pca", &|r| Some(r.seconds.pca)),
                series("k-means", &|r| Some(r.seconds.kmeans)),
                series("train", &|r| Some(r.seconds.train)),
                series("total", &|r| Some(r.seconds.total)),
            ],
        ),
    };
    if series.iter().all(|s| s.points.is_empty()) {
        return None;
    }
    Some(CurveChart {
        title,
        y_label,
        series,
    })
}

/// Draws `curve` at `width` × `height` pixels, or returns `None` when the records have no value
/// for it.
pub fn draw_curve(
    curve: Curve,
    records: &[EpochRecord],
    width: u32,
    height: u32,
) -> Result<Option<RgbImage>, VizError> {
    let Some(chart) = curve_chart(curve, records) else {
        return Ok(None);
    };
    let image = draw_epoch_chart(chart.title, chart.y_label, &chart.series, (width, height))?;
    Ok(Some(image))
}
