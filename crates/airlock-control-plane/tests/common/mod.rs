//! In-process harness: the real router over an in-memory store, driven with
//! `tower::ServiceExt::oneshot`, with a manual clock.
#![allow(dead_code)]

use std::time::Duration;

use airlock_control_plane::api::{self, App, Config};
use airlock_control_plane::auth;
use airlock_control_plane::bootstrap;
use airlock_control_plane::model::TokenKind;
use airlock_control_plane::rbac::Role;
use airlock_control_plane::secrets::{Kek, Keyring};
use airlock_control_plane::store::Store;
use airlock_control_plane::time::{Clock, Timestamp};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHLsNi6edQQ/hM0oqVME9cMFy8ucKYuiHhGjKDBsYmDK dev@laptop";

pub struct Harness {
    pub app: App,
    pub router: Router,
    pub clock: Clock,
    /// Token of the site owner created by `admin init`.
    pub site_token: String,
    /// Workspace snapshots uploaded by runners.
    pub backups: tempfile::TempDir,
}

pub struct OrgUsers {
    pub org_id: String,
    pub owner: (String, String),
    pub admin: (String, String),
    pub member: (String, String),
    pub auditor: (String, String),
}

impl OrgUsers {
    /// (user id, token) for a role.
    pub fn get(&self, role: Role) -> &(String, String) {
        match role {
            Role::Owner => &self.owner,
            Role::Admin => &self.admin,
            Role::Member => &self.member,
            Role::Auditor => &self.auditor,
        }
    }
}

impl Harness {
    pub fn new() -> Harness {
        Self::with_store(Store::temporary().unwrap())
    }

    pub fn with_store(store: Store) -> Harness {
        let clock = Clock::manual(Timestamp::parse("2030-01-01T00:00:00Z").unwrap());
        let init =
            bootstrap::init_store(&store, "site", "root@site.internal", clock.now()).unwrap();
        let keyring = Keyring::new(Kek::from_bytes([7; 32]), vec![]);
        Self::reopen(store, keyring, clock, init.token)
    }

    /// A harness over an already initialized store.
    pub fn reopen(store: Store, keyring: Keyring, clock: Clock, site_token: String) -> Harness {
        let backups = tempfile::tempdir().unwrap();
        let config = Config {
            backup_dir: Some(backups.path().to_path_buf()),
            ..Config::default()
        };
        let app = App::new(store, keyring, clock.clone(), config);
        let router = api::router(app.clone());
        Harness {
            app,
            router,
            clock,
            site_token,
            backups,
        }
    }

    /// Closes the store (it must not be temporary to be opened again) and waits until its
    /// folder is free, so the test can open it again at once.
    pub fn close(self) {
        let Harness { app, router, .. } = self;
        drop(router);
        let store = app
            .into_store()
            .unwrap_or_else(|_| panic!("a handle to the app outlived its harness"));
        store.close().unwrap();
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_from(None, method, path, token, body).await
    }

    /// [`Harness::call`] as if from the client address `from` (what the server learns from
    /// the TCP connection).
    pub async fn call_from(
        &self,
        from: Option<&str>,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(ip) = from {
            let addr = std::net::SocketAddr::new(ip.parse().unwrap(), 40000);
            req = req.extension(axum::extract::ConnectInfo(addr));
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    /// Calls and asserts the status, returning the body.
    pub async fn ok(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let (status, value) = self.call(method, path, Some(token), body).await;
        assert_eq!(status.as_u16(), expect, "{method} {path}: {value}");
        value
    }

    /// A personal access token for `user_id`, written straight into the store (fast: no
    /// password hashing).
    pub fn token_for(&self, org_id: &str, user_id: &str) -> String {
        self.app
            .store
            .commit(
                self.clock.now(),
                |tx| -> Result<String, airlock_control_plane::store::StoreError> {
                    Ok(auth::issue_token(
                        tx,
                        TokenKind::Personal,
                        org_id,
                        user_id,
                        "test",
                        self.clock.now(),
                        Some(Duration::from_secs(86_400 * 30)),
                    )
                    .0)
                },
            )
            .unwrap()
    }

    /// A new org with one user per role, via the API.
    pub async fn org_with_users(&self, name: &str) -> OrgUsers {
        let created = self
            .ok("POST", "/api/v1/orgs", &self.site_token, Some(json!({"name": name, "owner_email": format!("owner@{name}.internal"), "owner_password": "correct horse battery"})), 201)
            .await;
        let org_id = created["org"]["id"].as_str().unwrap().to_string();
        let owner_id = created["owner"]["id"].as_str().unwrap().to_string();
        let owner_token = self.token_for(&org_id, &owner_id);
        let mut users = Vec::new();
        for role in ["admin", "member", "auditor"] {
            let user = self
                .ok("POST", "/api/v1/users", &owner_token, Some(json!({"email": format!("{role}@{name}.internal"), "role": role, "password": "correct horse battery"})), 201)
                .await;
            let id = user["id"].as_str().unwrap().to_string();
            let token = self.token_for(&org_id, &id);
            users.push((id, token));
        }
        let mut users = users.into_iter();
        OrgUsers {
            org_id,
            owner: (owner_id, owner_token),
            admin: users.next().unwrap(),
            member: users.next().unwrap(),
            auditor: users.next().unwrap(),
        }
    }

    /// A class, a project, and an active runner (exchanged and heartbeating) in the org.
    /// Returns (class id, project id, runner id, runner credential).
    pub async fn inventory(
        &self,
        admin_token: &str,
        capacity: u32,
    ) -> (String, String, String, String) {
        let class = self
            .ok("POST", "/api/v1/classes", admin_token, Some(json!({"name": "small", "resources": {"cpu_millis": 2000, "memory_mib": 4096, "disk_gib": 20, "pids": 1024}})), 201)
            .await;
        let class_id = class["id"].as_str().unwrap().to_string();
        let project = self
            .ok(
                "POST",
                "/api/v1/projects",
                admin_token,
                Some(json!({"name": "backend", "repository_url": "https://git.internal/team/backend.git", "image": "mirror.internal:5000/devcontainers/base:1.0", "class_id": class_id, "tasks": [{"name": "build", "command": "make build"}]})),
                201,
            )
            .await;
        let project_id = project["id"].as_str().unwrap().to_string();
        let (runner_id, credential) = self.active_runner(admin_token, "runner-1", capacity).await;
        (class_id, project_id, runner_id, credential)
    }

    pub async fn active_runner(
        &self,
        admin_token: &str,
        name: &str,
        capacity: u32,
    ) -> (String, String) {
        let created = self
            .ok(
                "POST",
                "/api/v1/runners",
                admin_token,
                Some(json!({"name": name, "capacity": capacity})),
                201,
            )
            .await;
        let runner_id = created["runner"]["id"].as_str().unwrap().to_string();
        let exchanged = self
            .call(
                "POST",
                "/api/v1/runner/exchange",
                None,
                Some(json!({"exchange_token": created["exchange_token"]})),
            )
            .await;
        assert_eq!(exchanged.0, StatusCode::OK, "{}", exchanged.1);
        let credential = exchanged.1["credential"].as_str().unwrap().to_string();
        self.ok(
            "POST",
            "/api/v1/runner/heartbeat",
            &credential,
            Some(json!({"status": "active", "version": "test"})),
            200,
        )
        .await;
        (runner_id, credential)
    }
}

/// Every item of a page, as an array.
pub fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().expect("a page has items")
}
