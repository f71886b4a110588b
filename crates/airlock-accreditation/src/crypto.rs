//! The cryptography airlock uses: which algorithm, in which library and version, for what,
//! and its FIPS 140 status. Versions come from the workspace `Cargo.lock` this binary was
//! built from, so they are the versions actually compiled in.

use crate::facts::Component;
use crate::Error;

/// The lockfile the binary was built with.
const CARGO_LOCK: &str = include_str!("../../../Cargo.lock");

#[derive(Debug)]
struct Package {
    name: String,
    version: String,
    dependencies: Vec<String>,
}

pub struct Lock {
    packages: Vec<Package>,
}

impl Lock {
    pub fn built_in() -> Result<Lock, Error> {
        Lock::parse(CARGO_LOCK).map_err(Error::Lockfile)
    }

    pub fn parse(text: &str) -> Result<Lock, String> {
        #[derive(serde::Deserialize)]
        struct File {
            package: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            name: String,
            version: String,
            #[serde(default)]
            dependencies: Vec<String>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        Ok(Lock {
            packages: file
                .package
                .into_iter()
                .map(|e| Package { name: e.name, version: e.version, dependencies: e.dependencies })
                .collect(),
        })
    }

    /// The version of `dep` that the package `consumer` depends on, if it does. Cargo.lock
    /// names a dependency by name alone when one version is locked, else by name and version.
    pub fn used_by(&self, consumer: &str, dep: &str) -> Option<String> {
        let consumer = self.packages.iter().find(|p| p.name == consumer)?;
        let entry = consumer.dependencies.iter().find(|d| d.split(' ').next() == Some(dep))?;
        match entry.split(' ').nth(1) {
            Some(version) => Some(version.to_string()),
            None => self.packages.iter().find(|p| p.name == dep).map(|p| p.version.clone()),
        }
    }

    /// Workspace crates (and others) that depend on `dep`, sorted.
    pub fn dependents(&self, dep: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .packages
            .iter()
            .filter(|p| p.dependencies.iter().any(|d| d.split(' ').next() == Some(dep)))
            .map(|p| p.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// A library implementing an asset, as locked.
#[derive(Clone)]
pub struct Library {
    pub name: String,
    pub version: String,
    /// What this library does of the asset's uses.
    pub role: &'static str,
}

impl Library {
    pub fn purl(&self) -> String {
        format!("pkg:cargo/{}@{}", self.name, self.version)
    }
}

pub enum AssetKind {
    Algorithm {
        /// CycloneDX 1.6 `primitive`.
        primitive: &'static str,
        parameter_set: Option<&'static str>,
        curve: Option<&'static str>,
        mode: Option<&'static str>,
        functions: &'static [&'static str],
        security_bits: Option<u32>,
    },
    Protocol {
        /// CycloneDX 1.6 protocol `type`.
        protocol: &'static str,
        version: &'static str,
    },
}

pub struct Asset {
    /// Stable short name, used in bom-refs and UUIDs.
    pub key: &'static str,
    pub name: &'static str,
    pub kind: AssetKind,
    pub oid: Option<&'static str>,
    pub libraries: Vec<Library>,
    pub components: &'static [Component],
    pub uses: &'static str,
    /// Whether the algorithm itself is approved for FIPS 140-3 use, and where.
    pub fips_algorithm: &'static str,
}

/// The FIPS 140 status of every module below, stated once: none is validated.
pub const FIPS_MODULE_STATUS: &str = "not a FIPS 140-3 validated module as built (no CMVP certificate covers this library or airlock)";

/// Every asset airlock uses, with the library versions from the lockfile. An asset whose
/// library is not in this build (the SSH gateway before it is merged) is left out.
pub fn inventory(lock: &Lock) -> Vec<Asset> {
    let lib = |consumer: &str, name: &str, role: &'static str| {
        lock.used_by(consumer, name).map(|version| Library { name: name.to_string(), version, role })
    };
    let libs = |list: Vec<Option<Library>>| list.into_iter().flatten().collect::<Vec<_>>();
    use Component::*;
    let mut assets = vec![
        Asset {
            key: "ed25519",
            name: "Ed25519",
            kind: AssetKind::Algorithm {
                primitive: "signature",
                parameter_set: None,
                curve: Some("Ed25519"),
                mode: None,
                functions: &["keygen", "sign", "verify"],
                security_bits: Some(128),
            },
            oid: Some("1.3.101.112"),
            libraries: libs(vec![
                lib("airlock-bundle", "ed25519-compact", "key generation and deterministic signing (minisign format)"),
                lib("airlock-bundle", "minisign-verify", "signature verification (self-contained Ed25519 and BLAKE2b)"),
            ]),
            components: &[Bundler, Mirror],
            uses: "minisign signatures: bundle manifests and volume lists (bundle create), their verification against the trusted keys (bundle verify, mirror import), the accreditation MANIFEST.sha256",
            fips_algorithm: "approved algorithm (FIPS 186-5 EdDSA)",
        },
        Asset {
            key: "blake2b-512",
            name: "BLAKE2b-512",
            kind: AssetKind::Algorithm {
                primitive: "hash",
                parameter_set: Some("512"),
                curve: None,
                mode: None,
                functions: &["digest"],
                security_bits: Some(256),
            },
            oid: Some("1.3.6.1.4.1.1722.12.2.1.16"),
            libraries: libs(vec![
                lib("airlock-bundle", "blake2", "prehash before signing, secret key checksum"),
                lib("airlock-bundle", "minisign-verify", "prehash before verification"),
            ]),
            components: &[Bundler, Mirror],
            uses: "minisign's prehash: every signed manifest is hashed with BLAKE2b-512 and the hash is signed",
            fips_algorithm: "NOT an approved algorithm (not in FIPS 180-4 or FIPS 202): a known gap of the minisign format",
        },
        Asset {
            key: "scrypt",
            name: "scrypt",
            kind: AssetKind::Algorithm {
                primitive: "kdf",
                parameter_set: None,
                curve: None,
                mode: None,
                functions: &["keyderive"],
                security_bits: None,
            },
            oid: Some("1.3.6.1.4.1.11591.4.11"),
            libraries: libs(vec![
                lib("airlock-bundle", "minisign", "password-protected secret keys"),
                lib("minisign", "scrypt", "scrypt itself"),
            ]),
            components: &[Bundler],
            uses: "derives the key that protects a password-protected minisign secret key (keygen --password)",
            fips_algorithm: "NOT an approved algorithm (SP 800-132 approves PBKDF2 only)",
        },
        Asset {
            key: "sha-256",
            name: "SHA-256",
            kind: AssetKind::Algorithm {
                primitive: "hash",
                parameter_set: Some("256"),
                curve: None,
                mode: None,
                functions: &["digest"],
                security_bits: Some(128),
            },
            oid: Some("2.16.840.1.101.3.4.2.1"),
            libraries: libs(vec![
                lib("airlock-oci", "sha2", "blob digests: packing, verifying and importing bundles, image pulls"),
                lib("airlock-mirror", "sha2", "content store digests, push token hashes"),
                lib("airlock-control-plane", "sha2", "audit hash chain, token hashes, key-encryption key ids"),
                lib("airlock-accreditation", "sha2", "MANIFEST.sha256, configuration baseline hash"),
            ]),
            components: &[Bundler, Mirror, ControlPlane],
            uses: "content addressing and integrity of every blob; the control plane's hash-chained audit log; stored hashes of API, runner and push tokens; key-encryption key ids; the accreditation manifest",
            fips_algorithm: "approved algorithm (FIPS 180-4)",
        },
        Asset {
            key: "aes-256-gcm",
            name: "AES-256-GCM",
            kind: AssetKind::Algorithm {
                primitive: "ae",
                parameter_set: Some("256"),
                curve: None,
                mode: Some("gcm"),
                functions: &["keygen", "encrypt", "decrypt"],
                security_bits: Some(256),
            },
            oid: Some("2.16.840.1.101.3.4.1.46"),
            libraries: libs(vec![lib("airlock-control-plane", "aes-gcm", "envelope encryption of secret values")]),
            components: &[ControlPlane],
            uses: "secrets at rest: each value under its own random 256-bit data key, the data key wrapped under the key-encryption key; 96-bit random nonces; the secret id as associated data",
            fips_algorithm: "approved algorithm (FIPS 197 with SP 800-38D)",
        },
        Asset {
            key: "argon2id",
            name: "Argon2id",
            kind: AssetKind::Algorithm {
                primitive: "kdf",
                parameter_set: None,
                curve: None,
                mode: None,
                functions: &["digest"],
                security_bits: None,
            },
            oid: None,
            libraries: libs(vec![lib("airlock-control-plane", "argon2", "password hashing")]),
            components: &[ControlPlane],
            uses: "user password hashes (argon2 crate defaults, random salt); logins are checked against them",
            fips_algorithm: "NOT an approved algorithm (SP 800-132 approves PBKDF2 only)",
        },
        Asset {
            key: "ecdsa-p256-sha256",
            name: "ECDSA P-256 with SHA-256",
            kind: AssetKind::Algorithm {
                primitive: "signature",
                parameter_set: None,
                curve: Some("P-256"),
                mode: None,
                functions: &["keygen", "sign"],
                security_bits: Some(128),
            },
            oid: Some("1.2.840.10045.4.3.2"),
            libraries: libs(vec![
                lib("airlock-mirror", "rcgen", "certificate issuing"),
                lib("rcgen", "ring", "key generation and signing"),
            ]),
            components: &[Mirror],
            uses: "the site's internal CA and server certificates made by `airlock mirror tls issue`",
            fips_algorithm: "approved algorithm (FIPS 186-5 ECDSA)",
        },
        Asset {
            key: "tls",
            name: "TLS 1.2 and 1.3",
            kind: AssetKind::Protocol { protocol: "tls", version: "1.3" },
            oid: None,
            libraries: libs(vec![
                lib("airlock-control-plane", "rustls", "TLS for the control plane server and clients"),
                lib("airlock-mirror", "rustls", "TLS for the mirror server and push client"),
                lib("rustls", "ring", "cryptographic provider of rustls"),
            ]),
            components: &[Mirror, ControlPlane, Runner],
            uses: "HTTPS on the mirror and control plane listeners when their tls_cert is configured, and the clients that call them",
            fips_algorithm: "rustls' ring provider negotiates AES-GCM and ChaCha20-Poly1305 suites with X25519 or ECDHE; ChaCha20-Poly1305 and X25519 are not approved",
        },
        Asset {
            key: "ssh",
            name: "SSH 2.0",
            kind: AssetKind::Protocol { protocol: "ssh", version: "2.0" },
            oid: None,
            libraries: libs(vec![lib("airlock-runner", "russh", "the runner's SSH gateway")]),
            components: &[Runner],
            uses: "the runner's SSH gateway that users' OpenSSH clients reach their environments through",
            fips_algorithm: "russh's default algorithm preferences include non-approved ones (curve25519 key exchange, ChaCha20-Poly1305)",
        },
        Asset {
            key: "os-csprng",
            name: "Operating system CSPRNG",
            kind: AssetKind::Algorithm {
                primitive: "drbg",
                parameter_set: None,
                curve: None,
                mode: None,
                functions: &["generate"],
                security_bits: None,
            },
            oid: None,
            libraries: libs(vec![
                lib("airlock-bundle", "getrandom", "key seeds and key ids"),
                lib("airlock-mirror", "getrandom", "push tokens"),
                lib("airlock-control-plane", "rand", "tokens, data keys, nonces, salts (OsRng)"),
            ]),
            components: &[Bundler, Mirror, ControlPlane],
            uses: "every key, token, nonce and salt: getrandom(2) on Linux",
            fips_algorithm: "the kernel's getrandom(2); its DRBG is part of the host's kernel crypto, not of airlock",
        },
    ];
    assets.retain(|a| !a.libraries.is_empty());
    assets
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["sha2 0.10.9", "aes-gcm"]

[[package]]
name = "sha2"
version = "0.10.9"

[[package]]
name = "sha2"
version = "0.11.1"

[[package]]
name = "aes-gcm"
version = "0.10.3"
"#;

    #[test]
    fn versions_are_resolved_per_consumer() {
        let lock = Lock::parse(LOCK).unwrap();
        assert_eq!(lock.used_by("app", "sha2").as_deref(), Some("0.10.9"));
        assert_eq!(lock.used_by("app", "aes-gcm").as_deref(), Some("0.10.3"));
        assert_eq!(lock.used_by("app", "argon2"), None);
        assert_eq!(lock.used_by("nobody", "sha2"), None);
        assert_eq!(lock.dependents("aes-gcm"), vec!["app".to_string()]);
    }

    #[test]
    fn the_built_in_lockfile_gives_real_versions() {
        let lock = Lock::built_in().unwrap();
        let assets = inventory(&lock);
        let find = |key: &str| assets.iter().find(|a| a.key == key).unwrap_or_else(|| panic!("no {key}"));
        for key in ["ed25519", "blake2b-512", "sha-256", "aes-256-gcm", "argon2id", "tls"] {
            let asset = find(key);
            assert!(!asset.libraries.is_empty(), "{key}");
            for l in &asset.libraries {
                assert!(l.version.chars().next().is_some_and(|c| c.is_ascii_digit()), "{key}: {} {}", l.name, l.version);
            }
        }
        assert!(find("tls").libraries.iter().any(|l| l.name == "ring"), "rustls' provider is named");
        // The SSH row appears exactly when a workspace crate links russh.
        let has_russh = lock.dependents("russh").iter().any(|d| d == "airlock-runner");
        assert_eq!(assets.iter().any(|a| a.key == "ssh"), has_russh);
    }
}
