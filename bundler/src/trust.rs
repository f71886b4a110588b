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
    #[error("no trusted key given: pass --trusted-key with the signer's public key")]
    NoTrustedKeys,
    #[error("threshold {threshold} is more than the {keys} trusted keys given")]
    ThresholdTooHigh { threshold: usize, keys: usize },
    #[error("threshold must be at least 1")]
    ZeroThreshold,
    #[error("the signature by key {key_id} ({origin}) does not verify: the manifest was altered or the signature is damaged ({reason})")]
    BadSignature { key_id: KeyId, origin: String, reason: String },
    #[error("{found} of the required {threshold} trusted keys signed this bundle (valid signatures from: {signers}; signatures from untrusted keys: {untrusted})")]
    BelowThreshold { found: usize, threshold: usize, signers: String, untrusted: String },
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
                reason,
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
