//! Charts drawn with `plotters` into in-memory RGB images (bar charts, grouped bar charts, heat
//! maps and line charts), text labels on images, and PNG output.
//!
//! Text uses DejaVu Sans, embedded from `assets/fonts/` and registered with plotters under the
//! family name `sans-serif`, so charts have text on a machine without any font installed.

use std::path::{Path, PathBuf};
use std::sync::Once;

use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// DejaVu Sans 2.37 (Bitstream Vera licence, see `assets/fonts/LICENSE`).
const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
/// Family name under which [`FONT`] is registered.
pub const FONT_FAMILY: &str = "sans-serif";

/// Colours of successive series, from the Tableau 10 palette.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Why a chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Drawing failed (plotters' message).
    #[error("cannot draw the chart: {0}")]
    Draw(String),
    /// The input has inconsistent lengths.
    #[error("cannot draw the chart: {0}")]
    InvalidInput(String),
    /// Encoding or writing a PNG failed.
    #[error("cannot write `{path}`: {message}")]
    Write {
        /// The PNG being written.
        path: PathBuf,
        /// The encoder's or file system's message.
        message: String,
    },
}

/// Registers the embedded font with plotters; later calls do nothing.
pub fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The font is a constant of the binary, so a failure here is a bug.
        if plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT).is_err() {
            panic!("the embedded DejaVu Sans font is invalid");
        }
    });
}

/// Bars of one series in a [`draw_grouped_bar_chart`]: one value per category.
#[derive(Clone, Debug)]
pub struct BarSeries {
    /// Legend entry.
    pub name: String,
    /// One value per category.
    pub values: Vec<f64>,
}

/// Draws `values` as adjacent bars, one per bin, at `width` × `height` pixels.
pub fn draw_bar_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    values: &[f64],
    width: u32,
    height: u32,
) -> Result<RgbImage, PlotError> {
    let top = values.iter().copied().fold(0.0f64, f64::max).max(1.0) * 1.05;
    render((width, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT_FAMILY, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..values.len().max(1) as f64, 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .label_style((FONT_FAMILY, 12))
            .draw()?;
        let color = PALETTE[0];
        let bars = values.iter().enumerate().map(|(bin, &value)| {
            let left = bin as f64;
            Rectangle::new([(left, 0.0), (left + 0.9, value)], color.filled())
        });
        chart.draw_series(bars)?;
        Ok(())
    })
}

/// Draws a grouped bar chart: one group per category, one bar per series in each group, with
/// the value printed above each bar. A NaN value draws no bar. `y_max` fixes the top of the axis (for example 1.0 for
/// accuracies); `None` uses the largest value plus a margin.
pub fn draw_grouped_bar_chart(
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[BarSeries],
    y_max: Option<f64>,
) -> Result<RgbImage, PlotError> {
    if let Some(bad) = series.iter().find(|s| s.values.len() != categories.len()) {
        return Err(PlotError::InvalidInput(format!(
            "series `{}` has {} values for {} categories",
            bad.name,
            bad.values.len(),
            categories.len()
        )));
    }
    let largest = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0f64, f64::max);
    let top = y_max.unwrap_or(largest * 1.15).max(f64::MIN_POSITIVE);
    let width = (160 + 110 * categories.len() as u32).max(480);
    render((width, 420), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT_FAMILY, 20))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..categories.len().max(1) as f64, 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(y_label)
            .label_style((FONT_FAMILY, 13))
            .draw()?;

        let bar_width = 0.8 / series.len().max(1) as f64;
        let value_style = TextStyle::from((FONT_FAMILY, 11).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        for (index, one) in series.iter().enumerate() {
            let color = PALETTE[index % PALETTE.len()];
            let left = |category: usize| category as f64 + 0.1 + index as f64 * bar_width;
            let present = || {
                one.values
                    .iter()
                    .copied()
                    .enumerate()
                    .filter(|(_, value)| !value.is_nan())
            };
            let bars = present().map(|(category, value)| {
                Rectangle::new(
                    [(left(category), 0.0), (left(category) + bar_width, value)],
                    color.filled(),
                )
            });
            chart
                .draw_series(bars)?
                .label(one.name.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
            let numbers = present().map(|(category, value)| {
                let center = left(category) + bar_width / 2.0;
                Text::new(format!("{value:.2}"), (center, value), value_style.clone())
            });
            chart.draw_series(numbers)?;
        }
        let label_style =
            TextStyle::from((FONT_FAMILY, 14).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (category, name) in categories.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(category as f64 + 0.5, 0.0));
            root.draw(&Text::new(name.clone(), (x, y + 6), label_style.clone()))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT_FAMILY, 13))
            .draw()?;
        Ok(())
    })
}

