//! The two chart shapes the run pictures need, drawn with plotters in the project's embedded
//! font: curves over epochs, and the bars of a histogram.

use image::RgbImage;
use plotters::prelude::*;

use crate::plot::{FONT_FAMILY, PALETTE, PlotError, register_font};

/// One named line of `(x, y)` points.
#[derive(Clone, Debug)]
pub struct Line {
    /// Legend entry.
    pub name: String,
    /// Points in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// Draws `lines` over integer x values (epochs) at `width` × `height` pixels, with a marker on
/// every point so that a run of one epoch still shows its value, and a legend for several lines.
pub fn draw_epoch_chart(
    title: &str,
    y_label: &str,
    lines: &[Line],
    (width, height): (u32, u32),
) -> Result<RgbImage, PlotError> {
    register_font();
    let points = || lines.iter().flat_map(|line| line.points.iter().copied());
    let x_max = points().map(|p| p.0).fold(1.0f64, f64::max);
    let (y_min, y_max) = padded_range(points().map(|p| p.1));
    let x_range = 0.5..x_max + 0.5;
    let draw_error = |error: &dyn std::fmt::Display| PlotError::Draw(format!("{title}: {error}"));

    let mut buffer = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT_FAMILY, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x_range, y_min..y_max)
            .map_err(|e| draw_error(&e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_label)
            .x_labels(x_max as usize + 1)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FONT_FAMILY, 12))
            .draw()
            .map_err(|e| draw_error(&e))?;
        for (index, line) in lines.iter().enumerate() {
            let color = PALETTE[index % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| draw_error(&e))?
                .label(line.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
            let markers = line
                .points
                .iter()
                .map(|&p| Circle::new(p, 3, color.filled()));
            chart.draw_series(markers).map_err(|e| draw_error(&e))?;
        }
        if lines.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font((FONT_FAMILY, 12))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| draw_error(&e))?;
        }
        root.present().map_err(|e| draw_error(&e))?;
    }
    Ok(RgbImage::from_raw(width, height, buffer).expect("the buffer holds width * height pixels"))
}

/// Draws one bar per entry of `counts`, labelled by the bins' lower edges `bin_starts`, at
/// `width` × `height` pixels.
pub fn draw_histogram(
    title: &str,
    x_label: &str,
    bin_starts: &[usize],
    counts: &[f64],
    (width, height): (u32, u32),
) -> Result<RgbImage, PlotError> {
    register_font();
    let top = counts.iter().copied().fold(0.0f64, f64::max).max(1.0) * 1.1;
    let n_bins = counts.len().max(1);
    let draw_error = |error: &dyn std::fmt::Display| PlotError::Draw(format!("{title}: {error}"));

    let mut buffer = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT_FAMILY, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..n_bins as f64, 0.0..top)
            .map_err(|e| draw_error(&e))?;
        let label = |x: &f64| {
            let bin = x.round() as usize;
            bin_starts
                .get(bin)
                .map_or_else(String::new, |start| start.to_string())
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_label)
            .y_desc("clusters")
            .x_labels(n_bins + 1)
            .x_label_formatter(&label)
            .label_style((FONT_FAMILY, 12))
            .draw()
            .map_err(|e| draw_error(&e))?;
        let color = PALETTE[0];
        let bars = counts.iter().enumerate().map(|(bin, &count)| {
            let left = bin as f64;
            Rectangle::new([(left + 0.05, 0.0), (left + 0.95, count)], color.filled())
        });
        chart.draw_series(bars).map_err(|e| draw_error(&e))?;
        root.present().map_err(|e| draw_error(&e))?;
    }
    Ok(RgbImage::from_raw(width, height, buffer).expect("the buffer holds width * height pixels"))
}

/// The range of `values` widened by 5% on each side, or by 0.5 around a single value.
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    let margin = if high > low {
        (high - low) * 0.05
    } else {
        0.5f64.max(low.abs() * 0.05)
    };
    (low - margin, high + margin)
}
