//! Downloads into the content cache: ranged resume, retries with backoff, hashing on the way.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{FetchError, Stats};
use crate::cache::ContentCache;
use airlock_oci::{Digest, Hasher};

/// Small documents (JSON, checksums, manifests) are read into memory up to this size.
pub const MAX_DOCUMENT: usize = 16 << 20;

/// What one attempt came to: worth another try, or final.
pub(crate) enum Attempt {
    Retry(String),
    Fatal(FetchError),
}

/// An open body: the offset its first byte has, and the bytes.
pub(crate) struct Opened {
    pub from: u64,
    pub stream: BoxStream<'static, Result<Bytes, String>>,
}

#[derive(Clone)]
pub(crate) struct Http {
    pub client: reqwest::Client,
    pub retries: u32,
    pub delay: Duration,
    pub stats: Arc<Stats>,
    pub permits: Arc<tokio::sync::Semaphore>,
}

/// A downloaded file in the cache.
pub(crate) struct Downloaded {
    pub digest: Digest,
    pub size: u64,
    pub path: PathBuf,
}

impl Http {
    /// Runs `attempt` until it succeeds, fails for good, or the retries run out; waits
    /// `delay`, then twice that, and so on, between tries.
    pub async fn with_retries<T, F, Fut>(&self, url: &str, mut attempt: F) -> Result<T, FetchError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Attempt>>,
    {
        let attempts = self.retries + 1;
        for n in 1..=attempts {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(reason)) if n == attempts => {
                    return Err(FetchError::Unreachable { url: url.to_string(), attempts, reason })
                }
                Err(Attempt::Retry(reason)) => {
                    let wait = self.delay * 2u32.saturating_pow(n - 1);
                    tracing::warn!(url, attempt = n, %reason, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// GETs a small document, or `None` on 404.
    pub async fn get_optional(&self, url: &str) -> Result<Option<Vec<u8>>, FetchError> {
        self.get_optional_accepting(url, None).await
    }

    /// GETs a small document asking for `accept` (content negotiation), or `None` on 404.
    pub async fn get_optional_accepting(&self, url: &str, accept: Option<&str>) -> Result<Option<Vec<u8>>, FetchError> {
        self.with_retries(url, || async {
            let mut request = self.client.get(url);
            if let Some(accept) = accept {
                request = request.header(reqwest::header::ACCEPT, accept);
            }
            let response = request.send().await.map_err(|e| Attempt::Retry(describe(&e)))?;
            let status = response.status();
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            check_status(url, status)?;
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| Attempt::Retry(describe(&e)))?;
                if body.len() + chunk.len() > MAX_DOCUMENT {
                    return Err(Attempt::Fatal(FetchError::Upstream {
                        what: url.to_string(),
                        message: format!("the answer is larger than {MAX_DOCUMENT} bytes; this is not the document expected"),
                    }));
                }
                body.extend_from_slice(&chunk);
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            self.stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            Ok(Some(body))
        })
        .await
    }

    pub async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        self.get_optional(url).await?.ok_or_else(|| FetchError::Status {
            url: url.to_string(),
            status: 404,
            detail: " (not found)".into(),
        })
    }

    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, FetchError> {
        let body = self.get(url).await?;
        serde_json::from_slice(&body).map_err(|e| FetchError::Upstream {
            what: url.to_string(),
            message: format!("the answer is not the JSON expected: {e}"),
        })
    }

    /// Downloads a URL into the cache. With an expected digest the partial file survives a
    /// failed or killed run and the next run resumes it with a range request.
    pub async fn download(
        &self,
        url: &str,
        artifact: &str,
        expected: Option<(Digest, Option<u64>)>,
        cache: &ContentCache,
    ) -> Result<Downloaded, FetchError> {
        let client = self.client.clone();
        let url_owned = url.to_string();
        let open = move |offset: u64| {
            let client = client.clone();
            let url = url_owned.clone();
            async move { open_http(&client, &url, offset).await }
        };
        self.download_with(url, artifact, expected, cache, open).await
    }

    /// The download loop shared by HTTPS and registry blobs; `open(offset)` starts a body.
    pub async fn download_with<F, Fut>(
        &self,
        url: &str,
        artifact: &str,
        expected: Option<(Digest, Option<u64>)>,
        cache: &ContentCache,
        open: F,
    ) -> Result<Downloaded, FetchError>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Result<Opened, Attempt>>,
    {
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        let partial = match expected {
            Some((digest, _)) => cache.partial_path(&digest),
            None => cache.temp_file()?.1,
        };
        let expected_size = expected.and_then(|(_, size)| size);
        let result = self
            .with_retries(url, || attempt_download(artifact, url, &partial, expected_size, &open, &self.stats))
            .await;
        let (actual, size) = match result {
            Ok(done) => done,
            Err(e) => {
                // A known digest keeps its partial file for the next run to resume.
                if expected.is_none() || matches!(e, FetchError::Status { .. }) {
                    let _ = tokio::fs::remove_file(&partial).await;
                }
                return Err(e);
            }
        };
        if let Some((digest, want_size)) = expected {
            if actual != digest || want_size.is_some_and(|s| s != size) {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(FetchError::Mismatch {
                    artifact: artifact.to_string(),
                    url: url.to_string(),
                    expected: digest,
                    actual,
                    actual_size: size,
                });
            }
        }
        let path = cache.commit(&partial, &actual)?;
        Ok(Downloaded { digest: actual, size, path })
    }
}

async fn attempt_download<F, Fut>(
    artifact: &str,
    url: &str,
    partial: &Path,
    expected_size: Option<u64>,
    open: &F,
    stats: &Stats,
) -> Result<(Digest, u64), Attempt>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<Opened, Attempt>>,
{
    let io = |e: std::io::Error| Attempt::Fatal(FetchError::Upstream { what: partial.display().to_string(), message: e.to_string() });
    let mut have = tokio::fs::metadata(partial).await.map(|m| m.len()).unwrap_or(0);
    if expected_size.is_some_and(|size| have > size) {
        have = 0;
    }
    if have == expected_size.unwrap_or(u64::MAX) {
        // Complete already (killed between the last byte and the rename).
        return hash_file(partial, have).await.map_err(io);
    }
    let opened = open(have).await?;
    if opened.from != have && opened.from != 0 {
        return Err(Attempt::Retry(format!("the server resumed at byte {} instead of {have}", opened.from)));
    }
    if have > 0 && opened.from == have {
        tracing::info!(file = %partial.display(), offset = have, "resuming download");
    }
    let mut hasher = if opened.from == 0 { Hasher::new() } else { hash_prefix(partial, have).await.map_err(io)? };
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(opened.from == 0)
        .append(opened.from != 0)
        .open(partial)
        .await
        .map_err(io)?;
    let mut stream = opened.stream;
    let mut broken = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(reason) => {
                broken = Some(reason);
                break;
            }
        };
        if let Some(size) = expected_size.filter(|size| hasher.len() + chunk.len() as u64 > *size) {
            // More bytes than the lock says is wrong content; stop before it fills the disk.
            let _ = tokio::fs::remove_file(partial).await;
            return Err(Attempt::Fatal(FetchError::Oversize { artifact: artifact.to_string(), url: url.to_string(), expected_size: size }));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io)?;
        stats.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    file.flush().await.map_err(io)?;
    file.sync_all().await.map_err(io)?;
    if let Some(reason) = broken {
        // A registry client that checks digests itself reports a mismatch only at the end;
        // with every byte here, our own check gives the better message.
        if expected_size != Some(hasher.len()) {
            return Err(Attempt::Retry(format!("the transfer broke after {} bytes: {reason}", hasher.len())));
        }
    }
    stats.requests.fetch_add(1, Ordering::Relaxed);
    Ok(hasher.finish())
}

