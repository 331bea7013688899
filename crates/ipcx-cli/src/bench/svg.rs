//! `--svg FILE`: the results as a chart, drawn with `plotters` (its SVG backend only).
//!
//! Two panels, rows in the table's order: round-trip latency (a bar to p50, a whisker
//! to p99, dashed lines at the two floors), and one-way throughput (a bar per message
//! size, a dashed line at memcpy). Both axes are logarithmic: the rows span four
//! orders of magnitude.

use std::path::Path;

use plotters::coord::combinators::{BindKeyPoints, IntoLogRange, WithKeyPoints};
use plotters::coord::types::RangedCoordi32;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::Fallible;
use super::report::{self, Report, Row};
use super::rows::Wait;

const WIDTH: u32 = 1000;
const ROW_HEIGHT: u32 = 24;
const GROUP_HEIGHT: u32 = 34;
const HEADER: u32 = 70;
const PANEL_EXTRA: u32 = 110;

const BUSY: RGBColor = RGBColor(0xd9, 0x5f, 0x02);
const BLOCKING: RGBColor = RGBColor(0x1b, 0x6f, 0xa8);
const GRID: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);
const SIZE_COLOURS: [RGBColor; 4] = [
    RGBColor(0x66, 0xc2, 0xa5),
    RGBColor(0xfc, 0x8d, 0x62),
    RGBColor(0x8d, 0xa0, 0xcb),
    RGBColor(0xe7, 0x8a, 0xc3),
];

/// Writes the chart of `report` to `path`.
pub fn write(report: &Report, path: &Path) -> Fallible<()> {
    let latency: Vec<&Row> = report.rows.iter().filter(|r| r.latency.is_some()).collect();
    let throughput: Vec<&Row> = report
        .rows
        .iter()
        .filter(|r| r.throughput.iter().any(|t| t.throughput.is_some()))
        .collect();
    let lat_h = PANEL_EXTRA + ROW_HEIGHT * latency.len().max(1) as u32;
    let thr_h = if throughput.is_empty() {
        0
    } else {
        PANEL_EXTRA + GROUP_HEIGHT * throughput.len() as u32
    };
    let height = HEADER + lat_h + thr_h;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (header, rest) = root.split_vertically(HEADER);
        header
            .draw(&Text::new(
                format!(
                    "ipcx bench {} — {}",
                    report.ipcx_version,
                    report.machine.summary()
                ),
                (20, 18),
                ("sans-serif", 20).into_font().style(FontStyle::Bold),
            ))
            .map_err(plot_err)?;
        header
            .draw(&Text::new(
                format!("`{}`", report.command),
                (20, 46),
                ("monospace", 13)
                    .into_font()
                    .color(&RGBColor(0x55, 0x55, 0x55)),
            ))
            .map_err(plot_err)?;
        let (lat_area, thr_area) = rest.split_vertically(lat_h);
        latency_panel(report, &latency, &lat_area)?;
        if !throughput.is_empty() {
            throughput_panel(report, &throughput, &thr_area)?;
        }
        root.present().map_err(plot_err)?;
    }
    std::fs::write(path, svg)?;
    Ok(())
}

fn plot_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    format!("drawing the chart: {e}")
}

/// The height of one row on the y axis, which counts in hundredths of a row (plotters
/// labels only integer or plain float axes with key points of our choosing).
const UNIT: i32 = 100;

/// The y axis of `n` rows, labelled at each row's centre.
fn y_axis(n: usize) -> WithKeyPoints<RangedCoordi32> {
    let n = n as i32;
    (0..n * UNIT).with_key_points((0..n).map(|i| i * UNIT + UNIT / 2).collect())
}

/// The centre of row `i` of `n`: the first row at the top.
fn y_of(i: usize, n: usize) -> i32 {
    (n - 1 - i) as i32 * UNIT + UNIT / 2
}

fn name_at(rows: &[&Row], y: i32) -> String {
    let n = rows.len() as i32;
    let from_bottom = y.div_euclid(UNIT);
    if !(0..n).contains(&from_bottom) {
        return String::new();
    }
    rows[(n - 1 - from_bottom) as usize].name.to_string()
}

