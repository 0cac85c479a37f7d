//! The HTTP load generators `bench serve` drives the server with: wrk (`apt-get install wrk`)
//! and hey (`apt-get install hey`), both closed-loop (each client sends its next request when
//! the last one is answered).
//!
//! wrk is the default because it leaves the cores to the server: on this 2-core machine it
//! spent 0.027 ms of CPU per request against hey's 0.14 ms (/predict, 16 clients, 57 KB
//! bodies), which at 64x64 with ONNX Runtime INT8 is a tenth of the model's own cost.
//! hey is kept for the overload run, which needs an offered rate (`-q`) that wrk has not.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generator {
    Wrk,
    Hey,
}

impl Generator {
    pub fn name(self) -> &'static str {
        match self {
            Generator::Wrk => "wrk",
            Generator::Hey => "hey",
        }
    }

    /// Fails with how to install the generator when it is not on PATH.
    pub fn check(self) -> Result<()> {
        let probe = match self {
            Generator::Wrk => Command::new("wrk").arg("--version").output(),
            Generator::Hey => Command::new("hey").args(["-n", "0"]).output(),
        };
        if probe.is_err() {
            bail!(
                "the load generator `{0}` is not on PATH: install it (Debian/Ubuntu: apt-get \
                 install {0})",
                self.name()
            );
        }
        Ok(())
    }
}

/// What one load run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// Requests answered, whatever their status, plus transport errors.
    pub requests: usize,
    /// Answers with status 200 per second.
    pub qps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Status code -> count; code 0 counts transport errors.
    pub codes: Vec<(u16, usize)>,
}

/// What each client sends: a POST of the file `body` to `path`, with `headers` beside the
/// content type.
pub struct Request {
    pub path: String,
    pub body: PathBuf,
    pub headers: Vec<(String, String)>,
}

impl Request {
    fn url(&self, addr: SocketAddr) -> String {
        format!("http://{addr}{}", self.path)
    }
}

/// `clients` closed-loop clients send `request` to the server at `addr` for `seconds`.
pub fn run(
    generator: Generator,
    addr: SocketAddr,
    request: &Request,
    clients: usize,
    seconds: u64,
) -> Result<Load> {
    match generator {
        Generator::Wrk => wrk(addr, request, clients, seconds),
        Generator::Hey => hey(addr, request, clients, seconds, None),
    }
}

/// hey with `clients` workers, each optionally rate-limited to `per_client_qps`.
pub fn hey(
    addr: SocketAddr,
    request: &Request,
    clients: usize,
    seconds: u64,
    per_client_qps: Option<f64>,
) -> Result<Load> {
    let mut cmd = Command::new("hey");
    cmd.args(["-z", &format!("{seconds}s"), "-c", &clients.to_string()])
        .args(["-m", "POST", "-T", "application/json", "-t", "60"])
        .arg("-D")
        .arg(&request.body);
    for (name, value) in &request.headers {
        cmd.arg("-H").arg(format!("{name}: {value}"));
    }
    if let Some(q) = per_client_qps {
        cmd.args(["-q", &format!("{q:.2}")]);
    }
    let out = cmd.arg(request.url(addr)).output().context("running hey")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains("Summary:") {
        bail!(
            "hey failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(read_hey(&text))
}

/// Reads hey's text summary.
fn read_hey(text: &str) -> Load {
    let number = |s: &str| s.trim().trim_end_matches("secs").trim().parse::<f64>().ok();
    let mut qps = 0.0;
    let (mut p50, mut p95, mut p99) = (f64::NAN, f64::NAN, f64::NAN);
    let mut codes = BTreeMap::<u16, usize>::new();
    let mut section = "";
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            qps = number(v).unwrap_or(0.0);
        } else if let Some((q, v)) = t.split_once("% in ") {
            let ms = number(v).map_or(f64::NAN, |s| s * 1000.0);
            match q {
                "50" => p50 = ms,
                "95" => p95 = ms,
                "99" => p99 = ms,
                _ => {}
            }
        } else if t.ends_with("distribution:") {
            section = if t.starts_with("Status code") {
                "codes"
            } else if t.starts_with("Error") {
                "errors"
            } else {
                ""
            };
        } else if let Some((head, rest)) = t.strip_prefix('[').and_then(|r| r.split_once(']')) {
            let rest = rest.trim();
            match section {
                // "[200]\t1234 responses"
                "codes" => {
                    if let (Ok(code), Some(n)) = (
                        head.parse::<u16>(),
                        rest.split_whitespace()
                            .next()
                            .and_then(|n| n.parse::<usize>().ok()),
                    ) {
                        *codes.entry(code).or_default() += n;
                    }
                }
                // "[12]\tPost ...: connection refused"
                "errors" => {
                    if let Ok(n) = head.parse::<usize>() {
                        *codes.entry(0).or_default() += n;
                    }
                }
                _ => {}
            }
        }
    }
    // hey's rate counts every response; the table's QPS counts answered 200s.
    let requests: usize = codes.values().sum();
    let ok_share = codes.get(&200).copied().unwrap_or(0) as f64 / (requests as f64).max(1.0);
    Load {
        requests,
        qps: qps * ok_share,
        p50_ms: p50,
        p95_ms: p95,
        p99_ms: p99,
        codes: codes.into_iter().collect(),
    }
}

