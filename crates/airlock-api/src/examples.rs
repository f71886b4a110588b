//! One example of every body type, for the round-trip test and for readers of the types.
//! Optional fields are filled where they can be, so the examples exercise them.

use crate::*;

/// A plausible value of a wire type.
pub trait Example: Sized {
    fn example() -> Self;
}

const T0: Timestamp = Timestamp(1_900_000_000_000);
const T1: Timestamp = Timestamp(1_900_000_360_000);

fn id(prefix: &str) -> String {
    format!("{prefix}_0190f6b2c3d4e5f60718293a4b5c")
}

impl Example for User {
    fn example() -> Self {
        User {
            id: id("usr"),
            org_id: id("org"),
            email: "ada@example.internal".into(),
            name: "Ada".into(),
            role: Role::Member,
            disabled: false,
            has_password: true,
            created_at: T0,
        }
    }
}

impl Example for Org {
    fn example() -> Self {
        Org {
            id: id("org"),
            name: "acme".into(),
            site: false,
            policy: OrgPolicy::default(),
            created_at: T0,
        }
    }
}

impl Example for Token {
    fn example() -> Self {
        Token {
            id: id("tok"),
            kind: TokenKind::Personal,
            org_id: id("org"),
            subject_id: id("usr"),
            name: "laptop".into(),
            created_at: T0,
            expires_at: Some(T1),
            revoked_at: None,
            used_at: None,
        }
    }
}

impl Example for LoginRequest {
    fn example() -> Self {
        LoginRequest {
            email: "ada@example.internal".into(),
            password: "correct horse battery staple".into(),
        }
    }
}

impl Example for Session {
    fn example() -> Self {
        Session {
            token: "alk_ses_0123456789abcdef".into(),
            token_id: id("tok"),
            expires_at: T1,
            user: User::example(),
        }
    }
}

impl Example for Whoami {
    fn example() -> Self {
        Whoami {
            user: User::example(),
            org: Org::example(),
            token: Token::example(),
            site_admin: false,
        }
    }
}

impl Example for CreateUser {
    fn example() -> Self {
        CreateUser {
            email: "grace@example.internal".into(),
            name: Some("Grace".into()),
            role: Role::Admin,
            password: "a long initial password".into(),
        }
    }
}

impl Example for UpdateUser {
    fn example() -> Self {
        UpdateUser {
            name: Some("Grace H.".into()),
            role: Some(Role::Auditor),
            disabled: Some(true),
        }
    }
}

impl Example for SetPassword {
    fn example() -> Self {
        SetPassword {
            current_password: Some("the old password".into()),
            new_password: "a new long password".into(),
        }
    }
}

impl Example for CreateToken {
    fn example() -> Self {
        CreateToken {
            name: "ci".into(),
            expires_in_days: Some(90),
        }
    }
}

impl Example for NewToken {
    fn example() -> Self {
        NewToken {
            token: "alk_pat_0123456789abcdef".into(),
            info: Token::example(),
        }
    }
}

impl Example for SshKey {
    fn example() -> Self {
        SshKey {
            id: id("key"),
            org_id: id("org"),
            user_id: id("usr"),
            name: "laptop".into(),
            public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ada@laptop".into(),
            fingerprint: "SHA256:Qm9ndXNGaW5nZXJwcmludA".into(),
            created_at: T0,
        }
    }
}

impl Example for AddSshKey {
    fn example() -> Self {
        AddSshKey {
            name: "laptop".into(),
            public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ada@laptop".into(),
        }
    }
}

impl Example for CreateOrg {
    fn example() -> Self {
        CreateOrg {
            name: "acme".into(),
            owner_email: "owner@acme.internal".into(),
            owner_password: "a long owner password".into(),
            policy: Some(OrgPolicy::default()),
        }
    }
}

impl Example for NewOrg {
    fn example() -> Self {
        NewOrg {
            org: Org::example(),
            owner: User {
                role: Role::Owner,
                ..User::example()
            },
        }
    }
}

