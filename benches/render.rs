//! Rendering throughput (issue 3): messages per second on one core for every
//! shipped template × channel × language, through the same `Renderer` the worker
//! uses. Target: >= 50,000 SMS renders/s on one core, so rendering is never what
//! limits a send.
//!
//!   cargo bench --bench render            # default: 200,000 SMS / 20,000 e-mails per case
//!   cargo bench --bench render -- 50000   # M messages per case (e-mail: M / 10)
//!
//! Plain `std::time::Instant`, one thread; each case runs three times and the
//! best is kept (the benchmark machine is shared with other work).

use std::hint::black_box;
use std::time::{Duration, Instant};

use aviso::domain::ChannelKind;
use aviso::templates::{LangMode, Recipient, Renderer, TemplateSet};

const RUNS: usize = 3;
const TARGET_SMS_PER_S: f64 = 50_000.0;
const FIRST: [&str; 8] = [
    "María Guadalupe",
    "José",
    "Xóchitl",
    "Miguel Ángel",
    "Nayeli",
    "Héctor",
    "Citlali",
    "Joaquín",
];
const ENTITIES: [&str; 4] = ["AGS", "DGO", "OAX", "TAM"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // cargo passes `--bench`; the only argument of ours is a count.
    let m: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.replace(['_', ','], "").parse())
        .transpose()?
        .unwrap_or(200_000);
    let renderer = Renderer::new(TemplateSet::built_in()?)?;
    let set = renderer.templates();

    println!(
        "render benchmark: one thread, best of {RUNS} runs, {} cores on this (shared) machine",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<18} {:<6} {:<5} {:>9} {:>12} {:>9} {:>9}",
        "template", "chan", "lang", "messages", "msg/s/core", "µs/msg", "avg bytes"
    );
    let mut slowest_sms = f64::INFINITY;
    for (name, def) in &set.templates {
        let sample_key = match def.meta.audience.map(|a| a.to_string()).as_deref() {
            Some("organization") => "organization",
            _ => "citizen",
        };
        let base = set
            .samples
            .get(sample_key)
            .and_then(|v| v.as_table())
            .map(Recipient::from_sample)
            .ok_or("samples.toml has no sample contact")?;
        let vars = renderer.sample_vars(name)?;
        let mut modes = vec![("es", LangMode::Es), ("en", LangMode::En)];
        if def.meta.default_lang == LangMode::Both {
            modes.push(("both", LangMode::Both));
        }
        for channel in &def.meta.channels {
            for (lang, mode) in &modes {
                let n = match channel {
                    ChannelKind::Sms => m,
                    ChannelKind::Email => (m / 10).max(1),
                };
                // A different name (and entity, for citizens) on every message, as
                // in a real run; built beforehand so only rendering is timed.
                let recipients: Vec<Recipient> = (0..n.min(4096))
                    .map(|i| {
                        let mut r = base.clone();
                        let first = format!("{} {i}", FIRST[i % FIRST.len()]);
                        r.full_name = match &r.last_name {
                            Some(last) => format!("{first} {last}"),
                            None => first.clone(),
                        };
                        r.first_name = Some(first);
                        if r.entity.is_some() {
                            r.entity = Some(ENTITIES[i % ENTITIES.len()].to_string());
                        }
                        r
                    })
                    .collect();
                let urls: Vec<String> = (0..recipients.len())
                    .map(|i| format!("https://votoextranjero.example.org/baja/{i:016x}"))
                    .collect();
                let mut best = Duration::MAX;
                let mut bytes = 0usize;
                for _ in 0..RUNS {
                    bytes = 0;
                    let start = Instant::now();
                    for i in 0..n {
                        let who = &recipients[i % recipients.len()];
                        bytes += match channel {
                            ChannelKind::Sms => {
                                let sms = renderer.render_sms(name, *mode, who, &vars)?;
                                black_box(&sms).text.len()
                            }
                            ChannelKind::Email => {
                                let url = &urls[i % urls.len()];
                                let e = renderer.render_email(name, *mode, who, &vars, url)?;
                                let e = black_box(&e);
                                e.subject.len() + e.text.len() + e.html.len()
                            }
                        };
                    }
                    best = best.min(start.elapsed());
                }
                let secs = best.as_secs_f64();
                let rate = n as f64 / secs;
                if *channel == ChannelKind::Sms {
                    slowest_sms = slowest_sms.min(rate);
                }
                println!(
                    "{:<18} {:<6} {:<5} {:>9} {:>12.0} {:>9.2} {:>9}",
                    name,
                    channel.to_string(),
                    lang,
                    n,
                    rate,
                    secs * 1e6 / n as f64,
                    bytes / n
                );
            }
        }
    }
    println!(
        "slowest SMS case: {slowest_sms:.0} renders/s on one core (target >= {TARGET_SMS_PER_S:.0}: {})",
        if slowest_sms >= TARGET_SMS_PER_S {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}
