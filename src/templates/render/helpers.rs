//! The helpers templates call (`date`, `month_name`, `eq`, `ne`) and the
//! long dates they print, in the language being rendered.

use chrono::{Datelike, NaiveDate};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderErrorReason,
};

use serde_json::Value;

use crate::domain::Language;

const MONTHS_ES: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// "5 de junio de 2022" / "June 5, 2022".
pub fn long_date(date: NaiveDate, lang: Language) -> String {
    let m = date.month0() as usize;
    match lang {
        Language::Es => format!("{} de {} de {}", date.day(), MONTHS_ES[m], date.year()),
        Language::En => format!("{} {}, {}", MONTHS_EN[m], date.day(), date.year()),
    }
}

fn render_lang(ctx: &Context) -> Language {
    ctx.data()
        .get("lang")
        .and_then(Value::as_str)
        .and_then(|l| Language::parse(l).ok())
        .unwrap_or_default()
}

fn string_param<'a>(
    h: &'a Helper<'_>,
    helper: &'static str,
    format: &str,
) -> Result<&'a str, RenderErrorReason> {
    h.param(0)
        .and_then(|p| p.value().as_str())
        .ok_or_else(|| RenderErrorReason::Other(format!("{helper} needs a {format} text")))
}

/// `(eq contact.modality "postal")`: like the built-in helper, except that a
/// field the contact lacks compares as null instead of failing the render, so
/// templates can branch on optional fields (only printing one is an error).
pub(super) struct Compare {
    pub(super) equal: bool,
}

impl HelperDef for Compare {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<handlebars::ScopedJson<'rc>, handlebars::RenderError> {
        let value = |i: usize| h.param(i).map(|p| p.value().clone()).unwrap_or(Value::Null);
        let same = value(0) == value(1);
        Ok(handlebars::ScopedJson::Derived(Value::Bool(
            same == self.equal,
        )))
    }
}

/// `{{date "2022-06-05"}}` in the language being rendered.
pub(super) struct DateHelper;

impl HelperDef for DateHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let text = string_param(h, "date", "YYYY-MM-DD")?;
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            RenderErrorReason::Other(format!("date: {text:?} is not a YYYY-MM-DD date"))
        })?;
        out.write(&long_date(date, render_lang(ctx)))?;
        Ok(())
    }
}

/// `{{month_name "2021-10"}}`: "octubre de 2021" / "October 2021".
pub(super) struct MonthHelper;

impl HelperDef for MonthHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let text = string_param(h, "month_name", "YYYY-MM")?;
        let date = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").map_err(|_| {
            RenderErrorReason::Other(format!("month_name: {text:?} is not a YYYY-MM month"))
        })?;
        let m = date.month0() as usize;
        let name = match render_lang(ctx) {
            Language::Es => format!("{} de {}", MONTHS_ES[m], date.year()),
            Language::En => format!("{} {}", MONTHS_EN[m], date.year()),
        };
        out.write(&name)?;
        Ok(())
    }
}
