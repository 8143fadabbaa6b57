//! The indicators as an SVG bar chart.
//!
//! Each category gets a pair of bars: *programmed* as a white bar with a black
//! outline, *sent* as a solid dark bar, each with its value on top, so the
//! chart reads the same printed in black and white. Where the programme gives
//! no figure for a category (`programmed: null`) only the sent bar is drawn.
//!
//! What a category is depends on the grouping:
//! - grouped by month and activity: one panel per activity (in the programme's
//!   order), each with its own scale and one pair of bars per month. Activities
//!   count different things (messages, calls, workshops), so summing them per
//!   month would add apples to oranges, and one shared scale would flatten the
//!   small ones (2 workshops next to 95,000 calls);
//! - grouped by month (without activity): one pair per month, summed over the
//!   other keys;
//! - grouped by activity (without month): one pair per activity, summed over
//!   the other keys;
//! - otherwise: one pair per row.
//!
//! A summed programmed figure exists only if every part has one.

use std::collections::BTreeMap;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::indicators::{GroupKey, Report};
use super::{thousands, title, ExportError};
use crate::domain::Language;

const FONT: &str = "sans-serif";
/// Horizontal room for one category (its two bars and the gaps).
const SLOT: u32 = 96;
const HEADER: u32 = 84;
const PLOT: u32 = 300;
const Y_LABELS: u32 = 84;
const SENT_FILL: RGBColor = RGBColor(45, 45, 45);

#[derive(Debug, Clone, PartialEq)]
struct Bar {
    label: String,
    programmed: Option<i64>,
    sent: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct Panel {
    caption: Option<String>,
    bars: Vec<Bar>,
}

/// Sums rows into bars, keeping the order categories are first met in.
#[derive(Default)]
struct Sums {
    order: Vec<Option<String>>,
    bars: BTreeMap<Option<String>, (Option<i64>, i64)>,
}

impl Sums {
    fn add(&mut self, category: Option<String>, programmed: Option<i64>, sent: i64) {
        if !self.bars.contains_key(&category) {
            self.order.push(category.clone());
        }
        let entry = self.bars.entry(category).or_insert((Some(0), 0));
        entry.0 = entry.0.zip(programmed).map(|(a, b)| a + b);
        entry.1 += sent;
    }

