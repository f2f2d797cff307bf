//! The web console as a process (`sluice console`) and a minimal HTTP/1.1
//! client for its pages (GET and form POST), for tests/console.rs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `sluice console`, killed on drop.
pub struct ConsoleProcess {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl ConsoleProcess {
    /// Starts `sluice console --brokers BROKERS --listen 127.0.0.1:0` plus
    /// `extra` and waits for the address it prints.
    pub fn start(brokers: &str, extra: &[&str]) -> ConsoleProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["console", "--brokers", brokers, "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sluice console starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("console prints its address");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        ConsoleProcess { child, addr }
    }

    /// GET `path`: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        request(&self.addr, "GET", path, None, &[])
    }

    /// GET `path`, asserting 200; the body.
    pub fn page(&self, path: &str) -> String {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}:\n{body}");
        body
    }

    /// POST a form from the console's own origin: (status, body or Location).
    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let origin = format!("http://{}", self.addr);
        self.post_from(path, form, &origin)
    }

    /// POST a form with this Origin header.
    pub fn post_from(&self, path: &str, form: &[(&str, &str)], origin: &str) -> (u16, String) {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        request(
            &self.addr,
            "POST",
            path,
            Some(&body.join("&")),
            &[("Origin", origin)],
        )
    }
}

impl Drop for ConsoleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a form value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// GET `path` from a console at `addr`: (status, body).
pub fn get(addr: &str, path: &str) -> (u16, String) {
    request(addr, "GET", path, None, &[])
}

/// A GET's status line and headers, and its body.
pub fn get_with_head(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the console");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let resp = String::from_utf8_lossy(&resp).to_string();
    let (head, body) = resp.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_string(), body.to_string())
}

/// One request; for a redirect the body returned is its Location.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    form: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the console");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = form {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let resp = String::from_utf8_lossy(&resp).to_string();
    let (head, body) = resp.split_once("\r\n\r\n").expect("an HTTP response");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    if (300..400).contains(&status) {
        let location = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("location")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        return (status, location);
    }
    (status, body.to_string())
}

/// The `data-NAME="..."` attribute values of the `<tr>` rows of the table
/// with id `table` in `html`, one map per row.
pub fn rows(html: &str, table: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let start = html
        .find(&format!("id=\"{table}\""))
        .unwrap_or_else(|| panic!("no table {table} in:\n{html}"));
    let end = html[start..]
        .find("</table>")
        .map_or(html.len(), |e| start + e);
    html[start..end]
        .split("<tr ")
        .skip(1)
        .map(|row| {
            let tag = &row[..row.find('>').unwrap_or(row.len())];
            tag.split("data-")
                .skip(1)
                .filter_map(|a| {
                    let (k, rest) = a.split_once("=\"")?;
                    Some((k.to_string(), rest.split('"').next()?.to_string()))
                })
                .collect()
        })
        .collect()
}
