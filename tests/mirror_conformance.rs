//! The OCI Distribution Spec's conformance workflows (pull, push, content discovery,
//! content management), written against the spec's text since its Go suite cannot be
//! fetched here. Each request and status code below is what the spec requires.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use common::*;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::json;

struct Server {
    child: Child,
    base: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("mirror");
        let token = stdout(&ok(airlock().args(["mirror", "token", "create", "--name", "conformance", "--data-dir"]).arg(&data)))
            .trim()
            .to_string();
        let mut child = airlock()
            .args(["mirror", "serve", "--allow-push", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line.trim().rsplit(' ').next().unwrap().to_string();
        Server { child, base, token, _dir: dir }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Pushes a blob monolithically (POST ?digest=) and returns its digest.
fn push_blob(s: &Server, repo: &str, bytes: &[u8]) -> String {
    let digest = digest_of(bytes);
    let r = client()
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
        .basic_auth("any", Some(&s.token))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().unwrap_or_default());
    digest
}

fn image_manifest(config: &str, config_len: usize, layer: &str, layer_len: usize, subject: Option<(&str, usize)>) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_len },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_len }],
    });
    if let Some((digest, size)) = subject {
        m["artifactType"] = json!("application/vnd.example.signature");
        m["subject"] = json!({ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size });
    }
    serde_json::to_vec(&m).unwrap()
}

fn put_manifest(s: &Server, repo: &str, reference: &str, bytes: &[u8]) -> reqwest::blocking::Response {
    client()
        .put(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .basic_auth("any", Some(&s.token))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(bytes.to_vec())
        .send()
        .unwrap()
}

#[test]
fn push_workflow_chunked_monolithic_mount_and_errors() {
    let s = Server::start();
    let c = client();
    // Chunked: POST, PATCH with Content-Range, status, PATCH, PUT ?digest=.
    let data = b"0123456789abcdefghij".repeat(100);
    let r = c.post(s.url("/v2/conf/chunked/blobs/uploads/")).basic_auth("u", Some(&s.token)).send().unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = c
        .patch(s.url(&location))
        .basic_auth("u", Some(&s.token))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", format!("0-{}", 999))
        .body(data[..1000].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["range"], "0-999");
    let r = c.get(s.url(&location)).basic_auth("u", Some(&s.token)).send().unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["range"], "0-999");
    // Out of order chunk: 416.
    let r = c
        .patch(s.url(&location))
        .basic_auth("u", Some(&s.token))
        .header("Content-Range", "5-10")
        .body(b"xxxxxx".to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let r = c
        .patch(s.url(&location))
        .basic_auth("u", Some(&s.token))
        .header("Content-Range", format!("1000-{}", data.len() - 1))
        .body(data[1000..].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let digest = digest_of(&data);
    let r = c.put(s.url(&format!("{location}?digest={digest}"))).basic_auth("u", Some(&s.token)).send().unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    let r = c.get(s.url(&format!("/v2/conf/chunked/blobs/{digest}"))).send().unwrap();
    assert_eq!(r.bytes().unwrap().as_ref(), data.as_slice());

    // Wrong digest on close: 400 DIGEST_INVALID, and the blob is not visible.
    let r = c.post(s.url("/v2/conf/chunked/blobs/uploads/")).basic_auth("u", Some(&s.token)).send().unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let wrong = digest_of(b"something else");
    let r = c.put(s.url(&format!("{location}?digest={wrong}"))).basic_auth("u", Some(&s.token)).body(b"actual".to_vec()).send().unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().unwrap().contains("DIGEST_INVALID"));
    assert_eq!(c.head(s.url(&format!("/v2/conf/chunked/blobs/{}", digest_of(b"actual")))).send().unwrap().status(), StatusCode::NOT_FOUND);

    // Cross-repository mount of a known blob: 201 without an upload.
    let r = c
        .post(s.url(&format!("/v2/conf/other/blobs/uploads/?mount={digest}&from=conf/chunked")))
        .basic_auth("u", Some(&s.token))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["location"], format!("/v2/conf/other/blobs/{digest}").as_str());
    // Mount of an unknown blob falls back to an upload session (202).
    let r = c
        .post(s.url(&format!("/v2/conf/other/blobs/uploads/?mount={}&from=conf/chunked", digest_of(b"unknown"))))
        .basic_auth("u", Some(&s.token))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // A manifest referencing a blob the registry lacks: MANIFEST_BLOB_UNKNOWN.
    let config = push_blob(&s, "conf/chunked", b"{}");
    let manifest = image_manifest(&config, 2, &digest_of(b"missing layer"), 13, None);
    let r = put_manifest(&s, "conf/chunked", "broken", &manifest);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().unwrap().contains("MANIFEST_BLOB_UNKNOWN"));

    // Unauthenticated push: 401 with a Basic challenge.
    let r = c.post(s.url("/v2/conf/chunked/blobs/uploads/")).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
}