/// Lower and upper bounds of a log axis around `values`, widened to whole decades.
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (1.0, 10.0);
    }
    // Room below the smallest value for its bar to show, and above the largest for
    // its label.
    (
        10f64.powf((lo / 2.0).log10().floor()),
        10f64.powf((hi * 1.5).log10().ceil()),
    )
}

fn latency_panel<DB: DrawingBackend>(
    report: &Report,
    rows: &[&Row],
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Fallible<()>
where
    DB::ErrorType: 'static,
{
    let n = rows.len().max(1);
    let floors = [
        ("cache-line floor", &report.floors.cache_line, BUSY),
        ("futex floor", &report.floors.futex, BLOCKING),
    ];
    let floor_p50 = |f: &report::FloorLatency| f.latency.as_ref().map(|l| l.p50_ns as f64);
    let (lo, hi) = decades(
        rows.iter()
            .filter_map(|r| r.latency.as_ref())
            .flat_map(|l| [l.p50_ns as f64, l.p99_ns as f64])
            .chain(floors.iter().filter_map(|(_, f, _)| floor_p50(f))),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "Round-trip latency, {} B messages: bar to p50, whisker to p99 (log scale)",
                report.settings.ping_size
            ),
            ("sans-serif", 16),
        )
        .margin(12)
        .margin_right(40)
        .margin_bottom(34)
        .x_label_area_size(30)
        .y_label_area_size(120)
        .build_cartesian_2d((lo..hi).log_scale(), y_axis(n))
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .disable_y_mesh()
        .x_label_formatter(&|v| report::ns(*v as u64))
        .y_label_formatter(&|y| name_at(rows, *y))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(plot_err)?;

    for (i, row) in rows.iter().enumerate() {
        let Some(l) = &row.latency else { continue };
        let y = y_of(i, n);
        let colour = match row.wait {
            Wait::Busy => BUSY,
            Wait::Blocking => BLOCKING,
        };
        let (p50, p99) = (l.p50_ns as f64, l.p99_ns as f64);
        chart
            .draw_series([Rectangle::new(
                [(lo, y - 32), (p50, y + 32)],
                colour.mix(0.85).filled(),
            )])
            .map_err(plot_err)?;
        chart
            .draw_series([
                PathElement::new(vec![(p50, y), (p99, y)], BLACK.stroke_width(1)),
                PathElement::new(vec![(p99, y - 20), (p99, y + 20)], BLACK.stroke_width(1)),
            ])
            .map_err(plot_err)?;
        let label = match row.floor_ratio {
            Some(r) => format!("{}  ({r:.2}×)", report::ns(l.p50_ns)),
            None => report::ns(l.p50_ns),
        };
        chart
            .draw_series([Text::new(
                label,
                (p99 * 1.08, y + 25),
                ("sans-serif", 12).into_font(),
            )])
            .map_err(plot_err)?;
    }
    let mut key = vec![
        ("busy polling".to_string(), Swatch::Bar(BUSY)),
        ("blocking".to_string(), Swatch::Bar(BLOCKING)),
    ];
    for (name, floor, colour) in floors {
        let Some(x) = floor_p50(floor) else { continue };
        chart
            .draw_series([DashedPathElement::new(
                vec![(x, 0), (x, n as i32 * UNIT)],
                6,
                4,
                colour.stroke_width(2),
            )])
            .map_err(plot_err)?;
        key.push((
            format!("{name}: {}", report::ns(x as u64)),
            Swatch::Dashed(colour),
        ));
    }
    legend(area, &key)
}

