//! The guarded HTTP clients against a real HTTP server on loopback: allowed requests go
//! through; IP literals, redirect hops and names outside egress.allow are refused before a
//! socket opens, and each refusal is a line in the audit file.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use airlock_egress::{
    async_client, blocking_client, client_builder, EgressError, EgressGuard, EgressRecord, HostResolver,
    JsonLinesAudit,
};

/// A tiny HTTP/1.1 server: `/` answers "hello", `/to?URL` redirects to URL. Records the paths
/// it was asked for.
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let seen = seen.clone();
                thread::spawn(move || {
                    let _ = serve(stream, &seen);
                });
            }
        });
        Server { port, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(mut stream: TcpStream, seen: &Mutex<Vec<String>>) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
    seen.lock().unwrap().push(path.clone());
    let response = match path.strip_prefix("/to?") {
        Some(target) => format!("HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        None => "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_string(),
    };
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// Fails the test if the guard asks for any DNS lookup.
struct NoLookups;

impl HostResolver for NoLookups {
    fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        panic!("the guard looked up {host:?}: a refused name must not reach DNS");
    }
}

/// Stand-in internal DNS.
struct Zone(Vec<(&'static str, IpAddr)>);

impl HostResolver for Zone {
    fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        self.0
            .iter()
            .filter(|(name, _)| *name == host)
            .map(|(_, ip)| Ok(*ip))
            .collect::<io::Result<Vec<_>>>()
            .and_then(|ips| {
                if ips.is_empty() {
                    Err(io::Error::new(io::ErrorKind::NotFound, "no such host"))
                } else {
                    Ok(ips)
                }
            })
    }
}

fn guard(dir: &Path, allow: &[&str]) -> EgressGuard {
    let audit = Arc::new(JsonLinesAudit::in_data_dir(dir).unwrap());
    EgressGuard::from_allow_list(allow, audit).unwrap().with_resolver(Arc::new(NoLookups))
}

fn audit_records(dir: &Path) -> Vec<EgressRecord> {
    let text = std::fs::read_to_string(dir.join("egress-audit.jsonl")).unwrap_or_default();
    text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn refused(result: Result<impl std::fmt::Debug, EgressError>) -> (String, String) {
    match result {
        Err(EgressError::Refused { destination, reason }) => (destination, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn loopback_requests_and_allowed_redirects_go_through() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let client = blocking_client(&guard(dir.path(), &[]), "runner").build().unwrap();

    let response = client.get(server.url("/")).unwrap().send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap(), "hello");

    // `localhost` goes through the DNS hook, which answers it without a lookup.
    let response = client.get(format!("http://localhost:{}/named", server.port)).unwrap().send().unwrap();
    assert_eq!(response.text().unwrap(), "hello");

    // A redirect to an allowed destination is followed.
    let response = client.get(server.url(&format!("/to?{}", server.url("/after")))).unwrap().send().unwrap();
    assert_eq!(response.url().path(), "/after");
    assert_eq!(response.text().unwrap(), "hello");

    assert_eq!(server.requests().len(), 4);
    assert!(audit_records(dir.path()).is_empty());
}

#[test]
fn an_ip_literal_outside_the_list_is_refused_before_a_socket_opens() {
    let dir = tempfile::tempdir().unwrap();
    let client = blocking_client(&guard(dir.path(), &["git.acme.internal", "10.20.0.0/16"]), "runner").build().unwrap();

    let (destination, reason) = refused(client.get("http://192.0.2.1:9/"));
    assert_eq!(destination, "192.0.2.1:9");
    assert_eq!(
        reason,
        "not in egress.allow (allowed: git.acme.internal, 10.20.0.0/16); add it to egress.allow in airlock.toml if this destination is internal"
    );

    // Proof that no socket opens: 0.0.0.0 reaches this host's own listeners, but it is not
    // loopback, so the guard refuses it and the listener never sees a connection.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    drop(TcpStream::connect(("0.0.0.0", port)).expect("0.0.0.0 reaches a local listener on Linux"));
    listener.accept().expect("the direct connection arrived");
    let url = format!("http://0.0.0.0:{port}/");
    refused(client.get(&url));
    let request = reqwest::blocking::Request::new(reqwest::Method::GET, url.parse().unwrap());
    refused(client.execute(request));
    assert_eq!(listener.accept().unwrap_err().kind(), io::ErrorKind::WouldBlock);

    let records = audit_records(dir.path());
    let destinations: Vec<&str> = records.iter().map(|r| r.destination.as_str()).collect();
    let zero = format!("0.0.0.0:{port}");
    assert_eq!(destinations, ["192.0.2.1:9", zero.as_str(), zero.as_str()]);
    assert!(records.iter().all(|r| r.component == "runner" && r.reason.starts_with("not in egress.allow")));
}

#[test]
fn a_redirect_out_of_the_list_is_refused_at_the_hop() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let client = blocking_client(&guard(dir.path(), &[]), "mirror").build().unwrap();

    let err = client.get(server.url("/to?http://192.0.2.1/")).unwrap().send().unwrap_err();
    let (destination, _) = refused(Err::<(), _>(EgressError::from(err)));
    assert_eq!(destination, "192.0.2.1:80");

    // A name is refused at the hop too, without a DNS lookup (NoLookups would panic).
    let err = client.get(server.url("/to?https://updates.example.com/check")).unwrap().send().unwrap_err();
    let (destination, reason) = refused(Err::<(), _>(err.into()));
    assert_eq!(destination, "updates.example.com:443");
    assert!(reason.contains("egress.allow is empty: only loopback is allowed"), "{reason}");

    // Only the redirecting requests reached the server.
    assert_eq!(server.requests(), ["/to?http://192.0.2.1/", "/to?https://updates.example.com/check"]);
    let records = audit_records(dir.path());
    assert_eq!(records.len(), 2);
    assert_eq!((records[0].component.as_str(), records[0].destination.as_str()), ("mirror", "192.0.2.1:80"));
    assert_eq!(records[1].destination, "updates.example.com:443");
}

#[test]
fn the_plain_builder_refuses_names_in_its_dns_hook() {
    let dir = tempfile::tempdir().unwrap();
    let guard = guard(dir.path(), &["git.acme.internal"]).with_component("control-plane");
    let client = client_builder(&guard).build().unwrap();
    let err = client.get("http://telemetry.example.com/ping").send().unwrap_err();
    let err = EgressError::from(err);
    assert_eq!(
        err.to_string(),
        "refused outbound connection to telemetry.example.com: not in egress.allow (allowed: git.acme.internal); \
         add it to egress.allow in airlock.toml if this destination is internal"
    );
    let records = audit_records(dir.path());
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].component.as_str(), records[0].destination.as_str()), ("control-plane", "telemetry.example.com"));
}

