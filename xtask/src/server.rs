//! A tiny static file server (std only) for the end-to-end tests: GET/HEAD,
//! one thread per connection, `Connection: close`, correct Content-Type for
//! the studio's files, 404 for anything outside the served folder.
//!
//! It serves like GitHub Pages does where that matters to the site: under a sub-path
//! (`/drope-studio/`), a folder asked for without its slash redirects to it, and every
//! response says `Access-Control-Allow-Origin: *` (a sandboxed iframe has an opaque
//! origin, so even its requests to the same server are cross-origin).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::thread::{self, JoinHandle};

use crate::util::Result;

pub struct StaticServer {
    addr: SocketAddr,
    mount: String,
    handle: JoinHandle<()>,
}

impl StaticServer {
    /// Binds 127.0.0.1:`port` (0 = any free port) and serves `dir` at the path `mount`
    /// (`/` or `/drope-studio/`) in a background thread; anything outside it is a 404.
    pub fn start_at(dir: &Path, port: u16, mount: &str) -> Result<StaticServer> {
        let mount = format!("/{}/", mount.trim_matches('/')).replace("//", "/");
        let dir = dir
            .canonicalize()
            .map_err(|e| format!("cannot serve {}: {e}", dir.display()))?;
        let listener = TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| format!("cannot bind 127.0.0.1:{port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let served = mount.clone();
        let handle = thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let dir = dir.clone();
                let mount = served.clone();
                thread::spawn(move || {
                    let _ = handle(stream, &dir, &mount);
                });
            }
        });
        Ok(StaticServer {
            addr,
            mount,
            handle,
        })
    }

    /// The served folder's URL, with its trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.mount)
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

/// What a request target comes to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// This file.
    File(PathBuf),
    /// A folder asked for without its trailing slash: redirect here (relative URLs in
    /// its index.html would resolve against the parent otherwise).
    Redirect(String),
    /// Nothing (outside the mount or the folder, or missing).
    Missing,
}

/// Maps a request target (`/drope-studio/models/manifest.json?x=1`) to a file under
/// `root`, served at `mount` (`/drope-studio/`), refusing anything that would leave it.
pub fn resolve(root: &Path, mount: &str, target: &str) -> Resolved {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if format!("{path}/") == mount {
        return Resolved::Redirect(mount.to_string());
    }
    let Some(inside) = path.strip_prefix(mount) else {
        return Resolved::Missing;
    };
    let Some(decoded) = percent_decode(inside) else {
        return Resolved::Missing;
    };
    let mut out = root.to_path_buf();
    for comp in Path::new(decoded.trim_start_matches('/')).components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            _ => return Resolved::Missing,
        }
    }
    if out.is_dir() {
        if !path.ends_with('/') {
            return Resolved::Redirect(format!("{path}/"));
        }
        out.push("index.html");
    }
    if out.is_file() {
        Resolved::File(out)
    } else {
        Resolved::Missing
    }
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

fn handle(stream: TcpStream, root: &Path, mount: &str) -> io::Result<()> {
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
    let found = match resolve(root, mount, target) {
        Resolved::File(p) => File::open(&p).ok().and_then(|file| {
            let len = file.metadata().ok()?.len();
            Some((p, file, len))
        }),
        Resolved::Redirect(to) => {
            let head = format!(
                "HTTP/1.1 301 Moved Permanently\r\nLocation: {to}\r\nContent-Length: 0\r\n\
                 Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n"
            );
            out.write_all(head.as_bytes())?;
            return out.flush();
        }
        Resolved::Missing => None,
    };
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
         Cache-Control: no-store\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n"
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

        let server = StaticServer::start_at(&dir, 0, "/").unwrap();
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
    fn serves_under_a_sub_path_like_github_pages() {
        let dir = std::env::temp_dir().join(format!("xtask-subpath-test-{}", std::process::id()));
        fs::create_dir_all(dir.join("models")).unwrap();
        fs::write(dir.join("index.html"), "<p>studio</p>").unwrap();
        fs::write(dir.join("models/index.html"), "<p>models</p>").unwrap();

        let server = StaticServer::start_at(&dir, 0, "drope-studio").unwrap();
        assert!(server.url().ends_with("/drope-studio/"), "{}", server.url());
        let addr = server.addr.to_string();

        let (head, body) = get(&addr, "/drope-studio/");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("Access-Control-Allow-Origin: *"), "{head}");
        assert_eq!(body, b"<p>studio</p>");
        let (head, _) = get(&addr, "/drope-studio");
        assert!(head.starts_with("HTTP/1.1 301"), "{head}");
        assert!(head.contains("Location: /drope-studio/"), "{head}");
        let (head, _) = get(&addr, "/drope-studio/models?x=1");
        assert!(head.contains("Location: /drope-studio/models/"), "{head}");
        let (head, _) = get(&addr, "/index.html");
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        let (head, _) = get(&addr, "/drope-studio-other/index.html");
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
