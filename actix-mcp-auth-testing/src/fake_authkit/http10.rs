//! The HTTP/1.0 face of [`FakeAuthKit`](super::FakeAuthKit) (see
//! [`FakeAuthKit::start_http10`](super::FakeAuthKit::start_http10)).
//!
//! actix-web answers in the version of the request, so an HTTP/1.1 client always gets HTTP/1.1.
//! A real HTTP/1.0 peer (an old server or an intermediary) answers `HTTP/1.0 …` with a
//! `Content-Length`, no `Connection` header, and closes the connection after each answer. This
//! front does exactly that: it accepts a connection on the public port, reads one request,
//! relays it to the emulator's own server with `Connection: close`, and writes the answer back
//! as HTTP/1.0 before closing (a request sent on the connection after that is never answered).

use std::{
    io::{self, Read, Write},
    net::{Ipv4Addr, Shutdown, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// Largest request head or body the front accepts.
const MAX_MESSAGE: usize = 1024 * 1024;
/// How long one exchange may take before the front gives up on it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection stays open after its answer unless the client sends more.
const LINGER: Duration = Duration::from_millis(200);

/// The running front; stops accepting when dropped.
pub(super) struct Front {
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Front {
    /// Serves `listener`, relaying each request to `127.0.0.1:backend`.
    pub(super) fn spawn(listener: TcpListener, backend: u16) -> io::Result<Front> {
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::Builder::new()
            .name(format!("fake-authkit-http10-{port}"))
            .spawn(move || {
                for conn in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let _ = std::thread::Builder::new()
                        .name("fake-authkit-http10-conn".into())
                        .spawn(move || {
                            // A failed exchange just ends the connection, like a real peer.
                            let _ = relay(conn, backend);
                        });
                }
            })?;
        Ok(Front { stop, port })
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

/// One request in, one HTTP/1.0 answer out, then the connection ends.
fn relay(mut client: TcpStream, backend: u16) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let request = read_request(&mut client)?;
    let mut upstream = TcpStream::connect((Ipv4Addr::LOCALHOST, backend))?;
    upstream.set_read_timeout(Some(IO_TIMEOUT))?;
    upstream.write_all(&request)?;
    let mut answer = Vec::new();
    upstream.take(MAX_MESSAGE as u64).read_to_end(&mut answer)?;
    let answer = as_http10(&answer).ok_or_else(|| io::Error::other("malformed answer"))?;
    client.write_all(&answer)?;
    client.flush()?;
    // The connection ends here, whatever the client sends next. Its end is made visible only
    // when the client tries to reuse it (or after a short linger), as with a peer whose close
    // reaches the client after the client picked the connection for its next request: a
    // client that reuses the connection then always loses that request.
    client.set_read_timeout(Some(LINGER))?;
    let mut next = [0u8; 1];
    let _ = client.read(&mut next);
    client.shutdown(Shutdown::Both)
}

/// Reads a request (head and `Content-Length` body) and rewrites it to ask the emulator's
/// server to close after answering.
fn read_request(conn: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 || buf.len() > MAX_MESSAGE {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut length = 0usize;
    let mut out = format!("{request_line}\r\n");
    for line in lines {
        let name = line.split(':').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = line[name.len() + 1..].trim().parse().unwrap_or(0);
        }
        if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length.min(MAX_MESSAGE) {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let mut request = out.into_bytes();
    request.extend_from_slice(&body);
    Ok(request)
}

/// The emulator's HTTP/1.1 answer as an HTTP/1.0 one: status line `HTTP/1.0`, the body with its
/// `Content-Length`, no `Connection`, `Keep-Alive` or `Transfer-Encoding`.
fn as_http10(answer: &[u8]) -> Option<Vec<u8>> {
    let head_end = find(answer, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_once(' ')?.1.to_owned();
    let mut chunked = false;
    let mut headers = String::new();
    for line in lines {
        let name = line.split(':').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = line.to_ascii_lowercase().contains("chunked");
        }
        let dropped = [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "content-length",
        ];
        if !dropped.iter().any(|d| name.eq_ignore_ascii_case(d)) {
            headers.push_str(line);
            headers.push_str("\r\n");
        }
    }
    let raw = &answer[head_end + 4..];
    let body = if chunked { dechunk(raw)? } else { raw.to_vec() };
    let mut out = format!(
        "HTTP/1.0 {status}\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

/// Decodes a chunked body (no trailers expected).
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(raw, b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_answers_like_an_http10_peer() {
        let fake = super::super::FakeAuthKit::start_http10();
        let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, fake.port())).unwrap();
        conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        conn.write_all(
            b"GET /oauth2/jwks HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n",
        )
        .unwrap();
        // read_to_end returns only because the peer closes the connection.
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(!lower.contains("connection:"), "{head}");
        assert!(!lower.contains("transfer-encoding:"), "{head}");
        assert!(
            lower.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(body.contains("\"keys\""), "{body}");
        assert!(fake.issuer().ends_with(&format!(":{}", fake.port())));
    }

    #[test]
    fn answers_are_rewritten_as_http10() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\
            transfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        let out = String::from_utf8(as_http10(answer).unwrap()).unwrap();
        assert_eq!(
            out,
            "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
        );
    }
}
