//! Native render latency, the counterpart of `bench/render/RenderBench.java`
//! (run by `bench/render/run.sh`): the same templates and request files, p50
//! and p99 over a fixed number of renders on one thread.
//! Usage: render_bench TEMPLATES_DIR WARMUP ITERATIONS REQUEST_FILE...

use std::path::Path;
use std::time::Instant;

use mailbridge_render::{RenderRequest, Renderer, TemplateSources};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, warmup, iterations, requests @ ..] = args.as_slice() else {
        return Err("usage: render_bench TEMPLATES_DIR WARMUP ITERATIONS REQUEST_FILE...".into());
    };
    let (warmup, iterations): (usize, usize) = (warmup.parse()?, iterations.parse()?);
    let start = Instant::now();
    let mut sources = TemplateSources::new();
    read_dir(Path::new(dir), Path::new(dir), &mut sources)?;
    let renderer = Renderer::new(sources)?;
    println!("load {dir}: {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    for file in requests {
        let request: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
        let field = |name: &str| request[name].as_str().unwrap_or_default().to_owned();
        let (tenant, template, locale) = (field("tenant"), field("template"), field("locale"));
        let render = RenderRequest {
            tenant: &tenant,
            template: &template,
            locale: Some(&locale),
            data: &request["data"],
            require_locale: false,
        };
        for _ in 0..warmup {
            renderer.render(&render)?;
        }
        let mut took: Vec<f64> = (0..iterations)
            .map(|_| {
                let t = Instant::now();
                let rendered = renderer.render(&render);
                (t.elapsed().as_secs_f64() * 1e3, rendered.is_ok())
            })
            .map(|(ms, ok)| if ok { ms } else { f64::INFINITY })
            .collect();
        took.sort_by(f64::total_cmp);
        let name = Path::new(file)
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        println!(
            "{name}: p50 {:.3} ms, p99 {:.3} ms ({iterations} renders)",
            took[iterations / 2],
            took[iterations * 99 / 100]
        );
    }
    Ok(())
}

fn read_dir(root: &Path, dir: &Path, sources: &mut TemplateSources) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            read_dir(root, &path, sources)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "j2" || e == "ftl" || e == "json")
        {
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            sources.insert(name, std::fs::read_to_string(&path)?);
        }
    }
    Ok(())
}