#[test]
fn pull_discovery_and_management_workflows() {
    let s = Server::start();
    let c = client();
    let layer = b"layer bytes".to_vec();
    let layer_digest = push_blob(&s, "conf/app", &layer);
    let config_digest = push_blob(&s, "conf/app", b"{}");
    let manifest = image_manifest(&config_digest, 2, &layer_digest, layer.len(), None);
    let manifest_digest = digest_of(&manifest);
    for tag in ["v1", "v2", "v3", "latest"] {
        let r = put_manifest(&s, "conf/app", tag, &manifest);
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["docker-content-digest"], manifest_digest.as_str());
    }

    // Pull by tag and by digest, GET and HEAD.
    for reference in ["v1", manifest_digest.as_str()] {
        let r = c.get(s.url(&format!("/v2/conf/app/manifests/{reference}"))).header("Accept", "application/vnd.oci.image.manifest.v1+json").send().unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(r.headers()["docker-content-digest"], manifest_digest.as_str());
        assert_eq!(r.bytes().unwrap().as_ref(), manifest.as_slice());
        let r = c.head(s.url(&format!("/v2/conf/app/manifests/{reference}"))).send().unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-length"], manifest.len().to_string().as_str());
    }
    let r = c.head(s.url(&format!("/v2/conf/app/blobs/{layer_digest}"))).send().unwrap();
    assert_eq!((r.status(), r.headers()["content-length"].to_str().unwrap()), (StatusCode::OK, layer.len().to_string().as_str()));

    // Tags list with paging: n, then last, with a Link header while more remain.
    let r = c.get(s.url("/v2/conf/app/tags/list?n=2")).send().unwrap();
    let link = r.headers().get("link").map(|l| l.to_str().unwrap().to_string());
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body, json!({ "name": "conf/app", "tags": ["latest", "v1"] }));
    assert_eq!(link.as_deref(), Some("</v2/conf/app/tags/list?n=2&last=v1>; rel=\"next\""));
    let body: serde_json::Value = c.get(s.url("/v2/conf/app/tags/list?n=2&last=v1")).send().unwrap().json().unwrap();
    assert_eq!(body["tags"], json!(["v2", "v3"]));

    // Referrers: an artifact whose subject is the image, filtered by artifactType.
    let sig_layer = push_blob(&s, "conf/app", b"signature");
    let referrer = image_manifest(&config_digest, 2, &sig_layer, 9, Some((&manifest_digest, manifest.len())));
    let referrer_digest = digest_of(&referrer);
    let r = put_manifest(&s, "conf/app", &referrer_digest, &referrer);
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["oci-subject"], manifest_digest.as_str());
    let r = c.get(s.url(&format!("/v2/conf/app/referrers/{manifest_digest}"))).send().unwrap();
    assert_eq!(r.headers()["content-type"], "application/vnd.oci.image.index.v1+json");
    let index: serde_json::Value = r.json().unwrap();
    assert_eq!(index["manifests"][0]["digest"], referrer_digest.as_str());
    assert_eq!(index["manifests"][0]["artifactType"], "application/vnd.example.signature");
    let r = c.get(s.url(&format!("/v2/conf/app/referrers/{manifest_digest}?artifactType=application/vnd.other"))).send().unwrap();
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    let index: serde_json::Value = r.json().unwrap();
    assert_eq!(index["manifests"], json!([]));
    // No referrers: an empty index, not 404.
    let r = c.get(s.url(&format!("/v2/conf/app/referrers/{referrer_digest}"))).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Content management: delete a tag, then the manifest by digest, then a blob.
    let r = c.delete(s.url("/v2/conf/app/manifests/v3")).basic_auth("u", Some(&s.token)).send().unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(c.get(s.url("/v2/conf/app/manifests/v3")).send().unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(c.get(s.url("/v2/conf/app/manifests/v1")).send().unwrap().status(), StatusCode::OK);
    let r = c.delete(s.url(&format!("/v2/conf/app/manifests/{manifest_digest}"))).basic_auth("u", Some(&s.token)).send().unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c.get(s.url(&format!("/v2/conf/app/manifests/{manifest_digest}"))).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().unwrap().contains("MANIFEST_UNKNOWN"));
    assert_eq!(c.get(s.url("/v2/conf/app/manifests/v1")).send().unwrap().status(), StatusCode::NOT_FOUND);
    let r = c.delete(s.url(&format!("/v2/conf/app/blobs/{layer_digest}"))).basic_auth("u", Some(&s.token)).send().unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c.get(s.url(&format!("/v2/conf/app/blobs/{layer_digest}"))).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().unwrap().contains("BLOB_UNKNOWN"));
    let r = c.delete(s.url(&format!("/v2/conf/app/blobs/{layer_digest}"))).basic_auth("u", Some(&s.token)).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// Conformance "GET request to tags list should reflect manifest deletion": deleting a
