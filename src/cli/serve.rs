//! `tessera serve`: a static file server that honours HTTP Range requests, to try a
//! partitioned index locally (`tessera search http://…`, the demo) and for the tests and
//! the benchmark. Not a production server: one thread, GET and HEAD only.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::Context;
use tiny_http::{Header, Method, Response, Server, StatusCode};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The folder to serve.
    root: PathBuf,
    #[arg(long, default_value_t = 8090)]
    port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Answer Range requests with the whole file (200), as some hosts do: to test clients.
    #[arg(long)]
    ignore_range: bool,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let server = Server::http((args.host.as_str(), args.port)).map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let root = args.root.canonicalize().with_context(|| format!("{}: no such folder", args.root.display()))?;
    println!("serving {} at http://{}", root.display(), server.server_addr());
    serve(&server, &root, args.ignore_range);
    Ok(())
}

/// Answers requests until the server is dropped.
pub fn serve(server: &Server, root: &Path, ignore_range: bool) {
    for request in server.incoming_requests() {
        let response = respond(root, request.method(), request.url(), range_header(&request), ignore_range);
        let _ = request.respond(response);
    }
}

fn range_header(request: &tiny_http::Request) -> Option<String> {
    request.headers().iter().find(|h| h.field.equiv("Range")).map(|h| h.value.as_str().to_string())
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name, value).expect("ASCII header")
}

fn status(code: u16, text: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(text).with_status_code(StatusCode(code))
}

fn respond(root: &Path, method: &Method, url: &str, range: Option<String>, ignore_range: bool) -> Response<std::io::Cursor<Vec<u8>>> {
    if !matches!(method, Method::Get | Method::Head) {
        return status(405, "GET or HEAD only");
    }
    let path = url.split(['?', '#']).next().unwrap_or("/").trim_start_matches('/');
    let file = root.join(path);
    if path.split('/').any(|part| part == "..") || !file.is_file() {
        return status(404, "not found");
    }
    let Ok(mut f) = File::open(&file) else { return status(404, "not found") };
    let size = f.metadata().map_or(0, |m| m.len());
    let (code, start, end) = match range.filter(|_| !ignore_range).map(|r| parse_range(&r, size)) {
        None => (200, 0, size),
        Some(Some((start, end))) => (206, start, end),
        Some(None) => {
            return status(416, "range not satisfiable").with_header(header("Content-Range", &format!("bytes */{size}")));
        }
    };
    let mut body = Vec::with_capacity((end - start) as usize);
    if *method == Method::Get && (f.seek(SeekFrom::Start(start)).is_err() || f.take(end - start).read_to_end(&mut body).is_err()) {
        return status(500, "read failed");
    }
    let mut response = Response::from_data(body)
        .with_status_code(StatusCode(code))
        .with_header(header("Accept-Ranges", "bytes"))
        .with_header(header("Access-Control-Allow-Origin", "*"))
        .with_header(header("Content-Type", "application/octet-stream"));
    if code == 206 {
        response = response.with_header(header("Content-Range", &format!("bytes {start}-{}/{size}", end - 1)));
    }
    response
}

/// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range within `size` bytes, as a half-open
/// span; `None` when it cannot be satisfied.
fn parse_range(spec: &str, size: u64) -> Option<(u64, u64)> {
    let spec = spec.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => (size.saturating_sub(n.parse().ok()?), size),
        (a, "") => (a.parse().ok()?, size),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.saturating_add(1).min(size)),
    };
    (start < end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-200", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=95-", 100), Some((95, 100)));
        assert_eq!(parse_range("bytes=-5", 100), Some((95, 100)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("lines=1-2", 100), None);
    }
}
