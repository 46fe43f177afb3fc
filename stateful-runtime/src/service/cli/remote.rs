//! Commands against a running service over its HTTP gateway: `workers N` (rescale). A
//! minimal HTTP/1.1 client of its own (plain `http://`, one request per connection).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

/// How long a rescale may take to answer (it stops one engine and starts another).
const TIMEOUT: Duration = Duration::from_secs(300);

/// Sends `method path` with a JSON `body` to the service at `url`; its status and body.
fn request(
    url: &str,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    let host = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}` is not an http:// URL"))?
        .trim_end_matches('/');
    let mut s = TcpStream::connect(host).map_err(|e| format!("cannot reach {url}: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("no answer from {url}: {e}"))?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {answer}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

/// `workers N`: rescales the service at `url` to `n` workers and prints what it did.
pub(crate) fn workers(name: &str, n: usize, url: &str, token: Option<&str>) -> ExitCode {
    let body = format!("{{\"workers\": {n}}}");
    match request(url, "POST", "/admin/workers", &body, token) {
        Ok((200, answer)) => {
            let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
            if v["changed"] == serde_json::Value::Bool(false) {
                println!("{name}: already {} workers; nothing changed", v["workers"]);
                return ExitCode::SUCCESS;
            }
            println!(
                "{name}: {} → {} workers; requests held {:.0} ms (stop {:.0} ms, start {:.0} ms)",
                v["from"],
                v["workers"],
                v["paused_ms"].as_f64().unwrap_or(f64::NAN),
                v["stop_ms"].as_f64().unwrap_or(f64::NAN),
                v["start_ms"].as_f64().unwrap_or(f64::NAN),
            );
            ExitCode::SUCCESS
        }
        Ok((status, answer)) => {
            let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
            let msg = v["error"].as_str().map_or(answer.clone(), str::to_owned);
            eprintln!("{name}: the service refused ({status}): {msg}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(2)
        }
    }
}