impl Example for UpdateOrg {
    fn example() -> Self {
        UpdateOrg {
            name: Some("acme-labs".into()),
            policy: Some(PolicyChange {
                max_running_environments_per_user: Some(3),
                idle_timeout_minutes: Some(0),
                network: Some(crate::NetworkNarrowing { allow: Some(vec!["10.20.0.0/16:443".into(), "git.internal:22".into()]) }),
            }),
        }
    }
}

fn resources() -> Resources {
    Resources {
        cpu_millis: 2000,
        memory_mib: 4096,
        disk_gib: 20,
        pids: 1024,
    }
}

fn tasks() -> Vec<Task> {
    vec![Task {
        name: "build".into(),
        command: "cargo build".into(),
    }]
}

impl Example for EnvironmentClass {
    fn example() -> Self {
        EnvironmentClass {
            id: id("cls"),
            org_id: id("org"),
            name: "standard".into(),
            resources: resources(),
            created_at: T0,
            updated_at: T1,
        }
    }
}

impl Example for CreateClass {
    fn example() -> Self {
        CreateClass {
            name: "standard".into(),
            resources: resources(),
        }
    }
}

impl Example for UpdateClass {
    fn example() -> Self {
        UpdateClass {
            name: Some("large".into()),
            resources: Some(resources()),
        }
    }
}

impl Example for Project {
    fn example() -> Self {
        Project {
            id: id("prj"),
            org_id: id("org"),
            name: "backend".into(),
            repository_url: "https://git.internal/acme/backend.git".into(),
            image: "mirror.internal/devcontainers/rust:1".into(),
            class_id: id("cls"),
            tasks: tasks(),
            ide: ide(),
            network: network(),
            created_at: T0,
            updated_at: T1,
        }
    }
}

impl Example for CreateProject {
    fn example() -> Self {
        CreateProject {
            name: "backend".into(),
            repository_url: "https://git.internal/acme/backend.git".into(),
            image: "mirror.internal/devcontainers/rust:1".into(),
            class_id: id("cls"),
            tasks: tasks(),
            ide: ide(),
            network: network(),
        }
    }
}

impl Example for UpdateProject {
    fn example() -> Self {
        UpdateProject {
            name: Some("backend-v2".into()),
            repository_url: Some("https://git.internal/acme/backend-v2.git".into()),
            image: Some("mirror.internal/devcontainers/rust:2".into()),
            class_id: Some(id("cls")),
            tasks: Some(tasks()),
            ide: Some(ide()),
            network: Some(network()),
        }
    }
}

impl Example for RunnerView {
    fn example() -> Self {
        RunnerView {
            id: id("run"),
            org_id: id("org"),
            name: "rack-1".into(),
            capacity: 10,
            environments: 3,
            phase: RunnerPhase::Active,
            message: Some("disk 80% full".into()),
            version: Some("airlock 0.1.0".into()),
            last_heartbeat: Some(T1),
            created_at: T0,
        }
    }
}

impl Example for CreateRunner {
    fn example() -> Self {
        CreateRunner {
            name: "rack-1".into(),
            capacity: 10,
        }
    }
}

impl Example for UpdateRunner {
    fn example() -> Self {
        UpdateRunner {
            name: Some("rack-2".into()),
            capacity: Some(20),
        }
    }
}

impl Example for NewRunner {
    fn example() -> Self {
        NewRunner {
            runner: RunnerView::example(),
            exchange_token: "alk_rex_0123456789abcdef".into(),
            exchange_expires_at: T1,
        }
    }
}

fn ide() -> crate::IdeSettings {
    crate::IdeSettings {
        vscode_commits: vec!["0ee08df0cf4527e40edc9aa28f4b5bd38bbff2b2".into()],
        extensions: vec!["rust-lang.rust-analyzer".into()],
        code_server: Some("4.96.4".into()),
        jetbrains: None,
    }
}

fn network() -> crate::NetworkNarrowing {
    crate::NetworkNarrowing { allow: Some(vec!["git.internal:443".into(), "10.20.0.0/16:5432".into()]) }
}

fn spec() -> EnvSpec {
    EnvSpec {
        image: "mirror.internal/devcontainers/rust:1".into(),
        repository_url: "https://git.internal/acme/backend.git".into(),
        tasks: tasks(),
        class_id: id("cls"),
        class_name: "standard".into(),
        resources: resources(),
        ide: ide(),
        network: network(),
    }
}

