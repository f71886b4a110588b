//! `sbom/<bundle-id>.cdx.json`: a CycloneDX 1.6 SBOM per imported bundle. Images are
//! `container` components with `pkg:oci` package URLs, extensions `library` components with
//! `pkg:vscode-extension`, IDE servers and binaries `application` components; every hash is
//! SHA-256. The cryptographic assets airlock used to verify and serve the bundle are listed
//! as `cryptographic-asset` components, provided by the libraries that implement them.

use serde_json::{json, Value};

use airlock_bundle::ArtifactKind;

use crate::crypto::{AssetKind, FIPS_MODULE_STATUS};
use crate::facts::Facts;
use crate::state::{Artifact, Bundle, State};
use crate::text;
use crate::uuid::v5;
use crate::Files;

pub fn path(bundle_id: &str) -> String {
    format!("sbom/{bundle_id}.cdx.json")
}

/// Percent-encodes everything but unreserved characters (and `keep`), as package URLs want.
fn encode(text: &str, keep: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.as_bytes().contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The mirror's host (and port) as clients name it, for `repository_url`.
fn mirror_host(state: &State) -> String {
    let url = state.config.mirror_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    rest.trim_end_matches('/').to_string()
}

/// The package URL of an artifact as the mirror serves it.
pub fn purl(state: &State, artifact: &Artifact) -> String {
    let a = &artifact.record.artifact;
    match a.kind {
        ArtifactKind::Image => {
            let name = a.repository.rsplit('/').next().unwrap_or(&a.repository);
            format!(
                "pkg:oci/{}@{}?repository_url={}&tag={}",
                encode(name, ""),
                encode(&a.digest.to_string(), ""),
                encode(&format!("{}/{}", mirror_host(state), a.repository), "/:"),
                encode(&a.tag, "")
            )
        }
        ArtifactKind::VscodeExtension => {
            let (publisher, name) = a.name.split_once('.').unwrap_or(("unknown", &a.name));
            let platform = a.platform.as_ref().map(|p| format!("?platform={}", encode(p, ""))).unwrap_or_default();
            format!("pkg:vscode-extension/{}/{}@{}{platform}", encode(publisher, ""), encode(name, ""), encode(&a.version, ""))
        }
        _ => {
            let checksum = artifact.file.as_ref().map(|f| format!("?checksum=sha256:{}", f.sha256)).unwrap_or_default();
            format!("pkg:generic/{}@{}{checksum}", encode(&a.name, ""), encode(&a.version, ""))
        }
    }
}

/// The sha256 (hex) that identifies the artifact's content: the image manifest, or the file.
pub fn content_sha256(artifact: &Artifact) -> String {
    match &artifact.file {
        Some(f) => f.sha256.clone(),
        None => artifact.record.artifact.digest.hex(),
    }
}

fn component_type(kind: ArtifactKind) -> &'static str {
    match kind {
        ArtifactKind::Image => "container",
        ArtifactKind::VscodeExtension | ArtifactKind::PythonPackage | ArtifactKind::NpmPackage | ArtifactKind::CargoCrate => "library",
        ArtifactKind::VscodeServer | ArtifactKind::JetbrainsIde | ArtifactKind::CodeServer | ArtifactKind::ReleaseFile => "application",
        ArtifactKind::AmiDescriptor | ArtifactKind::DevcontainerFeature => "file",
    }
}

fn property(name: &str, value: impl Into<String>) -> Value {
    json!({"name": format!("airlock:{name}"), "value": value.into()})
}

pub fn artifact_ref(artifact: &Artifact) -> String {
    let a = &artifact.record.artifact;
    // repository:tag names one manifest in the mirror, whatever the kind.
    format!("artifact/{}:{}", a.repository, a.tag)
}

fn artifact_component(state: &State, artifact: &Artifact) -> Value {
    let a = &artifact.record.artifact;
    let mut properties = vec![
        property("kind", a.kind.as_str()),
        property("upstream", a.upstream.clone()),
        property("mirror-reference", format!("{}/{}:{}", mirror_host(state), a.repository, a.tag)),
        property("oci-manifest-digest", a.digest.to_string()),
        property("imported", artifact.record.imported.clone()),
    ];
    if let Some(platform) = &a.platform {
        properties.push(property("platform", platform.clone()));
    }
    if let Some(name) = artifact.file.as_ref().and_then(|f| f.name.clone()) {
        properties.push(property("file-name", name));
    }
    let mut c = json!({
        "bom-ref": artifact_ref(artifact),
        "type": component_type(a.kind),
        "name": a.name,
        "version": a.version,
        "hashes": [{"alg": "SHA-256", "content": content_sha256(artifact)}],
        "purl": purl(state, artifact),
        "properties": properties,
    });
    if a.kind == ArtifactKind::VscodeExtension {
        if let Some((publisher, name)) = a.name.split_once('.') {
            c["group"] = json!(publisher);
            c["name"] = json!(name);
        }
    }
    c
}

/// CycloneDX `implementationPlatform` of the build target.
fn platform() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "x86" => "x86_32",
        "aarch64" => "armv8-a",
        "s390x" => "s390x",
        "powerpc64" => "ppc64",
        _ => "other",
    }
}