/// repository's last manifest empties it but keeps it known, so its tag list is an empty
/// 200 (as distribution answers), while a repository never pushed to stays `NAME_UNKNOWN`.
#[test]
fn emptied_repository_lists_no_tags_instead_of_name_unknown() {
    let s = Server::start();
    let c = client();
    let layer = push_blob(&s, "conf/emptied", b"only layer");
    let config = push_blob(&s, "conf/emptied", b"{}");
    let manifest = image_manifest(&config, 2, &layer, 10, None);
    let digest = digest_of(&manifest);
    assert_eq!(put_manifest(&s, "conf/emptied", "only", &manifest).status(), StatusCode::CREATED);

    let r = c.delete(s.url("/v2/conf/emptied/manifests/only")).basic_auth("u", Some(&s.token)).send().unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c.delete(s.url(&format!("/v2/conf/emptied/manifests/{digest}"))).basic_auth("u", Some(&s.token)).send().unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    let r = c.get(s.url("/v2/conf/emptied/tags/list")).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body, json!({ "name": "conf/emptied", "tags": [] }));
    // A tag of the emptied repository is an unknown manifest, not an unknown repository.
    let r = c.get(s.url("/v2/conf/emptied/manifests/only")).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().unwrap().contains("MANIFEST_UNKNOWN"));

    let r = c.get(s.url("/v2/conf/never-pushed/tags/list")).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().unwrap().contains("NAME_UNKNOWN"));
}

/// The spec: "A registry MUST accept an otherwise valid manifest with a subject field that
/// references a manifest that does not exist, allowing clients to push a manifest and
/// referrers to that manifest in either order." The referrer is listed once pushed, and
/// still after its subject arrives.
#[test]
fn referrer_pushed_before_its_subject_is_accepted_and_listed() {
    let s = Server::start();
    let c = client();
    let layer = push_blob(&s, "conf/order", b"image layer");
    let config = push_blob(&s, "conf/order", b"{}");
    let subject = image_manifest(&config, 2, &layer, 11, None);
    let subject_digest = digest_of(&subject);
    let sig = push_blob(&s, "conf/order", b"signature");
    let referrer = image_manifest(&config, 2, &sig, 9, Some((&subject_digest, subject.len())));
    let referrer_digest = digest_of(&referrer);

    let r = put_manifest(&s, "conf/order", &referrer_digest, &referrer);
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["oci-subject"], subject_digest.as_str());
    let index: serde_json::Value = c.get(s.url(&format!("/v2/conf/order/referrers/{subject_digest}"))).send().unwrap().json().unwrap();
    assert_eq!(index["manifests"][0]["digest"], referrer_digest.as_str());

    assert_eq!(put_manifest(&s, "conf/order", "v1", &subject).status(), StatusCode::CREATED);
    let index: serde_json::Value = c.get(s.url(&format!("/v2/conf/order/referrers/{subject_digest}"))).send().unwrap().json().unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
}

/// Some clients (and the conformance suite's referrers data) send a `subject` with only a
/// digest and size: the referrer is still accepted and indexed under that digest.
#[test]
fn a_subject_without_media_type_is_accepted() {
    let s = Server::start();
    let c = client();
    let layer = push_blob(&s, "conf/lenient", b"image layer");
    let config = push_blob(&s, "conf/lenient", b"{}");
    let subject = image_manifest(&config, 2, &layer, 11, None);
    let subject_digest = digest_of(&subject);
    assert_eq!(put_manifest(&s, "conf/lenient", "v1", &subject).status(), StatusCode::CREATED);
    let sig = push_blob(&s, "conf/lenient", b"signature");
    let mut referrer: serde_json::Value = serde_json::from_slice(&image_manifest(&config, 2, &sig, 9, Some((&subject_digest, subject.len())))).unwrap();
    referrer["subject"].as_object_mut().unwrap().remove("mediaType");
    let referrer = serde_json::to_vec(&referrer).unwrap();
    let referrer_digest = digest_of(&referrer);
    let r = put_manifest(&s, "conf/lenient", &referrer_digest, &referrer);
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["oci-subject"], subject_digest.as_str());
    let index: serde_json::Value = c.get(s.url(&format!("/v2/conf/lenient/referrers/{subject_digest}"))).send().unwrap().json().unwrap();
    assert_eq!(index["manifests"][0]["digest"], referrer_digest.as_str());
}