fn backup() -> WorkspaceBackup {
    WorkspaceBackup {
        digest: format!("sha256:{}", "ab".repeat(32)),
        size: 1_048_576,
        created_at: T1,
        runner_id: id("run"),
    }
}

fn file_delivery() -> Delivery {
    Delivery::File {
        path: "/run/secrets/db-password".into(),
    }
}

impl Example for Environment {
    fn example() -> Self {
        Environment {
            id: id("env"),
            org_id: id("org"),
            owner_id: id("usr"),
            project_id: id("prj"),
            name: "backend-7f3a".into(),
            runner_id: id("run"),
            phase: EnvPhase::Stopped,
            desired_state: DesiredState::Stopped,
            failure_reason: None,
            spec: spec(),
            created_at: T0,
            updated_at: T1,
            last_activity: T1,
            backup: Some(backup()),
        }
    }
}

impl Example for CreateEnvironment {
    fn example() -> Self {
        CreateEnvironment {
            project_id: id("prj"),
            name: Some("backend-mine".into()),
            class_id: Some(id("cls")),
        }
    }
}

impl Example for EnvEvent {
    fn example() -> Self {
        EnvEvent {
            time: T1,
            kind: "progress".into(),
            message: "cloning https://git.internal/acme/backend.git".into(),
        }
    }
}

impl Example for SshAccess {
    fn example() -> Self {
        SshAccess {
            environment_id: id("env"),
            environment_name: "backend-7f3a".into(),
            host_alias: format!("{}.airlock.environment", id("env")),
            host: "rack-1.internal".into(),
            port: 2222,
            user: id("env"),
            host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey".into(),
        }
    }
}

impl Example for Secret {
    fn example() -> Self {
        Secret {
            id: id("sec"),
            org_id: id("org"),
            name: "db-password".into(),
            scope: SecretScope::Project {
                project_id: id("prj"),
            },
            delivery: file_delivery(),
            kek_id: "kek-1".into(),
            created_at: T0,
            updated_at: T1,
        }
    }
}

impl Example for CreateSecret {
    fn example() -> Self {
        CreateSecret {
            name: "api-key".into(),
            scope: SecretScope::Org,
            delivery: Some(Delivery::Env {
                name: "API_KEY".into(),
            }),
            value: "s3cr3t".into(),
        }
    }
}

impl Example for SetSecretValue {
    fn example() -> Self {
        SetSecretValue {
            value: "n3w s3cr3t".into(),
        }
    }
}

impl Example for StoreSnapshot {
    fn example() -> Self {
        StoreSnapshot {
            taken_at: T1,
            audit_seq: 42,
            audit_head: "9f2c…".into(),
            entries: vec![["org/org_1".into(), "eyJpZCI6Im9yZ18xIn0=".into()]],
        }
    }
}

impl Example for RotateKekResult {
    fn example() -> Self {
        RotateKekResult {
            current_kek_id: "kek-2".into(),
            rewrapped: 4,
            already_current: 1,
        }
    }
}

impl Example for AuditRecord {
    fn example() -> Self {
        AuditRecord {
            seq: 42,
            time: T1,
            org_id: Some(id("org")),
            actor: Actor {
                kind: ActorKind::User,
                id: id("usr"),
                name: "ada@example.internal".into(),
                token_id: Some(id("tok")),
            },
            action: "project.create".into(),
            subject: format!("project/{}", id("prj")),
            outcome: Outcome::Success,
            source: "192.0.2.10".into(),
            request_id: "req_01a2b3c4".into(),
            detail: Some("name=backend".into()),
            prev_hash: "00".repeat(32),
            hash: "cd".repeat(32),
        }
    }
}

impl Example for VerifyReport {
    fn example() -> Self {
        VerifyReport {
            ok: false,
            records: 42,
            head: Head {
                seq: 42,
                hash: "cd".repeat(32),
            },
            problems: vec![Problem {
                seq: 17,
                message: "hash does not match the record".into(),
            }],
            scope: "site".into(),
        }
    }
}

