//! Which signatures count: trusted keys, a threshold of distinct keys, detached co-signatures.

use std::collections::BTreeSet;

use crate::signing::{KeyId, PublicKey, SignatureFile};

pub struct TrustPolicy {
    pub keys: Vec<PublicKey>,
    /// How many distinct trusted keys must have signed.
    pub threshold: usize,
}

/// A signature that verified with a trusted key.
#[derive(Clone, Debug)]
pub struct Signer {
    pub key_id: KeyId,
    pub trusted_comment: String,
    /// `embedded` or the detached file it came from.
    pub origin: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("no trusted key given: pass --trusted-key with the signer's public key, or name the site's keys in mirror.trusted_keys (airlock.toml)")]
    NoTrustedKeys,
    #[error("{source_name}: {error}")]
    Unmet { source_name: String, error: Box<TrustError> },
    #[error("threshold {threshold} is more than the {keys} trusted keys given")]
    ThresholdTooHigh { threshold: usize, keys: usize },
    #[error("threshold must be at least 1")]
    ZeroThreshold,
    #[error("the signature by key {key_id} ({origin}) does not verify: the manifest was altered or the signature is damaged ({reason})")]
    BadSignature { key_id: KeyId, origin: String, reason: String },
    #[error("{found} of the required {threshold} trusted keys signed this bundle (valid signatures from: {signers}; signatures from untrusted keys: {untrusted})")]
    BelowThreshold { found: usize, threshold: usize, signers: String, untrusted: String },
}

/// What decides whether a bundle's signatures are enough.
pub trait Trust {
    fn check(&self, data: &[u8], signatures: &[(SignatureFile, String)]) -> Result<Vec<Signer>, TrustError>;
}

impl Trust for TrustPolicy {
    fn check(&self, data: &[u8], signatures: &[(SignatureFile, String)]) -> Result<Vec<Signer>, TrustError> {
        TrustPolicy::check(self, data, signatures)
    }
}

/// One policy with where it came from (`mirror.trusted_keys in /etc/airlock/airlock.toml`,
/// `--trusted-key`), for messages and for the accreditation statement.
pub struct Requirement {
    pub source: String,
    pub policy: TrustPolicy,
}

impl Requirement {
    /// What this requirement enforces, in one sentence fragment. The accreditation package
    /// states the site's anchor with this text, so the statement is the rule.
    pub fn describe(&self) -> String {
        let mut ids: Vec<String> = self.policy.keys.iter().map(|k| k.id.to_string()).collect();
        ids.sort();
        ids.dedup();
        format!(
            "valid signatures from at least {} of the {} distinct keys {} named by {}",
            self.policy.threshold,
            ids.len(),
            ids.join(", "),
            self.source
        )
    }
}

/// Every requirement a bundle must meet at once: the site's trust anchor and whatever the
/// importer adds. Each is checked on its own, so keys added by one never count towards
/// another's threshold; adding a requirement can only make acceptance harder.
pub struct Requirements(pub Vec<Requirement>);

impl Trust for Requirements {
    fn check(&self, data: &[u8], signatures: &[(SignatureFile, String)]) -> Result<Vec<Signer>, TrustError> {
        if self.0.is_empty() {
            return Err(TrustError::NoTrustedKeys);
        }
        let mut signers: Vec<Signer> = Vec::new();
        for requirement in &self.0 {
            let met = requirement.policy.check(data, signatures).map_err(|error| TrustError::Unmet {
                source_name: requirement.source.clone(),
                error: Box::new(error),
            })?;
            for signer in met {
                if !signers.iter().any(|s| s.key_id == signer.key_id) {
                    signers.push(signer);
                }
            }
        }
        Ok(signers)
    }
}

impl TrustPolicy {
    pub fn new(keys: Vec<PublicKey>, threshold: usize) -> Result<Self, TrustError> {
        if keys.is_empty() {
            return Err(TrustError::NoTrustedKeys);
        }
        if threshold == 0 {
            return Err(TrustError::ZeroThreshold);
        }
        let distinct: BTreeSet<KeyId> = keys.iter().map(|k| k.id).collect();
        if threshold > distinct.len() {
            return Err(TrustError::ThresholdTooHigh { threshold, keys: distinct.len() });
        }
        Ok(TrustPolicy { keys, threshold })
    }

    /// Checks every signature made by a trusted key and counts distinct keys. A signature
    /// by a trusted key that fails is an error even if the threshold is met otherwise:
    /// it means someone altered what was signed.
    pub fn check(&self, data: &[u8], signatures: &[(SignatureFile, String)]) -> Result<Vec<Signer>, TrustError> {
        let mut signers: Vec<Signer> = Vec::new();
        let mut untrusted = BTreeSet::new();
        for (signature, origin) in signatures {
            let Some(key) = self.keys.iter().find(|k| k.id == signature.key_id) else {
                untrusted.insert(signature.key_id.to_string());
                continue;
            };
            key.verify(data, signature).map_err(|reason| TrustError::BadSignature {
                key_id: signature.key_id,
                origin: origin.clone(),
                reason: reason.to_string(),
            })?;
            if !signers.iter().any(|s| s.key_id == key.id) {
                signers.push(Signer {
                    key_id: key.id,
                    trusted_comment: signature.trusted_comment.clone(),
                    origin: origin.clone(),
                });
            }
        }
        if signers.len() < self.threshold {
            let list = |items: Vec<String>| if items.is_empty() { "none".to_string() } else { items.join(", ") };
            return Err(TrustError::BelowThreshold {
                found: signers.len(),
                threshold: self.threshold,
                signers: list(signers.iter().map(|s| s.key_id.to_string()).collect()),
                untrusted: list(untrusted.into_iter().collect()),
            });
        }
        Ok(signers)
    }
}