/// wrk with one thread (it keeps 16 connections busy without a second one) and a script that
/// posts the body and reports what the table needs on lines of its own.
fn wrk(addr: SocketAddr, request: &Request, clients: usize, seconds: u64) -> Result<Load> {
    let script = request.body.with_extension("wrk.lua");
    std::fs::write(&script, wrk_script(request)?)
        .with_context(|| format!("cannot write {}", script.display()))?;
    let out = Command::new("wrk")
        .args(["-t", "1", "-c", &clients.to_string()])
        .args(["-d", &format!("{seconds}s"), "--timeout", "60s", "-s"])
        .arg(&script)
        .arg(request.url(addr))
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    match read_wrk(&text) {
        Some(load) if out.status.success() => Ok(load),
        _ => bail!(
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Counts each status in every wrk thread (`response` runs in the thread's own Lua state;
/// `done` collects the counts through `thread:get`).
fn wrk_script(request: &Request) -> Result<String> {
    let quote = |text: &str| {
        if text.contains("]==]") {
            bail!("{text}: cannot be quoted for wrk's script");
        }
        Ok(format!("[==[{text}]==]"))
    };
    let path = request.body.display().to_string();
    let mut headers = String::new();
    for (name, value) in &request.headers {
        // The spaces matter: `[[` would open a Lua long string.
        headers += &format!("wrk.headers[ {} ] = {}\n", quote(name)?, quote(value)?);
    }
    Ok(format!(
        r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{headers}local file = assert(io.open({path}, "rb"))
wrk.body = file:read("*a")
file:close()
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {{}} end
function response(status, headers, body) codes[status] = (codes[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("codes")) do
      io.write(string.format("status %d %d\n", status, n))
    end
  end
  local e = summary.errors
  io.write(string.format("errors %d\n", e.connect + e.read + e.write + e.timeout))
  io.write(string.format("seconds %.6f\n", summary.duration / 1e6))
  for _, q in ipairs({{50, 95, 99}}) do
    io.write(string.format("p%d_ms %.3f\n", q, latency:percentile(q) / 1000))
  end
end
"#,
        path = quote(&path)?
    ))
}

/// Reads the lines `wrk_script`'s `done` writes; `None` when they are not all there.
fn read_wrk(text: &str) -> Option<Load> {
    let mut codes = BTreeMap::<u16, usize>::new();
    let (mut seconds, mut p50, mut p95, mut p99) = (None, None, None, None);
    let mut errors = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["status", code, n] => {
                *codes.entry(code.parse().ok()?).or_default() += n.parse::<usize>().ok()?;
            }
            ["errors", n] => errors = Some(n.parse::<usize>().ok()?),
            ["seconds", s] => seconds = Some(s.parse::<f64>().ok()?),
            ["p50_ms", v] => p50 = Some(v.parse::<f64>().ok()?),
            ["p95_ms", v] => p95 = Some(v.parse::<f64>().ok()?),
            ["p99_ms", v] => p99 = Some(v.parse::<f64>().ok()?),
            _ => {}
        }
    }
    let errors = errors?;
    if errors > 0 {
        *codes.entry(0).or_default() += errors;
    }
    let ok = codes.get(&200).copied().unwrap_or(0);
    Some(Load {
        requests: codes.values().sum(),
        qps: ok as f64 / seconds?.max(1e-9),
        p50_ms: p50?,
        p95_ms: p95?,
        p99_ms: p99?,
        codes: codes.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hey_s_summary() {
        let text = "\nSummary:\n  Total:\t10.0012 secs\n  Requests/sec:\t200.0000\n\n\
            Latency distribution:\n  10%% in 0.0010 secs\n  50% in 0.0050 secs\n  95% in 0.0200 secs\n  99% in 0.0400 secs\n\n\
            Status code distribution:\n  [200]\t1500 responses\n  [503]\t500 responses\n\n\
            Error distribution:\n  [3]\tPost \"http://x/predict\": EOF\n";
        let s = read_hey(text);
        assert_eq!(s.codes, vec![(0, 3), (200, 1500), (503, 500)]);
        assert_eq!(s.requests, 2003);
        assert!((s.p50_ms - 5.0).abs() < 1e-9 && (s.p99_ms - 40.0).abs() < 1e-9);
        // QPS counts answered 200s only.
        assert!((s.qps - 200.0 * 1500.0 / 2003.0).abs() < 1e-9);
    }

    #[test]
    fn reads_what_the_wrk_script_reports() {
        // wrk's own summary comes first; the script's lines follow it.
        let text = "Running 10s test @ http://127.0.0.1:1/predict\n  1 threads and 16 connections\n\
            Requests/sec:   1200.00\nstatus 200 9000\nstatus 503 900\nstatus 200 1000\nerrors 2\n\
            seconds 10.000000\np50_ms 12.500\np95_ms 17.000\np99_ms 19.250\n";
        let load = read_wrk(text).expect("complete");
        assert_eq!(load.codes, vec![(0, 2), (200, 10_000), (503, 900)]);
        assert_eq!(load.requests, 10_902);
        assert!((load.qps - 1000.0).abs() < 1e-9);
        assert_eq!((load.p50_ms, load.p95_ms, load.p99_ms), (12.5, 17.0, 19.25));
        // A run cut short (no summary lines) is an error, not a row of zeros.
        assert_eq!(read_wrk("status 200 5\n"), None);
    }

    /// The script runs in wrk against a local server: every request is counted by status,
    /// and the body and the extra header arrive whole.
    #[test]
    fn the_wrk_script_posts_the_body_and_counts_statuses() {
        if Generator::Wrk.check().is_err() {
            eprintln!("skipped: wrk is not installed (.ci/run installs it)");
            return;
        }
        use axum::http::{HeaderMap, StatusCode};
        let dir = tempfile::tempdir().unwrap();
        let body = dir.path().join("body.json");
        let payload = format!("{{\"x\": \"{}\"}}", "a".repeat(10_000));
        std::fs::write(&body, &payload).unwrap();
        let expected = payload.into_bytes();
        // 200 for the whole body with the extra header, 400 otherwise.
        let app = axum::Router::new().route(
            "/infer",
            axum::routing::post(
                move |headers: HeaderMap, got: axum::body::Bytes| async move {
                    let extra = headers.get("x-extra").is_some_and(|v| v == "42");
                    if extra && got == expected {
                        StatusCode::OK
                    } else {
                        StatusCode::BAD_REQUEST
                    }
                },
            ),
        );
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, app).await });
        let request = Request {
            path: "/infer".into(),
            body,
            headers: vec![("X-Extra".into(), "42".into())],
        };
        let load = run(Generator::Wrk, addr, &request, 2, 1).unwrap();
        assert!(load.requests > 10, "{load:?}");
        assert_eq!(load.codes, vec![(200, load.requests)], "{load:?}");
        assert!(load.qps > 10.0 && load.p50_ms <= load.p99_ms, "{load:?}");
    }
}