impl Example for ExchangeRequest {
    fn example() -> Self {
        ExchangeRequest {
            exchange_token: "alk_rex_0123456789abcdef".into(),
        }
    }
}

impl Example for RunnerCredential {
    fn example() -> Self {
        RunnerCredential {
            runner_id: id("run"),
            org_id: id("org"),
            credential: "alk_run_0123456789abcdef".into(),
            heartbeat_interval_seconds: 15,
        }
    }
}

fn ssh_endpoint() -> SshEndpoint {
    SshEndpoint {
        host: "rack-1.internal".into(),
        port: 2222,
        host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey".into(),
    }
}

impl Example for Heartbeat {
    fn example() -> Self {
        Heartbeat {
            status: Some(RunnerPhase::Degraded),
            message: Some("disk 80% full".into()),
            version: Some("airlock 0.1.0".into()),
            environments: vec![Activity {
                id: id("env"),
                last_activity: T1,
            }],
            ssh: Some(ssh_endpoint()),
        }
    }
}

impl Example for HeartbeatResponse {
    fn example() -> Self {
        HeartbeatResponse {
            runner_id: id("run"),
            phase: RunnerPhase::Degraded,
            heartbeat_interval_seconds: 15,
            inactive_after_seconds: 90,
            unknown_environments: vec![id("env")],
        }
    }
}

impl Example for RunnerEnvironment {
    fn example() -> Self {
        RunnerEnvironment {
            id: id("env"),
            name: "backend-7f3a".into(),
            org_id: id("org"),
            project_id: id("prj"),
            owner: Owner {
                id: id("usr"),
                email: "ada@example.internal".into(),
                name: "Ada Lovelace".into(),
            },
            phase: EnvPhase::Failed,
            desired_state: DesiredState::Running,
            failure_reason: Some("image not on the mirror".into()),
            spec: spec(),
            secrets: vec![SecretRef {
                id: id("sec"),
                name: "db-password".into(),
                delivery: file_delivery(),
            }],
            ssh_authorized_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample".into()],
            updated_at: T1,
            last_activity: T1,
            backup: Some(backup()),
        }
    }
}

impl Example for SecretValues {
    fn example() -> Self {
        SecretValues {
            items: vec![SecretValue {
                id: id("sec"),
                name: "db-password".into(),
                delivery: file_delivery(),
                value: "s3cr3t".into(),
            }],
        }
    }
}

impl Example for StatusReport {
    fn example() -> Self {
        StatusReport {
            phase: EnvPhase::Failed,
            reason: Some("task `build` exited with 101".into()),
            last_activity: Some(T1),
        }
    }
}

impl Example for EventsReport {
    fn example() -> Self {
        EventsReport {
            events: vec![NewEvent {
                time: Some(T1),
                kind: "progress".into(),
                message: "pulled the image".into(),
            }],
        }
    }
}

impl Example for EventsAccepted {
    fn example() -> Self {
        EventsAccepted { accepted: 1 }
    }
}

impl Example for SshSessionsReport {
    fn example() -> Self {
        SshSessionsReport {
            sessions: vec![SshSessionRecord {
                time: Some(T1),
                event: SshSessionEvent::Ended,
                peer: "192.0.2.10:50122".into(),
                key_fingerprint: "SHA256:Qm9ndXNGaW5nZXJwcmludA".into(),
                command: Some("shell".into()),
                exit_status: Some(0),
                bytes_in: Some(1_532),
                bytes_out: Some(48_210),
                duration_ms: Some(95_400),
            }],
        }
    }
}

impl Example for SshSessionsAccepted {
    fn example() -> Self {
        SshSessionsAccepted { accepted: 1 }
    }
}

impl Example for OpenApiDocument {
    fn example() -> Self {
        OpenApiDocument(serde_json::json!({
            "openapi": "3.1.0",
            "info": { "title": "airlock control plane", "version": "0.1.0" },
            "paths": {},
        }))
    }
}

impl Example for ErrorBody {
    fn example() -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: "invalid_request".into(),
                message: "`nope` is not a git repository URL".into(),
                field: Some("repository_url".into()),
                request_id: "req_01a2b3c4".into(),
            },
        }
    }
}