    fn into_bars(self, sorted: bool) -> Vec<Bar> {
        let mut order = self.order;
        if sorted {
            order.sort();
        }
        order
            .into_iter()
            .map(|category| {
                let (programmed, sent) = self.bars[&category];
                Bar {
                    label: label(category.as_deref()),
                    programmed,
                    sent,
                }
            })
            .collect()
    }
}

/// A value as shown in the chart: `—` for none, control characters (which
/// XML cannot carry) as spaces.
fn label(value: Option<&str>) -> String {
    match value {
        Some(v) => v
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
        None => "—".into(),
    }
}

fn panels(report: &Report) -> Vec<Panel> {
    let position = |key: GroupKey| report.keys.iter().position(|k| *k == key);
    let (month, activity) = (position(GroupKey::Month), position(GroupKey::Activity));
    match (month, activity) {
        (Some(m), Some(a)) => {
            let mut order: Vec<Option<String>> = Vec::new();
            let mut per_activity: BTreeMap<Option<String>, (Option<String>, Sums)> =
                BTreeMap::new();
            for row in &report.rows {
                let code = row.key[a].clone();
                if !per_activity.contains_key(&code) {
                    order.push(code.clone());
                }
                let (name, sums) = per_activity
                    .entry(code)
                    .or_insert_with(|| (row.activity_name.clone(), Sums::default()));
                if name.is_none() {
                    name.clone_from(&row.activity_name);
                }
                sums.add(
                    row.key[m].clone(),
                    row.measures.programmed,
                    row.measures.sent,
                );
            }
            order
                .into_iter()
                .map(|code| {
                    let (name, sums) = per_activity.remove(&code).unwrap_or_default();
                    let caption = match name {
                        Some(name) if !name.is_empty() => {
                            format!("{} — {}", label(code.as_deref()), label(Some(&name)))
                        }
                        _ => label(code.as_deref()),
                    };
                    Panel {
                        caption: Some(caption),
                        bars: sums.into_bars(true),
                    }
                })
                .collect()
        }
        (Some(k), None) | (None, Some(k)) => {
            let mut sums = Sums::default();
            for row in &report.rows {
                sums.add(
                    row.key[k].clone(),
                    row.measures.programmed,
                    row.measures.sent,
                );
            }
            vec![Panel {
                caption: None,
                bars: sums.into_bars(month.is_some()),
            }]
        }
        (None, None) => vec![Panel {
            caption: None,
            bars: report
                .rows
                .iter()
                .map(|row| Bar {
                    label: row
                        .key
                        .iter()
                        .map(|v| label(v.as_deref()))
                        .collect::<Vec<_>>()
                        .join(" · "),
                    programmed: row.measures.programmed,
                    sent: row.measures.sent,
                })
                .collect(),
        }],
    }
}

/// What the x axis shows, as a title in `lang`.
fn x_title(report: &Report, lang: Language) -> String {
    let has = |k: GroupKey| report.keys.contains(&k);
    let titles: Vec<&str> = if has(GroupKey::Month) {
        vec![title("month", lang)]
    } else if has(GroupKey::Activity) {
        vec![title("activity", lang)]
    } else {
        report.keys.iter().map(|k| title(k.name(), lang)).collect()
    };
    titles.join(" · ")
}

fn chart_title(report: &Report, lang: Language) -> String {
    let has = |k: GroupKey| report.keys.contains(&k);
    let by: Vec<String> = if has(GroupKey::Month) && has(GroupKey::Activity) {
        vec![
            title("activity", lang).to_lowercase(),
            title("month", lang).to_lowercase(),
        ]
    } else if has(GroupKey::Month) {
        vec![title("month", lang).to_lowercase()]
    } else if has(GroupKey::Activity) {
        vec![title("activity", lang).to_lowercase()]
    } else {
        report
            .keys
            .iter()
            .map(|k| title(k.name(), lang).to_lowercase())
            .collect()
    };
    match lang {
        Language::Es => format!("Enviados frente a programados, por {}", by.join(" y ")),
        Language::En => format!("Sent against programmed, by {}", by.join(" and ")),
    }
}

/// The period line, when the report has one.
pub(super) fn period(report: &Report, lang: Language) -> String {
    let (label, all, since, until) = match lang {
        Language::Es => ("Periodo", "todo el registro", "desde", "hasta"),
        Language::En => ("Period", "all records", "from", "until"),
    };
    match (report.from, report.to) {
        (Some(f), Some(t)) => format!("{label}: {f} – {t}"),
        (Some(f), None) => format!("{label}: {since} {f}"),
        (None, Some(t)) => format!("{label}: {until} {t}"),
        (None, None) => format!("{label}: {all}"),
    }
}

/// A rough width in pixels of `text` at `size` (no font metrics in SVG; the
/// SVG backend writes `size / 1.24` as the font size).
fn text_width(text: &str, size: u32) -> u32 {
    (text.chars().count() as f64 * size as f64 / 1.24 * 0.58).ceil() as u32
}

/// Bars of sent against programmed, per activity (and per month when grouped by month).
pub fn to_svg(report: &Report, lang: Language) -> Result<String, ExportError> {
    let panels = panels(report);
    let slots = panels
        .iter()
        .map(|p| p.bars.len())
        .max()
        .unwrap_or(0)
        .max(1) as u32;
    let width = (Y_LABELS + 60 + slots * SLOT).clamp(760, 6000);
    let longest = panels
        .iter()
        .flat_map(|p| &p.bars)
        .map(|b| text_width(&b.label, 12))
        .max()
        .unwrap_or(0);
    let rotate_labels = longest > SLOT - 8;
    let label_area = if rotate_labels {
        (longest + 16).min(180)
    } else {
        28
    } + 30;
    let panel_height = |p: &Panel| PLOT + label_area + if p.caption.is_some() { 30 } else { 0 };
    let height = HEADER + panels.iter().map(panel_height).sum::<u32>() + 12;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        draw(&root, report, lang, &panels, label_area, rotate_labels)
            .map_err(|e| ExportError(format!("cannot draw the chart: {e}")))?;
        root.present()
            .map_err(|e| ExportError(format!("cannot draw the chart: {e}")))?;
    }
    Ok(svg)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw(
    root: &Area,
    report: &Report,
    lang: Language,
    panels: &[Panel],
    label_area: u32,
    rotate_labels: bool,
) -> DrawResult {
    root.fill(&WHITE)?;
    let black = |size: u32| (FONT, size).into_font().color(&BLACK);
    let (width, _) = root.dim_in_pixel();

    // Title, legend and period.
    root.draw(&Text::new(
        chart_title(report, lang),
        (20, 16),
        (FONT, 22)
            .into_font()
            .style(FontStyle::Bold)
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Top)),
    ))?;
    let (programmed_label, sent_label) = (title("programmed", lang), title("sent", lang));
    let mut x = 20;
    let y = 58;
    root.draw(&Rectangle::new(
        [(x, y - 7), (x + 18, y + 7)],
        WHITE.filled(),
    ))?;
    root.draw(&Rectangle::new(
        [(x, y - 7), (x + 18, y + 7)],
        BLACK.stroke_width(1),
    ))?;
    root.draw(&Text::new(
        programmed_label,
        (x + 26, y),
        black(14).pos(Pos::new(HPos::Left, VPos::Center)),
    ))?;
    x += 26 + text_width(programmed_label, 14) as i32 + 28;
    root.draw(&Rectangle::new(
        [(x, y - 7), (x + 18, y + 7)],
        SENT_FILL.filled(),
    ))?;
    root.draw(&Text::new(
        sent_label,
        (x + 26, y),
        black(14).pos(Pos::new(HPos::Left, VPos::Center)),
    ))?;
    root.draw(&Text::new(
        period(report, lang),
        (width as i32 - 20, y),
        black(13).pos(Pos::new(HPos::Right, VPos::Center)),
    ))?;

    let mut top = HEADER;
    for panel in panels {
        let height = PLOT + label_area + if panel.caption.is_some() { 30 } else { 0 };
        let area = root.clone().shrink((0, top), (width, height));
        draw_panel(root, &area, report, lang, panel, label_area, rotate_labels)?;
        top += height;
    }
    Ok(())
}