/// Draws a heat map of `values` (`[row_labels.len(), column_labels.len()]`, row-major), each
/// cell shaded from white (0) to dark blue (the largest value) and labelled with its value
/// formatted by `format_value`. `axis_labels` names the x (columns) and y (rows) axes.
pub fn draw_heat_map(
    title: &str,
    axis_labels: (&str, &str),
    row_labels: &[String],
    column_labels: &[String],
    values: &[f64],
    format_value: &dyn Fn(f64) -> String,
) -> Result<RgbImage, PlotError> {
    let (n_rows, n_columns) = (row_labels.len(), column_labels.len());
    if values.len() != n_rows * n_columns || values.is_empty() {
        return Err(PlotError::InvalidInput(format!(
            "{} values for a {n_rows}x{n_columns} heat map",
            values.len()
        )));
    }
    let largest = values.iter().copied().fold(0.0f64, f64::max);
    let shade_of = |value: f64| if largest > 0.0 { value / largest } else { 0.0 };
    let cell = 44u32;
    let size = (240 + cell * n_columns as u32, 130 + cell * n_rows as u32);
    render(size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT_FAMILY, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(140)
            .build_cartesian_2d(0.0..n_columns as f64, n_rows as f64..0.0)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_desc(axis_labels.0)
            .y_desc(axis_labels.1)
            .label_style((FONT_FAMILY, 13))
            .draw()?;

        let position = |index: usize| ((index % n_columns) as f64, (index / n_columns) as f64);
        let cells = values.iter().enumerate().map(|(index, &value)| {
            let (column, row) = position(index);
            let color = shaded_blue(shade_of(value));
            Rectangle::new([(column, row), (column + 1.0, row + 1.0)], color.filled())
        });
        chart.draw_series(cells)?;
        for (index, &value) in values.iter().enumerate() {
            let (column, row) = position(index);
            let color = if shade_of(value) > 0.5 { WHITE } else { BLACK };
            let style = TextStyle::from((FONT_FAMILY, 11).into_font())
                .color(&color)
                .pos(Pos::new(HPos::Center, VPos::Center));
            let (x, y) = chart.backend_coord(&(column + 0.5, row + 0.5));
            root.draw(&Text::new(format_value(value), (x, y), style))?;
        }

        let small = TextStyle::from((FONT_FAMILY, 12).into_font());
        for (column, name) in column_labels.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(column as f64 + 0.5, n_rows as f64));
            let style = small.clone().pos(Pos::new(HPos::Center, VPos::Top));
            root.draw(&Text::new(name.clone(), (x, y + 4), style))?;
        }
        for (row, name) in row_labels.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(0.0, row as f64 + 0.5));
            let style = small.clone().pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(name.clone(), (x - 4, y), style))?;
        }
        Ok(())
    })
}

/// One line of a [`LineChart`].
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// `(x, y)` points in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart: titles and the lines to draw.
#[derive(Clone, Debug)]
pub struct LineChart {
    /// Caption above the chart.
    pub title: String,
    /// Name of the x axis.
    pub x_label: String,
    /// Name of the y axis.
    pub y_label: String,
    /// The lines, coloured in [`PALETTE`] order.
    pub series: Vec<Series>,
}

