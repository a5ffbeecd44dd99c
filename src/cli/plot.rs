//! `ndec train --plot FILE.svg`: the loss curve and the fit, as one SVG (plotters).
//!
//! Rendered in memory, then written like every output file: complete or absent.

use super::Failure;
use crate::train::Data;
use plotters::prelude::*;
use std::path::Path;

/// Left: loss per iteration (log scale). Right: each observed column's data points and the
/// model's values at the data times.
/// `fit`: the model's times and rows (states, then outputs) at the data times.
pub fn training(path: &Path, curve: &[f64], data: &Data, fit: &Fit) -> Result<(), Failure> {
    let mut svg = String::new();
    draw(&mut svg, curve, data, fit)
        .map_err(|e| Failure::usage(format!("error: cannot draw the plot: {e}")))?;
    super::write_output(Some(&path.to_path_buf()), &svg)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;
type Fit = (Vec<f64>, Vec<Vec<f64>>);

fn draw(svg: &mut String, curve: &[f64], data: &Data, fit: &Fit) -> DrawResult {
    let root = SVGBackend::with_string(svg, (1100, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(480);
    loss_panel(&left, curve)?;
    fit_panel(&right, data, fit)?;
    root.present()?;
    Ok(())
}

fn loss_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    curve: &[f64],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let positive: Vec<f64> = curve.iter().copied().filter(|v| *v > 0.0).collect();
    let lo = positive.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = positive.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > 0.0 {
        (lo * 0.8, hi * 1.25)
    } else {
        (1e-3, 1.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption("loss", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0..curve.len().max(2), (lo..hi).log_scale())?;
    chart.configure_mesh().x_desc("iteration").draw()?;
    chart.draw_series(LineSeries::new(
        curve
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0.0)
            .map(|(i, v)| (i, *v)),
        &BLUE,
    ))?;
    if curve.len() <= 50 {
        // Few iterations (or none): mark each point so a lone one still shows.
        chart.draw_series(
            curve
                .iter()
                .enumerate()
                .filter(|(_, v)| **v > 0.0)
                .map(|(i, v)| Circle::new((i, *v), 3, BLUE.filled())),
        )?;
    }
    Ok(())
}

fn fit_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    data: &Data,
    fit: &Fit,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (times, rows) = fit;
    let (t0, t1) = (
        times.first().copied().unwrap_or(0.0),
        times.last().copied().unwrap_or(1.0),
    );
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in data.values.iter().flatten().flatten() {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    for row in rows {
        for (i, _) in &data.columns {
            let v = row[*i];
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
    }
    if !(lo.is_finite() && hi.is_finite()) || lo == hi {
        (lo, hi) = (lo.min(0.0) - 1.0, hi.max(0.0) + 1.0);
    }
    let pad = 0.05 * (hi - lo);
    let t1 = if t1 > t0 { t1 } else { t0 + 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption("fit: data (points) and model (lines)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(t0..t1, (lo - pad)..(hi + pad))?;
    chart.configure_mesh().x_desc("t").draw()?;
    for (c, (i, name)) in data.columns.iter().enumerate() {
        let colour = Palette99::pick(c).to_rgba();
        chart
            .draw_series(LineSeries::new(
                times.iter().zip(rows).map(|(t, row)| (*t, row[*i])),
                colour.stroke_width(2),
            ))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
        let points = data
            .times
            .iter()
            .zip(&data.values)
            .filter_map(|(t, row)| row[c].map(|v| (*t, v)));
        chart.draw_series(points.map(|p| Circle::new(p, 2, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
