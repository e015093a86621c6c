//! Webhook delivery: a background thread ticks every 25 ms over the jobs,
//! queues the events that have happened, and starts one delivery thread per
//! job whose next event is due. Events of one job go out strictly in order
//! (one in flight per job); a failed attempt (non-2xx, connection error,
//! timeout, or an https URL, which this local simulator does not speak) is
//! retried after `webhookRetryMs * 2^(attempt-1)`, up to 5 attempts in all.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::server::Shared;
use crate::state::Pending;

pub const TICK: Duration = Duration::from_millis(25);

pub fn spawn_ticker(shared: Arc<Shared>) {
    thread::Builder::new()
        .name("webhook-ticker".into())
        .spawn(move || loop {
            tick(&shared);
            thread::sleep(TICK);
        })
        .expect("spawn webhook ticker");
}

struct Attempt {
    generation: u64,
    job_id: String,
    url: String,
    event: String,
    body: Vec<u8>,
}

/// One pass: queue due events, start due deliveries.
pub fn tick(shared: &Arc<Shared>) {
    let now = Instant::now();
    let mut starts = Vec::new();
    {
        let mut st = shared.lock();
        let drop_all = st.cfg.drop_webhooks;
        let generation = st.generation;
        for job in st.jobs.iter_mut() {
            let Some(wh) = job.webhook.as_ref() else {
                continue;
            };
            if wh.terminal_emitted && wh.queue.is_empty() {
                continue;
            }
            let due = job.due_events(now, shared.port);
            let id = job.id.clone();
            let wh = job.webhook.as_mut().expect("checked above");
            if !drop_all {
                // With dropWebhooks, events are silently discarded: never sent,
                // never counted.
                for (event, body) in due {
                    wh.queue.push_back(Pending {
                        event,
                        body,
                        attempts: 0,
                        next_at: now,
                    });
                }
            }
            if wh.in_flight {
                continue;
            }
            if drop_all {
                wh.queue.clear();
                continue;
            }
            if let Some(head) = wh.queue.front() {
                if head.next_at <= now {
                    wh.in_flight = true;
                    starts.push(Attempt {
                        generation,
                        job_id: id,
                        url: wh.url.clone(),
                        event: head.event.clone(),
                        body: head.body.clone(),
                    });
                }
            }
        }
        st.stats.wh_attempted += starts.len() as u64;
    }
    for a in starts {
        let (generation, job_id) = (a.generation, a.job_id.clone());
        let shared2 = Arc::clone(shared);
        let shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("webhook".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let sig = crate::sign::sign(&shared.signing_key, &a.body);
                let started = Instant::now();
                let res = post(&a.url, &a.event, &sig, &a.body);
                let ok = matches!(res, Ok(200..=299));
                if !shared.quiet {
                    let outcome = match &res {
                        Ok(code) => code.to_string(),
                        Err(e) => format!("error: {e}"),
                    };
                    eprintln!(
                        "sim: webhook {} job={} -> {} ({} ms)",
                        a.event,
                        a.job_id,
                        outcome,
                        started.elapsed().as_millis()
                    );
                }
                shared.lock().delivery_done(a.generation, &a.job_id, ok);
            });
        if spawned.is_err() {
            // Could not start a thread: count it as a failed attempt.
            shared2.lock().delivery_done(generation, &job_id, false);
        }
    }
}

/// Split `http://host[:port]/path?q` into (host, port, path-and-query).
pub fn split_http_url(url: &str) -> Result<(String, u16, String), String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err("https webhook URLs are not supported by the simulator".into());
    }
    if !lower.starts_with("http://") {
        return Err("not an http URL".into());
    }
    let rest = &url[7..];
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or("/");
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    };
    let authority = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
        let (h, after) = stripped.split_once(']').ok_or("bad IPv6 host")?;
        let port = after.strip_prefix(':').unwrap_or("80");
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (authority.to_string(), "80"),
        }
    };
    let port: u16 = port.parse().map_err(|_| "bad port".to_string())?;
    if host.is_empty() {
        return Err("empty host".into());
    }
    Ok((host, port, path))
}

/// POST one webhook; returns the HTTP status code.
pub fn post(url: &str, event: &str, signature: &str, body: &[u8]) -> Result<u16, String> {
    let (host, port, path) = split_http_url(url)?;
    let addrs: Vec<_> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .collect();
    let mut last = "no address".to_string();
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let mut stream = stream.ok_or(last)?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_nodelay(true);
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: apiframe-sim\r\nContent-Type: application/json\r\nX-Webhook-Event: {event}\r\nX-Webhook-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out).map_err(|e| e.to_string())?;
    stream.flush().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => code
            .parse::<u16>()
            .map_err(|_| "bad status line".to_string()),
        _ => Err(format!("bad status line: {:?}", line.trim_end())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_http_url("http://127.0.0.1:8080/hook?a=1#f").unwrap(),
            ("127.0.0.1".into(), 8080, "/hook?a=1".into())
        );
        assert_eq!(
            split_http_url("http://example.test").unwrap(),
            ("example.test".into(), 80, "/".into())
        );
        assert_eq!(
            split_http_url("http://[::1]:9/x").unwrap(),
            ("::1".into(), 9, "/x".into())
        );
        assert_eq!(
            split_http_url("http://h?x").unwrap(),
            ("h".into(), 80, "/?x".into())
        );
        assert!(split_http_url("https://h/x").is_err());
        assert!(split_http_url("http://h:99999/").is_err());
    }
}