fn draw_panel(
    root: &Area,
    area: &Area,
    report: &Report,
    lang: Language,
    panel: &Panel,
    label_area: u32,
    rotate_labels: bool,
) -> DrawResult {
    let black = |size: u32| (FONT, size).into_font().color(&BLACK);
    let n = panel.bars.len();
    let highest = panel
        .bars
        .iter()
        .map(|b| b.sent.max(b.programmed.unwrap_or(0)))
        .max()
        .unwrap_or(0);
    let bar_width = (SLOT as f64 * 0.36) as u32;
    let longest_value = panel
        .bars
        .iter()
        .flat_map(|b| [Some(b.sent), b.programmed])
        .flatten()
        .map(|v| text_width(&thousands(v), 12))
        .max()
        .unwrap_or(0);
    let rotate_values = longest_value > bar_width + 2;
    // Room above the highest bar for its value.
    let headroom = if rotate_values { 1.35 } else { 1.15 };
    let y_max = ((highest as f64 * headroom).ceil() as i64)
        .max(highest + 1)
        .max(4);

    let mut builder = ChartBuilder::on(area);
    builder
        .margin_left(12)
        .margin_right(24)
        .margin_top(8)
        .x_label_area_size(label_area)
        .y_label_area_size(Y_LABELS);
    if let Some(caption) = &panel.caption {
        builder.caption(
            caption,
            (FONT, 17).into_font().style(FontStyle::Bold).color(&BLACK),
        );
    }
    let mut chart = builder.build_cartesian_2d(0f64..n.max(1) as f64, 0i64..y_max)?;
    let y_desc = match lang {
        Language::Es => "Cantidad",
        Language::En => "Count",
    };
    let y_format = |v: &i64| thousands(*v);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc(y_desc)
        .y_label_formatter(&y_format)
        .y_labels(6)
        .label_style((FONT, 12).into_font().color(&BLACK))
        .axis_desc_style((FONT, 14).into_font().color(&BLACK))
        .bold_line_style(RGBColor(215, 215, 215).stroke_width(1))
        .light_line_style(TRANSPARENT)
        .axis_style(BLACK.stroke_width(1))
        .draw()?;

    let (left, base) = chart.backend_coord(&(0.0, 0));
    let (right, _) = chart.backend_coord(&(n.max(1) as f64, 0));
    root.draw(&PathElement::new(
        vec![(left, base), (right, base)],
        BLACK.stroke_width(1),
    ))?;

    if n == 0 {
        let none = match lang {
            Language::Es => "Sin datos en el periodo",
            Language::En => "No data in the period",
        };
        let (cx, cy) = chart.backend_coord(&(0.5, y_max / 2));
        root.draw(&Text::new(
            none,
            (cx, cy),
            black(16).pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    }

    let value_style = |rotated: bool| {
        if rotated {
            (FONT, 12)
                .into_font()
                .transform(FontTransform::Rotate270)
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Center))
        } else {
            black(12).pos(Pos::new(HPos::Center, VPos::Bottom))
        }
    };
    for (i, bar) in panel.bars.iter().enumerate() {
        let (center, _) = chart.backend_coord(&(i as f64 + 0.5, 0));
        let half = bar_width as i32;
        // Programmed on the left, sent on the right of the category's centre.
        if let Some(programmed) = bar.programmed {
            let (_, top) = chart.backend_coord(&(0.0, programmed));
            let corners = [(center - 2 - half, top), (center - 2, base)];
            root.draw(&Rectangle::new(corners, WHITE.filled()))?;
            root.draw(&Rectangle::new(corners, BLACK.stroke_width(1)))?;
            root.draw(&Text::new(
                thousands(programmed),
                (center - 2 - half / 2, top - 4),
                value_style(rotate_values),
            ))?;
        }
        let (_, top) = chart.backend_coord(&(0.0, bar.sent));
        let corners = [(center + 2, top), (center + 2 + half, base)];
        root.draw(&Rectangle::new(corners, SENT_FILL.filled()))?;
        root.draw(&Rectangle::new(corners, BLACK.stroke_width(1)))?;
        root.draw(&Text::new(
            thousands(bar.sent),
            (center + 2 + half / 2, top - 4),
            value_style(rotate_values),
        ))?;

        let label_style = if rotate_labels {
            (FONT, 12)
                .into_font()
                .transform(FontTransform::Rotate270)
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center))
        } else {
            black(12).pos(Pos::new(HPos::Center, VPos::Top))
        };
        root.draw(&Text::new(
            bar.label.clone(),
            (center, base + 8),
            label_style,
        ))?;
    }

    let (_, area_y) = area.get_base_pixel();
    let (_, area_height) = area.dim_in_pixel();
    root.draw(&Text::new(
        x_title(report, lang),
        ((left + right) / 2, area_y + area_height as i32 - 6),
        (FONT, 14)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom)),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests;
