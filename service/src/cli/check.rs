//! `mailbridge check` and `mailbridge render`: what an operator runs before going live.

use std::path::PathBuf;
use std::process::ExitCode;

use mailbridge::render::{RenderRequest, Renderer};
use mailbridge::{config, server};

/// Runs `mailbridge check`: settings, templates, transports and their event
/// endpoints; with `connect`, reaches each transport.
pub async fn run(connect: bool) -> anyhow::Result<ExitCode> {
    let mut failures = 0;
    let settings = match config::from_env() {
        Ok(s) => {
            println!("ok    settings");
            s
        }
        Err(e) => {
            println!("FAIL  settings: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    match server::load_renderer(&settings) {
        Ok(renderer) => failures += check_templates(&renderer),
        Err(e) => {
            println!("FAIL  templates in {}: {e:#}", settings.templates.display());
            failures += 1;
        }
    }
    match server::build_transports(&settings) {
        Ok(transports) => {
            for name in transports.names() {
                let Some(transport) = transports.get(name) else {
                    continue;
                };
                if !connect {
                    println!("ok    transport `{name}` (configuration)");
                    continue;
                }
                match transport.check().await {
                    Ok(()) => println!("ok    transport `{name}` (connected)"),
                    Err(e) => {
                        println!("FAIL  transport `{name}`: {e}");
                        failures += 1;
                    }
                }
            }
        }
        Err(e) => {
            println!("FAIL  transports: {e:#}");
            failures += 1;
        }
    }
    // `serve` refuses to start with an endpoint it cannot verify events with.
    match server::build_event_sources(&settings) {
        Ok(_) => println!("ok    event endpoints (webhook_key)"),
        Err(e) => {
            println!("FAIL  event endpoints: {e:#}");
            failures += 1;
        }
    }
    for finding in mailbridge::security::findings(&settings) {
        println!("warn  {}", finding.0);
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn check_templates(renderer: &Renderer) -> usize {
    let mut failures = 0;
    for name in renderer.template_names() {
        let data = renderer.sample_data(&name).unwrap_or_default();
        let req = RenderRequest {
            tenant: "default",
            template: &name,
            locale: None,
            data: &data,
            require_locale: false,
        };
        match renderer.render(&req) {
            Ok(_) => println!("ok    template `{name}`"),
            Err(e) => {
                println!("FAIL  template `{name}`: {e}");
                failures += 1;
            }
        }
    }
    failures
}

/// Runs `mailbridge render`: prints subject, text and HTML of one template.
pub fn render(
    template: &str,
    locale: Option<&str>,
    tenant: &str,
    data: Option<&str>,
    templates: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let mut settings = config::from_env()?;
    if let Some(dir) = templates {
        settings.templates = dir;
    }
    let renderer = server::load_renderer(&settings)?;
    let data = match super::read_data(data)? {
        Some(d) => d,
        None => renderer.sample_data(template).unwrap_or_default(),
    };
    let req = RenderRequest {
        tenant,
        template,
        locale,
        data: &data,
        require_locale: false,
    };
    let out = renderer.render(&req)?;
    println!(
        "Subject: {}\n\n{}\n\n----- HTML -----\n{}",
        out.subject, out.text, out.html
    );
    Ok(ExitCode::SUCCESS)
}