/// Crypto assets, the libraries providing them and airlock itself, with their dependencies.
fn crypto_components(facts: &Facts) -> (Vec<Value>, Vec<Value>) {
    let mut components = vec![json!({
        "bom-ref": "airlock",
        "type": "application",
        "name": "airlock",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "The airlock binary that verified, imported and serves this bundle's content.",
    })];
    let mut dependencies = Vec::new();
    let mut libraries: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for asset in &facts.crypto {
        let bom_ref = format!("crypto/{}", asset.key);
        let properties = match &asset.kind {
            AssetKind::Algorithm { primitive, parameter_set, curve, mode, functions, security_bits } => {
                let mut p = json!({
                    "primitive": primitive,
                    "executionEnvironment": "software-plain-ram",
                    "implementationPlatform": platform(),
                    "certificationLevel": ["none"],
                    "cryptoFunctions": functions,
                });
                if let Some(v) = parameter_set {
                    p["parameterSetIdentifier"] = json!(v);
                }
                if let Some(v) = curve {
                    p["curve"] = json!(v);
                }
                if let Some(v) = mode {
                    p["mode"] = json!(v);
                }
                if let Some(v) = security_bits {
                    p["classicalSecurityLevel"] = json!(v);
                }
                json!({"assetType": "algorithm", "algorithmProperties": p})
            }
            AssetKind::Protocol { protocol, version } => json!({"assetType": "protocol", "protocolProperties": {"type": protocol, "version": version}}),
        };
        let mut crypto = properties;
        if let Some(oid) = asset.oid {
            crypto["oid"] = json!(oid);
        }
        components.push(json!({
            "bom-ref": bom_ref,
            "type": "cryptographic-asset",
            "name": asset.name,
            "description": format!("{}. FIPS 140: {}; {FIPS_MODULE_STATUS}.", asset.uses, asset.fips_algorithm),
            "cryptoProperties": crypto,
        }));
        for lib in &asset.libraries {
            libraries.entry(format!("{}@{}", lib.name, lib.version)).or_default().push(bom_ref.clone());
        }
    }
    let mut library_refs = Vec::new();
    for (name_version, provides) in libraries {
        let (name, version) = name_version.split_once('@').expect("name@version");
        let bom_ref = format!("library/{name_version}");
        components.push(json!({
            "bom-ref": bom_ref,
            "type": "library",
            "name": name,
            "version": version,
            "purl": format!("pkg:cargo/{name}@{version}"),
        }));
        let mut provides = provides;
        provides.sort();
        provides.dedup();
        dependencies.push(json!({"ref": bom_ref, "provides": provides}));
        library_refs.push(bom_ref);
    }
    dependencies.push(json!({"ref": "airlock", "dependsOn": library_refs}));
    (components, dependencies)
}

pub fn write(state: &State, facts: &Facts, bundle: &Bundle, files: &mut Files) {
    let import = bundle.import;
    let bundle_ref = format!("bundle/{}", bundle.id);
    let mut properties = vec![
        property("bundle-id", bundle.id.clone()),
        property("channel", import.channel.clone().unwrap_or_default()),
        property("sequence", import.sequence.map(|s| s.to_string()).unwrap_or_default()),
        property("imported", import.time.clone()),
        property("imported-by", import.actor.clone()),
        property("signers", import.signers.join(", ")),
    ];
    if !import.overrides.is_empty() {
        properties.push(property("overrides", import.overrides.join("; ")));
    }
    if bundle.artifacts.is_empty() {
        properties.push(property("note", "every artifact of this bundle was delivered again by a later bundle; the later bundle's SBOM lists them"));
    }
    let mut components: Vec<Value> = bundle.artifacts.iter().map(|a| artifact_component(state, a)).collect();
    let (crypto, mut dependencies) = crypto_components(facts);
    components.extend(crypto);
    dependencies.insert(0, json!({"ref": bundle_ref, "dependsOn": bundle.artifacts.iter().map(|a| artifact_ref(a)).collect::<Vec<_>>()}));
    let doc = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", v5(&format!("sbom/cyclonedx/{}", bundle.id))),
        "version": 1,
        "metadata": {
            "timestamp": state.as_of.time,
            "tools": {"components": [{"type": "application", "name": "airlock", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {
                "bom-ref": bundle_ref,
                "type": "file",
                "name": format!("airlock bundle {}", bundle.id),
                "version": import.sequence.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into()),
                "description": format!(
                    "Signed airlock bundle imported into the mirror of {}; the components are the artifacts the mirror serves from it.",
                    state.config.site.name
                ),
            },
            "properties": properties,
        },
        "components": components,
        "dependencies": dependencies,
    });
    files.insert(path(&bundle.id), text::json(&doc));
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn package_url_segments_are_encoded() {
        assert_eq!(encode("sha256:ab", ""), "sha256%3Aab");
        assert_eq!(encode("127.0.0.1:5000/devcontainers/base", "/:"), "127.0.0.1:5000/devcontainers/base");
        assert_eq!(encode("1.0+build", ""), "1.0%2Bbuild");
    }
}