fn throughput_panel<DB: DrawingBackend>(
    report: &Report,
    rows: &[&Row],
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Fallible<()>
where
    DB::ErrorType: 'static,
{
    let n = rows.len();
    let sizes = &report.settings.sizes;
    let memcpy = report.floors.memcpy_gb_per_s.map(|g| g * 1000.0);
    let (lo, hi) = decades(
        rows.iter()
            .flat_map(|r| r.throughput.iter())
            .filter_map(|t| t.throughput.as_ref().map(|t| t.mb_per_s))
            .chain(memcpy),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(
            "One-way throughput, MB/s (10^6 bytes), by message size (log scale)",
            ("sans-serif", 16),
        )
        .margin(12)
        .margin_right(40)
        .margin_bottom(34)
        .x_label_area_size(30)
        .y_label_area_size(120)
        .build_cartesian_2d((lo..hi).log_scale(), y_axis(n))
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .disable_y_mesh()
        .x_label_formatter(&|v| report::rate(*v))
        .y_label_formatter(&|y| name_at(rows, *y))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(plot_err)?;

    let band = UNIT * 8 / 10 / sizes.len().max(1) as i32;
    let mut key = Vec::new();
    for (k, &size) in sizes.iter().enumerate() {
        let colour = SIZE_COLOURS[k % SIZE_COLOURS.len()];
        let bars: Vec<Rectangle<(f64, i32)>> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                let t = row
                    .throughput
                    .iter()
                    .find(|t| t.size == size)?
                    .throughput
                    .as_ref()?;
                let top = y_of(i, n) + UNIT * 4 / 10 - band * k as i32;
                Some(Rectangle::new(
                    [(lo, top - band * 9 / 10), (t.mb_per_s, top)],
                    colour.filled(),
                ))
            })
            .collect();
        let values: Vec<Text<'_, (f64, i32), String>> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                let result = row.throughput.iter().find(|t| t.size == size)?;
                let top = y_of(i, n) + UNIT * 4 / 10 - band * k as i32;
                let font = ("sans-serif", 9).into_font();
                match (&result.throughput, result.limit) {
                    (Some(t), _) => Some(Text::new(
                        report::rate(t.mb_per_s),
                        (t.mb_per_s * 1.05, top),
                        TextStyle::from(font),
                    )),
                    (None, Some(limit)) => Some(Text::new(
                        format!("{}: n/a (limit {limit} B)", report::size(size)),
                        (lo * 1.05, top),
                        font.color(&RGBColor(0x80, 0x80, 0x80)),
                    )),
                    (None, None) => None,
                }
            })
            .collect();
        chart.draw_series(values).map_err(plot_err)?;
        chart.draw_series(bars).map_err(plot_err)?;
        key.push((report::size(size), Swatch::Bar(colour)));
    }
    if let Some(m) = memcpy {
        chart
            .draw_series([DashedPathElement::new(
                vec![(m, 0), (m, n as i32 * UNIT)],
                6,
                4,
                BLACK.stroke_width(2),
            )])
            .map_err(plot_err)?;
        key.push((
            format!(
                "memcpy floor ({}): {}",
                report::size(report.floors.memcpy_block),
                report::rate(m)
            ),
            Swatch::Dashed(BLACK),
        ));
    }
    legend(area, &key)
}

/// How a legend entry is drawn.
enum Swatch {
    Bar(RGBColor),
    Dashed(RGBColor),
}

/// Draws a one-line legend along the bottom of a panel, under its axis labels.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    key: &[(String, Swatch)],
) -> Fallible<()>
where
    DB::ErrorType: 'static,
{
    let (_, h) = area.dim_in_pixel();
    let y = h as i32 - 16;
    let mut x = 140;
    let font: TextStyle<'_> = ("sans-serif", 12).into_font().into();
    for (label, swatch) in key {
        match swatch {
            Swatch::Bar(c) => area
                .draw(&Rectangle::new([(x, y - 5), (x + 18, y + 5)], c.filled()))
                .map_err(plot_err)?,
            Swatch::Dashed(c) => area
                .draw(&DashedPathElement::new(
                    vec![(x, y), (x + 18, y)],
                    5,
                    3,
                    c.stroke_width(2),
                ))
                .map_err(plot_err)?,
        }
        area.draw(&Text::new(label.clone(), (x + 24, y - 6), font.clone()))
            .map_err(plot_err)?;
        let (w, _) = area.estimate_text_size(label, &font).map_err(plot_err)?;
        x += 24 + w as i32 + 24;
    }
    Ok(())
}