async fn hash_prefix(path: &Path, len: u64) -> std::io::Result<Hasher> {
    let mut file = tokio::fs::File::open(path).await?.take(len);
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    if hasher.len() != len {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the partial file shrank"));
    }
    Ok(hasher)
}

async fn hash_file(path: &Path, len: u64) -> std::io::Result<(Digest, u64)> {
    Ok(hash_prefix(path, len).await?.finish())
}

/// Opens a plain HTTP(S) body from `offset`, with a range request when resuming.
pub(crate) async fn open_http(client: &reqwest::Client, url: &str, offset: u64) -> Result<Opened, Attempt> {
    let mut request = client.get(url);
    if offset > 0 {
        request = request.header(RANGE, format!("bytes={offset}-"));
    }
    let response = request.send().await.map_err(|e| Attempt::Retry(describe(&e)))?;
    let status = response.status();
    let from = match status {
        StatusCode::PARTIAL_CONTENT => {
            let range = response.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("");
            parse_content_range_start(range)
                .ok_or_else(|| Attempt::Retry(format!("unreadable Content-Range `{range}`")))?
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            return Err(Attempt::Retry("the server refused to resume (416); starting over".into()))
                .inspect_err(|_| tracing::warn!(url, "range not satisfiable"))
        }
        _ => {
            check_status(url, status)?;
            0
        }
    };
    let stream = response.bytes_stream().map(|r| r.map_err(|e| describe(&e))).boxed();
    Ok(Opened { from, stream })
}

fn parse_content_range_start(value: &str) -> Option<u64> {
    value.strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

/// 5xx, 408 and 429 are worth retrying; other failures are final.
pub(crate) fn check_status(url: &str, status: StatusCode) -> Result<(), Attempt> {
    if status.is_success() {
        return Ok(());
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT {
        return Err(Attempt::Retry(format!("HTTP {status}")));
    }
    let detail = match status {
        StatusCode::NOT_FOUND => " (not found: check the name, version and platform)".to_string(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => " (access denied: check the credentials)".to_string(),
        _ => String::new(),
    };
    Err(Attempt::Fatal(FetchError::Status { url: url.to_string(), status: status.as_u16(), detail }))
}

/// A reqwest error with its causes, which hold the useful part (connection refused, TLS …).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_range_starts_parse() {
        assert_eq!(super::parse_content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(super::parse_content_range_start("items 1-2"), None);
    }
}
