//! `apiframe-sim` binary: parse flags, start the server, print `SIM_URL=...`.

use std::io::Write;
use std::path::PathBuf;
use std::process::exit;

use apiframe_sim::sign::KeyMode;
use apiframe_sim::{start, Options};

const USAGE: &str =
    "usage: apiframe-sim --api-key KEY [--port N (0 = any free port)] [--job-ms 3000]
                    [--result-shape string|object] [--webhook-retry-ms 200]
                    [--webhook-key hex|raw] [--mp4 PATH] [--quiet] [--no-keep-alive]";

fn die(msg: &str) -> ! {
    eprintln!("apiframe-sim: {msg}\n{USAGE}");
    exit(2)
}

fn parse_args(args: Vec<String>) -> Options {
    let mut opts = Options::new("");
    let mut api_key = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> String {
            inline
                .clone()
                .or_else(|| it.next())
                .unwrap_or_else(|| die(&format!("{name} needs a value")))
        };
        let num = |name: &str, v: String| -> u64 {
            v.parse()
                .unwrap_or_else(|_| die(&format!("{name} must be a non-negative integer")))
        };
        match flag.as_str() {
            "--port" => {
                let v = value("--port");
                opts.port = v
                    .parse()
                    .unwrap_or_else(|_| die("--port must be 0..=65535"));
            }
            "--api-key" => {
                let v = value("--api-key");
                if v.is_empty() {
                    die("--api-key must not be empty");
                }
                api_key = Some(v);
            }
            "--job-ms" => opts.job_ms = num("--job-ms", value("--job-ms")),
            "--webhook-retry-ms" => {
                opts.webhook_retry_ms = num("--webhook-retry-ms", value("--webhook-retry-ms"))
            }
            "--result-shape" => {
                opts.object_shape = match value("--result-shape").as_str() {
                    "string" => false,
                    "object" => true,
                    _ => die("--result-shape must be string or object"),
                }
            }
            "--webhook-key" => {
                opts.webhook_key = KeyMode::parse(&value("--webhook-key"))
                    .unwrap_or_else(|| die("--webhook-key must be hex or raw"))
            }
            "--mp4" => opts.mp4 = PathBuf::from(value("--mp4")),
            "--quiet" => opts.quiet = true,
            "--no-keep-alive" => opts.no_keep_alive = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0)
            }
            other => die(&format!("unknown argument {other:?}")),
        }
    }
    opts.api_key = api_key.unwrap_or_else(|| die("--api-key is required"));
    opts
}

fn main() {
    let opts = parse_args(std::env::args().skip(1).collect());
    let quiet = opts.quiet;
    let server = match start(opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("apiframe-sim: {e}");
            exit(1)
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "SIM_URL={}", server.url);
    let _ = out.flush();
    drop(out);
    if !quiet {
        eprintln!("apiframe-sim: listening on {}", server.url);
    }
    loop {
        std::thread::park();
    }
}
