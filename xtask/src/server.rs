//! A tiny static file server (std only) for the end-to-end tests: GET/HEAD,
//! one thread per connection, `Connection: close`, correct Content-Type for
//! the studio's files, 404 for anything outside the served folder.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::thread::{self, JoinHandle};

use crate::util::Result;

pub struct StaticServer {
    addr: SocketAddr,
    handle: JoinHandle<()>,
}

impl StaticServer {
    /// Binds 127.0.0.1:`port` (0 = any free port) and serves `dir` in a background thread.
    pub fn start(dir: &Path, port: u16) -> Result<StaticServer> {
        let dir = dir
            .canonicalize()
            .map_err(|e| format!("cannot serve {}: {e}", dir.display()))?;
        let listener = TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| format!("cannot bind 127.0.0.1:{port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let handle = thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let dir = dir.clone();
                thread::spawn(move || {
                    let _ = handle(stream, &dir);
                });
            }
        });
        Ok(StaticServer { addr, handle })
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Blocks forever (the accept loop never ends).
    pub fn wait(self) {
        let _ = self.handle.join();
    }
}

pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" | "csv" => "text/plain; charset=utf-8",
        _ => "application/octet-stream", // .safetensors and anything else
    }
}

/// Maps a request target (`/models/manifest.json?x=1`) to a file under `root`,
/// refusing anything that would leave it.
pub fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode(path)?;
    let mut out = root.to_path_buf();
    for comp in Path::new(decoded.trim_start_matches('/')).components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if out.is_dir() {
        out.push("index.html");
    }
    out.is_file().then_some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn handle(stream: TcpStream, root: &Path) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers; nothing in them matters here.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let mut out = stream;
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut out,
            "405 Method Not Allowed",
            "text/plain",
            b"405\n",
            true,
        );
    }
    let head_only = method == "HEAD";
    let found = resolve(root, target).and_then(|p| {
        let file = File::open(&p).ok()?;
        let len = file.metadata().ok()?.len();
        Some((p, file, len))
    });
    match found {
        Some((path, mut file, len)) => {
            write_head(&mut out, "200 OK", content_type(&path), len)?;
            if !head_only {
                io::copy(&mut file, &mut out)?;
            }
            out.flush()
        }
        None => respond(
            &mut out,
            "404 Not Found",
            "text/plain; charset=utf-8",
            format!("404 not found: {target}\n").as_bytes(),
            !head_only,
        ),
    }
}

fn write_head(out: &mut TcpStream, status: &str, ctype: &str, len: u64) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    );
    out.write_all(head.as_bytes())
}

fn respond(
    out: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &[u8],
    send_body: bool,
) -> io::Result<()> {
    write_head(out, status, ctype, body.len() as u64)?;
    if send_body {
        out.write_all(body)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Read;

    fn get(addr: &str, target: &str) -> (String, Vec<u8>) {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(buf[..split].to_vec()).unwrap();
        (head, buf[split + 4..].to_vec())
    }

    #[test]
    fn serves_files_with_types_and_404s() {
        let dir = std::env::temp_dir().join(format!("xtask-server-test-{}", std::process::id()));
        fs::create_dir_all(dir.join("models/a b")).unwrap();
        fs::write(dir.join("index.html"), "<p>hi</p>").unwrap();
        fs::write(dir.join("app_bg.wasm"), [0u8, 97, 115, 109]).unwrap();
        fs::write(dir.join("models/manifest.json"), "{}").unwrap();
        fs::write(dir.join("models/a b/model.safetensors"), [1u8; 10]).unwrap();

        let server = StaticServer::start(&dir, 0).unwrap();
        let addr = server.addr.to_string();

        let (head, body) = get(&addr, "/");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("Content-Type: text/html"), "{head}");
        assert_eq!(body, b"<p>hi</p>");

        let (head, body) = get(&addr, "/app_bg.wasm");
        assert!(head.contains("Content-Type: application/wasm"), "{head}");
        assert!(head.contains("Content-Length: 4"), "{head}");
        assert_eq!(body.len(), 4);

        let (head, _) = get(&addr, "/models/manifest.json?v=1");
        assert!(head.contains("Content-Type: application/json"), "{head}");

        let (head, body) = get(&addr, "/models/a%20b/model.safetensors");
        assert!(head.contains("application/octet-stream"), "{head}");
        assert_eq!(body, [1u8; 10]);

        let (head, _) = get(&addr, "/missing.js");
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        let (head, _) = get(&addr, "/../etc/passwd");
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        let (head, _) = get(&addr, "/%2e%2e/etc/passwd");
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");

        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Path::new("a.wasm")), "application/wasm");
        assert!(content_type(Path::new("a.js")).starts_with("text/javascript"));
        assert_eq!(content_type(Path::new("a.json")), "application/json");
        assert!(content_type(Path::new("a.css")).starts_with("text/css"));
        assert!(content_type(Path::new("a.html")).starts_with("text/html"));
        assert_eq!(
            content_type(Path::new("m.safetensors")),
            "application/octet-stream"
        );
    }
}