/// Draws `chart` at `width` × `height` pixels, with a legend when it has several lines.
pub fn draw_line_chart(chart: &LineChart, width: u32, height: u32) -> Result<RgbImage, PlotError> {
    let points = || chart.series.iter().flat_map(|s| s.points.iter().copied());
    let (x_min, x_max) = bounds(points().map(|(x, _)| x));
    let (y_min, y_max) = bounds(points().map(|(_, y)| y));
    render((width, height), |root| {
        let mut context = ChartBuilder::on(root)
            .caption(&chart.title, (FONT_FAMILY, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_min..x_max, y_min..y_max)?;
        context
            .configure_mesh()
            .x_desc(&chart.x_label)
            .y_desc(&chart.y_label)
            .label_style((FONT_FAMILY, 12))
            .draw()?;
        for (index, one) in chart.series.iter().enumerate() {
            let color = PALETTE[index % PALETTE.len()];
            let line = LineSeries::new(one.points.iter().copied(), color.stroke_width(2));
            context
                .draw_series(line)?
                .label(one.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        if chart.series.len() > 1 {
            context
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font((FONT_FAMILY, 12))
                .draw()?;
        }
        Ok(())
    })
}

/// Draws `text` in `color` on `canvas` with its top-left corner at `(x, y)`, `size` pixels
/// high. Text beyond the canvas is clipped.
pub fn draw_label(
    canvas: &mut RgbImage,
    x: i32,
    y: i32,
    size: f32,
    text: &str,
    color: image::Rgb<u8>,
) {
    register_font();
    let dimensions = canvas.dimensions();
    let root = BitMapBackend::with_buffer(canvas.as_mut(), dimensions).into_drawing_area();
    let [red, green, blue] = color.0;
    let color = RGBColor(red, green, blue);
    let style = TextStyle::from((FONT_FAMILY, f64::from(size)).into_font()).color(&color);
    // Text on an in-memory buffer fails only without a font, which `register_font` rules out.
    let _ = root.draw(&Text::new(text.to_owned(), (x, y), style));
    let _ = root.present();
}

/// Returns the width and height in pixels of `text` drawn `size` pixels high.
pub fn label_size(size: f32, text: &str) -> (u32, u32) {
    register_font();
    (FONT_FAMILY, f64::from(size))
        .into_font()
        .box_size(text)
        .unwrap_or((0, 0))
}

/// Writes `image` to `path` as a PNG, through a temporary file renamed into place, creating
/// the parent folder if needed.
pub fn save_png(image: &RgbImage, path: &Path) -> Result<(), PlotError> {
    let write_error = |message: String| PlotError::Write {
        path: path.to_owned(),
        message,
    };
    let mut png = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(|error| write_error(error.to_string()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|error| write_error(error.to_string()))?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, png.into_inner()).map_err(|error| write_error(error.to_string()))?;
    std::fs::rename(&temporary, path).map_err(|error| write_error(error.to_string()))
}

type DrawResult =
    Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

/// Draws on a white canvas of `size`.
fn render(
    (width, height): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult,
) -> Result<RgbImage, PlotError> {
    register_font();
    let mut canvas = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    {
        let root = BitMapBackend::with_buffer(canvas.as_mut(), (width, height)).into_drawing_area();
        draw(&root)
            .and_then(|()| root.present())
            .map_err(|error| PlotError::Draw(error.to_string()))?;
    }
    Ok(canvas)
}

/// White for 0, dark blue for 1.
fn shaded_blue(shade: f64) -> RGBColor {
    let shade = shade.clamp(0.0, 1.0);
    let mix = |light: f64, dark: f64| (light + (dark - light) * shade).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

/// Returns the range of `values` widened by 5% on each side, or `0..1` without values.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), v| {
        (low.min(v), high.max(v))
    });
    if !low.is_finite() || !high.is_finite() {
        return (0.0, 1.0);
    }
    let margin = ((high - low) * 0.05).max(1e-9);
    (low - margin, high + margin)
}