#[test]
fn names_allowed_through_an_address_entry_connect_to_the_checked_addresses() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let zone = Zone(vec![
        ("svc.acme.internal", "127.0.0.1".parse().unwrap()),
        ("evil.acme.internal", "127.0.0.1".parse().unwrap()),
        ("evil.acme.internal", "192.0.2.9".parse().unwrap()),
    ]);
    let guard = EgressGuard::from_allow_list(&["10.0.0.0/8"], Arc::new(JsonLinesAudit::in_data_dir(dir.path()).unwrap()))
        .unwrap()
        .with_resolver(Arc::new(zone));
    let client = blocking_client(&guard, "runner").build().unwrap();

    // Only the stand-in zone knows this name: reaching the server proves the connection used
    // the addresses the guard checked.
    let response = client.get(format!("http://svc.acme.internal:{}/", server.port)).unwrap().send().unwrap();
    assert_eq!(response.text().unwrap(), "hello");

    let err = client.get(format!("http://evil.acme.internal:{}/", server.port)).unwrap().send().unwrap_err();
    let (destination, reason) = refused(Err::<(), _>(err.into()));
    assert_eq!(destination, "evil.acme.internal");
    assert!(reason.starts_with("evil.acme.internal resolves to 192.0.2.9, outside egress.allow (allowed: 10.0.0.0/8)"), "{reason}");
    assert_eq!(server.requests(), ["/"]);
    assert_eq!(audit_records(dir.path()).len(), 1);
}

#[test]
fn a_configured_proxy_cannot_reopen_a_path_out() {
    let server = Server::start();
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    proxy.set_nonblocking(true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = blocking_client(&guard(dir.path(), &[]), "runner")
        .configure(move |b| b.proxy(reqwest::Proxy::all(proxy_url).unwrap()))
        .build()
        .unwrap();
    let response = client.get(server.url("/direct")).unwrap().send().unwrap();
    assert_eq!(response.text().unwrap(), "hello");
    assert_eq!(server.requests(), ["/direct"]);
    assert_eq!(proxy.accept().unwrap_err().kind(), io::ErrorKind::WouldBlock, "the request went through the proxy");
}

#[tokio::test]
async fn the_async_client_is_guarded_the_same_way() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let client = async_client(&guard(dir.path(), &[]), "runner").build().unwrap();

    let response = client.get(server.url("/")).unwrap().send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "hello");

    refused(client.get("http://192.0.2.1:9/"));
    let err = client.get(server.url("/to?http://192.0.2.1/")).unwrap().send().await.unwrap_err();
    refused(Err::<(), _>(err.into()));
    let err = client.get("http://cdn.example.net/x").unwrap_err();
    assert!(err.is_refused());

    let mut buf = String::new();
    std::fs::File::open(dir.path().join("egress-audit.jsonl")).unwrap().read_to_string(&mut buf).unwrap();
    assert_eq!(buf.lines().count(), 3, "{buf}");
}
